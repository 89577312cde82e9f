# tests/plugins/sink-postgres/pglib.sh - what sink-postgres's end-to-end
# tests share, sourced after tests/e2e/lib.sh (checks, `sl`, `json`).
# shellcheck shell=bash
#
# Servers are real and made by the test: `pg_start` makes a PostgreSQL
# cluster with pgcluster.sh (initdb in a temporary folder, a free port on
# 127.0.0.1) for the real[] path; `pglite_start` serves PGlite with pgvector
# (tests/pglite, npm ci'd by scripts/deps.sh) for the pgvector path. Both
# are stopped and removed when the test exits. Neither is optional: when one
# cannot start, the test fails and says what to install.

# shellcheck disable=SC2034 # PG_PORT and PGLITE_PORT are for the tests that source this
PGLIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PGCLUSTER=$PGLIB_DIR/pgcluster.sh
PG_DIR=
PG_PORT=
PGLITE_PID=
PGLITE_PORT=

pg_cleanup() {
    local rc=$?
    # this trap replaces fake.sh's, when a test sources both: its servers
    # go here, or they outlive the test
    if declare -F stop_fakes >/dev/null; then stop_fakes; fi
    if [[ -n $PGLITE_PID ]]; then
        kill "$PGLITE_PID" 2>/dev/null || true
        wait "$PGLITE_PID" 2>/dev/null || true
    fi
    if [[ -n $PG_DIR ]]; then bash "$PGCLUSTER" stop "$PG_DIR" || true; fi
    # lib.sh's cleanup removes the test's folder and keeps the status
    (exit $rc)
    cleanup
}
trap pg_cleanup EXIT

for tool in psql node; do
    command -v "$tool" >/dev/null || {
        echo "FAIL: $tool is not installed (scripts/deps.sh installs it)" >&2
        exit 1
    }
done

# pg_start [scram PASSWORD]: a fresh cluster; sets PG_DIR and PG_PORT.
pg_start() {
    PG_DIR=$(mktemp -u /tmp/slpg.XXXXXX)
    # shellcheck disable=SC2034 # used by the tests that source this
    PG_PORT=$(bash "$PGCLUSTER" start "$PG_DIR" "$@") || {
        echo "FAIL: cannot start a PostgreSQL cluster (see above)" >&2
        PG_DIR=
        exit 1
    }
}

pg_restart() { bash "$PGCLUSTER" restart "$PG_DIR"; }
# pg_halt / pg_resume: stop the server (connections cut, new ones refused)
# and start it again on the same port, with the same data.
pg_halt() { bash "$PGCLUSTER" halt "$PG_DIR"; }
pg_resume() { bash "$PGCLUSTER" resume "$PG_DIR"; }

# pg_sql SQL...: psql as the superuser; unaligned rows, '|' between columns.
pg_sql() {
    local a=()
    for s in "$@"; do a+=(-c "$s"); done
    bash "$PGCLUSTER" psql "$PG_DIR" -At "${a[@]}"
}

# pglite_start: PGlite with pgvector on a free port; sets PGLITE_PORT.
pglite_start() {
    local dir=$SRC/tests/pglite
    [[ -d $dir/node_modules/@electric-sql/pglite-socket ]] || {
        echo "FAIL: PGlite is not installed: run 'npm ci --prefix tests/pglite' (scripts/deps.sh does)" >&2
        exit 1
    }
    for _ in 1 2 3 4 5; do
        PGLITE_PORT=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        node "$dir/server.mjs" "$PGLITE_PORT" >"$T/pglite.log" 2>&1 &
        PGLITE_PID=$!
        for _ in $(seq 1 300); do
            if grep -q "^ready $PGLITE_PORT" "$T/pglite.log" 2>/dev/null; then return 0; fi
            kill -0 "$PGLITE_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$PGLITE_PID" 2>/dev/null || true
        wait "$PGLITE_PID" 2>/dev/null || true
        PGLITE_PID=
    done
    echo "FAIL: PGlite did not start: $(tail -5 "$T/pglite.log")" >&2
    exit 1
}

# pglite_sql SQL...: psql against PGlite.
pglite_sql() {
    local a=()
    for s in "$@"; do a+=(-c "$s"); done
    psql -X -q -v ON_ERROR_STOP=1 -At "host=127.0.0.1 port=$PGLITE_PORT user=postgres dbname=postgres" "${a[@]}"
}

# write_conf FILE PORT [KEY=VALUE...]: the default pipeline into sink-postgres
# on 127.0.0.1:PORT as postgres; extra [store] lines after it. The breaker
# cooldown is short: a restart is over in a second, not thirty.
write_conf() {
    local file=$1 port=$2
    shift 2
    {
        cat <<EOF
[sluice]
threads = 2
include = *.md *.txt

[route.text]
media = text/markdown text/plain
stages = markdown chunker embedder
sink = store

[markdown]
plugin = parse-markdown

[chunker]
plugin = chunk-text
size = 1000
overlap = 150

[embedder]
plugin = embed-hash
dimension = 384

[store]
plugin = sink-postgres
host = 127.0.0.1
port = $port
dbname = postgres
user = postgres
breaker_cooldown = 1s
EOF
        local kv
        for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}"; done
    } >"$file"
}

# pg_digest PREFIX [SQL_RUNNER]: a hash of everything a run decides in the
# tables PREFIXdocuments and PREFIXchunks (vectors included), leaving out
# what legitimately differs between runs: ids, times, run numbers.
pg_digest() {
    local p=$1 runner=${2:-pg_sql}
    "$runner" "SELECT 'D', uri, hash, fingerprint, media_type, bytes, title, metadata, chunk_count
                 FROM ${p}documents ORDER BY uri" \
        "SELECT 'C', d.uri, c.ordinal, c.text, c.heading, c.page, c.line, c.summary, c.dim, c.embedding::text
           FROM ${p}chunks c JOIN ${p}documents d ON d.id = c.doc_id ORDER BY d.uri, c.ordinal" |
        sha256sum | cut -d' ' -f1
}

# email_route: the sections that send *.eml through parse-email to the
# config's chunker, embedder and store (append them to a config).
email_route() {
    cat <<'INI'

[route.email]
media = message/rfc822
stages = email chunker embedder
sink = store

[email]
plugin = parse-email
INI
}
