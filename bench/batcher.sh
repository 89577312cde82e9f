#!/usr/bin/env bash
# bench/batcher.sh - items/s and latency of the gpu executor (the batcher)
# for batch sizes 1, 4, 16 and 64, running the layout-torch plugin on a
# small convolutional TorchScript model.
#
#   bench/batcher.sh [--device cpu|cuda] [--build DIR] [--batches 1,4,16,64]
#                    [--items N] [--input PX] [--page PX] [--threads N] [--delay MS]
#
# It builds what it needs in an already configured build folder (default
# build/; SLUICE_TESTS and SLUICE_TORCH on, the defaults): the plugin, the
# model writer (tests/batcher/make_models.cpp) and the driver
# (bench/batcher_bench.c). The model, written to WORK (default
# /tmp/sluice-bench/batcher), is three stride-2 3x3 convolutions and a 1x1
# scoring head on an 8x8 grid, with fixed random weights. Every page is a
# --page x --page RGB image the plugin scales to the --input size, with 2B
# pages in flight for batch size B, until --items pages (default 256, and
# at least 8 batches) are done after a warm-up. Columns: items/s; latency
# p50 and p95 from submitting a page to its completion on the loop thread
# (queue wait + batch time); the mean batch the batcher formed; the time
# inside the plugin per batch (tensor preparation + forward + regions).
# Throughput should rise with the batch size until the device is busy,
# and latency with it. --device cuda needs a CUDA libtorch (cmake
# -DSLUICE_TORCH_DIR=...) and a GPU. Timings are for people: nothing
# asserts on them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build
device=cpu
args=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --device) device=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --batches | --items | --input | --page | --threads | --delay) args+=("$1" "$2"); shift 2 ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "bench/batcher.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $device in
cpu | cuda | auto) ;;
*) echo "bench/batcher.sh: --device must be cpu, cuda or auto" >&2; exit 2 ;;
esac
[[ -f $build/CMakeCache.txt ]] || {
    echo "no configured build at $build: cmake -S . -B build first (or --build DIR)" >&2
    exit 2
}
build=$(cd "$build" && pwd)
work=${WORK:-/tmp/sluice-bench}/batcher
mkdir -p "$work"

cmake --build "$build" --target bench-batcher -j2 >/dev/null
"$build/tests/torch-make-model" conv "$work/conv.pt"

echo "batcher: layout-torch, conv model, device $device, $(nproc) cores, $(uname -m)"
"$build/bench/bench-batcher" --plugin "$build/plugins/layout-torch.so" --model "$work/conv.pt" \
    --device "$device" "${args[@]}"
