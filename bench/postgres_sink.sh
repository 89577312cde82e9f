#!/usr/bin/env bash
# bench/postgres_sink.sh - rows/s storing chunks with 384-dimensional
# vectors through sink-postgres, against psql's \copy of the same rows into
# tables of the same shape (the practical limit for loading a table).
#
#   bench/postgres_sink.sh [--build DIR] [--docs 1000] [--chunks 100] [--dim 384]
#                          [--text 500] [--pools "1 4"] [--trials 3]
#
# Needs a configured build (default build/) and Debian's postgresql and
# postgresql-client (scripts/deps.sh). It makes its own PostgreSQL cluster
# with tests/plugins/sink-postgres/pgcluster.sh (initdb in /tmp, 127.0.0.1,
# a free port; fsync on, as a real server runs) and removes it at the end.
#
# The data is made once, in memory, by bench/postgres_sink_bench.c: --docs
# documents of --chunks chunks (100,000 by default), each chunk --text
# bytes of text and a random unit vector of --dim floats. Then, per trial,
# each on fresh tables, after a CHECKPOINT:
#   sink-postgres   the plugin's store calls, pool_size in flight on the
#                   core's event loop (once per size in --pools: 1 is one
#                   connection, like \copy; 4 is the default), one
#                   transaction per document (BEGIN, upsert the document,
#                   delete its chunks, insert them in one statement of
#                   binary arrays, COMMIT); only the stores are timed, not
#                   making the documents.
#   \copy text      psql \copy of the same rows as COPY text (vectors as
#                   {...} literals), what a CSV export gives: documents then
#                   chunks, two statements, two transactions.
#   \copy binary    the same in COPY's binary format: COPY at its fastest.
# The \copy tables are made LIKE the sink's (same columns, defaults, primary
# key, unique uri) with the same foreign key, and all three stores are
# checked to hold the same rows. It prints the median of the trials. Not
# run in CI: timings are for people, never for assertions.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build
docs=1000 chunks=100 dim=384 text=500 pools="1 4" trials=3
while [[ $# -gt 0 ]]; do
    case $1 in
    --build) build=$2; shift 2 ;;
    --docs) docs=$2; shift 2 ;;
    --chunks) chunks=$2; shift 2 ;;
    --dim) dim=$2; shift 2 ;;
    --text) text=$2; shift 2 ;;
    --pools) pools=$2; shift 2 ;;
    --trials) trials=$2; shift 2 ;;
    -h | --help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "bench/postgres_sink.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -f $build/CMakeCache.txt ]] || {
    echo "no configured build at $build: cmake -S . -B build first (or --build DIR)" >&2
    exit 2
}
command -v psql >/dev/null || {
    echo "bench/postgres_sink.sh needs psql (apt-get install postgresql-client, or scripts/deps.sh)" >&2
    exit 2
}
build=$(cd "$build" && pwd)
cmake --build "$build" --target bench-postgres-sink -j2 >/dev/null

work=$(mktemp -d /tmp/sluice-bench-pg.XXXXXX)
cluster=$(mktemp -u /tmp/slbench.XXXXXX)
pgcluster=$here/../tests/plugins/sink-postgres/pgcluster.sh
cleanup() {
    bash "$pgcluster" stop "$cluster" || true
    rm -rf "$work"
}
trap cleanup EXIT
port=$(PGCLUSTER_FSYNC=on bash "$pgcluster" start "$cluster")
db=(env PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1
    "host=127.0.0.1 port=$port user=postgres dbname=postgres")
rows=$((docs * chunks))

bench() {
    "$build/bench/bench-postgres-sink" --plugin "$build/plugins/sink-postgres.so" --port "$port" \
        --docs "$docs" --chunks "$chunks" --dim "$dim" --text "$text" "$@"
}

now() { date +%s.%N; }
# calc EXPR: floating-point arithmetic (awk, so no bc is needed).
calc() { awk "BEGIN { print $1 }"; }

echo "making $rows chunks ($docs documents x $chunks, $text bytes of text, $dim dimensions) and the COPY files" >&2
bench --prefix warmup_ --copy-dir "$work" >/dev/null
echo "COPY files: text $(du -m "$work/chunks.copy" | cut -f1) MB, binary $(du -m "$work/chunks.bin" | cut -f1) MB" >&2
"${db[@]}" -c 'DROP TABLE warmup_chunks, warmup_documents, warmup_runs, warmup_meta'

# copy_like PREFIX SINK_PREFIX: empty tables shaped like the sink's.
copy_like() {
    "${db[@]}" -c "CREATE TABLE $1documents (LIKE $2documents INCLUDING ALL)" \
        -c "CREATE TABLE $1chunks (LIKE $2chunks INCLUDING ALL)" \
        -c "ALTER TABLE $1chunks ADD FOREIGN KEY (doc_id) REFERENCES $1documents(id) ON DELETE CASCADE"
}

