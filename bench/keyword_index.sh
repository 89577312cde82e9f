#!/usr/bin/env bash
# bench/keyword_index.sh - what the SQLite store costs a stored chunk (its
# keyword index and its writer), against the floor the sqlite3 CLI reaches
# writing the same rows.
#
#   bench/keyword_index.sh [SLUICE]          (default: build/sluice)
#   DOCS=10000 WORK=/tmp/sluice-bench bench/keyword_index.sh build-bench/sluice
#   RUN=/tmp/sluice-bench-scale/run-10000-none bench/keyword_index.sh build-bench/sluice
#
# By default it ingests DOCS generated Markdown files (bench/gen_corpus.sh,
# about 5 KB each: the corpus bench/ingest.sh uses) with the default
# pipeline into a fresh store. RUN= takes a finished run's folder instead:
# its .sluice/store.db, the stderr.txt of `sluice run -v` and, if there, the
# time.txt of /usr/bin/time -v (bench/scale.sh keeps all three with
# KEEP_STORES=1: issue 11's corpus, about 40 KB and 70 chunks a document).
#
# From the run's log it reads the CPU of sink-sqlite's threads: the keyword
# thread, the writer and the checkpoint thread (and the whole run's from
# time.txt). Then, with the sqlite3 CLI and the same SQLite library:
#   - the keyword index: the stored chunks copied out and indexed again in
#     FTS5 tables of several configurations, all with the keyword file's
#     settings (16 KB pages, WAL, synchronous = NORMAL, an 8 MB cache, a 16
#     MB pending-terms hash, automerge 8): the store's own (contentless;
#     text, heading and summary; porter over unicode61), with detail=column
#     and detail=none, without the stemmer, text alone; in one transaction
#     and in transactions of PASS rows (the keyword thread's pass);
#   - the store's rows: the documents, chunks (with their vectors) and log
#     entries written again into an empty store of the same schema and
#     settings, PASS chunks a transaction (the writer's group), its WAL
#     checkpointed as it goes.
# For each it prints the CPU (user + system of the sqlite3 process, less
# that of reading the same rows with nothing written), the microseconds a
# chunk and the size. It ends with a chunk's CPU by part, in the run and at
# the floor, against issue 11's goal of 25 µs a chunk for the whole run.
#
# The question it answers: how far below the in-run figures can the store
# go while it stays SQLite and FTS5? Not run in CI (timings are for people).
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

scratch=$work/keyword-index
if [[ -n ${RUN:-} ]]; then
    run=$(realpath "$RUN")
    [[ -f $run/.sluice/store.db && -f $run/stderr.txt ]] || {
        echo "RUN=$RUN: no .sluice/store.db and stderr.txt there (bench/scale.sh keeps them with KEEP_STORES=1)" >&2
        exit 2
    }
    rm -rf "$scratch" && mkdir -p "$scratch"
    what="$run"
else
    corpus=$work/corpus-$docs
    bash "$here/gen_corpus.sh" --once "$docs" "$corpus" 5000 1 >/dev/null
    run=$scratch
    rm -rf "$run" && mkdir -p "$run"
    echo "ingesting $docs documents" >&2
    (cd "$run" && /usr/bin/time -v -o time.txt "$sluice" run -v --json "$corpus" >report.json 2>stderr.txt) || {
        echo "sluice failed; see $run/stderr.txt" >&2
        exit 1
    }
    what="$docs documents of bench/ingest.sh's corpus"
fi
store=$run/.sluice/store.db
chunks=$(sqlite3 "$store" "SELECT count(*) FROM chunks;")
((chunks > 0)) || {
    echo "$store holds no chunks" >&2
    exit 1
}

