#!/usr/bin/env bash
# bench/formats-web.sh - HTML, CSV, JSON Lines and e-mail throughput of
# sluice on two cores against a reference extractor run as a command over
# the same files.
#
#   bench/formats-web.sh [SLUICE]     (default: build/sluice)
#   THREADS=2 CSV_FILES=200 JSONL_FILES=200 EMAIL_FILES=1000 WORK=/tmp/sluice-bench-web bench/formats-web.sh
#
# Corpora (made in WORK, kept between runs):
#   html   every HTML file under /usr/share/doc (real pages: Debian's
#          manuals, changelogs, API docs) plus pandoc's HTML of
#          examples/corpus, copied flat
#   csv    CSV_FILES files of 1,000 rows x 6 columns, quoted fields included
#   jsonl  JSONL_FILES files of 1,000 records of 5 fields
#   email  EMAIL_FILES .eml messages written by Python's email package:
#          headers, a text/plain body (one examples/corpus file each) and
#          its text/html alternative, quoted-printable as mail clients send
# Runs, each over the whole corpus:
#   reference  html: `pandoc -f html -t plain`; csv: `pandoc -f csv -t plain`;
#              jsonl: `jq -r '.. | scalars'`; one process per file, run two at
#              a time (xargs -P THREADS), so both cores are used;
#              email: bench/ref_email_text.py (Python's stdlib email parser:
#              headers, text/plain and the text of text/html), 100 files per
#              process, THREADS processes at a time
#   sluice     the built-in default config (parse, chunk-text, embed-hash,
#              SQLite store), THREADS pool threads, a fresh store
#   sluice parse+chunk   the same with each route cut to `PARSER chunker`
#              (no embedder): what the parser costs
# Prints a Markdown table: files, MB, wall and CPU seconds (user + system,
# children included: on a shared machine the CPU column is the steadier),
# MB/s and docs/s by the wall clock, MB per CPU second, and the ratios of
# sluice to the reference. Timings are for people, not CI. Needs pandoc, jq
# and /usr/bin/time.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
sluice=$(realpath "${1:-$src/build/sluice}")
threads=${THREADS:-2}
work=${WORK:-/tmp/sluice-bench-web}
csv_files=${CSV_FILES:-200}
jsonl_files=${JSONL_FILES:-200}
email_files=${EMAIL_FILES:-1000}
mkdir -p "$work"
cd "$work"

