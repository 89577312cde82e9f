#!/usr/bin/env bash
# bench/pdf_ocr.sh - PDF text extraction and OCR throughput of sluice on two
# cores against the single-process command-line tools on the same files.
#
#   bench/pdf_ocr.sh [SLUICE]       (default: build/sluice; gen_fixtures from the same build)
#   DOCS=100 PAGES=10 IMAGES=200 DPI=150 THREADS=2 WORK=/tmp/sluice-bench-pdf bench/pdf_ocr.sh
#
# The corpus (made by the tests' gen_fixtures, deterministic, kept in WORK):
# DOCS text PDFs of PAGES pages of prose each (44 lines a page), and IMAGES
# PNG page images of 20 lines of prose rendered at DPI. The runs:
#
#   text   `mutool draw -F txt` over every PDF in one process (one core)
#   text   sluice -c conf/pdf.ini with THREADS pool threads and the PDF route
#          cut to `pdf chunker`: text extraction by parse-pdf, chunking and
#          the SQLite store (the ratio is taken from this run)
#   text   the same with conf/pdf.ini's whole PDF route (the render and OCR
#          stages see text on every page and pass; hash embedding)
#          Each text run is repeated RUNS times (default 3); the table
#          shows the median wall time.
#   OCR    `tesseract IMAGE -` once per image, one at a time, with
#          OMP_THREAD_LIMIT=1 (one core), and also once over a list of all
#          images in one process (the model loaded once)
#   OCR    sluice -c conf/pdf.ini on the PNG folder (parse-image, then
#          ocr-tesseract on the pool), THREADS threads
#
# It prints a Markdown table (pages, wall seconds, pages/s, peak RSS from
# /usr/bin/time) and the ratios sluice / single process. Good: about 1.8x on
# two idle cores for both (the work is CPU-bound and shared by nothing).
# Not run in CI; timings are for people. Needs jq, mutool (mupdf-tools),
# tesseract (tesseract-ocr) and /usr/bin/time (time).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
sluice=$(realpath "${1:-$src/build/sluice}")
gen=$(dirname "$sluice")/tests/gen_fixtures
docs=${DOCS:-100}
pages=${PAGES:-10}
images=${IMAGES:-200}
dpi=${DPI:-150}
threads=${THREADS:-2}
runs=${RUNS:-3}
work=${WORK:-/tmp/sluice-bench-pdf}

for tool in jq mutool tesseract; do
    command -v "$tool" >/dev/null || {
        echo "bench/pdf_ocr.sh needs $tool (scripts/deps.sh installs it)" >&2
        exit 2
    }
done
[[ -x /usr/bin/time ]] || {
    echo "bench/pdf_ocr.sh needs /usr/bin/time (Debian package time)" >&2
    exit 2
}
[[ -x $sluice && -x $gen ]] || {
    echo "no sluice or gen_fixtures next to $sluice: build with tests first (cmake --build build)" >&2
    exit 2
}

