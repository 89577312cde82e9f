"""office_text_matches_source.py - parse-office reads back what pandoc wrote.

Fixtures are made here, at test time, by real tools: pandoc turns every
Markdown file of examples/corpus into a DOCX and a PPTX, and a slide deck
written below (slides, a table, speaker notes) into a PPTX; an XLSX is
written as XML and zipped with zip(1). For each:

  - DOCX: the text matches `pandoc -t plain` of the source with a character
    error rate under 1%; every heading comes back as the source's heading
    path; every pipe table comes back with its cells; metadata title and
    author from docProps/core.xml.
  - PPTX: the corpus text within 1% too; the deck's slides in the order
    presentation.xml gives (also when that order is not the file names'),
    titles as headings on their slide's page, notes after their slide.
  - XLSX: sheets in workbook order as headings on their page, cells from
    shared strings, inline strings, numbers as written and booleans, gaps
    kept as empty cells, the row cap marking a sheet truncated.

Usage: office_text_matches_source.py DUMP_ELEMENTS SOURCE_DIR
"""
import glob
import os
import shutil
import subprocess
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from formats_lib import (check, check_eq, check_in, cer, dump, element_headings, element_tables, finish,
                         heading_paths, joined, md_headings, md_tables, plain, run, strip_inline, workdir)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

tool, src = sys.argv[1], sys.argv[2]
T = workdir("office_text")
corpus = sorted(glob.glob(os.path.join(src, "examples/corpus/*.md")))
check("the corpus has Markdown files", len(corpus) >= 5, str(len(corpus)))
worst = {"docx": 0.0, "pptx": 0.0}

# --- DOCX and PPTX from every corpus file ---
for md in corpus:
    stem = os.path.splitext(os.path.basename(md))[0]
    ref = plain(md)
    for fmt, mt in (("docx", DOCX), ("pptx", PPTX)):
        out = os.path.join(T, f"{stem}.{fmt}")
        run(["pandoc", "-f", "markdown", md, "-o", out])
        head, els = dump(tool, "parse-office", mt, out)
        if "error" in head:
            check(f"{stem}.{fmt} parses", False, head["error"])
            continue
        rate, dist = cer(ref, joined(els))
        worst[fmt] = max(worst[fmt], rate)
        check(f"{stem}.{fmt}: character error rate {rate:.4f} (distance {dist}) under 1%", rate < 0.01)
        if fmt == "docx":
            want = heading_paths(md_headings(md))
            check_eq(f"{stem}.docx: heading paths", heading_paths(element_headings(els)), want)
            check_eq(f"{stem}.docx: one page", head["pages"], 1)
            got_tables = [[[strip_inline(c) for c in row] for row in t] for t in element_tables(els)]
            for i, t in enumerate(md_tables(md)):
                check_in(f"{stem}.docx: table {i + 1} with its cells", t, got_tables)
        else:
            check(f"{stem}.pptx: slides are pages", head["pages"] >= 1 and all(
                1 <= e["page"] <= head["pages"] for e in els), str(head["pages"]))
            pages = [e["page"] for e in els]
            check_eq(f"{stem}.pptx: elements in slide order", pages, sorted(pages))
            got_tables = [[[strip_inline(c) for c in row] for row in t] for t in element_tables(els)]
            for i, t in enumerate(md_tables(md)):
                check_in(f"{stem}.pptx: table {i + 1} with its cells", t, got_tables)
print(f"worst character error rate: docx {worst['docx']:.4f}, pptx {worst['pptx']:.4f}")

# --- DOCX metadata, lists and a title ---
meta_md = os.path.join(T, "meta.md")
with open(meta_md, "w") as f:
    f.write("---\ntitle: Harbour Notes\nauthor: Ada Fixture\nsubject: Tides\n---\n\n"
            "# Lanterns\n\nSeventeen lanterns along the breakwater.\n\n"
            "1. first step\n2. second step\n   - nested bullet\n3. third step\n\n"
            "## Pilots\n\n> Keep the red lamp to port.\n")
run(["pandoc", meta_md, "-o", os.path.join(T, "meta.docx")])
head, els = dump(tool, "parse-office", DOCX, os.path.join(T, "meta.docx"))
check_eq("meta.docx: title from core.xml", head.get("meta", {}).get("title"), "Harbour Notes")
check_eq("meta.docx: author from dc:creator", head.get("meta", {}).get("author"), "Ada Fixture")
check_eq("meta.docx: subject", head.get("meta", {}).get("subject"), "Tides")
check("meta.docx: created and modified dates", "created" in head.get("meta", {}) and "modified" in head.get("meta", {}),
      str(head))
