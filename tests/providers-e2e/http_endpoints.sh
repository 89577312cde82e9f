#!/usr/bin/env bash
# tests/providers-e2e/http_endpoints.sh - `sluice run --listen` serves
# /metrics, /health, /ready, /query and a status page while a run against
# the fake provider (slow answers, 429s when too many calls are in flight)
# lasts, and [sluice] listen_linger keeps serving once it ended:
#   - /metrics mid-run and at the end is valid Prometheus text (promtool);
#     every counter of the mid-run scrape is at most the final one;
#   - the final scrape agrees exactly with the run's --json report: the
#     report is complete when the run ends (listen_linger starts after it is
#     printed), and /metrics reads the same sl_report, so counters are equal
#     integers and seconds are the same doubles (both printed %.17g);
#   - /health 200, /ready 200 {"ready":true}; /query answers the bytes
#     `sluice query --json` prints;
#   - 404 for other paths, 405 for POST, 414 for a 5000-byte target, 400 for
#     500 KB of headers, and the 65th open connection is closed at once;
#   - the status page in headless Chromium shows every stage (its script
#     ran); the screenshot is kept and its path printed;
#   - SIGTERM during the linger ends the process with the run's status;
#   - a bad [sluice] listen is refused with file and line.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

for tool in promtool chromium jq curl; do
    command -v $tool >/dev/null || {
        echo "FAIL: $tool is not installed (scripts/deps.sh installs it)" >&2
        exit 1
    }
done

key="sk-http-$$-$RANDOM"
export OPENAI_API_KEY=$key
# 300 ms an answer, 429 beyond 3 calls in flight: the run lasts seconds and
# counts retries and 429s; 20 retries so pacing never fails a document
start_fake prov --api-key "$key" --latency-ms 400 --latency-dist fixed --max-concurrent 3
openai_ini run.ini 'retries = 20' 'retry_base = 50ms' 'retry_max = 500ms'
bash "$SRC/bench/gen_corpus.sh" 30 docs 1500 11 >/dev/null
sets=(--set "summarizer.base_url=${URL[prov]}/v1" --set "embedder.base_url=${URL[prov]}/v1"
    --set summarizer.max_concurrency=3 --set embedder.max_concurrency=2)

# --- a bad address is a configuration error with file and line ---
openai_ini bad.ini 'listen = localhost-9464'
sl -c bad.ini "${sets[@]}" run docs
check_eq "bad listen: exit status" "$RC" 2
check_contains "bad listen: file, line and key" "$ERR" 'bad\.ini:[0-9]+.*\[sluice\] listen: .*HOST:PORT'

# --- the run, serving on a free port ---
set +e
timeout -k 10 "$SLUICE_TIMEOUT" "$SLUICE" -v -c run.ini "${sets[@]}" --set sluice.listen_linger=300s \
    run --json --listen 127.0.0.1:0 docs </dev/null >report.json 2>run.err &
pid=$!
set -e
port=
for ((i = 0; i < 600; i++)); do
    port=$(sed -n 's|.*serving http://127\.0\.0\.1:\([0-9][0-9]*\)/.*|\1|p' run.err | head -1)
    [[ -n $port ]] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
done
if [[ -z $port ]]; then
    fail "sluice did not say where it serves: $(tail -c 2000 run.err)"
    finish
fi
base=http://127.0.0.1:$port
echo "serving on $base"

metric() { # metric FILE NAME{LABELS}: the value, or "absent"
    awk -v k="$2" 'substr($0, 1, length(k) + 1) == k " " { print $NF; found = 1 } END { if (!found) print "absent" }' "$1"
}

# mid-run: poll until the provider was called while the run is still active
# (documents are stored near the end: their summaries and embeddings overlap)
mid=
for ((i = 0; i < 1200; i++)); do
    curl -sf --max-time 10 "$base/metrics" >scrape.txt || true
    if [[ $(metric scrape.txt sluice_run_active) == 1 ]] &&
        [[ $(metric scrape.txt 'sluice_provider_requests_total{provider="summarizer",plugin="llm-openai"}') =~ ^[1-9] ]]; then
        mid=1
        cp scrape.txt mid.txt
        break
    fi
    [[ $(metric scrape.txt sluice_run_active) == 0 ]] && break
    sleep 0.1
