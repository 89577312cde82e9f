#!/usr/bin/env bash
# tests/e2e/detect.sh - media types from the content where the name is
# missing or lies, and files no route takes counted, never silent: a PDF
# named .txt goes the PDF route, a DOCX-like zip named .zip is known for a
# DOCX, a PDF with no extension given by name is stored, and the report
# (text and --json) says which type was believed; text files are not
# reported; files no route takes are counted by extension ("skipped 3:
# 2 .xyz, 1 .bin — no route") and listed under -v; files outside
# [sluice] include that a route would take are counted apart.
source "$(dirname "$0")/lib.sh"
command -v mutool >/dev/null && command -v zip >/dev/null || {
    echo "FAIL: mutool and zip are needed (scripts/deps.sh installs mupdf-tools and zip)" >&2
    exit 1
}

cat >conf.ini <<INI
[sluice]
threads = 2
include = *.md *.txt *.zip
[route.text]
media = text/markdown text/plain
stages = markdown chunker embedder
sink = store
[route.pdf]
media = application/pdf
stages = pdf chunker embedder
sink = store
[markdown]
plugin = parse-markdown
[pdf]
plugin = parse-pdf
[chunker]
plugin = chunk-text
[embedder]
plugin = embed-hash
dimension = 64
[store]
plugin = sink-sqlite
path = $T/store.db
INI
db=$T/store.db
run() { sl -c conf.ini "$@"; }
DOCX=application/vnd.openxmlformats-officedocument.wordprocessingml.document

cat >page.txt <<'PDF'
%%MediaBox 0 0 612 792
%%Font F1 Helvetica
BT /F1 12 Tf 72 700 Td (The tide gauge was calibrated on Tuesday) Tj ET
PDF
mkdir docs
mutool create -o docs/report.txt page.txt
printf '# Notes\n\nPlain notes about the tide gauge.\n' >docs/notes.md
printf 'A plain text file, what its name says.\n' >docs/plain.txt
# a DOCX's parts, zipped with no .docx name
mkdir -p x/word x/_rels
printf '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>' >'x/[Content_Types].xml'
printf '<?xml version="1.0"?><Relationships/>' >x/_rels/.rels
printf '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"/>' >x/word/document.xml
(cd x && zip -q -X ../docs/letter.zip '[Content_Types].xml' _rels/.rels word/document.xml)

run run --json docs
check_eq "exit 0" "$RC" 0
check_eq "the PDF named .txt, the Markdown and the text stored" "$(json .documents.stored)" 3
check_eq "the PDF named .txt took the PDF route" \
    "$(sql "$db" "SELECT media_type FROM documents WHERE uri = 'docs/report.txt';")" "application/pdf"
check_contains "its text came from the PDF's text layer" \
    "$(sql "$db" "SELECT group_concat(text, ' ') FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = 'docs/report.txt';")" "tide gauge was calibrated on Tuesday"
det() { jqo --arg u "$1" '.detected[] | select(.uri == $u) | "\(.named) \(.content) \(.believed)"'; }
check_eq "report: report.txt named text, content PDF, PDF believed" "$(det docs/report.txt)" \
    "text/plain application/pdf application/pdf"
check_eq "report: letter.zip named zip, content DOCX, DOCX believed" "$(det docs/letter.zip)" \
    "application/zip $DOCX $DOCX"
check_eq "report: only those two disagreed" "$(json '.detected | length')" 2
check_eq "report: the DOCX has no route here: counted under .zip" "$(json '.no_route.by_extension[".zip"]')" 1

run run docs/ -c conf.ini
check_contains "text report: the content believed for report.txt" "$OUT" \
    "docs/report.txt: named text/plain, content application/pdf; believed the content"

# a PDF with no extension, named on the command line
cp docs/report.txt scan
run run --json scan
check_eq "no extension: stored" "$(json .documents.stored)" 1
check_eq "no extension: as a PDF" "$(sql "$db" "SELECT media_type FROM documents WHERE uri = 'scan';")" "application/pdf"
check_eq "no extension: reported" "$(det scan)" "application/octet-stream application/pdf application/pdf"

# --- files no route takes ---
mkdir junk
printf 'x' >junk/a.xyz
printf 'y' >junk/b.xyz
head -c 100 /dev/urandom >junk/c.bin
run run junk
check_eq "junk: exit 0" "$RC" 0
check_contains "text report counts them by extension" "$OUT" "^skipped 3: 2 \.xyz, 1 \.bin — no route"
check_lacks "without -v they are not listed" "$ERR" "junk/a.xyz"
run run --json junk
check_eq "json: no_route count" "$(json .no_route.count)" 3
check_eq "json: by extension" "$(json '.no_route.by_extension | to_entries | map("\(.key)=\(.value)") | join(" ")')" \
    ".xyz=2 .bin=1"
check_eq "json: not in documents.total" "$(json .documents.total)" 0
run -v run junk
for f in a.xyz b.xyz c.bin; do check_contains "-v lists junk/$f" "$ERR" "junk/$f: skipped, no route"; done

# a PDF outside include is not a no-route file: counted apart
mkdir more
cp docs/report.txt more/real.pdf
printf 'z' >more/d.xyz
run run --json more
check_eq "outside include: nothing stored" "$(json .documents.stored)" 0
check_eq "outside include, routed: counted as not included" "$(json '.not_included.by_extension[".pdf"]')" 1
check_eq "outside include, no route: counted as no route" "$(json '.no_route.by_extension[".xyz"]')" 1
run run more
check_contains "text report: not included" "$OUT" "^not included 1: 1 \.pdf — outside \[sluice\] include"

finish
