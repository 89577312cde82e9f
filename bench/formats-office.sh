#!/usr/bin/env bash
# bench/formats-office.sh - DOCX, PPTX, XLSX and EPUB throughput of
# `sluice run` (parse-office / parse-epub, then the default chunker,
# embedder and SQLite store) on both cores, against `pandoc -t plain` over
# the same files.
#
#   bench/formats-office.sh [SLUICE]        (default: build/sluice)
#   DOCS=200 THREADS=2 RUNS=3 WORK=/tmp/sluice-bench-office bench/formats-office.sh
#
# The corpus, kept in WORK and reused: pandoc writes one DOCX, PPTX and EPUB
# per Markdown file of examples/corpus plus one "book" of all of them; an
# XLSX per file (one sheet, a row per line, a cell per word, shared strings,
# the content types xlsx2csv needs) is written by python3 and zip. Each format's folder holds DOCS files,
# copies of those round-robin (sluice processes each: the store is fresh
# every run, and each file is its own URI).
#
# sluice: the built-in default config with --set sluice.threads=THREADS, a
# fresh store per run, RUNS runs, the median wall time (from the report).
# The references, each THREADS at a time (xargs -P), the median of RUNS:
#   DOCX, EPUB  `pandoc -t plain`, once per file;
#   XLSX        `xlsx2csv` (Debian: xlsx2csv), once per file, every sheet;
#   PPTX        bench/ref_pptx_text.py, a Python stdlib zipfile + ElementTree
#               extractor (slides in order, their text runs, speaker notes),
#               100 files per process: pandoc cannot read PPTX and Debian
#               packages no PPTX-to-text command.
# The table: documents, MB, wall seconds, documents/s, MB/s, and sluice over
# the reference. Not run in CI; timings are for people. Needs pandoc, zip,
# python3, xlsx2csv, jq.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
sluice=$(realpath "${1:-$src/build/sluice}")
docs=${DOCS:-200}
threads=${THREADS:-2}
runs=${RUNS:-3}
work=${WORK:-/tmp/sluice-bench-office}

for tool in pandoc zip python3 xlsx2csv jq; do
    command -v "$tool" >/dev/null || {
        echo "bench/formats-office.sh needs $tool (scripts/deps.sh installs it)" >&2
        exit 2
    }
done
[[ -x $sluice ]] || {
    echo "no sluice at $sluice: build first (cmake --build build)" >&2
    exit 2
}

