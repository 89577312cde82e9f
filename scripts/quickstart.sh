#!/usr/bin/env bash
# scripts/quickstart.sh - from a fresh Debian bookworm machine to a first
# answer: installs the dependencies (scripts/deps.sh), builds sluice into
# build/, ingests the sample corpus examples/corpus into the embedded default
# store (.sluice/store.db in the repository root) and asks it a question.
# Run as root from anywhere; pass your own question as arguments if you like.
set -euo pipefail
cd "$(dirname "$0")/.."

question=${*:-"how do I rotate an API token without downtime"}

scripts/deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"

echo
echo "== sluice run examples/corpus"
build/sluice run examples/corpus

echo
echo "== sluice query \"$question\""
build/sluice query -k 3 "$question"