corpus=$work/corpus-$docs-$pages-$images-$dpi
if [[ ! -f $corpus/.complete ]]; then
    rm -rf "$corpus"
    echo "generating $docs PDFs of $pages pages and $images page images at $dpi dpi in $corpus" >&2
    mkdir -p "$corpus/all"
    "$gen" --bench "$corpus/all" "$docs" "$pages" "$images" "$dpi"
    mkdir -p "$corpus/pdf" "$corpus/png"
    mv "$corpus"/all/*.pdf "$corpus/pdf/"
    if ((images > 0)); then mv "$corpus"/all/*.png "$corpus/png/"; fi
    rmdir "$corpus/all"
    touch "$corpus/.complete"
fi
pdf_pages=$((docs * pages))

# timed OUTFILE CMD...: runs CMD under /usr/bin/time; prints "wall_s rss_kb".
timed() {
    local out=$1
    shift
    /usr/bin/time -f '%e %M' -o "$out.time" "$@" >"$out" 2>"$out.err" || {
        echo "failed: $*; see $out.err" >&2
        exit 1
    }
    cat "$out.time"
}

rows=()
row() { rows+=("$(printf '| %-4s | %-52s | %5s | %5s | %8.2f | %7.2f | %11.1f |' "$@")"); }

run=$work/run
rm -rf "$run" && mkdir -p "$run"

# median N...: the middle value (the lower middle for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# --- text extraction ---
echo "text: mutool draw -F txt, one process, $runs runs" >&2
walls=() rss=0
for _ in $(seq "$runs"); do
    read -r w k < <(timed "$run/mutool.txt" mutool draw -F txt -o /dev/null "$corpus"/pdf/*.pdf)
    walls+=("$w")
    ((k > rss)) && rss=$k
done
mu_wall=$(median "${walls[@]}")
mu_rate=$(awk -v p=$pdf_pages -v w="$mu_wall" 'BEGIN { print p / w }')
row text "mutool draw -F txt, one process" "$pdf_pages" 1 "$mu_wall" "$mu_rate" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"

# sluice_text LABEL NAME [--set ...]: RUNS runs of conf/pdf.ini over the
# PDFs into a fresh store each; adds a row and sets sl_rate and sl_busy
# (parse-pdf's busy seconds in the median run).
sluice_text() {
    local label=$1 name=$2
    shift 2
    echo "text: sluice $label, $threads threads, $runs runs" >&2
    local walls=() busys=() rss=0 k r w i
    for i in $(seq "$runs"); do
        rm -f "$run/$name.db"*
        read -r _ k < <(cd "$run" && timed "$run/$name-$i.json" "$sluice" -c "$src/conf/pdf.ini" \
            --set "store.path=$run/$name.db" --set sluice.threads="$threads" "$@" run --json "$corpus/pdf")
        r=$run/$name-$i.json
        [[ $(jq -r .documents.stored "$r") == "$docs" ]] || echo "warning: not every document stored in $r" >&2
        w=$(jq -r .wall_s "$r")
        walls+=("$w")
        busys+=("$w $(jq -r '[.stages[] | select(.plugin == "parse-pdf") | .busy_s] | add' "$r")")
        ((k > rss)) && rss=$k
    done
    local wall
    wall=$(median "${walls[@]}")
    sl_busy=$(printf '%s\n' "${busys[@]}" | awk -v w="$wall" '$1 == w { print $2; exit }')
    sl_rate=$(awk -v p=$pdf_pages -v w="$wall" 'BEGIN { print p / w }')
    row text "sluice $label" "$pdf_pages" "$threads" "$wall" "$sl_rate" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
}

sluice_text "parse-pdf (+chunk, store)" text --set "route.pdf.stages=pdf chunker"
text_ratio=$(awk -v a="$sl_rate" -v b="$mu_rate" 'BEGIN { printf "%.2f", a / b }')
parse_busy=$sl_busy
sluice_text "conf/pdf.ini route (+render/ocr pass, embed)" full
full_ratio=$(awk -v a="$sl_rate" -v b="$mu_rate" 'BEGIN { printf "%.2f", a / b }')

# --- OCR --- (IMAGES=0 skips it)
if ((images > 0)); then
pngs=("$corpus"/png/*.png)
echo "ocr: tesseract, one image at a time (${#pngs[@]} images)" >&2
t0=$(date +%s.%N)
ts_rss=0
for f in "${pngs[@]}"; do
    read -r _ k < <(OMP_THREAD_LIMIT=1 timed "$run/tess.txt" tesseract "$f" -)
    ((k > ts_rss)) && ts_rss=$k
done
t1=$(date +%s.%N)
ts_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
ts_rate=$(awk -v p=${#pngs[@]} -v w="$ts_wall" 'BEGIN { print p / w }')
row ocr "tesseract IMAGE -, one at a time, OMP_THREAD_LIMIT=1" "${#pngs[@]}" 1 "$ts_wall" "$ts_rate" "$(awk -v k="$ts_rss" 'BEGIN { print k / 1024 }')"

echo "ocr: tesseract over a list, one process" >&2
printf '%s\n' "${pngs[@]}" >"$run/list.txt"
read -r tl_wall tl_rss < <(OMP_THREAD_LIMIT=1 timed "$run/tess-list.txt" tesseract "$run/list.txt" -)
tl_rate=$(awk -v p=${#pngs[@]} -v w="$tl_wall" 'BEGIN { print p / w }')
row ocr "tesseract LIST -, one process, OMP_THREAD_LIMIT=1" "${#pngs[@]}" 1 "$tl_wall" "$tl_rate" "$(awk -v k="$tl_rss" 'BEGIN { print k / 1024 }')"

echo "ocr: sluice, $threads threads" >&2
read -r _ so_rss < <(cd "$run" && timed "$run/sluice-ocr.json" "$sluice" -c "$src/conf/pdf.ini" \
    --set "store.path=$run/ocr.db" --set sluice.threads="$threads" run --json "$corpus/png")
r=$run/sluice-ocr.json
[[ $(jq -r .documents.failed "$r") == 0 ]] || echo "warning: documents failed in $r" >&2
so_wall=$(jq -r .wall_s "$r")
so_rate=$(awk -v p=${#pngs[@]} -v w="$so_wall" 'BEGIN { print p / w }')
row ocr "sluice parse-image + ocr-tesseract (+chunk, embed, store)" "${#pngs[@]}" "$threads" "$so_wall" "$so_rate" "$(awk -v k="$so_rss" 'BEGIN { print k / 1024 }')"
ocr_ratio=$(awk -v a="$so_rate" -v b="$ts_rate" 'BEGIN { printf "%.2f", a / b }')
ocr_list_ratio=$(awk -v a="$so_rate" -v b="$tl_rate" 'BEGIN { printf "%.2f", a / b }')
ocr_busy=$(jq -r '[.stages[] | select(.plugin == "ocr-tesseract") | .busy_s] | add' "$r")

fi

echo
echo "| work | run                                                  | pages | cores |   wall s | pages/s | peak RSS MB |"
echo "|------|------------------------------------------------------|------:|------:|---------:|--------:|------------:|"
printf '%s\n' "${rows[@]}"
echo
echo "text extraction: sluice on $threads threads / mutool in one process: ${text_ratio}x (parse-pdf busy ${parse_busy} s over $pdf_pages pages; whole PDF route: ${full_ratio}x)"
if ((images > 0)); then
    echo "OCR: sluice on $threads threads / tesseract one image at a time: ${ocr_ratio}x (ocr-tesseract busy ${ocr_busy} s over ${#pngs[@]} pages)"
    echo "OCR: sluice on $threads threads / tesseract over a list in one process: ${ocr_list_ratio}x"
fi
echo "load average while running: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