# The run's CPU by thread, from sink-sqlite's closing lines (-v):
# "...its thread indexed for 1.52 s, 1.47 s of it on the CPU...",
# "...the writer thread wrote for 9.43 s, 5.12 s of it on the CPU",
# "...checkpoints on the checkpoint thread (3.00 s, 0.91 s of it on the CPU)..."
logged() { sed -n "s/.*$1.*/\\1/p" "$run/stderr.txt" | tail -1; }
in_kw=$(logged 'its thread indexed for [0-9.]* s, \([0-9.]*\) s of it on the CPU')
in_writer=$(logged 'the writer thread wrote for [0-9.]* s, \([0-9.]*\) s of it on the CPU')
in_ckpt=$(logged 'checkpoints on the checkpoint thread ([0-9.]* s, \([0-9.]*\) s of it on the CPU')
in_all=""
if [[ -f $run/time.txt ]]; then
    in_all=$(awk -F': *' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$run/time.txt")
fi

# The chunks' text, copied once into a scratch database every keyword
# measurement starts from (so none of them reads the store or pays for its
# first read).
src=$scratch/chunks.db
rm -f "$src"
sqlite3 "$src" "ATTACH '$store' AS s;
    CREATE TABLE src(id INTEGER PRIMARY KEY, text TEXT, heading TEXT, summary TEXT);
    INSERT INTO src SELECT id, text, heading, summary FROM s.chunks ORDER BY id;"

# cpu DB SQL: user + system seconds of one sqlite3 process running SQL in a
# new database DB set up as sink-sqlite's files are (16 KB pages, WAL,
# synchronous = NORMAL, an 8 MB cache).
cpu() {
    local db=$1
    rm -f "$db" "$db-wal" "$db-shm"
    /usr/bin/time -f '%U %S' -o "$scratch/cpu.txt" sqlite3 "$db" \
        "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         PRAGMA cache_size = -8192; $2" >/dev/null
    awk '{ printf "%.3f", $1 + $2 }' "$scratch/cpu.txt"
}

# batches MAX ROWS SQL: SQL once for each ROWS ids up to MAX (0: once for
# all), its :from and :to replaced by the batch's bounds, in a transaction.
batches() {
    local max=$1 rows=$2 sql=$3 from=0
    ((rows > 0)) || rows=$max
    while ((from < max)); do
        local b=${sql//:from/$from}
        echo "BEGIN; ${b//:to/$((from + rows))} COMMIT;"
        from=$((from + rows))
    done
}

max=$(sqlite3 "$src" "SELECT coalesce(max(id), 0) FROM src;")
# the baseline reads the rows and writes nothing (copying them into a table
# would write the text, which a contentless FTS5 table does not)
kbase=$(cpu "$scratch/measure.db" "ATTACH '$src' AS s;
    SELECT count(*), sum(length(text)), sum(length(heading)), sum(length(summary)) FROM s.src;")

# one row of the tables below
row() { # NAME ROWS CPU BASE BYTES
    awk -v n="$1" -v t="$2" -v u="$3" -v b="$4" -v c="$chunks" -v s="$5" 'BEGIN {
        x = u - b; if (x < 0) x = 0
        printf "| %-42s | %8s | %6.2f | %8.1f | %8.1f |\n", n, t == 0 ? "all" : t, x, x * 1e6 / c, s / 1e6 }'
}

# The keyword file's FTS5 settings (kindex.c): a pass's terms flushed as
# one segment, 8 segments of a level merged at a time.
fts_settings="INSERT INTO f(f, rank) VALUES('hashsize', 16777216); INSERT INTO f(f, rank) VALUES('automerge', 8);"
krows=()
fts_floor=""
measure() { # NAME TOKENIZER COLUMNS ROWS [OPTIONS]
    local used size
    used=$(cpu "$scratch/measure.db" "ATTACH '$src' AS s;
        CREATE VIRTUAL TABLE f USING fts5($3, content='', tokenize='$2'${5:+, $5}); $fts_settings
        $(batches "$max" "$4" "INSERT INTO f(rowid, $3) SELECT id, $3 FROM s.src WHERE id > :from AND id <= :to;")")
    size=$(sqlite3 "$scratch/measure.db" "SELECT sum(length(block)) FROM f_data;")
    krows+=("$(row "$1" "$4" "$used" "$kbase" "$size")")
    last=$(awk -v u="$used" -v b="$kbase" 'BEGIN { x = u - b; print x < 0 ? 0 : x }')
}

echo "indexing $chunks chunks again in each configuration" >&2
porter="porter unicode61 remove_diacritics 2"
cols="text, heading, summary"
measure "the store's: 3 columns, porter" "$porter" "$cols" "$pass"
measure "the store's" "$porter" "$cols" 0
fts_floor=$last # the least FTS5 does with the store's configuration
measure "detail=column (no phrase queries; tf 0/1)" "$porter" "$cols" 0 "detail=column"
measure "detail=none (rows only)" "$porter" "$cols" 0 "detail=none"
measure "no stemmer" "unicode61 remove_diacritics 2" "$cols" 0
measure "text column alone" "$porter" "text" 0

# The store's rows written again: an empty store of the same schema (its
# tables, indexes and triggers), the documents in one transaction, then
# PASS chunks a transaction with their vector and keyword log entries, as
# the writer's groups do (writer.c); SQLite checkpoints the WAL every 1,000
# pages as it goes. The baseline reads the same rows and writes nothing.
echo "writing the store's $chunks chunks again" >&2
schema=$(sqlite3 "$store" "SELECT sql || ';' FROM sqlite_master
    WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type = 'table' DESC, rowid;")
cmax=$(sqlite3 "$store" "SELECT coalesce(max(id), 0) FROM chunks;")
kwlog=""
if [[ -f $store.keywords ]]; then
    kwlog="INSERT INTO keyword_log(chunk) SELECT id FROM s.chunks WHERE id > :from AND id <= :to;"
fi
wbase=$(cpu "$scratch/rows.db" "ATTACH 'file:$store?mode=ro' AS s;
    SELECT count(*), sum(length(uri)), sum(length(metadata)) FROM s.documents;
    $(batches "$cmax" "$pass" "SELECT count(*), sum(length(text)), sum(length(vector)), sum(length(attrs)),
        sum(length(heading)), sum(length(summary)) FROM s.chunks WHERE id > :from AND id <= :to;")")
wused=$(cpu "$scratch/rows.db" "ATTACH 'file:$store?mode=ro' AS s; $schema
    BEGIN; INSERT INTO documents SELECT * FROM s.documents; COMMIT;
    $(batches "$cmax" "$pass" "INSERT INTO chunks SELECT * FROM s.chunks WHERE id > :from AND id <= :to;
        INSERT INTO vector_log(chunk, dim, added) SELECT id, dim, 1 FROM s.chunks
            WHERE id > :from AND id <= :to AND vector IS NOT NULL; $kwlog")
    PRAGMA wal_checkpoint(TRUNCATE);")
wsize=$(stat -c %s "$scratch/rows.db")
store_floor=$(awk -v u="$wused" -v b="$wbase" 'BEGIN { x = u - b; print x < 0 ? 0 : x }')

echo
echo "$("$sluice" --version | head -1), SQLite $(sqlite3 :memory: 'SELECT sqlite_version();'), $(nproc) cores"
echo "$what: $chunks chunks"
echo
echo "The keyword index (reading the rows took ${kbase} s, taken off below):"
echo
echo "| configuration                              | rows/txn |  CPU s | µs/chunk | index MB |"
echo "|:-------------------------------------------|---------:|-------:|---------:|---------:|"
if [[ -n $in_kw ]]; then
    row "in the run (keyword thread)" passes "$in_kw" 0 0 | sed 's/|      0.0 |$/|        - |/'
fi
printf '%s\n' "${krows[@]}"
echo
echo "The store's rows, without the keyword index (reading them took ${wbase} s, taken off below):"
echo
echo "| what                                       | rows/txn |  CPU s | µs/chunk |  file MB |"
echo "|:-------------------------------------------|---------:|-------:|---------:|---------:|"
if [[ -n $in_writer ]]; then
    row "in the run (writer + checkpoint threads)" groups "$(awk -v w="$in_writer" -v c="${in_ckpt:-0}" 'BEGIN { print w + c }')" 0 0 |
        sed 's/|      0.0 |$/|        - |/'
fi
row "the same rows into an empty store" "$pass" "$wused" "$wbase" "$wsize"
echo
echo "A stored chunk's CPU by part (µs), in the run and at the floor above, against issue 11's"
echo "goal of 25 µs a chunk for the whole run:"
echo
awk -v c="$chunks" -v all="${in_all:-}" -v kw="${in_kw:-0}" -v w="${in_writer:-0}" -v ck="${in_ckpt:-0}" \
    -v fk="$fts_floor" -v fw="$store_floor" 'BEGIN {
    u = 1e6 / c
    printf "| part                                       | in the run | floor |\n"
    printf "|:-------------------------------------------|-----------:|------:|\n"
    printf "| keyword index (FTS5; floor: one transaction) | %10.1f | %5.1f |\n", kw * u, fk * u
    printf "| the store'\''s rows (writer, checkpoints)     | %10.1f | %5.1f |\n", (w + ck) * u, fw * u
    if (all != "") {
        printf "| everything else (read, parse, chunk, embed, HTTP, loop) | %10.1f | - |\n", (all - kw - w - ck) * u
        printf "| the whole run                              | %10.1f | - |\n", all * u
    }
    printf "\nThe store alone, at the floor: %.1f µs a chunk, %.0f%% of the 25 µs goal.\n", (fk + fw) * u, (fk + fw) * u / 25 * 100
}'
echo
echo "in the run: the threads' CPU from sink-sqlite's log lines (-v), the whole run's from time.txt;"
echo "the others write the same rows with the sqlite3 CLI."
rm -f "$src" "$scratch"/measure.db* "$scratch"/rows.db*
