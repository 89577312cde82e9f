#!/usr/bin/env python3
"""tests/e2e/make_email.py - writes e-mail fixtures with Python's email
package (real MIME: multipart/alternative bodies, base64 attachments,
RFC 2047 headers).

  make_email.py mail OUT BODY [NAME=FILE]...   a message with text and HTML
                                               alternatives and attachments
  make_email.py many OUT N                     a message with N small attachments
  make_email.py mbox OUT N                     a mailbox of N messages
  make_email.py nest OUT N                     a message holding a message, N deep
"""
import mailbox
import mimetypes
import sys
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timezone


def base(subject, body, n=0):
    m = EmailMessage()
    m["From"] = "Ada Lovelace <ada@example.org>"
    m["To"] = "Charles Babbage <charles@example.org>"
    m["Cc"] = "Mary Somerville <mary@example.org>"
    m["Subject"] = subject
    m["Date"] = format_datetime(datetime(2024, 3, 4, 5, 6, 7 + n, tzinfo=timezone.utc))
    m["Message-Id"] = f"<fixture-{n}@example.org>"
    m.set_content(body)
    return m


def mail(out, body, atts):
    m = base("Engine notes \u2014 r\u00e9sum\u00e9", body + "\n\n> quoted from Charles:\n> the gears are cut\n\nRegards,\nAda\n")
    m.add_alternative(f"<html><body><p>{body}</p><p>HTML ALTERNATIVE ONLY</p></body></html>", subtype="html")
    for spec in atts:
        name, path = spec.split("=", 1)
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        with open(path, "rb") as f:
            m.add_attachment(f.read(), maintype=maintype, subtype=subtype, filename=name)
    with open(out, "wb") as f:
        f.write(bytes(m))


def many(out, n):
    m = base("A thousand pieces", "Every attachment is a note.")
    for i in range(n):
        m.add_attachment(f"note {i}\n".encode(), maintype="text", subtype="plain", filename=f"note-{i}.txt")
    with open(out, "wb") as f:
        f.write(bytes(m))


def mbox(out, n):
    box = mailbox.mbox(out)
    for i in range(n):
        box.add(base(f"Mailbox message {i + 1}", f"Body of message number {i + 1} about tide tables.", i))
    box.flush()
    box.close()


def nest(out, n):
    m = base("Level 0", "The innermost message.")
    for level in range(1, n):
        outer = base(f"Level {level}", f"A message wrapping level {level - 1}.")
        outer.add_attachment(m)
        m = outer
    with open(out, "wb") as f:
        f.write(bytes(m))


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "mail":
        mail(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif kind == "many":
        many(sys.argv[2], int(sys.argv[3]))
    elif kind == "mbox":
        mbox(sys.argv[2], int(sys.argv[3]))
    elif kind == "nest":
        nest(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(f"unknown kind {kind}")
