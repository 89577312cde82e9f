#!/usr/bin/env bash
# scripts/deps.sh - the one list of Debian packages sluice needs to build,
# test and benchmark; installs them with apt-get. Used by .ci/run and
# scripts/quickstart.sh, so a package added here reaches both. Run as root
# (or with sudo available) on Debian bookworm. `scripts/deps.sh --list`
# prints the list and installs nothing.
set -euo pipefail

packages=(
    # toolchain; CI also builds with clang (its sanitizer runtimes are only a
    # Recommends, absent where apt skips those)
    cmake gcc g++ make pkg-config clang libclang-rt-14-dev
    # libraries the core and the plugins link
    libuv1-dev libinih-dev libmd4c-dev libsqlite3-dev libxxhash-dev libjansson-dev libjsmn-dev
    libcurl4-openssl-dev libseccomp-dev
    # plugins: PostgreSQL sink, PDF and OCR, libtorch models
    libpq-dev libmupdf-dev libtesseract-dev tesseract-ocr-eng libtorch-dev
    # libmupdf-dev ships static archives and declares none of what they link
    libharfbuzz-dev libjbig2dec0-dev libopenjp2-7-dev libgumbo-dev libmujs-dev
    libfreetype-dev libjpeg-dev zlib1g-dev libleptonica-dev
    # bench: the tesseract command the OCR benchmark compares against
    tesseract-ocr
    # tests: a real PostgreSQL server, mutool for PDF fixtures, curl for the fake provider,
    # openssl for the certificate of the HTTP/2 tests' TLS front
    postgresql mupdf-tools curl openssl
    # tests: the store is checked with the sqlite3 CLI, reports with jq
    sqlite3 jq
    # CI: style check (the .clang-format is written for clang-format 14)
    clang-format
    # bench: /usr/bin/time -v for peak memory
    time
    # parse-office, parse-epub; the format parsers' tests and benchmarks make
    # fixtures with pandoc, zip and python3, and pandoc is their reference
    libzip-dev libxml2-dev pandoc zip python3
    # core: media detection by content; parse-email: .eml and mbox
    libmagic-dev libgmime-3.0-dev
    # the HTTP service (libh2o on libuv); its tests: promtool parses /metrics,
    # headless chromium renders the status page
    libh2o-dev prometheus chromium
    # bench/formats-office.sh: the XLSX reference extractor
    xlsx2csv
    # embed-torch and chunk-text's tokenizers (plugins/common/tokenizer.c):
    # SentencePiece models, ICU for Unicode classes and sentence breaks
    libsentencepiece-dev libicu-dev
    # sink-sqlite: the approximate vector index (header-only C++)
    libhnswlib-dev
)

if [[ ${1:-} == --list ]]; then
    printf '%s\n' "${packages[@]}"
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || {
        echo "scripts/deps.sh: run as root (or install sudo)" >&2
        exit 1
    }
    sudo=(sudo)
fi

# Node.js runs PGlite (WASM PostgreSQL with pgvector) for the pgvector tests.
# Many machines carry a newer Node.js of their own: Debian's is installed
# only when there is none.
command -v npm >/dev/null || packages+=(nodejs npm)

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q "${packages[@]}"

# The npm test helpers, from the lock file (the npm registry is reachable).
(cd "$(dirname "$0")/../tests/pglite" && npm ci --no-audit --no-fund --loglevel=error)
# s3rver, an S3-compatible server that checks SigV4, for the s3:// tests.
(cd "$(dirname "$0")/../tests/s3rver" && npm ci --no-audit --no-fund --loglevel=error)