check_eq("meta.docx: the title paragraph is a title element",
         [e["text"] for e in els if e["type"] == "title"], ["Harbour Notes"])
check_eq("meta.docx: heading paths under the title",
         heading_paths(element_headings(els)), ["Harbour Notes", "Lanterns", "Lanterns > Pilots"])
lists = [e["text"] for e in els if e["type"] == "list"]
check_eq("meta.docx: a numbered list with a nested bullet, one element",
         lists, ["1. first step\n2. second step\n  - nested bullet\n3. third step"])
check_eq("meta.docx: the block quote", [e["text"] for e in els if e["type"] == "quote"],
         ["Keep the red lamp to port."])

# --- a PPTX deck: slide order, titles, notes, a table, bullets ---
deck_md = os.path.join(T, "deck.md")
with open(deck_md, "w") as f:
    f.write("---\ntitle: Harbour Deck\nauthor: Ada Fixture\n---\n\n"
            "# Tides and Moorings\n\n- first bullet about tides\n- second bullet about moorings\n\n"
            "::: notes\nSpeaker note for the tides slide.\n:::\n\n"
            "# Lanterns\n\nPlain paragraph about seventeen lanterns.\n\n"
            "| Lamp | Colour |\n|------|--------|\n| north | red |\n| south | green |\n\n"
            "::: notes\nRemember the green lamp.\n:::\n\n"
            "# Orchard\n\nApples grafted in 1887.\n")
deck = os.path.join(T, "deck.pptx")
run(["pandoc", deck_md, "-o", deck])
head, els = dump(tool, "parse-office", PPTX, deck)
check_eq("deck.pptx: four slides", head.get("pages"), 4)
titles = [(e["page"], e["text"]) for e in els if e["type"] == "heading"]
check_eq("deck.pptx: slide titles as headings, in order, on their slide",
         titles, [(1, "Harbour Deck"), (2, "Tides and Moorings"), (3, "Lanterns"), (4, "Orchard")])
check_eq("deck.pptx: title from core.xml", head.get("meta", {}).get("title"), "Harbour Deck")
notes = [(e["page"], e["text"]) for e in els if e["attrs"].get("role") == "notes"]
check_eq("deck.pptx: speaker notes on their slide",
         notes, [(2, "Speaker note for the tides slide."), (3, "Remember the green lamp.")])
for page in (2, 3):
    on_page = [e for e in els if e["page"] == page]
    check(f"deck.pptx: slide {page}'s notes come after its content",
          on_page and on_page[-1]["attrs"].get("role") == "notes", str(on_page))
check_eq("deck.pptx: bullets as a list", [e["text"] for e in els if e["type"] == "list"],
         ["- first bullet about tides\n- second bullet about moorings"])
check_eq("deck.pptx: the table with its cells", element_tables(els),
         [[["Lamp", "Colour"], ["north", "red"], ["south", "green"]]])
head, els = dump(tool, "parse-office", PPTX, deck, "notes=false")
check_eq("deck.pptx with notes=false: no notes", [e for e in els if e["attrs"].get("role") == "notes"], [])

