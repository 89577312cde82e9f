#!/usr/bin/env bash
# bench/retrieval.sh - retrieval quality on text nobody here wrote: the
# Markdown under /usr/share/doc, each section's heading asked as a query,
# that section as the answer.
#
#   bench/retrieval.sh [SLUICE] [DIR]     (default: build/sluice, /usr/share/doc)
#
# FILES (default 300) Markdown files (*.md, and *.md.gz unpacked), the first
# in path order, are ingested with the built-in default configuration
# (parse-markdown, chunk-text, embed-hash, sink-sqlite). Every ATX or setext
# heading outside code fences is one query: its text, markup removed. The
# relevant chunks are those of the same file whose lines overlap the
# section's own lines (the heading to the line before the next heading),
# found from the source file, not from what the parser made of it. Each
# query runs in each mode over `sluice serve`'s /query (one process, so the
# table measures ranking, not start-up), and the table gives recall@5 (a
# relevant chunk in the top 5), the misses that leaves, and MRR@10.
#
# Needs python3 and sqlite3.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
sluice=$(realpath "${1:-$src/build/sluice}")
dir=$(realpath "${2:-/usr/share/doc}")
nfiles=${FILES:-300}
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-retrieval.XXXXXX")
pid=
cleanup() {
    if [[ -n $pid ]]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
mkdir corpus

# the files, flattened to one folder (a/b/README.md -> a__b__README.md)
find -L "$dir" -type f \( -name '*.md' -o -name '*.md.gz' \) | LC_ALL=C sort | head -n "$nfiles" >files.txt
while IFS= read -r f; do
    rel=${f#"$dir"/}
    name=${rel//\//__}
    case $f in
    *.gz) gzip -dc "$f" >"corpus/${name%.gz}" 2>/dev/null || rm -f "corpus/${name%.gz}" ;;
    *) cp "$f" "corpus/$name" ;;
    esac
done <files.txt

"$sluice" -q run corpus >/dev/null 2>run.err || true
db=.sluice/store.db
# each chunk's ordinal, its first line, and the line before the next chunk's (its last)
sqlite3 -batch -noheader -separator $'\t' "$db" \
    "SELECT d.uri, c.ordinal, c.line, coalesce(lead(c.line) OVER (PARTITION BY c.doc_id ORDER BY c.ordinal) - 1, 1000000000)
     FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.line > 0" >chunks.tsv

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$sluice" -q serve --listen "127.0.0.1:$port" corpus >serve.log 2>&1 &
pid=$!

python3 - "$port" "$(ls corpus | wc -l)" <<'EOF'
import json, os, re, sys, time, urllib.parse, urllib.request

port, nfiles = int(sys.argv[1]), int(sys.argv[2])
base = "http://127.0.0.1:%d" % port

# chunks of each file: (first line, last line)
chunks = {}
for row in open("chunks.tsv", encoding="utf-8", errors="replace"):
    uri, ordinal, lo, hi = row.rstrip("\n").split("\t")
    chunks.setdefault(uri, []).append((int(ordinal), int(lo), max(int(lo), int(hi))))

def clean(h):
    h = re.sub(r"\s+#+\s*$", "", h.strip())          # closing #s
    h = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", h)  # links and images: their text
    h = re.sub(r"<[^>]+>", " ", h)                    # inline HTML
    h = re.sub(r"[`*_~\\]", "", h)                    # emphasis and code marks
    return re.sub(r"\s+", " ", h).strip()

def headings(path):
    """(line, text) of each heading outside fenced code, 1-based lines."""
    out, fence, prev = [], None, ""
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    for i, line in enumerate(lines, 1):
        m = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if m:
            mark = m.group(1)[0]
            if fence is None:
                fence = mark
            elif fence == mark:
                fence = None
            prev = ""
            continue
        if fence is not None:
            continue
        m = re.match(r"^ {0,3}#{1,6}(\s+(.*))?$", line)
        if m:
            out.append((i, clean(m.group(2) or "")))
        elif re.match(r"^ {0,3}(=+|-+)\s*$", line) and prev.strip() and not re.match(
                r"^\s*([-*+>|]|\d+[.)]|#)", prev):
            out.append((i - 1, clean(prev)))
        prev = line
    return out, len(lines)

queries = []  # (text, uri, set of chunk indexes that answer it)
for name in sorted(os.listdir("corpus")):
    uri = "corpus/" + name
    if uri not in chunks:
        continue
    hs, nlines = headings(uri)
    for j, (line, text) in enumerate(hs):
        if not re.search(r"\w", text):
            continue
        end = hs[j + 1][0] - 1 if j + 1 < len(hs) else nlines
        rel = {(uri, o) for o, lo, hi in chunks[uri] if lo <= end and hi >= line}
        if rel:
            queries.append((text, uri, rel))

for _ in range(600):  # the store is written; /ready once serve has walked it again
    try:
        if urllib.request.urlopen(base + "/ready", timeout=5).status == 200:
            break
    except Exception:
        pass
    time.sleep(0.5)
else:
    sys.exit("sluice serve never became ready (see serve.log)")

def ask(text, mode):
    qs = urllib.parse.urlencode({"q": text, "k": 10, "mode": mode})
    with urllib.request.urlopen(base + "/query?" + qs, timeout=60) as r:
        return json.load(r)

rows = []
for mode in ("vector", "keyword", "hybrid"):
    hit5 = 0
    rr = 0.0
    for text, uri, rel in queries:
        hits = ask(text, mode)
        for rank, h in enumerate(hits, 1):
            if (h["uri"], h["chunk"]) in rel:
                hit5 += rank <= 5
                rr += 1.0 / rank
                break
    n = len(queries)
    rows.append((mode, n, hit5 / n, n - hit5, rr / n))

print("corpus: %d Markdown files from /usr/share/doc, %d chunks, %d heading queries"
      % (nfiles, sum(len(v) for v in chunks.values()), len(queries)))
print()
print("| ranking | queries | recall@5 | misses in top 5 | MRR@10 |")
print("| --- | ---: | ---: | ---: | ---: |")
names = {"vector": "vector only (embed-hash)", "keyword": "keyword only (FTS5 BM25)",
         "hybrid": "hybrid (RRF, k = 60)"}
for mode, n, r5, miss, mrr in rows:
    print("| %s | %d | %.3f | %d | %.3f |" % (names[mode], n, r5, miss, mrr))
vmiss = rows[0][3]
hmiss = rows[2][3]
print()
print("hybrid misses / vector-only misses: %d / %d = %.2f (target: at most 0.50)"
      % (hmiss, vmiss, hmiss / vmiss if vmiss else 0.0))
EOF
