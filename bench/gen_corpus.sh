#!/usr/bin/env bash
# bench/gen_corpus.sh - writes a deterministic corpus of Markdown files that
# read like technical documentation: a title, sections with paragraphs,
# bullet and numbered lists, fenced code and tables.
#
#   bench/gen_corpus.sh [--once] COUNT OUTDIR [BYTES_PER_FILE [SEED]]
#
# --once: an OUTDIR that a finished earlier call marked (OUTDIR/.complete)
# is kept as it is; any other is removed and made again, then marked. The
# benchmarks generate their corpora once this way and reuse them.
#
# COUNT files of about BYTES_PER_FILE bytes (default 5000) go into OUTDIR,
# 100 per subfolder (OUTDIR/d000/doc-00000.md, ...). The same arguments give
# the same bytes on every machine: the text comes from a Park-Miller
# generator in plain POSIX awk (mawk or gawk), so no python is needed. Used
# by bench/ingest.sh and by the kill -9 end-to-end test.
set -euo pipefail

once=0
if [[ ${1:-} == --once ]]; then
    once=1
    shift
fi
if [[ $# -lt 2 ]]; then
    echo "usage: $0 [--once] COUNT OUTDIR [BYTES_PER_FILE [SEED]]" >&2
    exit 2
fi
count=$1
out=$2
size=${3:-5000}
seed=${4:-1}
if ((once)); then
    [[ ! -f $out/.complete ]] || exit 0
    rm -rf "$out"
    echo "generating $count documents of about $size bytes in $out" >&2
fi
mkdir -p "$out"
for ((d = 0; d * 100 < count; d++)); do mkdir -p "$(printf '%s/d%03d' "$out" "$d")"; done

awk -v count="$count" -v out="$out" -v size="$size" -v seed="$seed" '
# Park-Miller minimal standard generator: every product stays below 2^53,
# so doubles compute it exactly in any awk.
function rnd(n) { state = (state * 16807) % 2147483647; return state % n }
function pick(list, n) { return list[rnd(n) + 1] }
function cap(s) { return toupper(substr(s, 1, 1)) substr(s, 2) }
function np() { return (rnd(3) ? pick(adj, nadj) " " : "") pick(noun, nnoun) }
function sentence(   s, k, i) {
    k = rnd(4)
    if (k == 0) s = "The " np() " " pick(verb, nverb) " the " np()
    else if (k == 1) s = "When the " np() " " pick(verb, nverb) " a " np() ", the " pick(noun, nnoun) " " pick(verb, nverb) " it " pick(prep, nprep) " the " np()
    else if (k == 2) s = "Each " pick(noun, nnoun) " " pick(verb, nverb) " its own " np() " " pick(prep, nprep) " the " np()
    else s = cap(pick(adv, nadv)) ", the " np() " " pick(verb, nverb) " every " pick(noun, nnoun) " that the " np() " " pick(verb, nverb)
    for (i = rnd(2); i > 0; i--) s = s " " pick(prep, nprep) " the " np()
    return s "."
}
function paragraph(   p, i, n) {
    n = 2 + rnd(4); p = sentence()
    for (i = 1; i < n; i++) p = p " " sentence()
    return p
}
function emit(s) { printf "%s\n", s > file; bytes += length(s) + 1 }
function block(   k, i, n, w) {
    k = rnd(10)
    if (k < 4) { emit(paragraph()); emit(""); return }
    if (k < 6) {
        n = 3 + rnd(4)
        for (i = 0; i < n; i++) emit((k == 4 ? "- " : (i + 1) ". ") cap(np()) ": " tolower(substr(sentence(), 1)))
        emit(""); return
    }
    if (k < 8) {
        emit("```" (rnd(2) ? "sh" : "ini"))
        n = 2 + rnd(5)
        for (i = 0; i < n; i++) {
            if (rnd(2)) emit("tool " pick(verb, nverb) " --" pick(noun, nnoun) "=" rnd(1000) " " pick(noun, nnoun) "/" pick(adj, nadj))
            else emit(pick(noun, nnoun) "." pick(noun, nnoun) " = " rnd(65536))
        }
        emit("```"); emit(""); return
    }
    emit("| option | default | meaning |")
    emit("|--------|---------|---------|")
    n = 3 + rnd(5)
    for (i = 0; i < n; i++) emit("| `" pick(noun, nnoun) "_" pick(noun, nnoun) "` | " rnd(512) " | " np() " " pick(prep, nprep) " the " pick(noun, nnoun) " |")
    emit("")
}
BEGIN {
    nnoun = split("queue worker lease segment snapshot token schedule payload index cache buffer thread socket daemon replica shard partition checksum journal log backup restore metric alert histogram limit budget batch chunk document parser embedder sink route stage pipeline plugin config section option vector query result store table column row record file folder path request response timeout retry backoff deadline handler process signal lock transaction cursor page element heading", noun, " ")
    nadj = split("durable idle stale pending active remote local primary secondary nightly hourly bounded unbounded compressed encrypted hashed sorted partial complete default custom optional required deterministic concurrent sequential cached persistent transient large small empty full slow fast", adj, " ")
    nverb = split("stores reads writes flushes compacts replays leases releases retries schedules rotates validates indexes hashes splits merges embeds parses routes drains pauses resumes verifies tracks reports limits batches caches loads opens closes skips replaces prunes", verb, " ")
    nprep = split("for with from into after before during across under within without behind", prep, " ")
    nadv = split("usually often eventually immediately rarely afterwards meanwhile otherwise typically sometimes", adv, " ")
    for (doc = 0; doc < count; doc++) {
        state = (seed * 100003 + doc * 7919 + 1) % 2147483647
        for (i = 0; i < 3; i++) rnd(2)
        file = sprintf("%s/d%03d/doc-%05d.md", out, int(doc / 100), doc)
        bytes = 0
        emit("# " cap(np()) " and the " pick(noun, nnoun) " " doc); emit("")
        emit(paragraph()); emit("")
        while (bytes < size) {
            emit("## " cap(pick(verb, nverb)) " the " np()); emit("")
            n = 1 + rnd(3)
            for (b = 0; b < n && bytes < size; b++) block()
        }
        close(file)
    }
}'
if ((once)); then touch "$out/.complete"; fi
echo "$count files in $out"
