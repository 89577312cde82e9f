#!/usr/bin/env bash
# tests/plugins/pdf/e2e_pdf.sh - conf/pdf.ini end to end: `sluice run` on a
# folder of generated PDFs and scans, on two pool threads, stores the text
# PDF from its text layer, the scanned PDF and the PNG, JPEG and TIFF scans
# through OCR, and the mixed PDF from both, page by page; fails the
# encrypted, truncated and corrupted files with their reasons while the
# rest are stored; opens the encrypted one once the password is set, without
# ever printing it; and each plugin passes `sluice check --plugin`.
#
# Usage (ctest): e2e_pdf.sh SLUICE SOURCE_DIR FIXTURE_DIR
source "$2/tests/e2e/lib.sh"
FIXTURES=$(realpath "$3")
CONF=$SRC/conf/pdf.ini
FIXTURE_PASSWORD=sesame # FX_PASSWORD in fixtures.h
PLUGINS=$BUILD/plugins

mkdir corpus
cp "$FIXTURES"/*.pdf "$FIXTURES"/*.png "$FIXTURES"/*.jpg "$FIXTURES"/*.tif corpus/
db=$T/store.db
run_pdf() { sl -c "$CONF" --set "store.path=$db" --set sluice.threads=2 "$@"; }

# --- first run: no password ---
run_pdf run --json corpus
check_eq "exit status: some documents failed" "$RC" 1
check_eq "report: documents.total" "$(json .documents.total)" 12
check_eq "report: documents.stored" "$(json .documents.stored)" 6
check_eq "report: documents.failed" "$(json .documents.failed)" 6

reason() { jqo --arg u "corpus/$1" '.failed[] | select(.uri == $u) | "\(.stage): \(.reason)"'; }
check_eq "encrypted.pdf fails for its password" "$(reason encrypted.pdf)" \
    "pdf: encrypted PDF: needs a password (set [pdf] password)"
check_contains "truncated.pdf fails as truncated" "$(reason truncated.pdf)" "^pdf: truncated PDF: no %EOF marker"
check_eq "garbage.pdf is no PDF" "$(reason garbage.pdf)" "pdf: not a PDF: no %PDF- header in its first 1 KiB"
check_eq "headless.pdf is no PDF" "$(reason headless.pdf)" "pdf: not a PDF: no %PDF- header in its first 1 KiB"
check_contains "scrambled.pdf: repaired, but no text anywhere" "$(reason scrambled.pdf)" "no text"
check_eq "broken.png is cut short" "$(reason broken.png)" "image: PNG image cut short: its end marker is missing"
check_eq "encrypted.pdf is not stored" "$(sql "$db" "SELECT count(*) FROM documents WHERE uri LIKE '%encrypted.pdf';")" 0

text_of() { sql "$db" "SELECT group_concat(c.text, ' ') FROM chunks c JOIN documents d ON d.id = c.doc_id
                       WHERE d.uri = 'corpus/$1';" | tr '\n' ' '; }
t=$(text_of text.pdf)
check_contains "text.pdf: text layer stored" "$t" "seventeen lanterns along the northern breakwater"
check_contains "text.pdf: last page stored" "$t" "grafted in 1887"
check_eq "text.pdf: title from the info dictionary" \
    "$(sql "$db" "SELECT title FROM documents WHERE uri = 'corpus/text.pdf';")" "Harbour and Orchard Notes"
check_eq "text.pdf: author and created date in the metadata" \
    "$(sql "$db" "SELECT json_extract(metadata, '\$.author') || ' ' || json_extract(metadata, '\$.created')
                  FROM documents WHERE uri = 'corpus/text.pdf';")" "Ada Fixture 2024-01-02T03:04:05Z"
check_gt "text.pdf: chunks carry outline headings" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = 'corpus/text.pdf' AND c.heading = 'Chapter One: Harbours > Lanterns and Pilots';")" 0
check_eq "text.pdf: chunks start on pages 1, 2 and 3" \
    "$(sql "$db" "SELECT group_concat(DISTINCT c.page) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = 'corpus/text.pdf' ORDER BY c.page;")" "1,2,3"

t=$(text_of scanned.pdf)
check_contains "scanned.pdf: OCR of page 1" "$t" "opened the sluice gates at noon"
check_contains "scanned.pdf: OCR of page 2" "$t" "promised to repair the bridge"
t=$(text_of mixed.pdf)
check_contains "mixed.pdf: text layer of page 1" "$t" "has a real text layer"
check_contains "mixed.pdf: OCR of page 2" "$t" "character recognition can read these quiet words"
check_contains "mixed.pdf: text layer of page 3" "$t" "returns to ordinary text drawn with a font"
check_contains "image.png recognised" "$(text_of image.png)" "opening hours of the library"
check_contains "image.jpg recognised" "$(text_of image.jpg)" "opening hours of the library"
t=$(text_of image.tif)
check_contains "image.tif page 1 recognised" "$t" "opening hours of the library"
check_contains "image.tif page 2 recognised" "$t" "reading room rules"

# The OCR stage ran on the pool; every page stage and parser is in the report.
check_eq "report: the ocr stage ran on the pool" "$(json '.stages[] | select(.name == "ocr") | .executor')" pool
check_gt "report: render pages" "$(json '.stages[] | select(.name == "render") | .calls')" 5

# --- second run: the password from --set, for parser and renderer ---
run_pdf --set "pdf.password=$FIXTURE_PASSWORD" --set "render.password=$FIXTURE_PASSWORD" -v run --json corpus
check_eq "second run: exit status" "$RC" 1
check_eq "second run: the encrypted PDF is stored" "$(json .documents.stored)" 1
check_eq "second run: the rest are unchanged" "$(json .documents.skipped)" 6
check_contains "encrypted.pdf: its text" "$(text_of encrypted.pdf)" "buried under the third olive tree"
check_lacks "the password is never printed (stdout)" "$OUT" "$FIXTURE_PASSWORD"
check_lacks "the password is never printed (stderr)" "$ERR" "$FIXTURE_PASSWORD"

# --- a wrong password: its own reason ---
rm -f "$db"
run_pdf --set pdf.password=not-it run --json corpus/encrypted.pdf
check_eq "wrong password: exit status" "$RC" 1
check_eq "wrong password: reason" "$(reason encrypted.pdf)" \
    "pdf: encrypted PDF: the password in [pdf] password does not open it"

# --- each plugin passes its contract check ---
for p in parse-pdf render-pdf ocr-tesseract parse-image; do
    sl check --plugin "$PLUGINS/$p.so"
    check_eq "sluice check --plugin $p.so" "$RC" 0
    check_contains "sluice check --plugin $p.so says it passes" "$OUT" "passes"
done

finish
