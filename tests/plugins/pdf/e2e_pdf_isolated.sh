#!/usr/bin/env bash
# tests/plugins/pdf/e2e_pdf_isolated.sh - untrusted uploads: conf/pdf.ini
# with its four PDF and image stages switched to worker processes
# (`isolated = true` in [pdf], [render], [ocr] and [image]).
#
# First, isolation changes where the stages run, never what is stored: the
# fixture corpus (text, scanned and mixed PDFs, scans, and the damaged and
# encrypted files) gives the same store, byte for byte, and the same
# failures with the same reasons as the run on the pool.
#
# Then a crafted PDF that hangs mupdf (hostile/forms-bomb.pdf: form
# XObjects nested 64 wide and 6 deep) is put among good files: its worker
# is killed at the stage's call_timeout, that document alone fails with the
# reason, every other one is stored, and no worker outlives the run.
#
# Usage (ctest): e2e_pdf_isolated.sh SLUICE SOURCE_DIR FIXTURE_DIR
source "$2/tests/e2e/lib.sh"
FIXTURES=$(realpath "$3")
CONF=$SRC/conf/pdf.ini
mark_workers

ISOLATED=(--set pdf.isolated=true --set render.isolated=true --set ocr.isolated=true --set image.isolated=true)
run_pdf() {
    local db=$1
    shift
    sl -c "$CONF" --set "store.path=$db" --set sluice.threads=2 --set sluice.workers=2 "$@" run --json corpus
}
failures() { jq -r '.failed[] | "\(.uri) \(.stage): \(.reason)"' <<<"$OUT" | sort; }

mkdir corpus
cp "$FIXTURES"/*.pdf "$FIXTURES"/*.png "$FIXTURES"/*.jpg "$FIXTURES"/*.tif corpus/
nfiles=$(count_files corpus '*')

# --- the same store from the pool and from workers ---
run_pdf "$T/pool.db"
check_eq "pool run: exit status (the damaged files fail)" "$RC" 1
pool_failed=$(failures)
pool_stored=$(json .documents.stored)
check_eq "pool run: every file accounted for" "$(json '.documents.stored + .documents.failed')" "$nfiles"

run_pdf "$T/isolated.db" "${ISOLATED[@]}"
check_eq "isolated run: exit status" "$RC" 1
if [[ $RC -ne 1 ]]; then echo "stderr: $(tail -c 3000 <<<"$ERR")" >&2; fi
for s in pdf render ocr image; do
    check_eq "isolated run: stage $s ran in workers" "$(jqo --arg s "$s" '.stages[] | select(.name == $s) | .executor')" workers
done
check_gt "isolated run: OCR pages went through workers" "$(json '.stages[] | select(.name == "ocr") | .calls')" 5
check_eq "isolated run: as many stored" "$(json .documents.stored)" "$pool_stored"
check_eq "isolated run: the same failures, for the same reasons" "$(failures)" "$pool_failed"
check_eq "isolated run: the same store, byte for byte" "$(store_digest "$T/isolated.db")" "$(store_digest "$T/pool.db")"
check_gt "the store holds OCR text" \
    "$(sql "$T/isolated.db" "SELECT count(*) FROM chunks WHERE text LIKE '%opened the sluice gates at noon%';")" 0
check_eq "isolated run: no worker left" "$(leftover_workers)" 0

# --- a PDF that hangs mupdf fails alone ---
rm -rf corpus && mkdir corpus
cp "$FIXTURES"/hostile/forms-bomb.pdf "$FIXTURES"/text.pdf "$FIXTURES"/scanned.pdf "$FIXTURES"/image.png corpus/
run_pdf "$T/hostile.db" "${ISOLATED[@]}" --set pdf.call_timeout=3s --set render.call_timeout=3s
check_eq "hostile run: exit status (one document failed)" "$RC" 1
if [[ $RC -ne 1 ]]; then echo "stderr: $(tail -c 3000 <<<"$ERR")" >&2; fi
check_eq "hostile run: the others are stored" "$(json .documents.stored)" 3
check_eq "hostile run: one failure" "$(json .documents.failed)" 1
check_eq "hostile run: the bomb fails in the parser" \
    "$(jqo '.failed[] | select(.uri == "corpus/forms-bomb.pdf") | .stage')" pdf
check_contains "hostile run: killed at the call timeout" \
    "$(jqo '.failed[] | select(.uri == "corpus/forms-bomb.pdf") | .reason')" "timed out after 3000 ms"
check_eq "hostile run: the bomb is not stored" \
    "$(sql "$T/hostile.db" "SELECT count(*) FROM documents WHERE uri = 'corpus/forms-bomb.pdf';")" 0
check_contains "hostile run: the scanned PDF was recognised after the kill" \
    "$(sql "$T/hostile.db" "SELECT group_concat(c.text, ' ') FROM chunks c JOIN documents d ON d.id = c.doc_id
                            WHERE d.uri = 'corpus/scanned.pdf';" | tr '\n' ' ')" "opened the sluice gates at noon"
check_eq "hostile run: no worker left" "$(leftover_workers)" 0

# --- the same bomb in pool mode: SIGTERM does not wait for it forever ---
# (issue 17: the first SIGTERM waited for "documents in flight" without
# end). After [sluice] shutdown_grace the run stops, naming where it is
# stuck, with the interrupted status.
rm -rf pool && mkdir pool
cp "$FIXTURES"/hostile/forms-bomb.pdf "$FIXTURES"/text.pdf pool/
set +e
"$SLUICE" -c "$CONF" --set "store.path=$T/bomb.db" --set sluice.threads=2 --set sluice.shutdown_grace=2s \
    run pool >pool.out 2>pool.err &
pid=$!
# once text.pdf is stored the run is under way, the bomb in flight beside it
stored_at_least "$pid" "$T/bomb.db" 1
kill -TERM "$pid"
t0=$(now_ms)
wait "$pid"
rc=$?
t1=$(now_ms)
set -e
check_eq "pool-mode bomb, SIGTERM: exit status 3 (interrupted)" "$rc" 3
check "pool-mode bomb, SIGTERM: stopped within the grace, not never ($((t1 - t0)) ms)" test "$((t1 - t0))" -lt 15000
check_contains "pool-mode bomb, SIGTERM: it says what is stuck where" "$(cat pool.err)" \
    "stopping: 1 documents still in flight 2000 ms after the interrupt .* in pdf \(1\)"

finish
