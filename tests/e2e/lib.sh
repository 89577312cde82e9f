# tests/e2e/lib.sh - shared helpers for the end-to-end tests, sourced by each.
# shellcheck shell=bash
#
# Every test is a bash script run by ctest as `TEST.sh SLUICE SOURCE_DIR`: the
# sluice executable of the build under test and the repository root. It works
# in a temporary folder of its own (removed at exit; kept when
# SLUICE_E2E_KEEP=1, to look at a failure), drives the real executable on
# real files, and checks outcomes where they land: the SQLite store (through
# the sqlite3 CLI) and the --json report (through jq). A check that fails is
# counted and the test goes on, so one run shows every broken check; `finish`
# turns the count into the exit status.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 SLUICE SOURCE_DIR" >&2
    exit 2
fi
SLUICE=$(realpath "$1")
# shellcheck disable=SC2034 # used by the tests that source this
SRC=$(realpath "$2")
# shellcheck disable=SC2034
BUILD=$(dirname "$SLUICE")
TEST_NAME=$(basename "$0" .sh)
# Each sluice invocation gets this long before it counts as hung.
SLUICE_TIMEOUT=${SLUICE_E2E_TIMEOUT:-300}

for tool in sqlite3 jq timeout; do
    command -v "$tool" >/dev/null || {
        echo "FAIL: $tool is not installed (scripts/deps.sh installs it)" >&2
        exit 1
    }
done
[[ -x $SLUICE ]] || {
    echo "FAIL: $SLUICE is not an executable" >&2
    exit 1
}

tmp_base=${SLUICE_TEST_TMP:-${TMPDIR:-/tmp}}
mkdir -p "$tmp_base"
T=$(mktemp -d "$tmp_base/e2e-$TEST_NAME.XXXXXX")
cleanup() {
    local rc=$?
    if [[ ${SLUICE_E2E_KEEP:-0} == 1 ]]; then
        echo "kept $T" >&2
    else
        chmod -R u+rwX "$T" 2>/dev/null || true
        rm -rf "$T"
    fi
    exit $rc
}
trap cleanup EXIT
cd "$T"

failures=0
checks=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# check DESCRIPTION COMMAND...: counts a check; fails it when COMMAND fails.
check() {
    local what=$1
    shift
    checks=$((checks + 1))
    if ! "$@"; then fail "$what"; fi
}

# check_eq DESCRIPTION GOT WANT
check_eq() {
    checks=$((checks + 1))
    if [[ "$2" != "$3" ]]; then fail "$1: got '$2', want '$3'"; fi
}

# check_ne DESCRIPTION GOT UNWANTED
check_ne() {
    checks=$((checks + 1))
    if [[ "$2" == "$3" ]]; then fail "$1: got '$2', which it must not be"; fi
}

# check_gt DESCRIPTION GOT BOUND: GOT > BOUND, both integers.
check_gt() {
    checks=$((checks + 1))
    if ! [[ "$2" =~ ^-?[0-9]+$ ]] || (("$2" <= "$3")); then fail "$1: got '$2', want more than $3"; fi
}

# check_contains DESCRIPTION HAYSTACK NEEDLE_REGEX (extended regex, case-insensitive)
check_contains() {
    checks=$((checks + 1))
    if ! grep -qiE -- "$3" <<<"$2"; then fail "$1: '$3' not found in: $(head -c 2000 <<<"$2")"; fi
}

# check_lacks DESCRIPTION HAYSTACK FIXED_STRING
check_lacks() {
    checks=$((checks + 1))
    if grep -qF -- "$3" <<<"$2"; then fail "$1: '$3' must not appear, but does"; fi
}

finish() {
    if ((failures > 0)); then
        echo "$TEST_NAME: $failures of $checks checks failed" >&2
        exit 1
    fi
    if ((checks == 0)); then
        echo "$TEST_NAME: no checks ran" >&2
        exit 1
    fi
    echo "$TEST_NAME: all $checks checks passed"
}

# sl ARGS...: runs sluice with no stdin; sets RC, OUT (stdout) and ERR (stderr).
sl() {
    set +e
    timeout -k 10 "$SLUICE_TIMEOUT" "$SLUICE" "$@" </dev/null >"$T/.out" 2>"$T/.err"
    RC=$?
    set -e
    OUT=$(cat "$T/.out")
    ERR=$(cat "$T/.err")
    if [[ $RC -eq 124 || $RC -eq 137 ]]; then
        # A hang: later steps would only hang too. Stop with what we know.
        fail "sluice $* hung: killed after ${SLUICE_TIMEOUT}s; stderr: $(tail -c 2000 <<<"$ERR")"
        finish
    fi
    if [[ $RC -gt 128 ]]; then fail "sluice $* died of signal $((RC - 128)); stderr: $(tail -c 2000 <<<"$ERR")"; fi
    if [[ $RC -eq 86 ]]; then fail "sluice $*: sanitizer report: $(tail -c 4000 <<<"$ERR")"; fi
}

# sl_ok ARGS...: sl, and the run must exit 0.
sl_ok() {
    sl "$@"
    check_eq "exit status of sluice $*" "$RC" 0
    if [[ $RC -ne 0 ]]; then echo "stderr: $(tail -c 3000 <<<"$ERR")" >&2; fi
}

