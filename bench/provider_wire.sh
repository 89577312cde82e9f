#!/usr/bin/env bash
# bench/provider_wire.sh - what the provider saw against what sluice reports,
# and what rpm set at the provider's limit costs (issue 17), on the fake
# provider (tests/fake-provider).
#
#   bench/provider_wire.sh [BUILD_DIR]            (default: build)
#
# Table 1, resends: DOCS (60) documents summarised and embedded against a
# fake that drops a share of the requests arriving on kept-alive connections
# (--fault-close-reused P: it reads the request, counts it, closes the
# connection unanswered, and libcurl resends it). For P in 0, 0.1 and 0.3:
# the requests the fake saw, the requests the report says (resends
# included), the resends, and the wall time.
#
# Table 2, rpm at the limit: RPM_DOCS (45) summaries against a fake that
# allows LIMIT (30) requests in any 60 s (--rpm-window), with sluice's rpm
# unset, equal to the limit, and twice the limit: wall time, the fake's
# 429s and its peak per minute. Each run takes a minute or more.
#
# Not run in CI: timings are for people.
set -euo pipefail
B=$(realpath "${1:-build}")
SRC=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=$B/sluice FAKE=$B/tests/fake-provider/fake-provider
DOCS=${DOCS:-60} RPM_DOCS=${RPM_DOCS:-45} LIMIT=${LIMIT:-30}
WORK=$(mktemp -d /tmp/sluice-bench-wire.XXXXXX)
# the fakes and the pipeline are the provider tests' (tests/providers-e2e/fake.sh)
T=$WORK
source "$SRC/tests/providers-e2e/fake.sh" "$SLUICE" "$SRC" "$FAKE"
trap 'stop_fakes; rm -rf "$WORK"' EXIT
export OPENAI_API_KEY=sk-bench
ms() { echo $(($(date +%s%N) / 1000000)); }
openai_ini "$WORK/w.ini"
bash "$SRC/bench/gen_corpus.sh" "$DOCS" "$WORK/docs" 3000 21 >/dev/null
bash "$SRC/bench/gen_corpus.sh" "$RPM_DOCS" "$WORK/rdocs" 800 22 >/dev/null

echo "resends: $DOCS documents, 2 calls at a time per provider"
printf '%-10s %12s %15s %9s %8s\n' "P" "fake saw" "report says" "resends" "wall s"
for p in 0 0.1 0.3; do
    start_fake "c$p" --fault-close-reused "$p" --seed 4
    u=${URL[c$p]}
    d=$WORK/run-$p && mkdir -p "$d" && cd "$d"
    t0=$(ms)
    "$SLUICE" -c "$WORK/w.ini" --set "summarizer.base_url=$u/v1" --set "embedder.base_url=$u/v1" \
        --set summarizer.max_concurrency=2 --set embedder.max_concurrency=2 run --json "$WORK/docs" >r.json 2>/dev/null || true
    t1=$(ms)
    printf '%-10s %12s %15s %9s %8.1f\n' "$p" "$(curl -sf "$u/_stats" | jq .requests)" \
        "$(jq '[.providers[].requests] | add' r.json)" "$(jq '[.providers[].resends] | add' r.json)" \
        "$(echo "($t1 - $t0) / 1000" | bc -l)"
done

echo
echo "rpm against a provider allowing $LIMIT requests in any 60 s: $RPM_DOCS summaries"
printf '%-16s %8s %6s %12s\n' "sluice rpm" "wall s" "429s" "peak/minute"
for rpm in 0 "$LIMIT" $((2 * LIMIT)); do
    start_fake "w$rpm" --rpm "$LIMIT" --rpm-window
    start_fake "e$rpm"
    u=${URL[w$rpm]} e=${URL[e$rpm]}
    d=$WORK/rpm-$rpm && mkdir -p "$d" && cd "$d"
    t0=$(ms)
    "$SLUICE" -c "$WORK/w.ini" --set "summarizer.base_url=$u/v1" --set "embedder.base_url=$e/v1" \
        --set "summarizer.rpm=$rpm" --set sluice.retries=30 run --json "$WORK/rdocs" >r.json 2>/dev/null || true
    t1=$(ms)
    s=$(curl -sf "$u/_stats")
    printf '%-16s %8.1f %6s %12s\n' "$([[ $rpm == 0 ]] && echo unset || echo "$rpm")" \
        "$(echo "($t1 - $t0) / 1000" | bc -l)" "$(jq '.status["429"] // 0' <<<"$s")" "$(jq .peak_minute <<<"$s")"
done
