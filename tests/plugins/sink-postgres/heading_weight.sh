#!/usr/bin/env bash
# tests/plugins/sink-postgres/heading_weight.sh - on a real PostgreSQL, the
# keyword ranking (ts_rank) weighs a chunk's heading path (tsvector weight
# A) five times its text (B): a section headed by the word asked for
# outranks a section that only mentions it in its body, twice, in keyword
# and in hybrid (the default weights) queries. With the heading weighed as
# the text the body-only chunk comes first (the test asks PostgreSQL for
# that ranking too): the order is the heading weight's doing.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/pglib.sh"

pg_start
write_conf pg.ini "$PG_PORT"
mkdir docs
printf '# Release notes\n\n## Zephyr\n\nThe new scheduler spreads work over every core and keeps a queue per worker, so that a busy worker no longer holds up the others. It was measured on four machines over a week of ordinary load and it stays within a few percent of the old one when idle.\n' >docs/heading.md
printf '# Release notes\n\n## Scheduler\n\nThe zephyr queue is new, and the zephyr pool too.\n' >docs/body.md
for i in $(seq 1 10); do
    printf '# Guide %d\n\nThe worker reads a queue of jobs and writes what it made to the store, one job at a time.\n' "$i" >"docs/guide$i.md"
done
sl_ok -c pg.ini run docs

check_eq "the heading weighed as the text (A = B): the body-only mention would come first" \
    "$(pg_sql "SELECT d.uri FROM sluice_chunks c JOIN sluice_documents d ON d.id = c.doc_id
               WHERE c.tsv @@ 'zephyr'::tsquery
               ORDER BY ts_rank('{0.1, 0.2, 0.4, 0.4}', c.tsv, 'zephyr'::tsquery) DESC, d.uri LIMIT 1")" \
    docs/body.md
sl_ok -c pg.ini query --mode keyword --json -k 5 zephyr
check_eq "keyword: two chunks hold the word" "$(json 'hits | length')" 2
check_eq "keyword: the chunk headed 'Zephyr' first" "$(json 'hits[0].uri')" docs/heading.md
check_eq "keyword: its heading path" "$(json 'hits[0].heading')" "Release notes > Zephyr"
check_eq "keyword: the body-only mention second" "$(json 'hits[1].uri')" docs/body.md
sl_ok -c pg.ini query --json -k 5 zephyr
check_eq "hybrid (default weights): the chunk headed 'Zephyr' first" "$(json 'hits[0].uri')" docs/heading.md
check_eq "hybrid: its keyword rank is 1" "$(json 'hits[0].keyword.rank')" 1
finish
