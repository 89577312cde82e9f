#!/usr/bin/env bash
# tests/plugins/sink-sqlite/heading_weight.sh - the keyword ranking weighs a
# chunk's heading path like a title: a section headed by the word asked for
# outranks a section that only mentions it in its body, twice, in keyword
# and in hybrid (the default weights) queries. With the heading weighed
# twice the text (the weight before) or three times, the body-only chunk
# came first on these documents.
source "$(dirname "$0")/../../e2e/lib.sh"

mkdir docs
printf '# Release notes\n\n## Zephyr\n\nThe new scheduler spreads work over every core and keeps a queue per worker, so that a busy worker no longer holds up the others. It was measured on four machines over a week of ordinary load and it stays within a few percent of the old one when idle.\n' >docs/heading.md
printf '# Release notes\n\n## Scheduler\n\nThe zephyr queue is new, and the zephyr pool too.\n' >docs/body.md
# documents without the word, so that it is rare (BM25's idf)
for i in $(seq 1 10); do
    printf '# Guide %d\n\nThe worker reads a queue of jobs and writes what it made to the store, one job at a time.\n' "$i" >"docs/guide$i.md"
done
sl_ok run docs

sl_ok query --mode keyword --json -k 5 zephyr
check_eq "keyword: two chunks hold the word" "$(json 'hits | length')" 2
check_eq "keyword: the chunk headed 'Zephyr' first" "$(json 'hits[0].uri')" docs/heading.md
check_eq "keyword: its heading path" "$(json 'hits[0].heading')" "Release notes > Zephyr"
check_eq "keyword: the body-only mention second" "$(json 'hits[1].uri')" docs/body.md
check_gt "keyword: by a margin, not a tie" \
    "$(json '(hits[0].keyword.score - hits[1].keyword.score) * 1000000 | floor')" 0
sl_ok query --json -k 5 zephyr
check_eq "hybrid (default weights): the chunk headed 'Zephyr' first" "$(json 'hits[0].uri')" docs/heading.md
check_eq "hybrid: its keyword rank is 1" "$(json 'hits[0].keyword.rank')" 1
# the weights are the user's to change: keyword alone (vector weight 0)
sl_ok query --json -k 5 --vector-weight 0 zephyr
check_eq "--vector-weight 0: the keyword order first" "$(json '[hits[].uri] | .[0:2] | join(",")')" \
    "docs/heading.md,docs/body.md"
check_eq "--vector-weight 0: vector-only hits score 0" "$(json '[hits[] | select(.keyword == null and .score != 0)] | length')" 0
for bad in -1 101 x ''; do
    sl query --keyword-weight "$bad" zephyr
    check_eq "--keyword-weight '$bad': usage error" "$RC" 2
done
finish
