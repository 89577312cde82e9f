#!/usr/bin/env bash
# bench/embed_torch.sh - embed-torch's throughput on the batcher by batch
# size: texts embedded per second of model time, and the run's wall time.
#
#   bench/embed_torch.sh [--device cpu|cuda] [--build DIR] [--batches 1,4,16,64,256]
#                        [--docs N] [--words N] [--threads N]
#
# The model is an encoder of all-MiniLM-L6-v2's shape (6 layers, hidden 384,
# 12 heads, vocabulary 30522) with fixed random weights, written by
# tests/plugins/embed-torch/make_embed_models.cpp (--bench), so the work is
# the real model's; the vocabulary is made up (w0 ... w30517). --docs
# Markdown files of --words random words each (default 512 files of 60
# words: one chunk, about 62 tokens with [CLS] and [SEP]) go through
# parse-markdown -> chunk-text -> embed-torch into SQLite, once per batch
# size. Columns: texts, batches the batcher ran, texts per second of model
# time (the report's device_s), and the run's wall seconds. --device cuda
# needs a CUDA libtorch (cmake -DSLUICE_TORCH_DIR=...) and a GPU. Timings are
# for people: nothing asserts on them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build
device=cpu
batches=1,4,16,64,256
docs=512
words=60
threads=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --device) device=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --docs) docs=$2; shift 2 ;;
    --words) words=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "bench/embed_torch.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
cmake --build "$build" --target sluice-cli embed-torch embed-make-model parse-markdown chunk-text sink-sqlite \
    >/dev/null
work=${TMPDIR:-/tmp}/sluice-bench/embed-torch
rm -rf "$work"
mkdir -p "$work/docs"
"$build/tests/embed-make-model" --bench "$work/model.pt"
{ printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]'; seq -f 'w%g' 0 30517; } >"$work/vocab.txt"
awk -v docs="$docs" -v words="$words" -v dir="$work/docs" 'BEGIN {
    srand(1)
    for (d = 0; d < docs; d++) {
        f = sprintf("%s/d%04d.md", dir, d)
        line = ""
        for (w = 0; w < words; w++) line = line sprintf("w%d ", int(rand() * 30518))
        print line > f
        close(f)
    }
}'
printf '%-7s %6s %8s %10s %8s\n' batch texts batches "texts/s" "wall s"
IFS=, read -ra sizes <<<"$batches"
for b in "${sizes[@]}"; do
    cat >"$work/sluice.ini" <<INI
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
tokenizer = embedder
overlap = 0

[embedder]
plugin = embed-torch
model = $work/model.pt
vocab = $work/vocab.txt
device = $device
threads = $threads
batch_size = $b
batch_delay = 50ms
max_seq_len = 128

[store]
plugin = sink-sqlite
path = $work/store-$b.db
INI
    t0=$(date +%s.%N)
    "$build/sluice" -q -c "$work/sluice.ini" run --json "$work/docs" >"$work/report-$b.json"
    t1=$(date +%s.%N)
    jq -r --arg b "$b" --arg wall "$(echo "$t1 - $t0" | bc)" '.stages[] | select(.name == "embedder") |
        [$b, .items, .batching.batches, (if .batching.device_s > 0 then .items / .batching.device_s else 0 end),
         ($wall | tonumber)] | @tsv' "$work/report-$b.json" |
        awk -F'\t' '{ printf "%-7s %6d %8d %10.1f %8.1f\n", $1, $2, $3, $4, $5 }'
done
