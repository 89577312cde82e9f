"""office_hostile_files_fail_alone.py - hostile DOCX, PPTX and EPUB files
fail their own document with a reason that names the zip entry, in bounded
memory, and never the run.

Every file is made here at test time (pandoc for the good ones, Python's
zipfile and zlib for the hostile ones):

  - zip bombs: a 1 GiB run of zeros deflated into word/document.xml (and
    200 MiB into an EPUB chapter), refused by the compression-ratio limit;
    the same with max_ratio lifted, refused by max_entry_size; one whose
    headers claim the entry is 1000 bytes, refused all the same because
    bytes are counted while inflating; parts that pass one by one but not
    together, refused by max_total_size; 20,001 entries, refused by
    max_entries;
  - billion laughs: nine levels of ten entity references in a DOCX part and
    in an EPUB chapter, refused for their DTD;
  - 10,000 nested elements (w:sdt in a DOCX, div in an EPUB);
  - a truncated DOCX, one with a damaged deflate stream, a text file named
    .docx;
  - zip entries named ../../evil.txt and /etc/passwd;
  - options out of range, refused at init.

Each parse runs under /usr/bin/time -v and its peak RSS is held to a
generous bound. Then `sluice run` (the default config: every route) takes a
folder of all of them plus good files of every format: the good ones are
stored, each hostile one failed with its reason, and the run ends normally.

Usage: office_hostile_files_fail_alone.py DUMP_ELEMENTS SOURCE_DIR SLUICE
"""
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from formats_lib import check, check_eq, check_in, dump, finish, run, workdir

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
EPUB = "application/epub+zip"
# The largest buffer the default limits allow is 128 MiB (max_entry_size);
# under AddressSanitizer (SLUICE_SANITIZED=1) realloc keeps old buffers in
# quarantine, so the bound is three times as generous there.
RSS_BOUND_KIB = 400 * 1024 * (3 if os.environ.get("SLUICE_SANITIZED") == "1" else 1)

tool, src, sluice = (os.path.abspath(a) for a in sys.argv[1:4])
T = workdir("office_hostile")
H = os.path.join(T, "corpus")
os.makedirs(H)
md = os.path.join(src, "examples/corpus/configuration.md")
good_docx = os.path.join(H, "good.docx")
good_epub = os.path.join(H, "good.epub")
good_pptx = os.path.join(H, "good.pptx")
run(["pandoc", md, "-o", good_docx])
run(["pandoc", md, "-o", good_pptx])
run(["pandoc", md, "--metadata", "title=Configuration", "-o", good_epub])
shutil.copy(md, os.path.join(H, "good.md"))


def rewrite(base, out, replace=None, extra=(), drop=()):
    """A copy of zip `base` with some entries replaced (name -> bytes or a
    function writing into an open entry), others added, some dropped."""
    replace = replace or {}
    with zipfile.ZipFile(base) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            if info.filename in replace:
                write(zout, info.filename, replace[info.filename])
            else:
                zout.writestr(info, zin.read(info.filename))
        for name, data in extra:
            write(zout, name, data)


def write(zout, name, data):
    if callable(data):
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zout.open(info, "w", force_zip64=True) as f:
            data(f)
    else:
        zout.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)


def zeros(total):
    def fill(f):
        chunk = b"\0" * (1 << 20)
        for _ in range(total >> 20):
            f.write(chunk)
    return fill


# The zip bombs.
rewrite(good_docx, os.path.join(H, "bomb.docx"), {"word/document.xml": zeros(1 << 30)})
ch = next(n for n in zipfile.ZipFile(good_epub).namelist() if n.endswith("ch001.xhtml"))
rewrite(good_epub, os.path.join(H, "bomb.epub"), {ch: zeros(200 << 20)})