done
check_eq "a scrape while the run is active, with provider calls made" "$mid" 1
if [[ -n $mid ]]; then
    check "mid-run /metrics passes promtool check metrics" promtool check metrics <mid.txt
    check_eq "mid-run /status.json says running" "$(curl -sf "$base/status.json" | jq -r .running)" true
fi
check_eq "/health while running" "$(curl -s -o /dev/null -w '%{http_code}' "$base/health")" 200
check_eq "/ready while running" "$(curl -s -w '%{http_code}' "$base/ready" | tr -d '\n')" '{"ready":true}200'

# the end: the run is over when /metrics says so; the report is printed by then
for ((i = 0; i < 3000; i++)); do
    curl -sf --max-time 10 "$base/metrics" >final.txt || true
    [[ $(metric final.txt sluice_run_active) == 0 ]] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
check_eq "the run ended and the service still answers" "$(metric final.txt sluice_run_active)" 0
check "final /metrics passes promtool check metrics" promtool check metrics <final.txt
OUT=$(cat report.json)
check_eq "the run stored every document" "$(json .documents.stored)" 30
check_gt "the fake provider answered some calls 429" "$(json '[.providers[].throttled] | add')" 0

# every counter of the final scrape equals the report's number
expect() { # lines "METRIC{LABELS} VALUE" from the report
    jq -r '
      def s: "stage=\"\(.name)\",plugin=\"\(.plugin)\",executor=\"\(.executor)\"";
      def p: "provider=\"\(.name)\",plugin=\"\(.plugin)\"";
      (.documents | to_entries[] | select(.key != "total" and .key != "children")
        | "sluice_documents_total{outcome=\"\(.key)\"} \(.value)"),
      "sluice_documents_found_inside_total \(.documents.children)",
      "sluice_run_documents \(.documents.total)",
      "sluice_chunks_stored_total \(.chunks)",
      "sluice_read_bytes_total \(.bytes)",
      "sluice_inflight_peak_bytes \(.peak_inflight_bytes)",
      "sluice_memory_budget_bytes \(.memory_budget_bytes)",
      "sluice_worker_restarts_total \(.worker_restarts)",
      "sluice_run_elapsed_seconds \(.wall_s)",
      (.stages[] |
        "sluice_stage_items_total{\(s)} \(.items)",
        "sluice_stage_calls_total{\(s)} \(.calls)",
        "sluice_stage_busy_seconds_total{\(s)} \(.busy_s)",
        "sluice_stage_queued_seconds_total{\(s)} \(.wait_s)",
        "sluice_stage_retries_total{\(s)} \(.retries)",
        "sluice_stage_failures_total{\(s)} \(.failures)"),
      (.providers[] |
        "sluice_provider_requests_total{\(p)} \(.requests)",
        "sluice_provider_retries_total{\(p)} \(.retries)",
        "sluice_provider_failures_total{\(p)} \(.failures)",
        "sluice_provider_throttled_total{\(p)} \(.throttled)",
        "sluice_provider_tokens_total{\(p),direction=\"input\"} \(.tokens_in)",
        "sluice_provider_tokens_total{\(p),direction=\"output\"} \(.tokens_out)",
        "sluice_provider_cost_total{\(p)} \(.cost)",
        "sluice_provider_breaker_opens_total{\(p)} \(.breaker_opens)",
        "sluice_provider_breaker_state{\(p)} \(if .breaker == "open" then 2 elif .breaker == "half-open" then 1 else 0 end)",
        "sluice_provider_limiter_wait_seconds_total{\(p)} \(.limit_wait_s)"),
      (.thread_cpu[] | "sluice_thread_cpu_seconds_total{thread=\"\(.name)\"} \(.cpu_s)")' report.json
}
expect >expected.txt
compared=0 differ=0
while IFS= read -r line; do
    name=${line% *} want=${line##* } got=$(metric final.txt "${line% *}")
    compared=$((compared + 1))
    # numbers compared as doubles: the JSON's and the scrape's text of one value
    if [[ $got == absent ]] || [[ $(jq -n --arg a "$got" --arg b "$want" '($a | tonumber) == ($b | tonumber)') != true ]]; then
        fail "final /metrics $name = $got, the --json report says $want"
        differ=$((differ + 1))
    fi
done <expected.txt
check_gt "metrics compared with the report" "$compared" 40
check_gt "the threads' CPU among them" "$(grep -c '^sluice_thread_cpu_seconds_total{thread="sqlite-writer"}' final.txt)" 0
echo "compared $compared metrics with the --json report, $differ differ"

# the batch histogram's shape (no batching stage here: none is emitted)
check_eq "no batching stage, no batch histogram series" "$(grep -c '^sluice_batch_size_bucket' final.txt)" 0

# counters only grow: every mid-run counter is at most the final one
if [[ -n $mid ]]; then
    bad=$(awk 'NR == FNR { if ($1 !~ /^#/) v[substr($0, 1, length($0) - length($NF) - 1)] = $NF; next }
               $1 !~ /^#/ { k = substr($0, 1, length($0) - length($NF) - 1)
                 if (k ~ /_total(\{|$)/ && (k in v) && v[k] + 0 > $NF + 0) print k, v[k], $NF }' mid.txt final.txt)
    check_eq "no counter went down between the mid-run and the final scrape" "$bad" ""
    check_gt "counters compared mid-run" "$(grep -c '^sluice_[a-z_]*_total' mid.txt)" 20
fi

# /query answers what `sluice query --json` prints
curl -s -o query.json -w '%{http_code}' "$base/query?q=rotating%20keys&k=3" >query.code
sl -c run.ini "${sets[@]}" query --json -k 3 "rotating keys"
check_eq "sluice query --json: exit status" "$RC" 0
check_eq "/query status" "$(cat query.code)" 200
check_eq "/query has 3 hits" "$(jq length query.json)" 3
check "/query answers the same bytes as sluice query --json" cmp -s query.json .out
check_eq "/query without q is 400" "$(curl -s -o /dev/null -w '%{http_code}' "$base/query")" 400
check_eq "/query with k=0 is 400" "$(curl -s -o /dev/null -w '%{http_code}' "$base/query?q=x&k=0")" 400
# mode= and rrf_k= as `sluice query --mode` and `--rrf-k`
for m in keyword vector; do
    curl -s -o "query-$m.json" "$base/query?q=rotating%20keys&k=3&mode=$m"
    sl -c run.ini "${sets[@]}" query --json -k 3 --mode "$m" "rotating keys"
    check "/query mode=$m answers the same bytes as sluice query --mode $m" cmp -s "query-$m.json" .out
done
check_eq "/query mode=keyword: keyword ranks only" "$(jq '[.[] | select(.vector != null)] | length' query-keyword.json)" 0
curl -s -o query-k1.json "$base/query?q=rotating%20keys&k=3&rrf_k=1"
sl -c run.ini "${sets[@]}" query --json -k 3 --rrf-k 1 "rotating keys"
check "/query rrf_k=1 answers the same bytes as sluice query --rrf-k 1" cmp -s query-k1.json .out
check_eq "/query with mode=fuzzy is 400" "$(curl -s -o /dev/null -w '%{http_code}' "$base/query?q=x&mode=fuzzy")" 400
check_eq "/query with rrf_k=0 is 400" "$(curl -s -o /dev/null -w '%{http_code}' "$base/query?q=x&rrf_k=0")" 400
# vector_weight= and keyword_weight= as --vector-weight and --keyword-weight
curl -s -o query-w.json "$base/query?q=rotating%20keys&k=3&vector_weight=3&keyword_weight=0.5"
sl -c run.ini "${sets[@]}" query --json -k 3 --vector-weight 3 --keyword-weight 0.5 "rotating keys"
check "/query vector_weight=3&keyword_weight=0.5 answers the same bytes as sluice query" cmp -s query-w.json .out
check_eq "/query weights: the fused score is 3/(60 + vector rank) + 0.5/(60 + keyword rank)" \
    "$(jq '[.[] | ((if .vector then 3 / (60 + .vector.rank) else 0 end)
              + (if .keyword then 0.5 / (60 + .keyword.rank) else 0 end) - .score)
              | select(. > 1e-12 or . < -1e-12)] | length' query-w.json)" 0