# digest PREFIX: the stored rows by uri (ids differ between the paths).
digest() {
    "${db[@]}" -At -c "SELECT md5(string_agg(concat_ws('|', d.uri, c.ordinal, c.page, c.line, c.heading, c.text,
                                   c.dim, c.embedding::text), E'\n' ORDER BY d.uri, c.ordinal))
                       FROM $1chunks c JOIN $1documents d ON d.id = c.doc_id"
}

declare -A sink_s
text_s=() bin_s=()
for t in $(seq 1 "$trials"); do
    echo "trial $t of $trials" >&2
    for pool in $pools; do
        "${db[@]}" -c "DROP TABLE IF EXISTS s${t}_chunks, s${t}_documents, s${t}_runs, s${t}_meta"
        "${db[@]}" -c CHECKPOINT
        out=$(bench --pool "$pool" --prefix "s${t}_")
        sink_s[$pool]+="$(awk '/^sink_seconds/ { print $2 }' <<<"$out") "
    done

    copy_like "c${t}_" "s${t}_"
    "${db[@]}" -c CHECKPOINT
    t0=$(now)
    "${db[@]}" -c "\\copy c${t}_documents FROM '$work/documents.copy'" \
        -c "\\copy c${t}_chunks FROM '$work/chunks.copy'"
    text_s+=("$(calc "$(now) - $t0")")

    copy_like "b${t}_" "s${t}_"
    "${db[@]}" -c CHECKPOINT
    t0=$(now)
    "${db[@]}" -c "\\copy b${t}_documents FROM '$work/documents.bin' WITH (FORMAT binary)" \
        -c "\\copy b${t}_chunks FROM '$work/chunks.bin' WITH (FORMAT binary)"
    bin_s+=("$(calc "$(now) - $t0")")

    if [[ $t -eq 1 ]]; then
        ds=$(digest s1_) dc=$(digest c1_) db_=$(digest b1_)
        if [[ ! ($ds == "$dc" && $ds == "$db_") ]]; then
            echo "the three stores differ: sink $ds, \\copy text $dc, \\copy binary $db_" >&2
            exit 1
        fi
        n=$("${db[@]}" -At -c "SELECT count(*) FROM s1_chunks")
        [[ $n == "$rows" ]] || {
            echo "the sink stored $n chunks, not $rows" >&2
            exit 1
        }
    fi
    "${db[@]}" -c "DROP TABLE s${t}_chunks, s${t}_documents, s${t}_runs, s${t}_meta, c${t}_chunks, c${t}_documents,
                   b${t}_chunks, b${t}_documents"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mt=$(median "${text_s[@]}") mb=$(median "${bin_s[@]}")
rate() { calc "$rows / $1"; }
rt=$(rate "$mt") rb=$(rate "$mb")

echo
echo "sink-postgres vs psql \\copy: $rows chunks ($docs documents x $chunks), $dim-dimensional real[] vectors,"
echo "$text bytes of text per chunk; PostgreSQL $("${db[@]}" -At -c 'SHOW server_version') on 127.0.0.1 (fsync on),"
trials_s=""
for pool in $pools; do trials_s+="sink pool $pool: ${sink_s[$pool]% }; "; done
echo "$(nproc) cores; median of $trials trials (seconds: ${trials_s}\\copy text: ${text_s[*]}; binary: ${bin_s[*]})"
echo
printf '| %-38s | %8s | %9s | %9s | %13s |\n' path rows seconds rows/s "vs \\copy text"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..40})" "---------:" "----------:" "----------:" "--------------:"
line() { printf '| %-38s | %8d | %9.2f | %9.0f | %12.2fx |\n' "$1" "$rows" "$2" "$3" "$(calc "$3 / $rt")"; }
for pool in $pools; do
    # shellcheck disable=SC2086 # the trials are words
    ms=$(median ${sink_s[$pool]})
    line "sink-postgres (pool_size $pool)" "$ms" "$(rate "$ms")"
done
line "psql \\copy, text format" "$mt" "$rt"
line "psql \\copy, binary format" "$mb" "$rb"
echo
for pool in $pools; do
    # shellcheck disable=SC2086
    rs=$(rate "$(median ${sink_s[$pool]})")
    printf 'sink-postgres (pool_size %s) / \\copy: %.2f of the text format'"'"'s rate, %.2f of the binary format'"'"'s\n' \
        "$pool" "$(calc "$rs / $rt")" "$(calc "$rs / $rb")"
done
