#!/usr/bin/env bash
# tests/providers-e2e/fatal_midrun.sh - a provider that starts refusing the
# key (401) in the middle of a run (issue 17: the run said "stopping the
# run", then sent each queued request one per 30 s breaker cooldown and
# exited 2, "nothing was ingested", although documents were stored):
#   - what was in flight or queued fails at once with the reason (what was
#     not started is left for the next run), nothing waits out a cooldown,
#     and the run ends in seconds;
#   - the documents stored before stay stored, and the exit status is 1 (a
#     partial ingestion), with "stopped:" and the 401 in the report;
#   - the key is never printed.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

key="sk-fatal-$$-$RANDOM"
export OPENAI_API_KEY=$key
n=200
bash "$SRC/bench/gen_corpus.sh" "$n" corpus 3000 13 >/dev/null

openai_ini fatal.ini 'max_documents = 8'

# 8 documents in flight, 300 ms an answer: 200 documents would take ~8 s.
start_fake p --api-key "$key" --latency-ms 300 --latency-dist fixed
t0=$(now_ms)
set +e
timeout -k 5 60 "$SLUICE" -c fatal.ini --set "summarizer.base_url=${URL[p]}/v1" \
    --set "embedder.base_url=${URL[p]}/v1" run --json corpus >run.json 2>run.err &
pid=$!
set -e
# once some documents are stored, the provider stops taking the key
for ((i = 0; i < 100; i++)); do
    sleep 0.1
    [[ -f .sluice/store.db ]] && (($(sql .sluice/store.db 'SELECT count(*) FROM documents;' 2>/dev/null || echo 0) >= 5)) && break
done
fake_config p '{"api_key": "sk-some-other-key"}'
set +e
wait "$pid"
rc=$?
set -e
t1=$(now_ms)
OUT=$(cat run.json)
ERR=$(cat run.err)
stored=$(json .documents.stored)
check_eq "401 mid-run: exit status 1 (some were stored)" "$rc" 1
check_gt "401 mid-run: documents stored before the refusal" "$stored" 4
check "401 mid-run: not everything was stored ($stored of $n)" test "$stored" -lt "$n"
# the documents in flight fail with the reason; those not yet started are
# left for the next run, as after an interruption
failed=$(json .documents.failed)
check_gt "401 mid-run: the documents in flight failed" "$failed" 0
check "401 mid-run: no more than were in flight failed ($failed)" test "$failed" -le 8
check_contains "401 mid-run: the report says it stopped, and why" "$(json .fatal // empty)$OUT$ERR" "401"
check_eq "401 mid-run: every failure says 401 or that the run was stopped" \
    "$(json '[.failed[] | select(.reason | test("401|stopped by a fatal error") | not)] | length')" 0
# a breaker cooldown (30 s) per queued request would take minutes
check "401 mid-run: the run ended in seconds ($((t1 - t0)) ms)" test "$((t1 - t0))" -lt 20000
check_eq "401 mid-run: the store holds what was reported stored" \
    "$(sql .sluice/store.db 'SELECT count(*) FROM documents;')" "$stored"
check_lacks "401 mid-run: the key is never printed" "$OUT$ERR" "$key"

finish
