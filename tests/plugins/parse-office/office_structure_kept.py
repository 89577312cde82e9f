#!/usr/bin/env python3
"""office_structure_kept.py - parse-office keeps what lies outside a DOCX's
body and what an XLSX cell's style says.

DOCX: pandoc writes a document with footnotes (footnotes.xml); python3's
zipfile then adds what pandoc cannot write: an endnotes part (with a
separator and a continuation notice that are no notes), two sections whose
properties reference the same default header part, a first-page header, and
two footer parts with the same text. The elements must carry attr role
(footnote, endnote, header, footer; notes also attr note = their id), come
after the body, and each header and footer text must come once.

XLSX: a workbook written here (python3 zipfile and hand-written XML) holds
known dates stored as serial numbers under built-in and custom formats, in
the 1900 and the 1904 date systems; they must come out as ISO 8601 dates,
date-times or times, and numbers under number formats as written.

Usage: office_structure_kept.py DUMP_ELEMENTS_TOOL
"""
import datetime
import os
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from formats_lib import check, check_eq, dump, finish, run, workdir  # noqa: E402

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
WML = "application/vnd.openxmlformats-officedocument.wordprocessingml."

tool = sys.argv[1]
T = workdir("office_structure_kept")

# --- DOCX: footnotes, endnotes, headers, footers ---
md = os.path.join(T, "notes.md")
with open(md, "w") as f:
    f.write("# Harbour\n\nThe tide turns twice a day.[^1]\n\n## Lamps\n\nRed to port.[^2]\n\n"
            "[^1]: Measured at the north pier.\n\n[^2]: By the old rule.\n\n    - a list in a note\n")
plain = os.path.join(T, "plain.docx")
run(["pandoc", md, "-o", plain])


def para(text):
    return f'<w:p><w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


def hf(tag, *texts):
    return f'<?xml version="1.0" encoding="UTF-8"?><w:{tag} {W}>' + "".join(map(para, texts)) + f"</w:{tag}>"


parts = {
    "word/header1.xml": hf("hdr", "Harbour Office Header"),
    "word/header2.xml": hf("hdr", "Confidential draft"),
    "word/footer1.xml": hf("ftr", "Tide tables are advisory"),
    "word/footer2.xml": hf("ftr", "Tide tables are advisory"),  # the same text in another part
    "word/endnotes.xml": f'<?xml version="1.0" encoding="UTF-8"?><w:endnotes {W}>'
    '<w:endnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:endnote>'
    '<w:endnote w:type="continuationNotice" w:id="0">' + para("continued overleaf") + "</w:endnote>"
    '<w:endnote w:id="7"><w:p><w:r><w:endnoteRef/></w:r><w:r><w:t xml:space="preserve"> Lamps were lit at dusk.'
    "</w:t></w:r></w:p></w:endnote></w:endnotes>",
}
rels = {"rId100": ("header", "header1.xml"), "rId101": ("header", "header2.xml"),
        "rId102": ("footer", "footer1.xml"), "rId103": ("footer", "footer2.xml"),
        "rId104": ("endnotes", "endnotes.xml")}


def refs(*pairs):
    return "".join(f'<w:{kind}Reference w:type="{t}" r:id="{rid}"/>' for kind, t, rid in pairs)


# Section 1 ends after the first paragraph; the body's last sectPr is section 2.
sect1 = ("<w:p><w:pPr><w:sectPr>" + refs(("header", "default", "rId100"), ("header", "first", "rId101"),
                                         ("footer", "default", "rId102")) + "</w:sectPr></w:pPr></w:p>")
