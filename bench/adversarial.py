#!/usr/bin/env python3
"""bench/adversarial.py - an adversarial pass over a built sluice.

Generates hostile cases per category, runs the real executable on each and
counts the cases that held, in the form issue 17 asks for ("814 of 833
mutated configs were handled"). It is a bench, not a test: the cases are
random (seeded), and a case that does not hold is kept for a person to look
at, with the reason, under OUT/kept/CATEGORY-N.

    bench/adversarial.py [--build build] [--seed 1] [--scale 1.0]
                         [--only config,markdown,...] [--out /tmp/sluice-adv]

What "held" means, per category:
  config     check and run agree: every config check rejects, run rejects
             too and stores nothing; a config check accepts runs (exit 0 or
             1). A rejection without FILE:LINE is counted apart.
  markdown,  the run ends (no signal, no hang, no sanitizer report) with exit
  formats    0 or 1, and the document is either stored whole or failed with
             a reason.
  signals    kill -9, SIGINT, SIGTERM or two SIGINTs at a random moment; the
             run ends with a documented status, and a rerun ends with exactly
             the reference store.
  providers  a fake provider broken at random: the run ends within a bound,
             stored documents are whole, every document is stored or failed,
             and the status is 0, 1 (or 2 only when nothing was stored).
  secrets    a secret placed in the config in some way, an error provoked:
             the secret is in no output (stdout, stderr, --json, JSON logs).
  files      files truncated, rewritten or removed while the run reads them:
             no crash, exit 0 or 1, the store consistent.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import string
import subprocess
import sys
import threading
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTED = {0, 1, 2, 3, 4, 5}


class Pass:
    def __init__(self, args):
        self.a = args
        self.sluice = os.path.abspath(os.path.join(args.build, "sluice"))
        self.fake = os.path.abspath(os.path.join(args.build, "tests/fake-provider/fake-provider"))
        self.rng = random.Random(args.seed)
        self.out = args.out
        self.rows = []
        self.n = 0
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(os.path.join(self.out, "kept"))
        self.corpus = sorted(
            os.path.join(ROOT, "examples/corpus", f)
            for f in os.listdir(os.path.join(ROOT, "examples/corpus"))
            if f.endswith(".md"))

    # --- running sluice -------------------------------------------------
    def run(self, argv, cwd, timeout=60, env=None):
        e = dict(os.environ)
        e.update(env or {})
        t0 = time.time()
        try:
            p = subprocess.run([self.sluice] + argv, cwd=cwd, env=e, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout)
            rc, out, err = p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        except subprocess.TimeoutExpired as x:
            rc, out, err = "hang", (x.stdout or b"").decode("utf-8", "replace"), (x.stderr or b"").decode(
                "utf-8", "replace")
        return rc, out, err, time.time() - t0

    @staticmethod
    def broke(rc, err):
        """A reason the process itself misbehaved, or None."""
        if rc == "hang":
            return "hung"
        if rc < 0:
            return "died of signal %d" % -rc
        if rc == 86 or "AddressSanitizer" in err or "runtime error:" in err or "LeakSanitizer" in err:
            return "sanitizer report"
        if rc not in DOCUMENTED:
            return "undocumented exit status %d" % rc
        return None

    def case_dir(self):
        self.n += 1
        d = os.path.join(self.out, "case-%d" % self.n)
        os.makedirs(d)
        return d

    def keep(self, cat, d, why):
        k = os.path.join(self.out, "kept", "%s-%d" % (cat, self.n))
        shutil.copytree(d, k, ignore=shutil.ignore_patterns("*.db-wal", "*.db-shm"), symlinks=True)
        with open(os.path.join(k, "WHY"), "w") as f:
            f.write(why + "\n")

    def done(self, d):
        shutil.rmtree(d, ignore_errors=True)

    def record(self, cat, tried, held, notes):
        self.rows.append((cat, tried, held, notes))
        print("%-10s %5d tried %5d held%s" % (cat, tried, held, ("  " + "; ".join(notes)) if notes else ""),
              flush=True)

    def count(self, base):
        return max(1, int(base * self.a.scale))

    # --- one document through the default config -------------------------
    def one_document(self, cat, name, data, tally):
        d = self.case_dir()
        os.makedirs(os.path.join(d, "docs"))
        with open(os.path.join(d, "docs", name), "wb") as f:
            f.write(data)
        rc, out, err, _ = self.run(["run", "--json", "docs"], d, timeout=120)
        why = self.broke(rc, err)
        if not why:
            if rc not in (0, 1):
                why = "exit %d for one document: %s" % (rc, err.strip()[-300:])
            else:
                try:
                    rep = json.loads(out)
                    docs = rep["documents"]
                    # a file whose content says another type than its name may go
                    # to no route: counted and named by extension, not silent
                    unrouted = rep.get("no_route", {}).get("count", 0) + rep.get("not_included", {}).get("count", 0)
                    if docs["stored"] + docs["failed"] + docs.get("skipped", 0) + unrouted < 1:
                        why = "the document is neither stored nor failed"
                    for fl in rep.get("failed", []):
                        if not fl.get("reason"):
                            why = "failed without a reason"
                    if docs["stored"]:
                        why = why or self.store_whole(os.path.join(d, ".sluice/store.db"))
                except (ValueError, KeyError) as x:
                    why = "report unreadable: %s" % x
        tally[0] += 1
        if why:
            tally[2].append(why)
            self.keep(cat, d, why)
        else:
            tally[1] += 1
        self.done(d)

    @staticmethod
    def store_whole(db):
        if not os.path.exists(db):
            return "stored but no store file"
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        try:
            bad = c.execute("""SELECT count(*) FROM documents d WHERE d.chunk_count !=
                (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)""").fetchone()[0]
            orphan = c.execute("SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)").fetchone()[0]
        finally:
            c.close()
        if bad or orphan:
            return "store not whole: %d documents with a wrong chunk count, %d orphan chunks" % (bad, orphan)
        return None

    @staticmethod
    def digest(db):
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        try:
            rows = c.execute("SELECT uri, hash, fingerprint, chunk_count FROM documents ORDER BY uri").fetchall()
            rows += c.execute("""SELECT d.uri, c.ordinal, c.text, hex(c.vector) FROM chunks c
                                 JOIN documents d ON d.id = c.doc_id ORDER BY d.uri, c.ordinal""").fetchall()
        finally:
            c.close()
        return hash(tuple(rows))

    # --- mutations ---------------------------------------------------------
    def mutate_bytes(self, data):
        r = self.rng
        data = bytearray(data)
        kind = r.choice(["flip", "truncate", "zero", "dup", "insert", "flip"])
        if not data:
            return bytes(data)
        if kind == "flip":
            for _ in range(r.randint(1, 64)):
                i = r.randrange(len(data))
                data[i] ^= 1 << r.randrange(8)
        elif kind == "truncate":
            del data[r.randrange(len(data)):]
        elif kind == "zero":
            i = r.randrange(len(data))
            data[i:i + r.randint(1, 4096)] = b"\0" * len(data[i:i + r.randint(1, 4096)])
        elif kind == "dup":
            i = r.randrange(len(data))
            data[i:i] = data[i:i + r.randint(1, 8192)] * r.randint(1, 50)
        else:
            i = r.randrange(len(data))
            data[i:i] = r.choice([b"<", b"</", b"&", b"]]>", b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"\xff\xfe",
                                  b"\xc3", b"<w:p>" * 1000, b"{\"", b"\"", b"\r\n--", b"=?utf-8?B?"])
        return bytes(data)

    def mutate_zip(self, data):
        """Changes one member of a zip (docx, pptx, xlsx, epub) and rezips it,
        so that the damage reaches the XML reader past the CRC check."""
        import io
        try:
            zin = zipfile.ZipFile(io.BytesIO(data))
            members = [(i, zin.read(i.filename)) for i in zin.infolist()]
        except Exception:
            return self.mutate_bytes(data)
        k = self.rng.randrange(len(members))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
            for j, (info, body) in enumerate(members):
                if j == k:
                    body = self.mutate_bytes(body)
                zout.writestr(info.filename, body)
        return buf.getvalue()

    # --- categories --------------------------------------------------------
    def cat_config(self):
        base = open(os.path.join(ROOT, "conf/default.ini"), encoding="utf-8").read().splitlines()
        hostile = ["", "-1", "0", "18446744073709551616", "1152921504606846976", "-9223372036854775808",
                   "1e999", "nan", "abc", "0x10", "1K", "99999T", "${", "${UNSET_ADV_VAR}", "${A:-${B}}",
                   "\x7f", "é" * 1000, "a" * 100000, "*.MD", "/nonexistent/x/y", "../../etc", "true false",
                   "; comment", "1m", "-5s", "100000", "4294967297", "  ", "=", "[x]"]
        tried = held = norefline = 0
        notes = []
        for _ in range(self.count(300)):
            lines = list(base)
            r = self.rng
            m = r.choice(["delete", "dup", "value", "value", "value", "garbage", "section", "truncate", "flip"])
            i = r.randrange(len(lines))
            if m == "delete":
                del lines[i]
            elif m == "dup":
                lines.insert(i, lines[i])
            elif m == "value":
                kv = [j for j, l in enumerate(lines) if "=" in l and not l.lstrip().startswith(";")]
                j = r.choice(kv)
                lines[j] = lines[j].split("=", 1)[0] + "= " + r.choice(hostile)
            elif m == "garbage":
                lines.insert(i, r.choice(["[", "[route.", "key", "= value", "[sluice", "\x00", "x = 1 = 2",
                                          "[route.zz]", "stages = a a a", "plugin = ../../../tmp/x",
                                          "".join(r.choice(string.printable) for _ in range(40))]))
            elif m == "section":
                secs = [j for j, l in enumerate(lines) if l.startswith("[")]
                j = r.choice(secs)
                lines[j] = "[" + r.choice(["", "route.", "sluice.", "x" * 300, "route.text", "store"]) + "]"
            text = "\n".join(lines) + "\n"
            if m == "truncate":
                text = text[:r.randrange(len(text))]
            data = text.encode("utf-8", "surrogateescape")
            if m == "flip":
                data = self.mutate_bytes(data)
            d = self.case_dir()
            os.makedirs(os.path.join(d, "docs"))
            for f in self.corpus[:3]:
                shutil.copy(f, os.path.join(d, "docs"))
            with open(os.path.join(d, "c.ini"), "wb") as f:
                f.write(data)
            rc_c, _, err_c, _ = self.run(["check", "-c", "c.ini"], d, timeout=60)
            rc_r, out_r, err_r, _ = self.run(["run", "-c", "c.ini", "docs"], d, timeout=120)
            why = self.broke(rc_c, err_c) or self.broke(rc_r, err_r)
            if not why and rc_c != 0:
                if rc_r == 0 or rc_r == 1:
                    why = "check rejected (%s) but run ran (exit %d)" % (err_c.strip()[:200], rc_r)
                else:
                    stored = 0
                    for root, _, files in os.walk(d):
                        for f in files:
                            if f.endswith(".db"):
                                try:
                                    c = sqlite3.connect(os.path.join(root, f))
                                    stored += c.execute("SELECT count(*) FROM documents").fetchone()[0]
                                    c.close()
                                except sqlite3.Error:
                                    pass
                    if stored:
                        why = "a rejected config stored %d documents" % stored
                    if not re.search(r"c\.ini:\d+", err_c):
                        norefline += 1
                        with open(os.path.join(self.out, "no-file-line.txt"), "a") as f:
                            f.write(err_c.strip()[:300] + "\n")
            elif not why and rc_r not in (0, 1):
                why = "check accepted but run exited %d: %s" % (rc_r, err_r.strip()[-200:])
            tried += 1
            if why:
                notes.append(why)
                self.keep("config", d, why)
            else:
                held += 1
            self.done(d)
        self.record("config", tried, held, self.summarise(notes) +
                    (["%d rejections without c.ini:LINE" % norefline] if norefline else []))

    def cat_markdown(self):
        r = self.rng
        gens = [
            lambda: b"> " * 100000 + b"deep\n",
            lambda: b"".join(b"  " * i + b"- item\n" for i in range(3000)),
            lambda: b"[" * 200000 + b"x" + b"]" * 200000,
            lambda: b"`" * 300000,
            lambda: b"*" * 500000 + b"a",
            lambda: b"---\n" + b"".join(b"k%d: v\n" % i for i in range(200000)) + b"---\n\n# t\n",
            lambda: b"# " + b"h" * 3000000 + b"\n",
            lambda: b"x" * 20000000,
            lambda: b"\xf0\x9f\x98" * 1000,
            lambda: b"| a " * 20000 + b"|\n" + b"|---" * 20000 + b"|\n",
            lambda: b"<div>" * 100000,
            lambda: b"```\n" + b"a\n" * 1000000,
            lambda: b"\r" * 100000 + b"text",
            lambda: b"\xef\xbb\xbf# bom\n\ntext\n",
            lambda: b"[x]: " + b"http://a/" * 100000 + b"\n",
            lambda: b"\0\0\0",
            lambda: b"\n" * 5000000,
            lambda: b"#" * 7 + b" too deep\n" * 10000,
            lambda: ("\u202e\u0301" * 100000).encode(),
            lambda: b"---\n" + b"a: [" * 10000 + b"\n---\n",
        ]
        tally = [0, 0, []]
        for g in gens:
            self.one_document("markdown", "p.md", g(), tally)
        srcs = [open(f, "rb").read() for f in self.corpus]
        for _ in range(self.count(150)):
            self.one_document("markdown", "m.md", self.mutate_bytes(r.choice(srcs)), tally)
        self.record("markdown", tally[0], tally[1], self.summarise(tally[2]))

    def fixtures(self):
        """Real files made by real tools from examples/corpus."""
        d = os.path.join(self.out, "fixtures")
        os.makedirs(d, exist_ok=True)
        src = self.corpus[:4]
        fx = {}
        for ext in ["docx", "pptx", "epub", "html"]:
            p = os.path.join(d, "f." + ext)
            subprocess.run(["pandoc", "-s", "-o", p] + src, check=True, capture_output=True)
            fx[ext] = open(p, "rb").read()
        fx["csv"] = b"title,body,n\n" + b"".join(b"r%d,\"some, text \"\"q\"\"\",%d\n" % (i, i) for i in range(200))
        fx["json"] = json.dumps([{"title": "t%d" % i, "text": "body %d" % i, "tags": [i]} for i in range(200)]).encode()
        fx["jsonl"] = b"".join(json.dumps({"text": "line %d" % i}).encode() + b"\n" for i in range(300))
        from email.message import EmailMessage
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "a@example.org", "b@example.org", "adversarial"
        m.set_content(open(src[0], encoding="utf-8").read())
        m.add_alternative(fx["html"].decode("utf-8"), subtype="html")
        m.add_attachment(fx["csv"], maintype="text", subtype="csv", filename="t.csv")
        fx["eml"] = bytes(m)
        # a small PDF with a text layer, written by hand (object offsets computed)
        objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                b"/Resources << /Font << /F1 5 0 R >> >> >>", None,
                b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
        stream = b"BT /F1 12 Tf 72 720 Td (Rotating an API token without downtime.) Tj ET"
        objs[3] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
        pdf, offs = b"%PDF-1.4\n", []
        for i, o in enumerate(objs):
            offs.append(len(pdf))
            pdf += b"%d 0 obj\n" % (i + 1) + o + b"\nendobj\n"
        x = len(pdf)
        pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
        pdf += b"".join(b"%010d 00000 n \n" % o for o in offs)
        pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, x)
        fx["pdf"] = pdf
        return fx

    def cat_formats(self):
        fx = self.fixtures()
        tally = [0, 0, []]
        per = self.count(40)
        for ext, data in sorted(fx.items()):
            self.one_document("formats", "f." + ext, data, tally)  # the clean file must hold too
            for _ in range(per):
                m = self.mutate_zip(data) if ext in ("docx", "pptx", "epub") and self.rng.random() < 0.6 \
                    else self.mutate_bytes(data)
                self.one_document("formats", "f." + ext, m, tally)
        self.record("formats", tally[0], tally[1], self.summarise(tally[2]))

    def signal_corpus(self, d):
        os.makedirs(os.path.join(d, "docs"))
        for k in range(8):
            for f in self.corpus:
                text = open(f, encoding="utf-8").read()
                with open(os.path.join(d, "docs", "%d-%s" % (k, os.path.basename(f))), "w") as g:
                    g.write(("copy %d\n\n" % k) + text * 20)

    def cat_signals(self):
        ref = self.case_dir()
        self.signal_corpus(ref)
        t0 = time.time()
        rc, _, err, _ = self.run(["run", "docs"], ref, timeout=300)
        span = time.time() - t0
        if rc != 0:
            self.record("signals", 0, 0, ["the reference run failed: exit %s %s" % (rc, err[-300:])])
            return
        want = self.digest(os.path.join(ref, ".sluice/store.db"))
        tried = held = 0
        notes = []
        for _ in range(self.count(30)):
            d = self.case_dir()
            self.signal_corpus(d)
            sig = self.rng.choice(["KILL", "INT", "TERM", "INT2"])
            p = subprocess.Popen([self.sluice, "run", "docs"], cwd=d, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(self.rng.uniform(0, span))
            s = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM, "INT2": signal.SIGINT}[sig]
            p.send_signal(s)
            if sig == "INT2":
                time.sleep(0.05)
                p.send_signal(signal.SIGINT)
            try:
                _, err = p.communicate(timeout=60)
                rc = p.returncode
                err = err.decode("utf-8", "replace")
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                rc, err = "hang", ""
            why = None
            if rc == "hang":
                why = "SIG%s: did not stop within 60 s" % sig
            elif sig != "KILL" and (rc not in DOCUMENTED or rc == 2):
                why = "SIG%s: exit %d" % (sig, rc)
            if not why:
                rc2, _, err2, _ = self.run(["run", "docs"], d, timeout=300)
                if rc2 != 0:
                    why = "rerun after SIG%s exited %s: %s" % (sig, rc2, err2[-200:])
                elif self.digest(os.path.join(d, ".sluice/store.db")) != want:
                    why = "rerun after SIG%s: the store differs from the reference" % sig
            tried += 1
            if why:
                notes.append(why)
                self.keep("signals", d, why)
            else:
                held += 1
            self.done(d)
        self.done(ref)
        self.record("signals", tried, held, self.summarise(notes))

    def start_fake(self, *opts):
        p = subprocess.Popen([self.fake, "--port", "0"] + list(opts), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        line = p.stdout.readline().decode()
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not m:
            p.kill()
            raise RuntimeError("fake provider did not start: %r" % line)
        return p, "http://127.0.0.1:%s" % m.group(1)

    def provider_ini(self, d, url, key, extra=()):
        with open(os.path.join(d, "p.ini"), "w") as f:
            f.write("[sluice]\ninclude = *.md\nretry_budget = 20s\n%s\n" % "\n".join(extra))
            f.write("""
