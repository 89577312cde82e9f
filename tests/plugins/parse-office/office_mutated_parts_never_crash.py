"""office_mutated_parts_never_crash.py - 300 DOCX, PPTX, XLSX and EPUB files
whose XML parts are mangled (cut, spliced with stray tags, bytes flipped,
bogus relationship ids, list levels and cell references), each a valid zip,
each parsed alone: every one is read or fails with a reason, and none
crashes, hangs or trips a sanitizer (under SLUICE_SANITIZE the tool exits
86 on any report).

The mutations are seeded: the same files every run. Seeds are made at test
time by pandoc (DOCX, PPTX, EPUB from examples/corpus) and zip (an XLSX).

Usage: office_mutated_parts_never_crash.py DUMP_ELEMENTS SOURCE_DIR
"""
import os
import random
import shutil
import subprocess
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from formats_lib import check, finish, run, workdir, write_xlsx

tool, src = (os.path.abspath(a) for a in sys.argv[1:3])
T = workdir("office_mutated")
media = {"docx": ("parse-office", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
         "pptx": ("parse-office", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
         "xlsx": ("parse-office", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
         "epub": ("parse-epub", "application/epub+zip")}
seeds = {}
for stem in ("configuration", "overview", "cli"):
    md = os.path.join(src, "examples/corpus", stem + ".md")
    for fmt in ("docx", "pptx", "epub"):
        out = os.path.join(T, f"{stem}.{fmt}")
        run(["pandoc", md, "--metadata", f"title={stem}", "-o", out])
        seeds.setdefault(fmt, []).append(out)
    rows = [line.split()[:8] for line in open(md, encoding="utf-8") if line.strip()]
    out = os.path.join(T, f"{stem}.xlsx")
    write_xlsx(out, [(stem, rows), ("second", rows[:5])], T)
    seeds.setdefault("xlsx", []).append(out)

splices = [b"<", b">", b"</w:p>", b"<w:p>", b"<a:p>", b"</a:tbl>", b'<c r="ZZZZ99" t="s">', b"<v>99999999999</v>",
           b"&amp;", b"&bogus;", b"\xff\xfe", b"<tr><td>", b"</table>", b"<ul><li>", b'r:id="rId999"', b"<si>",
           b'<w:numPr><w:ilvl w:val="-5"/><w:numId w:val="99"/></w:numPr>', b'<a:pPr lvl="999999"/>',
           b'<p:ph type="title"/>', b"<![CDATA[x", b"<!--", b'<w:tbl><w:tr><w:tc>', b'<itemref idref="nope"/>']
rng = random.Random(20261203)
counts = {"read": 0, "failed": 0}
for i in range(300):
    fmt = rng.choice(sorted(media))
    base = rng.choice(seeds[fmt])
    dst = os.path.join(T, f"m{i}.{fmt}")
    with zipfile.ZipFile(base) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        names = zin.namelist()
        victim = rng.choice([n for n in names if n.endswith((".xml", ".rels", ".xhtml", ".opf"))])
        for name in names:
            data = bytearray(zin.read(name))
            if name == victim:
                for _ in range(rng.randint(1, 20)):
                    op, at = rng.random(), rng.randrange(len(data) + 1)
                    if op < 0.3 and data:
                        del data[at:at + rng.randint(1, 50)]
                    elif op < 0.7:
                        data[at:at] = rng.choice(splices)
                    elif data:
                        data[at % len(data)] = rng.randrange(256)
            zout.writestr(name, bytes(data))
    plugin, mt = media[fmt]
    try:
        r = subprocess.run([tool, plugin, mt, dst], capture_output=True, text=True, errors="replace", timeout=120)
        rc = r.returncode
        check(f"m{i}.{fmt}: output is valid UTF-8", "\ufffd" not in r.stdout, r.stdout[:300])
    except subprocess.TimeoutExpired:
        rc, r = "timeout", None
    ok = rc in (0, 3)
    check(f"m{i}.{fmt} (from {os.path.basename(base)}, {victim} mangled): read or failed with a reason",
          ok, f"exit {rc}: {r.stderr[-3000:] if r else ''}")
    if ok:
        counts["read" if rc == 0 else "failed"] += 1
        os.remove(dst)
print(f"mutated files: {counts['read']} read, {counts['failed']} failed with a reason")
check("some mutated files are still read, some fail", counts["read"] > 0 and counts["failed"] > 0, str(counts))

if not os.environ.get("KEEP"):
    shutil.rmtree(T)
finish("office_mutated_parts_never_crash")