check_eq "/query with keyword_weight=-1 is 400" \
    "$(curl -s -o /dev/null -w '%{http_code}' "$base/query?q=x&keyword_weight=-1")" 400
check_eq "/query with vector_weight=x is 400" \
    "$(curl -s -o /dev/null -w '%{http_code}' "$base/query?q=x&vector_weight=x")" 400

# what is not served
check_eq "unknown path: 404" "$(curl -s -o /dev/null -w '%{http_code}' "$base/admin")" 404
check_eq "POST /metrics: 405" "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x=1 "$base/metrics")" 405
check_contains "405 names what is allowed" "$(curl -s -D - -o /dev/null -X DELETE "$base/health")" '^allow: GET'
long=$(head -c 5000 /dev/zero | tr '\0' a)
check_eq "a 5000-byte target: 414" "$(curl -s -o /dev/null -w '%{http_code}' "$base/query?q=$long")" 414
head -c 500000 /dev/zero | tr '\0' a | sed 's/^/X-Big: /' >big.hdr
check_eq "500 KB of headers: 400" "$(curl -s -o /dev/null -w '%{http_code}' -H @big.hdr "$base/health")" 400
# 64 idle connections are the most: the next one is closed before an answer
fds=()
for ((i = 0; i < 64; i++)); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$port"
    fds+=("$fd")