# A bomb whose headers lie: 300 MiB of zeros said to be 1000 bytes.
liar = os.path.join(T, "liar.docx")
with zipfile.ZipFile(good_docx) as zin, zipfile.ZipFile(liar, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        if info.filename == "word/document.xml":
            info = zipfile.ZipInfo("word/document.xml")
            info.compress_type = zipfile.ZIP_DEFLATED
            with zout.open(info, "w") as f:
                zeros(300 << 20)(f)
        else:
            zout.writestr(info, zin.read(info.filename))
blob = bytearray(open(liar, "rb").read())
name = b"word/document.xml"
patched = 0
for sig, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
    start = 0
    while (at := blob.find(sig, start)) >= 0:
        start = at + 4
        nlen_at = 26 if sig == b"PK\x03\x04" else 28
        nlen = struct.unpack_from("<H", blob, at + nlen_at)[0]
        name_at = at + (30 if sig == b"PK\x03\x04" else 46)
        if bytes(blob[name_at:name_at + nlen]) == name:
            struct.pack_into("<I", blob, at + size_at, 1000)
            patched += 1
# (the local header written while streaming holds zeros and a data descriptor follows; the central one is patched)
check("liar.docx: its central directory now claims 1000 bytes", patched >= 1, str(patched))
open(os.path.join(H, "liar.docx"), "wb").write(blob)
os.remove(liar)

# Parts that pass one by one but not together (with small limits below).
pad = lambda n: ("<!--" + "x" * n + "-->").encode()
with zipfile.ZipFile(good_docx) as zin:
    doc = zin.read("word/document.xml")
    styles = zin.read("word/styles.xml")
rewrite(good_docx, os.path.join(T, "total.docx"),
        {"word/document.xml": doc.replace(b"?>", b"?>" + pad(12000), 1),
         "word/styles.xml": styles.replace(b"?>", b"?>" + pad(12000), 1)})

# 20,001 entries.
with zipfile.ZipFile(os.path.join(H, "many.docx"), "w", zipfile.ZIP_STORED) as z:
    with zipfile.ZipFile(good_docx) as zin:
        for info in zin.infolist():
            z.writestr(info, zin.read(info.filename))
    for i in range(20001):
        z.writestr(f"word/media/pad{i}.bin", b"")

# Billion laughs.
laughs = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
          + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
                    for i in range(1, 10))
          + "]>\n")
rewrite(good_docx, os.path.join(H, "laughs.docx"), {
    "word/document.xml": (laughs + '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
                          '<w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>').encode()})
rewrite(good_epub, os.path.join(H, "laughs.epub"), {
    ch: (laughs.replace("lolz", "html") + '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>&lol9;</p></body></html>')
    .encode()})

# 10,000 nested elements.
deep = 10000
rewrite(good_docx, os.path.join(H, "deep.docx"), {
    "word/document.xml": ('<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
                          + "<w:sdt><w:sdtContent>" * deep + "<w:p><w:r><w:t>x</w:t></w:r></w:p>"
                          + "</w:sdtContent></w:sdt>" * deep + "</w:body></w:document>").encode()})
rewrite(good_epub, os.path.join(H, "deep.epub"), {
    ch: ('<html xmlns="http://www.w3.org/1999/xhtml"><body>' + "<div>" * deep + "x" + "</div>" * deep
         + "</body></html>").encode()})

