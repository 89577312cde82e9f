#!/usr/bin/env bash
# tests/plugins/pdf/e2e_default_ocr.sh - the built-in default (no -c) OCRs
# what has no text: a PNG scan of known text and a scanned-only PDF are
# stored with their recognised words, next to a text PDF read from its text
# layer; and tesseract starts only when a page needs it: a default run over
# Markdown and a text PDF (whose pages still pass the OCR stage) starts no
# engine, which -v would say ("tesseract engine started").
#
# The scans are gen_fixtures' (made at test time by leptonica and mupdf
# from the known text in fixtures_text.c).
#
# Usage (ctest): e2e_default_ocr.sh SLUICE SOURCE_DIR FIXTURE_DIR
source "$2/tests/e2e/lib.sh"
FIXTURES=$(realpath "$3")
db=$T/.sluice/store.db
STARTED="tesseract engine started"

text_of() { sql "$db" "SELECT group_concat(c.text, ' ') FROM chunks c JOIN documents d ON d.id = c.doc_id
                       WHERE d.uri = '$1';" | tr '\n' ' '; }

# --- no scans: no engine ---
mkdir plain
printf '# Tide notes\n\nThe gauge was read at dawn.\n' >plain/notes.md
cp "$FIXTURES/text.pdf" plain/
sl -v --set sluice.threads=2 run --json plain
check_eq "no scans: exit status" "$RC" 0
check_eq "no scans: both stored" "$(json .documents.stored)" 2
check_eq "no scans: the PDF's pages passed the ocr stage" \
    "$(json '[.stages[] | select(.name == "ocr")] | length')" 1
check_contains "no scans: text.pdf from its text layer" "$(text_of plain/text.pdf)" \
    "seventeen lanterns along the northern breakwater"
check_lacks "no scans: tesseract never started" "$ERR" "$STARTED"

# --- scans: the default recognises them ---
mkdir scans
cp "$FIXTURES/image.png" "$FIXTURES/scanned.pdf" scans/
sl -v --set sluice.threads=2 run --json scans
check_eq "scans: exit status" "$RC" 0
check_eq "scans: both stored" "$(json .documents.stored)" 2
check_eq "scans: none failed" "$(json .documents.failed)" 0
check_contains "image.png recognised by the default" "$(text_of scans/image.png)" "opening hours of the library"
t=$(text_of scans/scanned.pdf)
check_contains "scanned.pdf page 1 recognised by the default" "$t" "opened the sluice gates at noon"
check_contains "scanned.pdf page 2 recognised by the default" "$t" "promised to repair the bridge"
check_contains "scans: -v says tesseract started" "$ERR" "$STARTED"

finish