# Reverse the slide list in presentation.xml: the order must follow it.
rev = os.path.join(T, "reversed.pptx")
with zipfile.ZipFile(deck) as zin, zipfile.ZipFile(rev, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        data = zin.read(info.filename)
        if info.filename == "ppt/presentation.xml":
            s = data.decode()
            a, b = s.index("<p:sldIdLst>") + len("<p:sldIdLst>"), s.index("</p:sldIdLst>")
            ids = [x + "/>" for x in s[a:b].split("/>") if x.strip()]
            data = (s[:a] + "".join(reversed(ids)) + s[b:]).encode()
        zout.writestr(info, data)
head, els = dump(tool, "parse-office", PPTX, rev)
check_eq("reversed.pptx: slides follow presentation.xml, not file names",
         [(e["page"], e["text"]) for e in els if e["type"] == "heading"],
         [(1, "Orchard"), (2, "Lanterns"), (3, "Tides and Moorings"), (4, "Harbour Deck")])

# --- an XLSX written by hand and zipped with zip(1) ---
x = os.path.join(T, "book")
files = {
    "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>',
    "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/></Relationships>',
    "docProps/core.xml": '<?xml version="1.0" encoding="UTF-8"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:title>Orchard Ledger</dc:title><dc:creator>Ada Fixture</dc:creator><dcterms:created xsi:type="dcterms:W3CDTF">2024-01-02T03:04:05Z</dcterms:created></cp:coreProperties>',
    "xl/workbook.xml": '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Prices" sheetId="1" r:id="rId2"/><sheet name="Trees &amp; Notes" sheetId="2" r:id="rId1"/><sheet name="Long" sheetId="3" r:id="rId3"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="/xl/worksheets/sheet2.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet3.xml"/><Relationship Id="rId4" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
    "xl/sharedStrings.xml": '<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="5" uniqueCount="5"><si><t>Fruit</t></si><si><t>Price</t></si><si><r><t>Gold</t></r><r><t xml:space="preserve">en apple</t></r><rPh sb="0" eb="1"><t>PHONETIC</t></rPh></si><si><t>Pear</t></si><si><t>Oak planted 1887</t></si></sst>',
    # "Prices" (sheet2.xml): shared strings, a number as written, a boolean, a gap (C empty), an inline string
    "xl/worksheets/sheet2.xml": '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="D1" t="inlineStr"><is><t>In stock</t></is></c></row><row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2"><v>1.50</v></c><c r="D2" t="b"><v>1</v></c></row><row r="3"><c r="A3" t="s"><v>3</v></c><c r="B3"><v>2E-3</v></c><c r="D3" t="b"><v>0</v></c></row><row r="4"/></sheetData></worksheet>',
    "xl/worksheets/sheet1.xml": '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="2"><c r="B2" t="s"><v>4</v></c><c r="C2" t="str"><f>A1</f><v>formula result</v></c></row></sheetData></worksheet>',
    "xl/worksheets/sheet3.xml": '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    + "".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c></row>' for i in range(1, 51)) + "</sheetData></worksheet>",
}
for name, text in files.items():
    p = os.path.join(x, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)
book = os.path.join(T, "book.xlsx")
subprocess.run(["zip", "-q", "-X", "-r", book, "."], cwd=x, check=True)
head, els = dump(tool, "parse-office", XLSX, book)
check_eq("book.xlsx: three sheets, three pages", head.get("pages"), 3)
check_eq("book.xlsx: sheet names as headings in workbook order, on their page",
         [(e["page"], e["level"], e["text"]) for e in els if e["type"] == "heading"],
         [(1, 1, "Prices"), (2, 1, "Trees & Notes"), (3, 1, "Long")])
tables = [e for e in els if e["type"] == "table"]
check_eq("book.xlsx: Prices' cells (shared, inline, numbers as written, booleans, a gap kept)",
         tables[0]["text"] if tables else None,
         "Fruit | Price |  | In stock\nGolden apple | 1.50 |  | TRUE\nPear | 2E-3 |  | FALSE")
check_eq("book.xlsx: a leading empty column kept, a formula's cached string",
         tables[1]["text"] if len(tables) > 1 else None, " | Oak planted 1887 | formula result")
check_eq("book.xlsx: tables name their sheet", [t["attrs"].get("sheet") for t in tables],
         ["Prices", "Trees & Notes", "Long"])
check_eq("book.xlsx: 50 rows under the default cap", tables[2]["text"].count("\n") + 1 if len(tables) > 2 else 0, 50)
check_eq("book.xlsx: title and author", (head["meta"].get("title"), head["meta"].get("author")),
         ("Orchard Ledger", "Ada Fixture"))
head, els = dump(tool, "parse-office", XLSX, book, "max_rows=10")
tables = [e for e in els if e["type"] == "table"]
check_eq("book.xlsx, max_rows=10: the long sheet keeps 10 rows",
         tables[2]["text"].split("\n") if len(tables) > 2 else None, [str(i) for i in range(1, 11)])
check_eq("book.xlsx, max_rows=10: and is marked truncated", [t["attrs"].get("truncated") for t in tables],
         [None, None, "true"])

# Without docProps/core.xml a workbook has no title: a sheet name is not one.
os.remove(os.path.join(x, "docProps/core.xml"))
bare = os.path.join(T, "bare.xlsx")
subprocess.run(["zip", "-q", "-X", "-r", bare, "."], cwd=x, check=True)
head, els = dump(tool, "parse-office", XLSX, bare)
check_eq("bare.xlsx: no title from a sheet name", head.get("meta", {}).get("title"), None)

# The media type decides the reader, but a package under another type is
# still read by its main part.
head, els = dump(tool, "parse-office", "application/zip", book)
check_eq("book.xlsx as application/zip: read as a workbook", [e["text"] for e in els if e["type"] == "heading"],
         ["Prices", "Trees & Notes", "Long"])

shutil.rmtree(T)
finish("office_text_matches_source")
