#!/usr/bin/env python3
"""bench/ref_pptx_text.py - the reference extractor for the PPTX rows of
bench/formats-office.sh (pandoc cannot read PPTX; Debian packages no other
PPTX-to-text command): Python's standard zipfile and xml.etree.

  ref_pptx_text.py FILE...

For each file: the slides in presentation order (ppt/presentation.xml's
slide list through its relationships), each slide's text runs (<a:t>)
joined by paragraph (<a:p>), then its speaker notes; the same text
parse-office keeps, without chunking or storing. Takes many files per
process so the interpreter's start is not what is measured."""
import posixpath
import sys
import xml.etree.ElementTree as ET
import zipfile

A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PR = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def rels(z, part):
    d, b = posixpath.split(part)
    name = posixpath.join(d, "_rels", b + ".rels")
    if name not in z.namelist():
        return {}
    out = {}
    for r in ET.fromstring(z.read(name)).iter(PR + "Relationship"):
        out[r.get("Id")] = (r.get("Type", "").rsplit("/", 1)[-1], posixpath.normpath(posixpath.join(d, r.get("Target", ""))))
    return out


def text(z, part, out):
    for p in ET.fromstring(z.read(part)).iter(A + "p"):
        line = "".join(t.text or "" for t in p.iter(A + "t"))
        if line.strip():
            out.write(line + "\n")


def main():
    out = sys.stdout
    for path in sys.argv[1:]:
        with zipfile.ZipFile(path) as z:
            pres = "ppt/presentation.xml"
            prels = rels(z, pres)
            for sid in ET.fromstring(z.read(pres)).iter(P + "sldId"):
                slide = prels[sid.get(R + "id")][1]
                text(z, slide, out)
                for kind, target in rels(z, slide).values():
                    if kind == "notesSlide":
                        text(z, target, out)
        out.write("\n")


if __name__ == "__main__":
    main()
