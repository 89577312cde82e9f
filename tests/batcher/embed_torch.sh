#!/usr/bin/env bash
# tests/batcher/embed_torch.sh - embed-torch end to end: eight
# Markdown files of one paragraph each go through parse-markdown ->
# chunk-text -> embed-torch (a tiny TorchScript encoder and a vocabulary
# made here) into SQLite. The embedder is a gpu plugin: its chunks go to the
# batcher in batches of 4 texts, each from 4 documents (the run report's
# batch sizes). Then `sluice query --mode vector` embeds the question with the same
# plugin and its query prefix: "zebra" is asked as "query: zebra", so the
# document whose text is exactly "query: zebra" is the exact match (score
# 1), ahead of the one that says only "zebra", which would win without it.
source "$(dirname "$0")/../e2e/lib.sh"

MAKE=$BUILD/tests/embed-make-model
check "embed-make-model is built" test -x "$MAKE"
mkdir models docs
check "the models are made" "$MAKE" models
printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' the quick brown fox , . query : passage zebra one two three four \
    five six >vocab.txt

printf 'query: zebra\n' >docs/a.md
printf 'zebra\n' >docs/b.md
i=0
for w in one two three four five six; do
    i=$((i + 1))
    printf 'the quick brown fox %s\n' "$w" >"docs/c$i.md"
done

cat >sluice.ini <<INI
[sluice]
threads = 2

[route.md]
media = text/markdown
stages = md chunker embedder
sink = store

[md]
plugin = parse-markdown

[chunker]
plugin = chunk-text

[embedder]
plugin = embed-torch
model = models/sin.pt
vocab = vocab.txt
device = cpu
threads = 1
query_prefix = query:    ; joined to the question with a space: "query: zebra"
batch_size = 4
batch_delay = 60s        ; only full batches go: 8 chunks, two batches of 4

[store]
plugin = sink-sqlite
path = store.db
INI

sl_ok -c sluice.ini run --json docs
check_eq "stored" "$(json .documents.stored)" 8
check_eq "every chunk has a vector of 8 values" \
    "$(sql store.db "SELECT count(*) FROM chunks WHERE dim = 8 AND length(vector) = 32")" 8
check_eq "the embedder runs on the batcher" \
    "$(json '.stages[] | select(.name == "embedder") | .executor')" batcher
check_eq "two batches of 3-4 texts" \
    "$(json '.stages[] | select(.name == "embedder") | .batching.sizes["3-4"]')" 2
check_eq "no other batch size" \
    "$(json '.stages[] | select(.name == "embedder") | .batching.batches')" 2

sl_ok -c sluice.ini query --mode vector --json -k 3 zebra
check_eq "the query prefix: 'query: zebra' is the exact match" "$(json 'hits[0].uri')" docs/a.md
check_eq "its score is 1" "$(json 'hits[0].score * 10000 | round')" 10000
check_eq "the plain 'zebra' comes second" "$(json 'hits[1].uri')" docs/b.md
check_gt "and scores less" 10000 "$(json 'hits[1].score * 10000 | round')"

# chunk-text counting the embedder's own tokens (tokenizer = embedder): a
# paragraph of 60 words, each one token of the vocabulary or [UNK], with a
# window of 10 tokens ([CLS] and [SEP] take 2): no chunk over 8 words.
mkdir long
for i in $(seq 60); do printf '%s ' the quick brown fox zebra unknownword; done | cut -d' ' -f1-60 >long/long.md
sed -e 's/^plugin = chunk-text$/plugin = chunk-text\ntokenizer = embedder\noverlap = 2/' \
    -e 's/^batch_size = 4$/batch_size = 4\nmax_seq_len = 10/' -e 's/^batch_delay = 60s.*$/batch_delay = 0/' \
    -e 's/store.db/window.db/' sluice.ini >window.ini
sl_ok -c window.ini run --json long
check_eq "the long paragraph is stored" "$(json .documents.stored)" 1
check_gt "in several chunks" "$(sql window.db "SELECT count(*) FROM chunks")" 7
most=$(sql window.db "SELECT text FROM chunks" | awk '{ if (NF > m) m = NF } END { print m }')
check_eq "no chunk is over the window (8 tokens of text)" "$((most <= 8))" 1
check_eq "chunks fill the window" "$most" 8
sed -i 's/^tokenizer = embedder$/tokenizer = nosuch/' window.ini
sl -c window.ini run long
check_contains "a tokenizer section that is not there is named" "$ERR" "tokenizer = nosuch"

finish