if [[ ! -d html ]]; then
    mkdir -p html.tmp
    i=0
    while IFS= read -r -d '' f; do
        i=$((i + 1))
        cp "$f" "html.tmp/$i-$(basename "$f")"
    done < <(find /usr/share/doc \( -name '*.html' -o -name '*.htm' \) -type f -print0 | sort -z)
    for md in "$src"/examples/corpus/*.md; do
        pandoc -s --metadata pagetitle=x "$md" -o "html.tmp/corpus-$(basename "$md" .md).html"
    done
    mv html.tmp html
fi
if [[ ! -d csv ]]; then
    mkdir -p csv.tmp
    for f in $(seq 1 "$csv_files"); do
        awk -v f="$f" 'BEGIN { print "id,name,city,amount,date,comment";
            for (i = 1; i <= 1000; i++)
                printf "%d,Customer %d,City %d,%d.%02d,2024-%02d-%02d,\"order %d of file %d, \"\"rush\"\" delivery\"\n",
                       i, i * 7 % 991, i % 97, i * 13 % 10000, i % 100, i % 12 + 1, i % 28 + 1, i, f }' >"csv.tmp/t$f.csv"
    done
    mv csv.tmp csv
fi
if [[ ! -d jsonl ]]; then
    mkdir -p jsonl.tmp
    for f in $(seq 1 "$jsonl_files"); do
        awk -v f="$f" 'BEGIN { for (i = 1; i <= 1000; i++)
            printf "{\"id\": %d, \"title\": \"Ticket %d-%d\", \"body\": \"The printer on floor %d jams when printing invoices, case %d.\", \"user\": {\"name\": \"user%d\"}, \"tags\": [\"printer\", \"floor%d\"]}\n",
                   i, f, i, i % 20, i, i % 300, i % 20 }' >"jsonl.tmp/r$f.jsonl"
    done
    mv jsonl.tmp jsonl
fi

if [[ ! -d email ]]; then
    mkdir -p email.tmp
    python3 - "$src/examples/corpus" email.tmp "$email_files" <<'PY'
import html, os, sys
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
corpus, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
texts = [open(os.path.join(corpus, f), encoding="utf-8").read() for f in sorted(os.listdir(corpus)) if f.endswith(".md")]
t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
for i in range(n):
    body = texts[i % len(texts)]
    m = EmailMessage()
    m["From"] = f"Sender {i % 37} <sender{i % 37}@example.org>"
    m["To"] = "Operations <ops@example.org>"
    m["Subject"] = f"Notes {i}: " + body.splitlines()[0].lstrip("# ")
    m["Date"] = format_datetime(t0 + timedelta(minutes=i))
    m["Message-Id"] = f"<bench-{i}@example.org>"
    m.set_content(body, cte="quoted-printable")
    m.add_alternative("<html><body>" + "".join(f"<p>{html.escape(p)}</p>" for p in body.split("\n\n")) +
                      "</body></html>", subtype="html", cte="quoted-printable")
    with open(os.path.join(out, f"m{i:05d}.eml"), "wb") as f:
        f.write(bytes(m))
PY
    mv email.tmp email
fi

mb() { du -sb "$1" | awk '{ printf "%.2f", $1 / 1e6 }'; }
count() { find "$1" -type f | wc -l; }
rows=()
row() { # NAME CORPUS "WALL CPU" (seconds)
    local files mbs
    files=$(count "$2")
    mbs=$(mb "$2")
    read -r wall cpu <<<"$3"
    rows+=("$(awk -v n="$1" -v c="$2" -v f="$files" -v m="$mbs" -v s="$wall" -v u="$cpu" \
        'BEGIN { printf "| %s | %s | %d | %.2f | %.2f | %.2f | %.2f | %.1f | %.2f |", c, n, f, m, s, u, m / s, f / s, m / u }')")
}

# timed COMMAND...: runs it, prints "WALL CPU" seconds (CPU: user + system,
# children included), so a loaded machine still shows the work done
timed() {
    /usr/bin/time -f '%e %U %S' -o "$work/time.txt" "$@" >/dev/null 2>&1 || true
    tail -1 "$work/time.txt" | awk '{ printf "%.3f %.3f", $1, $2 + $3 }' # after "Command exited with ..."
}

reference() { # CORPUS COMMAND...
    local corpus=$1
    shift
    # the references are slow (pandoc: minutes): measured once per WORK,
    # kept in ref-CORPUS.time; remove that file (or WORK) to measure again
    if [[ -s $work/ref-$corpus.time ]]; then
        cat "$work/ref-$corpus.time"
        return
    fi
    printf '#!/bin/sh\n%s "$1" >/dev/null 2>&1 || true\n' "$*" >"$work/ref.sh"
    timed sh -c "find '$corpus' -type f -print0 | xargs -0 -n 1 -P '$threads' sh '$work/ref.sh'" | tee "$work/ref-$corpus.time"
}

# reference_batch CORPUS COMMAND...: COMMAND takes many files: 100 a process,
# THREADS processes at a time (kept like reference's)
reference_batch() {
    local corpus=$1
    shift
    if [[ -s $work/ref-$corpus.time ]]; then
        cat "$work/ref-$corpus.time"
        return
    fi
    timed sh -c "find '$corpus' -type f -print0 | xargs -0 -n 100 -P '$threads' $*" | tee "$work/ref-$corpus.time"
}

cut_ini() {
    cat >cut.ini <<INI
[sluice]
threads = $threads
include = *.html *.htm *.csv *.jsonl *.eml
[route.html]
media = text/html
stages = html chunker
sink = store
[route.csv]
media = text/csv
stages = csv chunker
sink = store
[route.json]
media = application/x-ndjson
stages = json chunker
sink = store
[route.email]
media = message/rfc822
stages = email chunker
sink = store
[html]
plugin = parse-html
[email]
plugin = parse-email
[csv]
plugin = parse-csv
[json]
plugin = parse-json
[chunker]
plugin = chunk-text
[store]
plugin = sink-sqlite
path = $work/cut/store.db
INI
}

sluice_run() { # CORPUS [ARGS...]
    local corpus=$1
    shift
    rm -rf run cut
    mkdir -p run cut
    (cd run && timed "$sluice" -q "$@" --set sluice.threads="$threads" run "../$corpus")
}

cut_ini
for corpus in html csv jsonl email; do
    case $corpus in
    html) row "pandoc -f html -t plain" html "$(reference html pandoc -f html -t plain)" ;;
    csv) row "pandoc -f csv -t plain" csv "$(reference csv pandoc -f csv -t plain)" ;;
    jsonl) row "jq -r scalars" jsonl "$(reference jsonl jq -r "'.. | scalars'")" ;;
    email) row "python3 email (bench/ref_email_text.py)" email \
        "$(reference_batch email python3 "$here/ref_email_text.py" ">/dev/null")" ;;
    esac
    row "sluice (default: parse, chunk, embed-hash, SQLite)" "$corpus" "$(sluice_run "$corpus")"
    row "sluice parse+chunk+store" "$corpus" "$(sluice_run "$corpus" -c "$work/cut.ini")"
done

echo "sluice: $threads threads; references: one process per file, $threads at a time (email: 100 files a process)"
echo
echo "| corpus | run | files | MB | wall s | CPU s | MB/s | docs/s | MB per CPU s |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
echo
# ratios: sluice default over the reference, per corpus
for corpus in html csv jsonl email; do
    printf '%s\n' "${rows[@]}" | awk -F'|' -v c="$corpus" '
        { name = $2; gsub(/ /, "", name) } name == c { v[++n] = $8 + 0; u[n] = $10 + 0 }
        END { if (n == 3 && v[1] > 0)
            printf "%s: MB/s sluice default %.1fx the reference, parse+chunk+store %.1fx; per CPU second %.1fx and %.1fx\n",
                   c, v[2] / v[1], v[3] / v[1], u[2] / u[1], u[3] / u[1] }'
done
