#!/usr/bin/env bash
# bench/usr-share-doc.sh - a real corpus: every HTML file under /usr/share/doc
# (or DIR) through the built-in default config, in a fresh store.
#
#   bench/usr-share-doc.sh [SLUICE] [DIR]     (default: build/sluice, /usr/share/doc)
#
# Prints what the run stored and failed, the failures grouped by reason
# (numbers in reasons shown as N, so one reason is one row), and the
# extracted text per page: the HTML route's chunks, characters, headings.
# Needs jq and sqlite3.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
sluice=$(realpath "${1:-$src/build/sluice}")
dir=$(realpath "${2:-/usr/share/doc}")
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-usr-share-doc.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

files=$(find -L "$dir" \( -name '*.html' -o -name '*.htm' \) -type f | wc -l)
mb=$(find -L "$dir" \( -name '*.html' -o -name '*.htm' \) -type f -print0 | du -cb --files0-from=- | tail -1 | cut -f1)
t0=$(date +%s.%N)
set +e
"$sluice" -q --set 'sluice.include=*.html *.htm' run --json "$dir" >report.json 2>stderr.txt
rc=$?
set -e
t1=$(date +%s.%N)

echo "corpus: $files HTML files ($(awk -v b="$mb" 'BEGIN { printf "%.1f", b / 1e6 }') MB) under $dir; sluice exit status $rc"
echo
echo "| documents | count |"
echo "| --- | ---: |"
jq -r '.documents | "| total | \(.total) |\n| stored | \(.stored) |\n| failed | \(.failed) |\n| skipped | \(.skipped) |"' report.json
echo "| chunks stored | $(jq -r .chunks report.json) |"
echo "| wall s | $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') |"
echo "| peak RSS MB | $(jq -r '.peak_rss_bytes / 1e6 | floor' report.json) |"
echo
if [[ $(jq -r '.failed | length' report.json) -gt 0 ]]; then
    echo "| failures | reason (numbers as N) | example |"
    echo "| ---: | --- | --- |"
    jq -r '.failed[] | [(.reason | gsub("[0-9]+"; "N")), .uri] | @tsv' report.json | sort |
        awk -F'\t' '{ n[$1]++; if (!($1 in ex)) ex[$1] = $2 } END { for (r in n) printf "| %d | %s | %s |\n", n[r], r, ex[r] }' |
        sort -t'|' -k2 -nr
    echo
fi
db=.sluice/store.db
if [[ -f $db ]]; then
    echo "| stored pages | chunks | characters | chunks with a heading path | pages with a title |"
    echo "| ---: | ---: | ---: | ---: | ---: |"
    sqlite3 -batch -noheader -separator ' | ' "$db" \
        "SELECT '| ' || (SELECT count(*) FROM documents), count(*), sum(length(text)), sum(heading != ''),
                (SELECT count(*) FROM documents WHERE title IS NOT NULL AND title != '') || ' |' FROM chunks"
fi

# Text against the reference: SAMPLE pages (default 20, every k-th stored
# page) through `pandoc -f html -t plain` and parse-html alone
# (tests/dump_elements), character error rate by tests/cer.
build=$(dirname "$sluice")
sample=${SAMPLE:-20}
if [[ $sample -gt 0 && -x $build/tests/dump_elements && -x $build/tests/cer ]] && command -v pandoc >/dev/null; then
    export SLUICE_PLUGIN_DIR=${SLUICE_PLUGIN_DIR:-$build/plugins}
    sqlite3 -batch -noheader "$db" "SELECT uri FROM documents ORDER BY uri" |
        awk -v n="$sample" '{ u[NR] = $0 } END { k = NR / n; if (k < 1) k = 1; for (i = 1; i <= NR && c < n; i += k) { print u[int(i)]; c++ } }' >sample.txt
    while IFS= read -r f; do
        pandoc -f html -t plain --columns=100000 "$f" >ref.txt 2>/dev/null || continue
        "$build/tests/dump_elements" --text parse-html text/html "$f" >hyp.txt 2>/dev/null || continue
        "$build/tests/cer" ref.txt hyp.txt | sed 's/^cer=\([0-9.]*\).*/\1/'
    done <sample.txt | sort -n >cers.txt
    echo
    echo "| pages sampled | CER vs pandoc: median | mean | max | pages under 1% |"
    echo "| ---: | ---: | ---: | ---: | ---: |"
    awk '{ v[NR] = $1; s += $1; if ($1 < 0.01) u++ } END { if (NR) printf "| %d | %.4f | %.4f | %.4f | %d |\n", NR, v[int((NR + 1) / 2)], s / NR, v[NR], u }' cers.txt
    echo
    echo "(pandoc keeps nav, header and footer text that parse-html drops as boilerplate; that counts as error here)"
fi