sect2 = "<w:sectPr>" + refs(("header", "default", "rId100"), ("footer", "default", "rId103")) + "</w:sectPr>"
full = os.path.join(T, "full.docx")
with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(full, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        s = zin.read(info.filename).decode()
        if info.filename == "word/document.xml":
            check("pandoc's document.xml ends in one empty sectPr", s.count("<w:sectPr />") == 1, s[-200:])
            s = s.replace("<w:document ", f"<w:document {R} ", 1) if "xmlns:r=" not in s else s
            first = s.index("</w:p>") + len("</w:p>")
            s = s[:first] + sect1 + s[first:]
            s = s.replace("<w:sectPr />", sect2)
        elif info.filename == "word/_rels/document.xml.rels":
            add = "".join(f'<Relationship Type="{REL}{t}" Id="{i}" Target="{p}"/>' for i, (t, p) in rels.items())
            s = s.replace("</Relationships>", add + "</Relationships>")
        elif info.filename == "[Content_Types].xml":
            add = "".join(f'<Override PartName="/{p}" ContentType="{WML}{k}+xml"/>'
                          for p, k in (("word/header1.xml", "header"), ("word/header2.xml", "header"),
                                       ("word/footer1.xml", "footer"), ("word/footer2.xml", "footer"),
                                       ("word/endnotes.xml", "endnotes")))
            s = s.replace("</Types>", add + "</Types>")
        zout.writestr(info, s)
    for name, text in parts.items():
        zout.writestr(name, text)

head, els = dump(tool, "parse-office", DOCX, full)
check("full.docx: read", "error" not in head, str(head))
roles = [e["attrs"].get("role") for e in els]
body = [e for e in els if not e["attrs"].get("role")]
check_eq("full.docx: the body as before",
         [(e["type"], e["text"]) for e in body],
         [("heading", "Harbour"), ("paragraph", "The tide turns twice a day."), ("heading", "Lamps"),
          ("paragraph", "Red to port.")])
first_role = next((i for i, r in enumerate(roles) if r), len(roles))
check("full.docx: every marked element comes after the body", all(roles[first_role:]), str(roles))
check_eq("full.docx: footnotes, endnotes, headers, footers in that order, each text once",
         [(e["attrs"].get("role"), e["attrs"].get("note"), e["type"], e["text"]) for e in els[first_role:]],
         [("footnote", "20", "paragraph", "Measured at the north pier."),
          ("footnote", "21", "paragraph", "By the old rule."),
          ("footnote", "21", "list", "- a list in a note"),
          ("endnote", "7", "paragraph", "Lamps were lit at dusk."),
          ("header", None, "paragraph", "Harbour Office Header"),
          ("header", None, "paragraph", "Confidential draft"),
          ("footer", None, "paragraph", "Tide tables are advisory")])
check("full.docx: separators and continuation notices are no notes",
      not any("continued overleaf" in e["text"] for e in els), str(els))
check_eq("full.docx: the title is still the first heading", head.get("meta", {}).get("title"), "Harbour")

# A header part no section references is not read.
orphan = os.path.join(T, "orphan.docx")
with zipfile.ZipFile(full) as zin, zipfile.ZipFile(orphan, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        s = zin.read(info.filename).decode()
        if info.filename == "word/document.xml":
            s = s.replace(sect1, "<w:p/>")
        zout.writestr(info, s)
head, els = dump(tool, "parse-office", DOCX, orphan)
check_eq("orphan.docx: only the headers and footers the remaining section names",
         [(e["attrs"]["role"], e["text"]) for e in els if e["attrs"].get("role") in ("header", "footer")],
         [("header", "Harbour Office Header"), ("footer", "Tide tables are advisory")])

# 400 sections, each naming its own header part, all with the same text: the
# references read are bounded and the text comes once.
many = os.path.join(T, "many_sections.docx")
with zipfile.ZipFile(full) as zin, zipfile.ZipFile(many, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        s = zin.read(info.filename).decode()
        if info.filename == "word/document.xml":
            s = s.replace(sect1, "".join("<w:p><w:pPr><w:sectPr>" + refs(("header", "default", f"rIdH{i}"))
                                         + "</w:sectPr></w:pPr></w:p>" for i in range(400)))
        elif info.filename == "word/_rels/document.xml.rels":
            s = s.replace("</Relationships>", "".join(
                f'<Relationship Type="{REL}header" Id="rIdH{i}" Target="h{i}.xml"/>' for i in range(400))
                + "</Relationships>")
        zout.writestr(info, s)
    for i in range(400):
        zout.writestr(f"word/h{i}.xml", hf("hdr", "Harbour Office Header"))
head, els = dump(tool, "parse-office", DOCX, many)
check_eq("many_sections.docx: 400 header parts of one text give one header element",
         [e["text"] for e in els if e["attrs"].get("role") == "header"], ["Harbour Office Header"])

# A damaged notes part fails the document with a reason naming it.
broken = os.path.join(T, "broken_notes.docx")
with zipfile.ZipFile(full) as zin, zipfile.ZipFile(broken, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        data = zin.read(info.filename)
        zout.writestr(info, data[: len(data) // 2] if info.filename == "word/endnotes.xml" else data)
head, els = dump(tool, "parse-office", DOCX, broken)
check("broken_notes.docx: fails naming word/endnotes.xml", "word/endnotes.xml" in head.get("error", ""), str(head))

# --- XLSX: dates from cell styles, in both date systems ---
# cellXfs: 0 General, 1 built-in 14 (date), 2 built-in 22 (date-time), 3 built-in 20 (h:mm),
# 4 custom 164 dd/mm/yyyy, 5 custom 165 yyyy-mm-dd hh:mm, 6 custom 166 with d and y only in quotes
# (a number), 7 custom 167 [Red]#,##0 (a number: the letters are in brackets), 8 custom 168 "Day "d
# mmmm\y (a date: d and m outside the quotes, \y an escaped letter), 9 built-in 47 mm:ss.0 (a time)
STYLES = ('<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="http://schemas.openxmlformats.org/'
          'spreadsheetml/2006/main"><numFmts count="5">'
          '<numFmt numFmtId="164" formatCode="dd/mm/yyyy"/>'
          '<numFmt numFmtId="165" formatCode="yyyy\\-mm\\-dd\\ hh:mm"/>'
          '<numFmt numFmtId="166" formatCode="0.00&quot; days, yearly&quot;"/>'
          '<numFmt numFmtId="167" formatCode="[Red]#,##0"/>'
          '<numFmt numFmtId="168" formatCode="&quot;Day &quot;d mmmm\\y"/></numFmts>'
          '<cellStyleXfs count="1"><xf numFmtId="14"/></cellStyleXfs><cellXfs count="10">'
          + "".join(f'<xf numFmtId="{i}" xfId="0"/>' for i in (0, 14, 22, 20, 164, 165, 166, 167, 168, 47))
          + "</cellXfs></styleSheet>")


def serial(dt, d1904):
    """The number Excel stores for dt."""
    base = datetime.datetime(1904, 1, 1) if d1904 else datetime.datetime(1899, 12, 30)
    delta = dt - base
    days = delta.days + delta.seconds / 86400
    if not d1904 and dt < datetime.datetime(1900, 3, 1):
        days -= 1  # Excel's phantom 1900-02-29
    return repr(days) if days != int(days) else str(int(days))


D = datetime.datetime
# (a date to store as its serial, or a number as written; style; the text expected)
CELLS = [
    (D(2024, 2, 29), 1, "2024-02-29"),
    (D(2023, 7, 14, 9, 30, 15), 2, "2023-07-14T09:30:15"),
    (D(1999, 12, 31), 4, "1999-12-31"),
    (D(2031, 1, 5, 23, 59), 5, "2031-01-05T23:59:00"),
    (D(1987, 6, 1), 8, "1987-06-01"),
    ("0.75", 3, "18:00:00"),
    ("0.0005787037037037037", 9, "00:00:50"),
    ("12.5", 6, "12.5"),
    ("42", 7, "42"),
    ("45351", 0, "45351"),
]


# The 1900 system's first days, around Excel's phantom 1900-02-29; the 1904
# system's day 0 (its serials start there: no date before it).
EDGES = {False: [(D(1900, 1, 1), 1, "1900-01-01"), (D(1900, 2, 28), 1, "1900-02-28"),
                 (D(1900, 3, 1), 1, "1900-03-01")],
         True: [(D(1904, 1, 1), 1, "1904-01-01"), (D(1904, 2, 29, 12), 2, "1904-02-29T12:00:00")]}


def workbook(d1904):
    rows = []
    for i, (value, style, _) in enumerate(CELLS + EDGES[d1904], 1):
        v = serial(value, d1904) if isinstance(value, datetime.datetime) else value
        rows.append(f'<row r="{i}"><c r="A{i}" s="{style}"><v>{v}</v></c></row>')
    n = len(CELLS) + len(EDGES[d1904]) + 1
    rows.append(f'<row r="{n}"><c r="A{n}" s="1" t="inlineStr"><is><t>not a date</t></is></c></row>')
    pr = '<workbookPr date1904="1"/>' if d1904 else "<workbookPr/>"
    return {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>',
        "_rels/.rels": f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{REL}officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" {R}>{pr}<sheets><sheet name="Dates" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{REL}worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{REL}styles" Target="styles.xml"/></Relationships>',
        "xl/styles.xml": STYLES,
        "xl/worksheets/sheet1.xml": '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>' + "".join(rows) + "</sheetData></worksheet>",
    }


for d1904 in (False, True):
    want = [c[2] for c in CELLS + EDGES[d1904]] + ["not a date"]
    name = "dates1904.xlsx" if d1904 else "dates1900.xlsx"
    path = os.path.join(T, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for part, text in workbook(d1904).items():
            z.writestr(part, text)
    head, els = dump(tool, "parse-office", XLSX, path)
    tables = [e["text"].split("\n") for e in els if e["type"] == "table"]
    got = tables[0] if tables else None
    check_eq(f"{name}: dates, date-times and times in ISO 8601, numbers as written", got, want)
    if d1904:
        # The same serials read as the 1900 system would be four years and a day off.
        check("dates1904.xlsx: not read as the 1900 system", got and got[0] != "2028-03-01", str(got))

finish("office_structure_kept")
