#!/usr/bin/env python3
"""bench/ref_email_text.py - the reference extractor for the e-mail rows of
bench/formats-web.sh: Python's standard `email` package, the parser most
mail tooling in Python stands on.

  ref_email_text.py FILE...

For each .eml file: parses it with email.policy.default, prints From, To,
Cc, Subject and Date, then every text/plain part's decoded content and every
text/html part's text (tags dropped by html.parser); other parts
(attachments) are decoded and counted, not extracted. Does what
parse-email does for the text, without chunking or storing. Takes many
files per process so the interpreter's start is not what is measured."""
import sys
from email import policy
from email.parser import BytesParser
from html.parser import HTMLParser


class Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.out, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def main():
    out = sys.stdout
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            msg = BytesParser(policy=policy.default).parse(f)
        for h in ("From", "To", "Cc", "Subject", "Date"):
            if msg[h] is not None:
                out.write(f"{h}: {msg[h]}\n")
        for part in msg.walk():
            if part.is_multipart():
                continue
            ct = part.get_content_type()
            if ct == "text/plain":
                out.write(part.get_content())
            elif ct == "text/html":
                t = Text()
                t.feed(part.get_content())
                out.write("".join(t.out))
            else:
                part.get_payload(decode=True)
        out.write("\n")


if __name__ == "__main__":
    main()
