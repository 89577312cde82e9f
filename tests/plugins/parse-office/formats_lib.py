"""formats_lib.py - what the office and EPUB tests share: running the
dump_elements tool, a character error rate, headings and tables read out of
Markdown, and a check counter that reports every failure before exiting.

The character error rate is the Levenshtein distance between the two
normalised texts divided by the reference's length, computed in a band
around the diagonal (Ukkonen): a distance larger than the band is reported
as "more than the band", which is all a threshold test needs.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

failures = 0
checks = 0


def check(what, ok, detail=""):
    global failures, checks
    checks += 1
    if not ok:
        failures += 1
        print(f"FAIL: {what}" + (f": {detail}" if detail else ""), file=sys.stderr)


def check_eq(what, got, want):
    check(what, got == want, f"got {got!r}, want {want!r}")


def check_in(what, needle, haystack):
    check(what, needle in haystack, f"{needle!r} not in {str(haystack)[:1500]!r}")


def finish(name):
    if failures:
        print(f"{name}: {failures} of {checks} checks failed", file=sys.stderr)
        sys.exit(1)
    if not checks:
        print(f"{name}: no checks ran", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: all {checks} checks passed")


def workdir(name):
    base = os.environ.get("SLUICE_TEST_TMP") or tempfile.gettempdir()
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix=name + ".", dir=base)


def run(cmd, **kw):
    """Runs a command that must succeed (a fixture tool)."""
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        print(f"FAIL: {' '.join(cmd)} exited {r.returncode}: {r.stderr[:2000]}", file=sys.stderr)
        sys.exit(1)
    return r.stdout


def dump(tool, plugin, media_type, path, *options, rss=False):
    """Parses path with the plugin: (header, elements) on success, where
    header holds meta and pages; ({"error": ..., "code": ...}, []) when the
    document failed; ({"init_error": ...}, []) when init refused the options.
    With rss, also the peak resident size in KiB (from /usr/bin/time -v)."""
    cmd = [tool, plugin, media_type, path, *options]
    if rss:
        cmd = ["/usr/bin/time", "-v"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    check("dump_elements wrote valid UTF-8", "\ufffd" not in r.stdout, f"{path}: {r.stdout[:300]!r}")
    if r.returncode not in (0, 3, 4):
        print(f"FAIL: dump_elements on {path} exited {r.returncode}: {r.stderr[-2000:]}", file=sys.stderr)
        sys.exit(1)
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    out = (lines[0], lines[1:])
    if rss:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
        return out + (int(m.group(1)) if m else -1,)
    return out


# --- text ---

_rule = re.compile(r"^[\s\-=+:|]*$")
_marker = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")


def normalise(text):
    """Text as a reader sees it: table rules, list markers, cell bars,
    emphasis marks and whitespace differences gone."""
    out = []
    for line in text.splitlines():
        if _rule.match(line):
            continue
        line = _marker.sub("", line)
        out.append(line.replace("|", " "))
    s = " ".join(out)
    s = s.replace("\u00a0", " ")
    return re.sub(r"\s+", " ", s).strip()


def edit_distance(a, b, band):
    """Levenshtein distance of a and b if at most band, else band + 1."""
    n, m = len(a), len(b)
    if abs(n - m) > band:
        return band + 1
    big = band + 1
    prev = {j: j for j in range(0, min(m, band) + 1)}
    for i in range(1, n + 1):
        lo, hi = max(0, i - band), min(m, i + band)
        cur = {}
        ai = a[i - 1]
        for j in range(lo, hi + 1):
            if j == 0:
                cur[j] = i
                continue
            best = prev.get(j - 1, big) + (ai != b[j - 1])
            d = prev.get(j, big) + 1
            if d < best:
                best = d
            d = cur.get(j - 1, big) + 1
            if d < best:
                best = d
            cur[j] = best
        prev = cur
        if min(cur.values()) > band:
            return band + 1
    return min(prev.get(m, big), big)


def cer(reference, hypothesis, limit=0.01):
    """(rate, distance): the distance is exact when the rate is under twice
    the limit, else the rate is reported as at least that."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    band = max(8, int(len(ref) * limit * 2))
    d = edit_distance(ref, hyp, band)
    return d / max(1, len(ref)), d


