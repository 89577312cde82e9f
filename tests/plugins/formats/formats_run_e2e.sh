#!/usr/bin/env bash
# formats_run_e2e.sh - `sluice run` with the built-in default config on a
# folder of HTML (pandoc's, from examples/corpus), CSV, TSV, JSON and JSON
# Lines stores each through its own route: chunks carry HTML heading paths,
# every CSV table chunk starts with the header row, JSON Lines records are
# found by query, a malformed file fails alone with where, and a second run
# skips everything.
source "$(dirname "$0")/../../e2e/lib.sh"

mkdir -p docs/web docs/data
for md in "$SRC"/examples/corpus/*.md; do
    name=$(basename "$md" .md)
    pandoc -s --metadata pagetitle="$name" "$md" -o "docs/web/$name.html"
done
{
    echo 'city,country,population,"notes, free text"'
    for i in $(seq 1 120); do echo "City$i,Country$((i % 7)),$((i * 1000)),\"a note with a comma, and \"\"quotes\"\" $i\""; done
} >docs/data/cities.csv
printf 'id\tword\n1\talpha\n2\tbeta\n' >docs/data/words.tsv
for i in $(seq 1 50); do
    printf '{"id": %d, "title": "Ticket %d", "body": "The printer on floor %d jams when printing duplicate invoices number %d.", "user": {"name": "user%d"}}\n' "$i" "$i" "$i" "$i" "$i"
done >docs/data/tickets.jsonl
printf '{"name": "sluice", "description": "turns documents into searchable chunks", "tags": ["c", "ingest"]}\n' >docs/data/about.json
printf '{"id": 1}\n{"id": 2,\n' >docs/data/broken.jsonl

sl run --json docs
check_eq "exit status (one bad file)" "$RC" 1
check_eq "stored" "$(json .documents.stored)" 15
check_eq "failed" "$(json .documents.failed)" 1
check_eq "broken.jsonl's reason" "$(json '.failed[0].reason')" \
    "invalid JSON at line 2, column 9 (byte 18): string or '}' expected near end of file"
check_eq "broken.jsonl failed in its parser" "$(json '.failed[0].stage')" json

db=.sluice/store.db
check_eq "media types" "$(sql "$db" "SELECT group_concat(DISTINCT media_type) FROM (SELECT media_type FROM documents ORDER BY 1)")" \
    "application/json,application/x-ndjson,text/csv,text/html,text/tab-separated-values"
check_contains "HTML heading paths" "$(sql "$db" "SELECT DISTINCT heading FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.uri LIKE '%configuration.html'")" \
    "^Configuration reference > \[server\]$"
check_eq "HTML title" "$(sql "$db" "SELECT title FROM documents WHERE uri LIKE '%tuning.html'")" tuning
n=$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.uri LIKE '%cities.csv'")
check_gt "CSV chunks" "$n" 2
# Each table element fits a chunk and leads with the header row, so every
# chunk holds the header (after the chunker's overlap, when it carries one).
check_eq "every CSV chunk holds the header row" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.uri LIKE '%cities.csv' AND instr(c.text, 'city | country | population | notes, free text' || char(10) || 'City') > 0")" "$n"
check_contains "a CSV row, quotes decoded" "$(sql "$db" "SELECT group_concat(text) FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.uri LIKE '%cities.csv'")" \
    'City77 \| Country0 \| 77000 \| a note with a comma, and "quotes" 77'
check_eq "rows in metadata" "$(sql "$db" "SELECT json_extract(metadata, '$.rows') FROM documents WHERE uri LIKE '%cities.csv'")" 120
check_contains "TSV by extension" "$(sql "$db" "SELECT text FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.uri LIKE '%words.tsv'")" "^id \| word"
check_contains "JSON as key: value lines" "$(sql "$db" "SELECT text FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.uri LIKE '%about.json'")" \
    "description: turns documents into searchable chunks"

sl_ok query --json -k 3 "printer floor 37 duplicate invoices number 37"
check_contains "a JSON Lines record found" "$(json 'hits[0].text')" "floor 37 jams"

sl run --json docs
check_eq "second run: unchanged files skipped" "$(json .documents.skipped)" 15
check_eq "second run: the bad one fails again" "$(json .documents.failed)" 1
finish
