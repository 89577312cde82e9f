#!/usr/bin/env bash
# tests/e2e/exit_codes.sh - the exit status contract and the configuration
# errors a person will meet first. 0: all went well; 1: some documents
# failed; 2: usage or configuration error, with a message that says where
# (file:line, section, key) and never a half-done run: a configuration
# error is found before any document is read, so no store is made.
source "$(dirname "$0")/lib.sh"

mkdir docs
cp "$SRC/examples/corpus/faq.txt" docs/

# expect_usage_error DESCRIPTION NEEDLE_REGEX ARGS...: exit 2, stderr matches,
# no report on stdout, no store made.
expect_usage_error() {
    local what=$1 needle=$2
    shift 2
    rm -rf .sluice
    sl "$@"
    check_eq "$what: exit status" "$RC" 2
    check_contains "$what: message" "$ERR" "$needle"
    check "$what: no store made" test ! -e .sluice/store.db
}

expect_usage_error "unknown command" "frobnicate" frobnicate
expect_usage_error "unknown flag" "--bogus" run --bogus docs
expect_usage_error "query without text" "usage|text" query
expect_usage_error "query -k not a number" "-k|number|integer" query -k many "backup"
expect_usage_error "missing config file" "no-such\.ini" -c no-such.ini run docs
expect_usage_error "missing PATH" "PATH" run
expect_usage_error "missing PATH with --json" "PATH" run --json

# A PATH that does not exist is a document that failed to read, not a usage
# error: the other PATHs are still ingested and the report says why.
rm -rf .sluice
sl run --json no/such/dir docs
check_eq "PATH that does not exist: exit status" "$RC" 1
check_eq "PATH that does not exist: the other PATH is stored" "$(json .documents.stored)" 1
check_contains "PATH that does not exist: reason" \
    "$(jqo '.failed[] | select(.uri == "no/such/dir") | .reason')" "No such file"

# A malformed INI line: file and line named.
printf '[sluice]\nthreads = 1\nthis line is not ini\n' >bad-line.ini
expect_usage_error "bad INI line" "bad-line\.ini:3" -c bad-line.ini run docs

# Settings out of range are refused with their file and line, before any
# worker is started or batch allocated (issue 17: workers = 100000 forked
# 640 processes; a huge batch_size overflowed an allocation).
printf '[sluice]\nthreads = 1\nworkers = 100000\n' >many-workers.ini
expect_usage_error "workers = 100000" "many-workers\.ini:3: \[sluice\] workers: 100000 is out of range \(0 to 1024\)" \
    -c many-workers.ini run docs
expect_usage_error "--set embedder.batch_size too large" "\[embedder\] batch_size: 1152921504606846976 is out of range" \
    --set embedder.batch_size=1152921504606846976 run docs

# A stage named twice in a route (issue 17: `pdf render render ocr` passed
# check and then never finished): refused, by check and by run.
sed 's/^stages = pdf render ocr chunker embedder/stages = pdf render render ocr chunker embedder/' \
    "$SRC/conf/pdf.ini" >twice.ini
twice_line=$(grep -n '^stages = pdf render render' twice.ini | cut -d: -f1)
check_gt "twice.ini names render twice" "${twice_line:-0}" 0
expect_usage_error "a page stage named twice" "'render' is named twice" -c twice.ini run docs
expect_usage_error "a page stage named twice, check" "'render' is named twice" -c twice.ini check

# An option a plugin does not declare: a typo is an error, not silence.
sed 's/^size = 1000/siez = 1000/' "$SRC/conf/default.ini" >typo.ini
typo_line=$(grep -n '^siez' typo.ini | cut -d: -f1)
check_gt "typo.ini has the typo" "${typo_line:-0}" 0
expect_usage_error "unknown option key" "typo\.ini:$typo_line" -c typo.ini run docs
check_contains "unknown option key: key named" "$ERR" "siez"

# An unset environment variable in the INI.
sed 's|^path = .*|path = ${SLUICE_E2E_UNSET_VARIABLE}/store.db|' "$SRC/conf/default.ini" >unset.ini
unset SLUICE_E2E_UNSET_VARIABLE
expect_usage_error "unset \${VAR}" "SLUICE_E2E_UNSET_VARIABLE" -c unset.ini run docs

# --set with a value of the wrong type, and with a key nobody declares.
expect_usage_error "--set of a mistyped value" "chunker.*size|size.*abc" --set chunker.size=abc run docs
expect_usage_error "--set of an unknown key" "embedder.*dimensoin|dimensoin" --set embedder.dimensoin=3 run docs
expect_usage_error "--set without =" "--set|SECTION" --set chunker.size run docs

