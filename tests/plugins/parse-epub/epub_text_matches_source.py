"""epub_text_matches_source.py - parse-epub reads back what pandoc wrote.

pandoc (a real tool, at test time) turns each Markdown file of
examples/corpus into an EPUB, and all of them into one book of many
chapters. For each book: the text of its chapters matches `pandoc -t plain`
of the source with a character error rate under 1%; headings come back as
the source's heading paths; pipe tables with their cells; title, author,
date and language from the OPF; chapters in spine order as pages (also when
the spine's order is not the file names'); the navigation document is not
read as text.

Usage: epub_text_matches_source.py DUMP_ELEMENTS SOURCE_DIR
"""
import glob
import os
import re
import shutil
import sys
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parse-office"))
from formats_lib import (check, check_eq, check_in, cer, dump, element_headings, element_tables, finish,
                         heading_paths, joined, md_headings, md_tables, plain, run, strip_inline, workdir)

EPUB = "application/epub+zip"
tool, src = sys.argv[1], sys.argv[2]
T = workdir("epub_text")
corpus = sorted(glob.glob(os.path.join(src, "examples/corpus/*.md")))
check("the corpus has Markdown files", len(corpus) >= 5, str(len(corpus)))
worst = 0.0

for md in corpus:
    stem = os.path.splitext(os.path.basename(md))[0]
    out = os.path.join(T, stem + ".epub")
    run(["pandoc", "-f", "markdown", md, "--metadata", f"title={stem}", "--metadata", "author=Ada Fixture",
         "--metadata", "lang=en-GB", "--metadata", "date=2024-01-02", "-o", out])
    head, els = dump(tool, "parse-epub", EPUB, out)
    if "error" in head:
        check(f"{stem}.epub parses", False, head["error"])
        continue
    # Page 1 is pandoc's title page (title, author, date); the text is after it.
    body_pages = set(range(2, head["pages"] + 1))
    rate, dist = cer(plain(md), joined(els, body_pages))
    worst = max(worst, rate)
    check(f"{stem}.epub: character error rate {rate:.4f} (distance {dist}) under 1%", rate < 0.01)
    check_eq(f"{stem}.epub: the title page", [(e["type"], e["text"]) for e in els if e["page"] == 1],
             [("heading", stem), ("paragraph", "Ada Fixture"), ("paragraph", "2024-01-02")])
    check_eq(f"{stem}.epub: heading paths", heading_paths(element_headings(els, body_pages)),
             heading_paths(md_headings(md)))
    got_tables = [[[strip_inline(c) for c in row] for row in t] for t in element_tables(els)]
    for i, t in enumerate(md_tables(md)):
        check_in(f"{stem}.epub: table {i + 1} with its cells", t, got_tables)
    meta = head["meta"]
    check_eq(f"{stem}.epub: metadata", (meta.get("title"), meta.get("author"), meta.get("date"), meta.get("language")),
             (stem, "Ada Fixture", "2024-01-02", "en-GB"))
print(f"worst character error rate: epub {worst:.4f}")

# --- one book of many chapters ---
book = os.path.join(T, "book.epub")
run(["pandoc", "-f", "markdown", *corpus, "--metadata", "title=Tansy Manual", "--metadata", "author=Ada Fixture",
     "--metadata", "author=Bo Second", "-o", book])
head, els = dump(tool, "parse-epub", EPUB, book)
h1 = [(e["page"], e["text"]) for e in els if e["type"] == "heading" and e["level"] == 1 and e["page"] > 1]
want_h1 = [t for md in corpus for (l, t) in md_headings(md) if l == 1]
check_eq("book.epub: each chapter's h1 in spine order", [t for _, t in h1], want_h1)
check_eq("book.epub: chapters are pages 2, 3, ... in order", [p for p, _ in h1], list(range(2, 2 + len(want_h1))))
check_eq("book.epub: page count", head["pages"], 1 + len(want_h1))
check_eq("book.epub: two authors", head["meta"].get("author"), "Ada Fixture; Bo Second")
nav = [e for e in els if e["type"] == "list" and all(t in e["text"] for t in want_h1[:3])]
check_eq("book.epub: the navigation document is not read", nav, [])

# Reverse the spine (title page kept first): pages follow the spine.
rev = os.path.join(T, "reversed.epub")
with zipfile.ZipFile(book) as zin, zipfile.ZipFile(rev, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        data = zin.read(info.filename)
        if info.filename.endswith(".opf"):
            s = data.decode()
            refs = re.findall(r"<itemref [^>]*/>", s)
            a, b = s.index(refs[0]), s.index(refs[-1]) + len(refs[-1])
            data = (s[:a] + "\n".join([refs[0]] + list(reversed(refs[1:]))) + s[b:]).encode()
        zout.writestr(info, data)
head, els = dump(tool, "parse-epub", EPUB, rev)
got = [e["text"] for e in els if e["type"] == "heading" and e["level"] == 1 and e["page"] > 1]
check_eq("reversed.epub: chapters follow the spine", got, list(reversed(want_h1)))

shutil.rmtree(T)
finish("epub_text_matches_source")
