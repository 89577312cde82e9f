#!/usr/bin/env bash
# tests/e2e/structure.sh - each chunk's structure reaches the embedded store
# and `sluice query`: a Markdown file with a table larger than a chunk and a
# code block, through `sluice run` into SQLite; `query --json` shows each
# chunk's kinds, page and heading path, every table chunk opens with the
# header row and no row is cut; the text output says "p. 1 · table · Guide >
# Install". A store of schema version 1 (made here with its DDL) is upgraded
# in place and its old chunks still answer queries.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/structure_doc.sh"

mkdir docs
write_structure_doc docs/guide.md
db=$T/.sluice/store.db

# A store written by the sink before chunk attributes: version 1's tables, one old document.
mkdir -p .sluice
sqlite3 "$db" "
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES('schema_version', '1');
CREATE TABLE documents(id INTEGER PRIMARY KEY, uri TEXT UNIQUE NOT NULL, hash TEXT NOT NULL,
  fingerprint TEXT NOT NULL, media_type TEXT, bytes INTEGER, title TEXT, metadata TEXT NOT NULL DEFAULT '{}',
  chunk_count INTEGER NOT NULL DEFAULT 0, stored_at TEXT NOT NULL, seen_run INTEGER);
CREATE TABLE chunks(id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  ordinal INTEGER NOT NULL, dim INTEGER NOT NULL DEFAULT 0, vector BLOB, page INTEGER NOT NULL DEFAULT 0,
  line INTEGER NOT NULL DEFAULT 0, heading TEXT NOT NULL DEFAULT '', text TEXT NOT NULL, summary TEXT,
  UNIQUE(doc_id, ordinal));
INSERT INTO documents VALUES(1, 'old/one.md', 'h', 'f', 'text/markdown', 3, NULL, '{}', 1, '2026-01-01T00:00:00Z', NULL);
INSERT INTO chunks(doc_id, ordinal, dim, vector, page, line, heading, text)
  VALUES(1, 0, 4, zeroblob(16), 1, 1, 'Old', 'an old chunk');"

sl_ok run --json --set chunker.size=300 --set chunker.overlap=0 docs
check_eq "stored" "$(json .documents.stored)" 1
check_eq "schema upgraded to version 5" "$(sql "$db" "SELECT value FROM meta WHERE key = 'schema_version'")" 5
check_eq "the old chunk is kept, with no attributes" \
    "$(sql "$db" "SELECT attrs FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.uri = 'old/one.md'")" "{}"
check_gt "chunks stored" "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                                       WHERE d.uri = 'docs/guide.md'")" 5
check_eq "every new chunk has kinds in the store" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = 'docs/guide.md' AND json_extract(c.attrs, '$.kinds') IS NULL")" 0
check_gt "table chunks in the store" \
    "$(sql "$db" "SELECT count(*) FROM chunks WHERE json_extract(attrs, '$.kinds') LIKE '%table%'")" 2

sl_ok query -k 100 --json "pkg size notes"
check_eq "query: every chunk of the store" "$(json 'hits | length')" \
    "$(sql "$db" "SELECT count(*) FROM chunks WHERE dim = 384")"
check_structure_hits

# Text output: where each hit is and what it is made of, on one line.
sl_ok query -k 100 "pkg size notes"
check_contains "query text: page, kinds and heading path" "$OUT" "p. 1 · table · Guide > Install"
check_contains "query text: the code chunk" "$OUT" "p. 1 · heading, code · Guide > Build"

finish