# --help for each command: status 0 and a usage text naming the command.
for cmd in run query plugins check; do
    sl "$cmd" --help
    check_eq "$cmd --help: exit status" "$RC" 0
    check_contains "$cmd --help: usage" "$OUT" "usage.*$cmd"
done
sl --help
check_eq "--help: exit status" "$RC" 0
for cmd in run query plugins check; do check_contains "--help lists $cmd" "$OUT" "$cmd"; done
sl --version
check_eq "--version: exit status" "$RC" 0
check_contains "--version prints a version" "$OUT" "[0-9]+\.[0-9]+\.[0-9]+"

# With a working config: 0, then 1 once a document is bad.
sl run docs
check_eq "good run: exit status" "$RC" 0
printf 'bad\0bytes' >docs/binary.txt
sl run docs
check_eq "run with a failed document: exit status" "$RC" 1
sl check
check_eq "check of the default config: exit status" "$RC" 0
sl -c typo.ini check
check_eq "check of a config with a typo: exit status" "$RC" 2
check_contains "check names the typo's line" "$ERR$OUT" "typo\.ini:$typo_line"

# Interrupted: SIGINT finishes what is in flight and exits 3 (it was 1, as
# if documents had failed, and a second SIGINT exited 130, issue 17); the
# next run ingests the rest.
bash "$SRC/bench/gen_corpus.sh" 6000 many 3000 9 >/dev/null
rm -rf .sluice
set +e
"$SLUICE" --set sluice.threads=1 run --json many >int.json 2>int.err &
pid=$!
stored_at_least "$pid" .sluice/store.db 1
kill -INT "$pid"
wait "$pid"
rc=$?
set -e
check_eq "SIGINT: exit status 3 (interrupted)" "$rc" 3
check_eq "SIGINT: the report says interrupted" "$(jq -r .interrupted int.json)" true
stored=$(jq -r .documents.stored int.json)
check "SIGINT: part of the corpus was stored ($stored of 6000)" test "$stored" -lt 6000
check_contains "SIGINT: it said it finishes what is in flight" "$(cat int.err)" "interrupted: finishing"
sl run --json many
check_eq "after SIGINT: the rerun exits 0" "$RC" 0
check_eq "after SIGINT: the rerun stores the rest" "$(json .documents.stored)" "$((6000 - stored))"

# A second SIGINT stops at once, with the same status (large documents: the
# ones in flight take far longer to finish than the 50 ms between signals).
bash "$SRC/bench/gen_corpus.sh" 300 big 200000 11 >/dev/null
rm -rf .sluice
set +e
"$SLUICE" --set sluice.threads=1 run big >/dev/null 2>int2.err &
pid=$!
stored_at_least "$pid" .sluice/store.db 1
kill -INT "$pid"
sleep 0.05
kill -INT "$pid"
wait "$pid"
rc=$?
set -e
check_eq "second SIGINT: exit status 3" "$rc" 3
check_contains "second SIGINT: it says it stops now" "$(cat int2.err)" "interrupted again: stopping now"

# SIGTERM while sluice is still starting (here: reading its configuration
# from a pipe nobody has written yet) is held until the run begins, which
# then stops before any document with exit 3. It used to kill the process
# by default (143, outside the table), as the adversarial pass found.
rm -rf .sluice
mkfifo slow.ini
set +e
"$SLUICE" -c slow.ini run --json docs >early.json 2>early.err &
pid=$!
set -e
caught=0
for _ in $(seq 1 200); do
    # bit 15 of SigCgt: sluice has its own SIGTERM handler now
    mask=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null || true)
    if [[ -n $mask ]] && (((0x$mask >> 14) & 1)); then
        caught=1
        break
    fi
    sleep 0.05
done
check_eq "early SIGTERM: sluice catches SIGTERM while it starts" "$caught" 1
kill -TERM "$pid"
sleep 0.2
cat "$SRC/conf/default.ini" >slow.ini
set +e
wait "$pid"
rc=$?
set -e
check_eq "early SIGTERM: exit status 3 (interrupted)" "$rc" 3
check_eq "early SIGTERM: the report says interrupted" "$(jq -r .interrupted early.json)" true
check_eq "early SIGTERM: nothing stored" "$(jq -r .documents.stored early.json)" 0
check_contains "early SIGTERM: it says so" "$(cat early.err)" "interrupted before the first document"

finish