# --- the corpus ---
seeds=$work/seeds
if [[ ! -f $seeds/.complete ]]; then
    echo "making seed files in $seeds" >&2
    rm -rf "$seeds" && mkdir -p "$seeds"/{docx,pptx,epub,xlsx,md}
    cp "$src"/examples/corpus/*.md "$seeds/md/"
    cat "$src"/examples/corpus/*.md >"$seeds/md/book.md"
    for md in "$seeds"/md/*.md; do
        b=$(basename "$md" .md)
        pandoc "$md" -o "$seeds/docx/$b.docx"
        pandoc "$md" -o "$seeds/pptx/$b.pptx"
        pandoc "$md" --metadata "title=$b" -o "$seeds/epub/$b.epub"
    done
    python3 - "$seeds" <<'PY'
import os, subprocess, sys, tempfile
from xml.sax.saxutils import escape
seeds = sys.argv[1]
NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
for name in sorted(os.listdir(os.path.join(seeds, "md"))):
    stem = name[:-3]
    lines = [l.split() for l in open(os.path.join(seeds, "md", name), encoding="utf-8") if l.strip()]
    strings, index = [], {}
    def sid(w):
        if w not in index:
            index[w] = len(strings)
            strings.append(w)
        return index[w]
    rows = []
    for r, words in enumerate(lines, 1):
        cells = "".join(f'<c r="{chr(65 + c) if c < 26 else "A" + chr(65 + c - 26)}{r}" t="s"><v>{sid(w)}</v></c>'
                        for c, w in enumerate(words[:52]))
        rows.append(f'<row r="{r}">{cells}</row>')
    d = tempfile.mkdtemp()
    files = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
            '</Types>',
        "_rels/.rels": f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="r1" Type="{R}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook {NS} xmlns:r="{R}"><sheets><sheet name="{escape(stem)}" sheetId="1" r:id="r1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="r1" Type="{R}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="r2" Type="{R}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        "xl/sharedStrings.xml": f'<sst {NS}>' + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings) + "</sst>",
        "xl/worksheets/sheet1.xml": f'<worksheet {NS}><sheetData>' + "".join(rows) + "</sheetData></worksheet>",
    }
    for p, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(d, p)) or d, exist_ok=True)
        open(os.path.join(d, p), "w", encoding="utf-8").write(text)
    subprocess.run(["zip", "-q", "-X", "-r", os.path.join(seeds, "xlsx", stem + ".xlsx"), "."], cwd=d, check=True)
PY
    touch "$seeds/.complete"
fi

corpus=$work/corpus-$docs
if [[ ! -f $corpus/.complete ]]; then
    rm -rf "$corpus"
    for f in docx pptx xlsx epub; do
        mkdir -p "$corpus/$f"
        mapfile -t seed < <(ls "$seeds/$f"/*."$f")
        for ((i = 0; i < docs; i++)); do
            s=${seed[i % ${#seed[@]}]}
            cp "$s" "$corpus/$f/$(printf '%05d' "$i")-$(basename "$s")"
        done
    done
    touch "$corpus/.complete"
fi

# median N...: the middle value (the lower middle for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

run=$work/run
rm -rf "$run" && mkdir -p "$run"
rows=()
row() { rows+=("$(printf '| %-4s | %-32s | %5s | %6.2f | %7.2f | %8.1f | %7.2f | %9s |' "$@")"); }

for f in docx pptx xlsx epub; do
    n=$(ls "$corpus/$f" | wc -l)
    bytes=$(du -cb "$corpus/$f"/*."$f" | tail -1 | cut -f1)
    mb=$(awk -v b="$bytes" 'BEGIN { print b / 1e6 }')

    echo "$f: sluice run, $threads threads, $runs runs" >&2
    walls=()
    for i in $(seq "$runs"); do
        rm -f "$run"/store.db*
        (cd "$run" && "$sluice" --set "store.path=$run/store.db" --set sluice.threads="$threads" run --json \
            "$corpus/$f" >"$run/$f-$i.json") || true
        [[ $(jq -r .documents.stored "$run/$f-$i.json") == "$n" ]] || {
            echo "warning: not every $f stored: $(jq -c .documents "$run/$f-$i.json")" >&2
        }
        walls+=("$(jq -r .wall_s "$run/$f-$i.json")")
    done
    sw=$(median "${walls[@]}")
    sd=$(awk -v n="$n" -v w="$sw" 'BEGIN { print n / w }')
    row "$f" "sluice run, $threads threads" "$n" "$mb" "$sw" "$sd" "$(awk -v m="$mb" -v w="$sw" 'BEGIN { print m / w }')" ""

    case $f in
    docx | epub) ref="pandoc -t plain" cmd=(xargs -P "$threads" -n 1 pandoc -t plain -o /dev/null) ;;
    xlsx) ref="xlsx2csv --all" cmd=(xargs -P "$threads" -n 1 sh -c 'xlsx2csv --all "$0" >/dev/null') ;;
    pptx) ref="ref_pptx_text.py, 100 a process" cmd=(xargs -P "$threads" -n 100 python3 "$here/ref_pptx_text.py") ;;
    esac
    echo "$f: $ref, $threads at a time, $runs runs" >&2
    walls=()
    for i in $(seq "$runs"); do
        t0=$(date +%s.%N)
        ls "$corpus/$f"/*."$f" | "${cmd[@]}" >/dev/null
        t1=$(date +%s.%N)
        walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    done
    pw=$(median "${walls[@]}")
    pd=$(awk -v n="$n" -v w="$pw" 'BEGIN { print n / w }')
    row "$f" "$ref, $threads at a time" "$n" "$mb" "$pw" "$pd" \
        "$(awk -v m="$mb" -v w="$pw" 'BEGIN { print m / w }')" \
        "$(awk -v s="$sw" -v p="$pw" 'BEGIN { printf "%.1fx", p / s }')"
done

echo
echo "| fmt  | run                              |  docs |     MB |  wall s |   docs/s |    MB/s | sluice/reference |"
echo "| ---- | -------------------------------- | ----: | -----: | ------: | -------: | ------: | --------: |"
printf '%s\n' "${rows[@]}"
echo
echo "sluice: parse, chunk (1000 chars), embed-hash (384), SQLite store; references: text out only."