# json FILTER: evaluates a jq filter on $OUT (the last --json output); prints
# "null" when the path is absent and "INVALID" when $OUT is not JSON.
# Filters may use `hits` (the query's hits) and `plugins` (the plugin list),
# whichever way the output wraps them.
JQ_DEFS='def hits: if type == "array" then . else .hits end;
         def plugins: if type == "array" then . else .plugins end; '
json() {
    jq -r "$JQ_DEFS$1" <<<"$OUT" 2>/dev/null || echo INVALID
}

# jqo [JQ_OPTIONS...] FILTER: like json, with options such as --arg.
jqo() {
    local filter=${!#}
    jq -r "${@:1:$#-1}" "$JQ_DEFS$filter" <<<"$OUT" 2>/dev/null || echo INVALID
}

# use_test_plugins NAME: the test plugins (built with the tests, outside
# the plugins folder) become loadable: SLUICE_PLUGIN_PATH is the folder
# holding NAME.so in the build tree; the test fails when it is not there.
use_test_plugins() {
    local so
    so=$(find "$BUILD" -name "$1.so" -print -quit)
    if [[ -z $so ]]; then
        echo "FAIL: $1.so is not in the build tree $BUILD (it is built with the tests)" >&2
        exit 1
    fi
    SLUICE_PLUGIN_PATH=$(dirname "$so")
    export SLUICE_PLUGIN_PATH
}

# sql DB QUERY: one sqlite3 query; rows on lines, columns separated by '|'.
# It waits up to 10 s for a lock, as sluice's own readers do: a test that
# reads while sluice runs can meet the moment its last connection closes
# (the final checkpoint takes the file's lock for a moment).
sql() {
    sqlite3 -batch -noheader -cmd '.timeout 10000' "$1" "$2"
}

# stored_at_least PID DB N: returns once the store DB holds N documents or
# more, or the process PID has ended (two minutes at most). For a signal
# that must find a run under way: a fixed sleep is a guess that a loaded
# machine (ASan, beside other tests) misses, and the signal then comes
# before the first document.
stored_at_least() {
    local i
    for ((i = 0; i < 2400; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        if [[ -f $2 ]] && (($(sql "$2" 'SELECT count(*) FROM documents' 2>/dev/null || echo 0) >= $3)); then
            return 0
        fi
        sleep 0.05
    done
}

# port_from LOG REGEX PID: the port a server started as PID announces in
# LOG, on the first line matching the sed regex REGEX (its group \1 the
# port), printed once it is there; nothing if PID ends first or 60 s pass.
port_from() {
    local i p=''
    for ((i = 0; i < 1200; i++)); do
        p=$(sed -n "s/$2/\1/p" "$1" 2>/dev/null | head -n 1)
        [[ -n $p ]] && break
        kill -0 "$3" 2>/dev/null || break
        sleep 0.05
    done
    echo "$p"
}

# store_digest DB: a hash of everything a run decides (documents and chunks,
# vectors included), leaving out what legitimately differs between runs:
# row ids, timestamps and the run that last saw a document.
store_digest() {
    sqlite3 -batch -noheader -cmd '.timeout 10000' "$1" "
        SELECT 'D', uri, hash, fingerprint, media_type, bytes, title, chunk_count
          FROM documents ORDER BY uri;
        SELECT 'C', d.uri, c.ordinal, c.text, c.heading, c.page, c.line, c.dim, hex(c.vector)
          FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY d.uri, c.ordinal;" |
        sha256sum | cut -d' ' -f1
}

# duplicate_chunks DB: how many (document, ordinal) pairs occur more than once.
duplicate_chunks() {
    sql "$1" "SELECT count(*) FROM (SELECT doc_id, ordinal FROM chunks GROUP BY doc_id, ordinal HAVING count(*) > 1);"
}

# chunk_count_mismatches DB: documents whose chunk_count differs from the
# chunk rows they own, or whose ordinals are not exactly 0..chunk_count-1.
chunk_count_mismatches() {
    sql "$1" "SELECT count(*) FROM documents d WHERE d.chunk_count !=
                (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)
              OR d.chunk_count != (SELECT coalesce(max(c.ordinal), -1) + 1 FROM chunks c WHERE c.doc_id = d.id);"
}

# orphan_chunks DB: chunk rows whose document row is gone.
orphan_chunks() {
    sql "$1" "SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents);"
}

# count_files DIR PATTERN...: how many regular files under DIR match any
# of the name patterns (e.g. the include list of the default config).
count_files() {
    local dir=$1
    shift
    local args=() p
    for p in "$@"; do args+=(-o -name "$p"); done
    find "$dir" -type f \( "${args[@]:1}" \) | wc -l | tr -d ' '
}

# now_ms: wall clock in milliseconds.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Worker processes (`sluice __worker FD`) inherit sluice's environment:
# mark_workers sets a marker unique to this test, and leftover_workers
# counts the live workers that carry it, whatever else runs on the machine
# (tools the test runs carry the marker too, hence the look at the command
# line).
mark_workers() {
    WORKERS_MARK="$TEST_NAME-$$-$RANDOM"
    export SLUICE_WORKERS_E2E=$WORKERS_MARK
}
leftover_workers() {
    local n=0 f
    while read -r f; do
        if tr '\0' ' ' <"${f%/environ}/cmdline" 2>/dev/null | grep -q -- ' __worker '; then n=$((n + 1)); fi
    done < <(grep -lzx "SLUICE_WORKERS_E2E=$WORKERS_MARK" /proc/[0-9]*/environ 2>/dev/null || true)
    echo "$n"
}
