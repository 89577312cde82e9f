#!/usr/bin/env bash
# tests/batcher/layout_regions.sh - the chunker reads the layout model's
# regions: a PDF made here with mutool (known text at known places: a title,
# two columns, a table and its caption, written to the file in a scrambled
# order) goes through parse-pdf -> render-pdf -> layout-torch -> chunk-text
# into SQLite. The layout model is made here too (torch-make-model boxes:
# it answers the regions given, whatever the page shows). The chunks follow
# the regions' reading order (title, left column, right column, table), the
# table's rows and its caption are one unit never cut, and `query --json`
# shows each chunk's regions and kinds. The same PDF without the layout
# stage keeps the parser's (file) order, so the order is the regions' doing.
source "$(dirname "$0")/../e2e/lib.sh"

MAKE_MODEL=$BUILD/tests/torch-make-model
check "torch-make-model is built" test -x "$MAKE_MODEL"
command -v mutool >/dev/null || fail "mutool is not installed (scripts/deps.sh: mupdf-tools)"

# The page (612 x 792 points): text in a scrambled order. Top-left boxes,
# as parse-pdf reports them: caption y 436-450, right column x 320 y 121-149,
# table y 311-353, left column x 72 y 121-149, title y 38-62.
mkdir docs
cat >page.txt <<'PAGE'
%%MediaBox 0 0 612 792
%%Font Helv Helvetica
BT /Helv 10 Tf 72 345 Td (Table 1: package sizes in kilobytes) Tj ET
BT /Helv 10 Tf 320 660 Td (Right column first line about) Tj ET
BT /Helv 10 Tf 320 646 Td (the second topic of the report.) Tj ET
BT /Helv 10 Tf 72 470 Td (Name Size) Tj ET
BT /Helv 10 Tf 72 456 Td (alpha 10) Tj ET
BT /Helv 10 Tf 72 442 Td (beta 20) Tj ET
BT /Helv 10 Tf 72 660 Td (Left column first line about) Tj ET
BT /Helv 10 Tf 72 646 Td (the first topic of the report.) Tj ET
BT /Helv 18 Tf 72 735 Td (Quarterly Report) Tj ET
PAGE
mutool create -o docs/report.pdf page.txt

# Regions in points (x0 y0 x1 y1 label), normalised to the page for the model.
# Labels by index: text 0, title 1, table 2, figure 3, caption 4.
spec=$(awk 'BEGIN { OFS = ","; sep = "" }
    { printf "%s%.6f,%.6f,%.6f,%.6f,%d", sep, $1 / 612, $2 / 792, $3 / 612, $4 / 792, $5; sep = ";" }' <<'REGIONS'
60 30 560 70 1
60 110 300 160 0
310 110 560 160 0
60 300 560 360 2
60 425 560 455 4
REGIONS
)
check "the model is made" "$MAKE_MODEL" boxes "$T/layout.pt" "$spec"

conf() { # conf FILE STAGES SIZE
    cat >"$1" <<INI
[sluice]
threads = 2
include = *.pdf

[route.pdf]
media = application/pdf
stages = $2
sink = store

[pdf]
plugin = parse-pdf
outline = false

[render]
plugin = render-pdf
dpi = 72
min_chars = 1000000      ; every page gets an image, for the layout model

[layout]
plugin = layout-torch
model = $T/layout.pt
labels = text,title,table,figure,caption
input_width = 64
input_height = 64
resize = stretch
units = points           ; the same units as parse-pdf's boxes
device = cpu

[chunker]
plugin = chunk-text
size = $3
overlap = 0

[embedder]
plugin = embed-hash
dimension = 64

[store]
plugin = sink-sqlite
path = $T/${1%.ini}.db
INI
}

# Order: the regions' reading order, everything in one chunk.
conf big.ini "pdf render layout chunker embedder" 1000
sl_ok -c big.ini run --json docs
check_eq "stored" "$(json .documents.stored)" 1
sl_ok -c big.ini query -k 10 --json "report"
check_eq "one chunk" "$(json 'hits | length')" 1
text=$(json 'hits[0].text')
pos() { awk -v s="$1" '{ i = index($0, s); if (i) { print NR * 10000 + i; exit } }' <<<"$text"; }
order=("Quarterly Report" "Left column first line" "Right column first line" "Name Size" "beta 20" "Table 1: package")
prev=0
for s in "${order[@]}"; do
    p=$(pos "$s")
    check_gt "reading order: '$s' after what precedes it" "${p:-0}" "$prev"
    prev=${p:-0}
done
check_eq "the table's rows and caption are one text" \
    "$(json 'hits[0].text | contains("Name Size\nalpha 10\nbeta 20\nTable 1: package sizes")')" true
check_eq "regions of the chunk" "$(json 'hits[0].region')" "title,text,table,caption"
check_eq "kinds of the chunk" "$(json 'hits[0].kinds | join(",")')" "title,paragraph,table,caption"

# Small chunks: the table with its caption is one chunk, whole.
conf small.ini "pdf render layout chunker embedder" 70
sl_ok -c small.ini run --json docs
sl_ok -c small.ini query -k 10 --json "report"
check_gt "several chunks" "$(json 'hits | length')" 2
check_eq "the table and its caption: one chunk, whole" \
    "$(json '[hits[] | select(.text == "Name Size\nalpha 10\nbeta 20\nTable 1: package sizes in kilobytes") | .region] | join(";")')" \
    "table,caption"
check_eq "the right column's chunk records its region" \
    "$(json '[hits[] | select(.text | startswith("Right column")) | .region] | join(";")')" "text"
check_eq "regions stored in SQLite" \
    "$(sql "$T/small.db" "SELECT count(*) FROM chunks WHERE json_extract(attrs, '$.region') = 'table,caption'")" 1
sl_ok -c small.ini query -k 10 "report"
check_contains "query text shows what the table's chunk is made of" "$OUT" "^   p\. 1 · table, caption$"
check_contains "query text shows a region that the kinds do not say" "$OUT" "^   p\. 1 · paragraph · region text$"

# Without the layout stage: the parser's order (the caption first), no region.
conf plain.ini "pdf chunker embedder" 1000
sl_ok -c plain.ini run --json docs
sl_ok -c plain.ini query -k 10 --json "report"
text=$(json 'hits[0].text')
check_gt "without layout: the file's order (caption before title)" "$(pos "Quarterly Report")" "$(pos "Table 1: package")"
check_eq "without layout: no region" "$(json 'hits[0].region')" null

finish
