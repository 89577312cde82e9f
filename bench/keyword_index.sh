#!/usr/bin/env bash
# bench/keyword_index.sh - what the SQLite store's keyword index costs a
# chunk, and how much of that any FTS5 configuration could save.
#
#   bench/keyword_index.sh [SLUICE]          (default: build/sluice)
#   DOCS=10000 WORK=/tmp/sluice-bench bench/keyword_index.sh build-bench/sluice
#
# It ingests DOCS generated Markdown files (bench/gen_corpus.sh, about 5 KB
# each: the corpus bench/ingest.sh uses) with the default pipeline into a
# fresh store, and reads from the run's log the keyword thread's CPU (the
# in-run cost: passes of a few thousand log entries, beside the writer).
# Then, with the sqlite3 CLI and the same SQLite library, it copies the
# stored chunks out and indexes them again in FTS5 tables of several
# configurations: the store's own (contentless; text, heading and summary;
# porter over unicode61), without the stemmer, with the ASCII tokenizer,
# text alone; in one transaction and in transactions of PASS rows (the
# keyword thread's pass). For each it prints the CPU (user + system of the
# sqlite3 process, less that of copying the rows with no index), the
# microseconds a chunk and the index's size.
#
# The question it answers: how far below the in-run figure can the keyword
# index go while it stays FTS5? Not run in CI (timings are for people).
# Needs jq, sqlite3 and /usr/bin/time (scripts/deps.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
sluice=$(realpath "${1:-$here/../build/sluice}")
docs=${DOCS:-10000}
work=${WORK:-/tmp/sluice-bench}
pass=${PASS:-3000}

[[ -x $sluice ]] || {
    echo "no sluice at $sluice: build it first (cmake -S . -B build && cmake --build build)" >&2
    exit 2
}
for tool in jq sqlite3 /usr/bin/time; do
    command -v "$tool" >/dev/null || {
        echo "bench/keyword_index.sh needs $tool (scripts/deps.sh installs it)" >&2
        exit 2
    }
done

corpus=$work/corpus-$docs
if [[ ! -f $corpus/.complete ]]; then
    rm -rf "$corpus"
    echo "generating $docs documents in $corpus" >&2
    bash "$here/gen_corpus.sh" "$docs" "$corpus" 5000 1 >/dev/null
    touch "$corpus/.complete"
fi

run=$work/keyword-index
rm -rf "$run" && mkdir -p "$run"
echo "ingesting $docs documents" >&2
(cd "$run" && "$sluice" run -v --json "$corpus" >report.json 2>stderr.txt) || {
    echo "sluice failed; see $run/stderr.txt" >&2
    exit 1
}
store=$run/.sluice/store.db
chunks=$(sqlite3 "$store" "SELECT count(*) FROM chunks;")
# "...its thread indexed for 1.52 s, 1.47 s of it on the CPU..."
inrun=$(sed -n 's/.*its thread indexed for [0-9.]* s, \([0-9.]*\) s of it on the CPU.*/\1/p' "$run/stderr.txt" | tail -1)

# The chunks, copied once into a scratch database every measurement starts
# from (so none of them reads the store or pays for its first read).
src=$run/chunks.db
sqlite3 "$src" "ATTACH '$store' AS s;
    CREATE TABLE src(id INTEGER PRIMARY KEY, text TEXT, heading TEXT, summary TEXT);
    INSERT INTO src SELECT id, text, heading, summary FROM s.chunks ORDER BY id;"

# cpu SQL: user + system seconds of one sqlite3 process running SQL in a
# new database set up as the keyword file is (kindex.c: 16 KB pages, WAL,
# synchronous = NORMAL, an 8 MB cache), with the chunks ATTACHed as s.
cpu() {
    local db=$run/measure.db
    rm -f "$db" "$db-wal" "$db-shm"
    /usr/bin/time -f '%U %S' -o "$run/time.txt" sqlite3 "$db" \
        "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         PRAGMA cache_size = -8192; ATTACH '$src' AS s; $1" >/dev/null
    awk '{ printf "%.3f", $1 + $2 }' "$run/time.txt"
}

# fill TABLE COLUMNS ROWS: the inserts, ROWS rows a transaction (0: one).
fill() {
    local table=$1 cols=$2 rows=$3
    if ((rows == 0)); then
        echo "BEGIN; INSERT INTO $table(rowid, $cols) SELECT id, $cols FROM s.src; COMMIT;"
        return
    fi
    local from=0 max
    max=$(sqlite3 "$src" "SELECT coalesce(max(id), 0) FROM src;")
    while ((from < max)); do
        echo "BEGIN; INSERT INTO $table(rowid, $cols) SELECT id, $cols FROM s.src WHERE id > $from AND id <= $((from + rows)); COMMIT;"
        from=$((from + rows))
    done
}

base=$(cpu "BEGIN; CREATE TABLE t(id INTEGER PRIMARY KEY, text, heading, summary); INSERT INTO t SELECT * FROM s.src; COMMIT;")

rows=()
measure() { # NAME TOKENIZER COLUMNS ROWS
    local sql used size
    sql="CREATE VIRTUAL TABLE f USING fts5($3, content='', tokenize='$2'); $(fill f "$3" "$4")"
    used=$(cpu "$sql")
    size=$(sqlite3 "$run/measure.db" "SELECT sum(length(block)) FROM f_data;")
    rows+=("$(awk -v n="$1" -v u="$used" -v b="$base" -v c="$chunks" -v t="$4" -v s="$size" 'BEGIN {
        x = u - b; if (x < 0) x = 0
        printf "| %-38s | %9s | %6.2f | %9.1f | %8.1f |", n, t == 0 ? "all" : t, x, x * 1e6 / c, s / 1e6 }')")
}

echo "indexing $chunks chunks again in each configuration" >&2
measure "the store's: 3 columns, porter" "porter unicode61 remove_diacritics 2" "text, heading, summary" "$pass"
measure "the store's" "porter unicode61 remove_diacritics 2" "text, heading, summary" 0
measure "no stemmer" "unicode61 remove_diacritics 2" "text, heading, summary" 0
measure "ASCII tokenizer, porter" "porter ascii" "text, heading, summary" 0
measure "text column alone" "porter unicode61 remove_diacritics 2" "text" 0

echo
echo "$("$sluice" --version | head -1), SQLite $(sqlite3 :memory: 'SELECT sqlite_version();'), $(nproc) cores"
echo "$docs documents, $chunks chunks; copying the rows without an index took ${base} s (taken off below)"
echo
echo "| configuration                          | rows/txn  |  CPU s | µs/chunk | index MB |"
echo "|:---------------------------------------|----------:|-------:|---------:|---------:|"
awk -v c="$chunks" -v k="${inrun:-0}" 'BEGIN {
    printf "| %-38s | %9s | %6.2f | %9.1f | %8s |\n", "in the run (keyword thread)", "passes", k, k * 1e6 / c, "-" }'
printf '%s\n' "${rows[@]}"
echo
echo "in the run: the keyword thread's CPU from its log line (passes gathered from the writer's commits,"
echo "reading the log back from the store); the others index the same chunks with the sqlite3 CLI."