done
for ((i = 0; i < 100; i++)); do # the 64 are accepted in order before the next
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$base/health" || true)
    [[ $code == 000 ]] && break
    sleep 0.05
done
check_eq "the 65th connection is closed without an answer" "$code" 000
for fd in "${fds[@]}"; do exec {fd}>&-; done
for ((i = 0; i < 100; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$base/health" || true)
    [[ $code == 200 ]] && break
    sleep 0.05
done
check_eq "once they close, connections are taken again" "$code" 200

# the status page in a real browser: its script fetched status.json and drew the stages
art=${SLUICE_TEST_TMP:-/tmp}/artifacts
mkdir -p "$art"
shot=$art/status_page.png
rm -f "$shot"
browser() {
    timeout -k 5 120 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --user-data-dir="$T/chromium" --window-size=1280,1000 --virtual-time-budget=5000 "$@" 2>>chromium.err
}
browser --dump-dom "$base/" >dom.html || true
for stage in $(jq -r '.stages[].name' report.json); do
    check_contains "the page shows stage $stage" "$(cat dom.html)" "<td class=\"l\">$stage</td>"
done
check_contains "the page shows the provider" "$(cat dom.html)" '<td class="l">summarizer</td>'
check_contains "the page says the run finished" "$(cat dom.html)" 'id="state" class="pill done">finished<'
check_contains "the page shows the documents" "$(cat dom.html)" '30 of 30 documents: 30 stored'
browser --screenshot="$shot" "$base/" >/dev/null || true
check "the screenshot was written" test -s "$shot"
check_eq "the screenshot is a PNG" "$(head -c 8 "$shot" | od -An -tx1 | tr -d ' \n')" 89504e470d0a1a0a
echo "status page screenshot: $shot"

# SIGTERM ends the linger; the exit status is the run's (sent to sluice
# itself: timeout(1) would pass it on to its whole process group as well)
kill -TERM "$(pgrep -P $pid)"
set +e
wait $pid
rc=$?
set -e
check_eq "SIGTERM during the linger: the run's exit status" "$rc" 0
check_contains "the report was printed before the linger" "$(cat report.json)" '"stored": 30'

finish
