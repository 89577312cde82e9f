#!/usr/bin/env bash
# tests/e2e/kill9.sh - killing sluice at any moment and running again gives
# the same store as a run that was never interrupted: nothing lost, nothing
# twice. Store A is made by one uninterrupted run; store B by runs killed
# with SIGKILL after random delays, then one run to the end. Their digests
# (every document and chunk, vectors included, ids and timestamps left out)
# must be equal.
source "$(dirname "$0")/lib.sh"

ndocs=300
bash "$SRC/bench/gen_corpus.sh" "$ndocs" docs 2500 9 >/dev/null
check_eq "generated documents" "$(count_files docs '*.md')" "$ndocs"
mkdir -p A B
common=(run --json --set sluice.threads=2)

t0=$(now_ms)
sl_ok "${common[@]}" --set store.path="$T/A/store.db" docs
ta=$(($(now_ms) - t0))
check_eq "uninterrupted run: stored" "$(json .documents.stored)" "$ndocs"
check_eq "uninterrupted run: failed" "$(json .documents.failed)" 0
digest_a=$(store_digest A/store.db)
echo "uninterrupted run took ${ta} ms"

# Kill at random moments until 3 kills have each interrupted a run with
# work left (store B incomplete), then run to the end. A delay is drawn from
# a share (`scale` percent) of the time an uninterrupted run needs for what
# store B still lacks. A run that finishes before its kill has interrupted
# nothing; if store B becomes complete before 3 kills landed, it is thrown
# away and the series starts again with shorter delays (machines are busy,
# and run A's time is only an estimate).
RANDOM=$$
scale=60
partial=0
tries=0
stored=0
while ((partial < 3 && tries < 30)); do
    tries=$((tries + 1))
    if ((stored >= ndocs)); then
        echo "store B complete after $partial kills: starting B again with shorter delays"
        rm -rf B && mkdir B
        stored=0
        partial=0
        scale=$((scale / 2 > 2 ? scale / 2 : 2))
    fi
    window=$((ta * (ndocs - stored) * scale / (ndocs * 100) + 1))
    delay=$((1 + RANDOM % window))
    "$SLUICE" "${common[@]}" --set store.path="$T/B/store.db" docs </dev/null >/dev/null 2>&1 &
    pid=$!
    sleep "$((delay / 1000)).$(printf '%03d' $((delay % 1000)))"
    if kill -9 "$pid" 2>/dev/null; then state=killed; else state="had already exited"; fi
    wait "$pid" 2>/dev/null || true
    if [[ -s B/store.db ]]; then stored=$(sql B/store.db "SELECT count(*) FROM documents;" 2>/dev/null || echo 0); fi
    if [[ $state == killed && $stored -lt $ndocs ]]; then partial=$((partial + 1)); fi
    echo "try $tries: after ${delay} ms sluice $state; store B holds $stored documents"
done
check_gt "kills that interrupted a run with work left" "$partial" 2

sl_ok "${common[@]}" --set store.path="$T/B/store.db" docs
check_eq "resumed run: total" "$(json .documents.total)" "$ndocs"
check_eq "resumed run: failed" "$(json .documents.failed)" 0
check_eq "resumed run: stored + skipped = all" \
    "$(($(json .documents.stored) + $(json .documents.skipped)))" "$ndocs"
check_eq "documents in store B" "$(sql B/store.db "SELECT count(*) FROM documents;")" "$ndocs"
check_eq "store B: no duplicate (document, ordinal)" "$(duplicate_chunks B/store.db)" 0
check_eq "store B: chunk_count matches the chunk rows" "$(chunk_count_mismatches B/store.db)" 0
check_eq "store B: no orphaned chunks" "$(orphan_chunks B/store.db)" 0
check_eq "store B (killed, resumed) = store A (uninterrupted)" "$(store_digest B/store.db)" "$digest_a"
# The keyword file (its own thread, its own transactions) was killed too:
# after the resumed run it holds each chunk once, passes FTS5's own check
# and finds what store A's finds.
check_eq "store B's keyword file: a row per chunk" \
    "$(sql B/store.db.keywords "SELECT count(*) FROM chunks_fts_docsize;")" "$(sql B/store.db "SELECT count(*) FROM chunks;")"
check_eq "store B's keyword file: FTS5 integrity-check" \
    "$(sql B/store.db.keywords "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1); SELECT 'ok';" 2>&1)" ok
check_gt "store A's keyword file finds 'the'" \
    "$(sql A/store.db.keywords "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'the';")" 0
for word in the and install; do
    check_eq "keyword '$word': store B's keyword file finds what store A's does" \
        "$(sql B/store.db.keywords "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH '$word';")" \
        "$(sql A/store.db.keywords "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH '$word';")"
done

# And once more: a complete store is left alone by a further run.
sl_ok "${common[@]}" --set store.path="$T/B/store.db" docs
check_eq "run after completion: every document skipped" "$(json .documents.skipped)" "$ndocs"
check_eq "run after completion: digest unchanged" "$(store_digest B/store.db)" "$digest_a"

finish