def plain(path):
    return run(["pandoc", "-f", "markdown", "-t", "plain", "--wrap=none", path])


# --- Markdown structure, read from the source ---

def strip_inline(s):
    s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s).replace("...", "\u2026")  # pandoc's smart dots
    return re.sub(r"[`*]", "", s).strip()


def md_headings(path):
    """[(level, text)] of the ATX headings outside fenced code."""
    out, fenced = [], False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```") or line.startswith("~~~"):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            out.append((len(m.group(1)), strip_inline(m.group(2))))
    return out


def md_tables(path):
    """Each pipe table as a list of rows of cell texts (header first)."""
    tables, cur = [], []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.lstrip().startswith("|"):
            cells = [strip_inline(c) for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c.replace(" ", "")) for c in cells):
                cur.append(cells)
        elif cur:
            tables.append(cur)
            cur = []
    if cur:
        tables.append(cur)
    return tables


def heading_paths(pairs):
    """["A", "A > B", ...] for [(level, text)], the way the chunker builds them."""
    stack, out = {}, []
    for level, text in pairs:
        stack[level] = text
        for l in list(stack):
            if l > level:
                del stack[l]
        out.append(" > ".join(stack[l] for l in sorted(stack)))
    return out


def element_headings(elements, pages=None):
    return [(e["level"] if e["type"] == "heading" else 1, strip_inline(e["text"]))
            for e in elements if e["type"] in ("heading", "title") and (pages is None or e["page"] in pages)]


def element_tables(elements):
    return [[row.split(" | ") for row in e["text"].split("\n")] for e in elements if e["type"] == "table"]


def joined(elements, pages=None):
    return "\n".join(e["text"] for e in elements if pages is None or e["page"] in pages)


def write_xlsx(path, sheets, workdir_):
    """A minimal XLSX with zip(1): sheets is [(name, [[cell text, ...], ...])],
    every cell a shared string."""
    from xml.sax.saxutils import escape, quoteattr
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = 'xmlns="http://schemas.openxmlformats.org/package/2006/relationships"'
    strings, index = [], {}
    files = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        "_rels/.rels": f'<Relationships {pkg}><Relationship Id="r1" Type="{rel}/officeDocument" '
                       'Target="xl/workbook.xml"/></Relationships>',
    }
    book, rels = [], [f'<Relationship Id="s" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/>']
    for i, (name, rows) in enumerate(sheets, 1):
        book.append(f'<sheet name={quoteattr(name)} sheetId="{i}" r:id="r{i}"/>')
        rels.append(f'<Relationship Id="r{i}" Type="{rel}/worksheet" Target="worksheets/sheet{i}.xml"/>')
        xml = []
        for r, row in enumerate(rows, 1):
            cells = []
            for c, text in enumerate(row):
                if text not in index:
                    index[text] = len(strings)
                    strings.append(text)
                cells.append(f'<c r="{chr(65 + c % 26)}{r}" t="s"><v>{index[text]}</v></c>')
            xml.append(f'<row r="{r}">{"".join(cells)}</row>')
        files[f"xl/worksheets/sheet{i}.xml"] = f'<worksheet {ns}><sheetData>{"".join(xml)}</sheetData></worksheet>'
    files["xl/workbook.xml"] = f'<workbook {ns} xmlns:r="{rel}"><sheets>{"".join(book)}</sheets></workbook>'
    files["xl/_rels/workbook.xml.rels"] = f'<Relationships {pkg}>{"".join(rels)}</Relationships>'
    files["xl/sharedStrings.xml"] = f'<sst {ns}>' + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings) + "</sst>"
    d = tempfile.mkdtemp(dir=workdir_)
    for p, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(d, p)) or d, exist_ok=True)
        with open(os.path.join(d, p), "w", encoding="utf-8") as f:
            f.write(text)
    subprocess.run(["zip", "-q", "-X", "-r", os.path.abspath(path), "."], cwd=d, check=True)