[route.text]
media = text/markdown
stages = markdown chunker summarizer embedder
sink = store
[markdown]
plugin = parse-markdown
[chunker]
plugin = chunk-text
[summarizer]
plugin = llm-openai
base_url = %s/v1
api_key = ${ADV_KEY}
timeout = 3s
[embedder]
plugin = embed-openai
base_url = %s/v1
api_key = ${ADV_KEY}
dimension = 1536
timeout = 3s
[store]
plugin = sink-sqlite
path = ${CWD}/.sluice/store.db
""" % (url, url))
        return {"ADV_KEY": key}

    def cat_providers(self):
        faults = [["--fault-5xx", "0.3"], ["--fault-reset", "0.3"], ["--fault-stall", "0.1"],
                  ["--fault-truncate", "0.3"], ["--fault-malformed", "0.3"], ["--fault-drip", "0.2"],
                  ["--oversize", "50000000"], ["--fail-first", "5", "--retry-after", "86400"], ["--down"],
                  ["--api-key", "sk-other"], ["--rpm", "30"], ["--embed-dim", "17"],
                  ["--fault-5xx", "0.1", "--fault-reset", "0.1", "--fault-malformed", "0.1"],
                  ["--max-concurrent", "1"], ["--fail-first", "100"]]
        tried = held = 0
        notes = []
        for i in range(self.count(len(faults) * 2)):
            opts = faults[i % len(faults)] + ["--seed", str(self.rng.randrange(1 << 30))]
            fake, url = self.start_fake(*opts)
            d = self.case_dir()
            os.makedirs(os.path.join(d, "docs"))
            for f in self.corpus:
                shutil.copy(f, os.path.join(d, "docs"))
            key = "sk-adv-" + "".join(self.rng.choice(string.ascii_letters) for _ in range(24))
            env = self.provider_ini(d, url, key)
            rc, out, err, took = self.run(["run", "-c", "p.ini", "--json", "docs"], d, timeout=240, env=env)
            fake.terminate()
            fake.wait()
            why = self.broke(rc, err)
            if not why:
                try:
                    docs = json.loads(out)["documents"]
                    if docs["stored"] + docs["failed"] != len(self.corpus):
                        why = "%d stored + %d failed of %d" % (docs["stored"], docs["failed"], len(self.corpus))
                    elif rc == 2 and docs["stored"]:
                        why = "exit 2 with %d stored" % docs["stored"]
                    elif rc not in (0, 1, 2):
                        why = "exit %d" % rc
                    elif docs["stored"]:
                        why = self.store_whole(os.path.join(d, ".sluice/store.db"))
                except (ValueError, KeyError) as x:
                    why = "report unreadable (%s), exit %d: %s" % (x, rc, err[-200:])
            if not why and key in out + err:
                why = "the key was printed"
            why = why and "%s: %s" % (" ".join(opts[:-2]), why)
            tried += 1
            if why:
                notes.append(why)
                self.keep("providers", d, why)
            else:
                held += 1
            self.done(d)
        self.record("providers", tried, held, self.summarise(notes))

    def cat_secrets(self):
        fake, url = self.start_fake("--api-key", "sk-right")
        port = url.rsplit(":", 1)[1]
        tried = held = 0
        notes = []
        try:
            for i in range(self.count(40)):
                r = self.rng
                secret = "S3cr" + "".join(r.choice(string.ascii_letters + string.digits) for _ in range(20))
                d = self.case_dir()
                os.makedirs(os.path.join(d, "docs"))
                shutil.copy(self.corpus[0], os.path.join(d, "docs"))
                env = self.provider_ini(d, url, secret)
                how = r.choice(["key", "env-key", "url-userinfo", "url-userinfo-ftp", "dollar", "query-string",
                                "bad-port", "pdf-password"])
                sets = []
                if how == "key":
                    sets = ["--set", "summarizer.api_key=" + secret, "--set", "embedder.api_key=" + secret]
                elif how == "url-userinfo":
                    sets = ["--set", "summarizer.base_url=http://u:%s@127.0.0.1:%s/v1" % (secret, port)]
                elif how == "url-userinfo-ftp":
                    sets = ["--set", "embedder.base_url=ftp://u:%s@127.0.0.1/" % secret]
                elif how == "dollar":
                    sets = ["--set", "summarizer.api_key=%s${my pass}" % secret]
                elif how == "query-string":
                    sets = ["--set", "embedder.base_url=http://127.0.0.1:%s/v1?key=%s" % (port, secret)]
                elif how == "bad-port":
                    sets = ["--set", "summarizer.base_url=http://127.0.0.1:1/v1"]
                elif how == "pdf-password":
                    sets = ["--set", "markdown.password=" + secret]
                cmd = r.choice([["check"], ["check", "--connect"], ["run", "--json", "docs"],
                                ["--log-format", "json", "run", "-v", "docs"]])
                argv = ["-c", "p.ini"] + sets + cmd if cmd[0] != "--log-format" else \
                    ["--log-format", "json", "-c", "p.ini"] + sets + cmd[2:]
                rc, out, err, _ = self.run(argv, d, timeout=120, env=env)
                why = self.broke(rc, err)
                if not why and secret in out + err:
                    why = "%s with %s: the secret was printed" % (" ".join(cmd), how)
                tried += 1
                if why:
                    notes.append(why)
                    self.keep("secrets", d, why)
                else:
                    held += 1
                self.done(d)
        finally:
            fake.terminate()
            fake.wait()
        self.record("secrets", tried, held, self.summarise(notes))

    def cat_files(self):
        tried = held = 0
        notes = []
        for _ in range(self.count(20)):
            d = self.case_dir()
            self.signal_corpus(d)
            docs = os.path.join(d, "docs")
            names = sorted(os.listdir(docs))
            stop = threading.Event()
            rng = random.Random(self.rng.random())

            def meddle():
                while not stop.is_set():
                    p = os.path.join(docs, rng.choice(names))
                    act = rng.choice(["truncate", "rewrite", "remove", "grow"])
                    try:
                        if act == "truncate":
                            os.truncate(p, rng.randrange(0, 4096))
                        elif act == "rewrite":
                            with open(p, "w") as f:
                                f.write("# rewritten\n\n" + "new words " * rng.randrange(1, 5000))
                        elif act == "remove":
                            os.unlink(p)
                        else:
                            with open(p, "a") as f:
                                f.write("more " * 10000)
                    except OSError:
                        pass
                    time.sleep(rng.uniform(0, 0.01))

            th = threading.Thread(target=meddle)
            th.start()
            rc, out, err, _ = self.run(["run", "--json", "docs"], d, timeout=180)
            stop.set()
            th.join()
            why = self.broke(rc, err)
            if not why and rc not in (0, 1):
                why = "exit %d: %s" % (rc, err[-200:])
            if not why:
                why = self.store_whole(os.path.join(d, ".sluice/store.db"))
            tried += 1
            if why:
                notes.append(why)
                self.keep("files", d, why)
            else:
                held += 1
            self.done(d)
        self.record("files", tried, held, self.summarise(notes))

    @staticmethod
    def summarise(notes):
        seen = {}
        for n in notes:
            k = re.sub(r"\d+", "N", n)[:120]
            seen[k] = seen.get(k, 0) + 1
        return ["%d× %s" % (c, k) for k, c in sorted(seen.items(), key=lambda kv: -kv[1])]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the number of cases")
    ap.add_argument("--only", default="config,markdown,formats,signals,providers,secrets,files")
    ap.add_argument("--out", default="/tmp/sluice-adversarial")
    a = ap.parse_args()
    p = Pass(a)
    if not os.access(p.sluice, os.X_OK):
        sys.exit("no sluice at %s: build first" % p.sluice)
    for c in a.only.split(","):
        getattr(p, "cat_" + c)()
    print("\n| category | tried | held | what did not hold |\n|---|--:|--:|---|")
    for cat, tried, held, notes in p.rows:
        print("| %s | %d | %d | %s |" % (cat, tried, held, "; ".join(notes) or "-"))
    print("\ncases that did not hold are kept under %s/kept" % a.out)
    sys.exit(0 if all(t == h for _, t, h, _ in p.rows) else 1)


if __name__ == "__main__":
    main()