# Truncated, damaged, not a zip.
data = open(good_docx, "rb").read()
open(os.path.join(H, "truncated.docx"), "wb").write(data[:len(data) // 2])
damaged = bytearray(data)
with zipfile.ZipFile(good_docx) as z:
    info = z.getinfo("word/document.xml")
off = info.header_offset + 30 + len(info.filename) + len(info.extra)
for k in range(off + 40, off + 200):
    damaged[k] ^= 0x5A
open(os.path.join(H, "damaged.docx"), "wb").write(damaged)
open(os.path.join(H, "notzip.docx"), "w").write("just some text, not a zip\n")

# Path tricks.
rewrite(good_docx, os.path.join(H, "dotdot.docx"), extra=[("../../evil.txt", b"gotcha")])
rewrite(good_pptx, os.path.join(H, "absolute.pptx"), extra=[("/etc/passwd", b"root:x:0:0")])

# --- each alone, through the plugin, in bounded memory ---
expect = {
    "bomb.docx": (DOCX, r"^word/document\.xml: inflates past \d+ bytes from \d+ compressed, more than max_ratio \(100\)"),
    "bomb.epub": (EPUB, r"^EPUB/text/ch001\.xhtml: inflates past .*max_ratio \(100\)"),
    "liar.docx": (DOCX, r"^word/document\.xml: inflates past .*max_ratio"),
    "many.docx": (DOCX, r"^the zip archive has 20\d\d\d entries, more than max_entries \(10000\)"),
    "laughs.docx": (DOCX, r"^word/document\.xml: a document type declaration \(DTD\), which this format forbids"),
    "laughs.epub": (EPUB, r"^EPUB/text/ch001\.xhtml: the DTD declares XML entities"),
    "deep.docx": (DOCX, r"^word/document\.xml: elements nested deeper than (max_depth \(256\)|256 \(libxml2's limit\))"),
    "deep.epub": (EPUB, r"^EPUB/text/ch001\.xhtml: elements nested deeper than (max_depth \(256\)|256 \(libxml2's limit\))"),
    "truncated.docx": (DOCX, r"^not a readable zip archive \(truncated or damaged\?\)"),
    "damaged.docx": (DOCX, r"^word/document\.xml: (damaged zip entry|malformed XML)"),
    "notzip.docx": (DOCX, r"^not a readable zip archive"),
    "dotdot.docx": (DOCX, r"^unsafe zip entry name '\.\./\.\./evil\.txt': a '\.\.' component"),
    "absolute.pptx": (PPTX, r"^unsafe zip entry name '/etc/passwd': an absolute path"),
}
for name, (mt, pattern) in expect.items():
    plugin = "parse-epub" if mt == EPUB else "parse-office"
    head, els, rss = dump(tool, plugin, mt, os.path.join(H, name), rss=True)
    check(f"{name} fails with its reason", re.search(pattern, head.get("error", "")) is not None,
          f"got {head!r}, want /{pattern}/")
    check_eq(f"{name} fails as bad input", head.get("code"), -2)
    check(f"{name}: peak RSS {rss} KiB under {RSS_BOUND_KIB} KiB", 0 < rss < RSS_BOUND_KIB)

head, els, rss = dump(tool, "parse-office", DOCX, os.path.join(H, "bomb.docx"), "max_ratio=100000", rss=True)
check_in("bomb.docx with max_ratio lifted: max_entry_size stops it",
         "word/document.xml: inflates past max_entry_size (134217728 bytes)", head.get("error", ""))
check(f"bomb.docx with max_ratio lifted: peak RSS {rss} KiB bounded", 0 < rss < RSS_BOUND_KIB)
with zipfile.ZipFile(os.path.join(T, "total.docx")) as z:
    biggest = max(z.getinfo(n).file_size for n in ("word/document.xml", "word/styles.xml"))
k = biggest // 1024 + 2  # each part fits, the two together do not
head, _ = dump(tool, "parse-office", DOCX, os.path.join(H, "deep.docx"), "max_depth=64")
check(f"deep.docx with max_depth=64: our own limit stops it",
      re.search(r"^word/document\.xml: elements nested deeper than max_depth \(64\) at line 1$", head.get("error", ""))
      is not None, str(head))
head, els = dump(tool, "parse-office", DOCX, os.path.join(T, "total.docx"), f"max_entry_size={k}K",
                 f"max_total_size={k}K")
check(f"total.docx: parts pass max_entry_size={k}K one by one but not max_total_size={k}K",
      re.search(rf"^word/(document|styles)\.xml: the archive inflates past max_total_size \({k * 1024} bytes\)",
                head.get("error", "")) is not None, str(head))
head, els = dump(tool, "parse-office", DOCX, os.path.join(T, "total.docx"))
check("total.docx with the defaults: read", "meta" in head, str(head))

for plugin, opt, msg in (("parse-office", "max_ratio=1", "max_ratio must be 2..100000"),
                         ("parse-office", "max_depth=1000", "max_depth must be 8..256"),
                         ("parse-office", "max_rows=0", "max_rows must be 1..10000000"),
                         ("parse-office", "max_entries=0", "max_entries must be 1..1000000"),
                         ("parse-office", "max_total_size=1M", "max_total_size (1048576) must be at least"),
                         ("parse-epub", "max_chapters=0", "max_chapters must be 1..1000000"),
                         ("parse-epub", "max_entry_size=1K", "max_entry_size must be at least 4K")):
    head, _ = dump(tool, plugin, DOCX, good_docx, opt)
    check_in(f"{plugin} {opt}: refused at init", msg, head.get("init_error", ""))

# --- all together through `sluice run` with the default routes ---
db = os.path.join(T, "store.db")
xlsx_dir = os.path.join(T, "xlsx")
os.makedirs(os.path.join(xlsx_dir, "_rels"))
os.makedirs(os.path.join(xlsx_dir, "xl/_rels"))
os.makedirs(os.path.join(xlsx_dir, "xl/worksheets"))
open(os.path.join(xlsx_dir, "_rels/.rels"), "w").write(
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="r1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>")
open(os.path.join(xlsx_dir, "xl/workbook.xml"), "w").write(
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
    '<sheet name="Tides" sheetId="1" r:id="r1"/></sheets></workbook>')
open(os.path.join(xlsx_dir, "xl/_rels/workbook.xml.rels"), "w").write(
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="r1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/s.xml"/>'
    "</Relationships>")
open(os.path.join(xlsx_dir, "xl/worksheets/s.xml"), "w").write(
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1">'
    '<c r="A1" t="inlineStr"><is><t>high water</t></is></c><c r="B1"><v>6.25</v></c></row></sheetData></worksheet>')
subprocess.run(["zip", "-q", "-X", "-r", os.path.join(H, "good.xlsx"), "."], cwd=xlsx_dir, check=True)

cmd = ["/usr/bin/time", "-v", sluice, "--set", f"store.path={db}", "--set", "sluice.threads=2", "run", "--json", H]
r = subprocess.run(cmd, capture_output=True, text=True, cwd=T, timeout=600)
check_eq("sluice run: exit status 1 (some documents failed, the run finished)", r.returncode, 1)
try:
    report = json.loads(r.stdout)
except json.JSONDecodeError:
    report = {}
    check("sluice run: a JSON report", False, r.stdout[-2000:] + r.stderr[-2000:])
docs = report.get("documents", {})
check_eq("sluice run: documents stored (md, docx, pptx, xlsx, epub)", docs.get("stored"), 5)
check_eq("sluice run: documents failed (every hostile file)", docs.get("failed"), len(expect))
failed = {os.path.basename(f["uri"]): f.get("reason", "") for f in report.get("failed", [])}
for name, (mt, pattern) in expect.items():
    reason = failed.get(name, "")
    check(f"sluice run: {name} failed with its reason", re.search(pattern, reason) is not None,
          f"got {reason!r}")
m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
rss = int(m.group(1)) if m else -1
check(f"sluice run: peak RSS {rss} KiB under {2 * RSS_BOUND_KIB} KiB", 0 < rss < 2 * RSS_BOUND_KIB)
out = subprocess.run(["sqlite3", db, "SELECT uri, count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id "
                      "GROUP BY uri ORDER BY uri;"], capture_output=True, text=True).stdout
for name in ("good.docx", "good.epub", "good.md", "good.pptx", "good.xlsx"):
    check_in(f"sluice run: {name} has chunks in the store", name, out)
text = subprocess.run(["sqlite3", db, "SELECT group_concat(c.text, ' ') FROM chunks c JOIN documents d ON "
                       "d.id = c.doc_id WHERE d.uri LIKE '%good.xlsx';"], capture_output=True, text=True).stdout
check_in("sluice run: the sheet's cells are in the store", "high water | 6.25", text)

if not os.environ.get("KEEP"):  # KEEP=1 leaves the files for a look
    shutil.rmtree(T)
finish("office_hostile_files_fail_alone")
