# tests/plugins/sink-postgres/queuelib.sh - what the job-queue tests share,
# sourced after lib.sh, fake.sh and pglib.sh: the pipeline (Markdown,
# chunk-text, embed-openai against the fake provider, sink-postgres on the
# test's own PostgreSQL), node processes and polling.
# shellcheck shell=bash

# queue_conf FILE FAKE_URL [SLUICE_LINE...]: extra lines go into [sluice].
queue_conf() {
    local file=$1 url=$2 l
    shift 2
    {
        printf '[sluice]\ninclude = *.md\nthreads = 1\nqueue_poll = 200ms\n'
        for l in "$@"; do printf '%s\n' "$l"; done
        cat <<EOF2

[route.text]
media = text/markdown
stages = markdown chunker embedder
sink = store

[markdown]
plugin = parse-markdown

[chunker]
plugin = chunk-text
size = 400
overlap = 0

[embedder]
plugin = embed-openai
api_key = sk-test
base_url = $url/v1
dimension = 1536

[store]
plugin = sink-postgres
host = 127.0.0.1
port = $PG_PORT
dbname = postgres
user = postgres
pool_size = 2
EOF2
    } >"$file"
}

# start_node NAME [ARGS...]: `sluice run --queue` in the background, its
# stdout in NAME.out and log in NAME.err; NODE[NAME] is its pid.
declare -A NODE=()
start_node() {
    local name=$1
    shift
    "$SLUICE" -c q.ini "$@" run --queue --json </dev/null >"$name.out" 2>"$name.err" &
    NODE[$name]=$!
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s; a
# check that fails when it is not true in time.
wait_until() {
    local limit=$1 what=$2 t_end
    shift 2
    t_end=$(($(date +%s) + limit))
    checks=$((checks + 1))
    until "$@"; do
        if (($(date +%s) >= t_end)); then
            fail "$what: not within $limit s"
            return 1
        fi
        sleep 0.1
    done
}

# jobs_in STATE: jobs in that state.
jobs_in() { pg_sql "SELECT count(*) FROM sluice_jobs WHERE state = '$1'"; }
