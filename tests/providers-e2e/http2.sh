#!/usr/bin/env bash
# tests/providers-e2e/http2.sh - HTTP/2 when the server offers it, HTTP/1.1
# kept alive when it does not, and [stage] ca_file for a private CA.
#
# A TLS front (tls_front.mjs, Node's own http2 and https) answers https on
# 127.0.0.1 with a certificate made here, and passes each request to the
# fake provider over plain HTTP/1.1. It counts the TLS connections it
# accepted and the requests that came as HTTP/2 streams. The report's
# providers[].connections and http2_requests must agree with it:
#   - HTTP/2 offered (ALPN h2): every answer over HTTP/2, and the calls
#     multiplexed over far fewer connections than calls;
#   - HTTP/1.1 only: no HTTP/2 answer, connections kept alive (fewer than
#     calls) and several at once (the calls still overlap);
#   - plain http to the fake itself: HTTP/1.1, and the report's connections
#     are the ones the fake accepted;
#   - `sluice check --connect` says which HTTP version each provider spoke;
#   - without ca_file the self-signed front stops the run at the first
#     call, and the message names ca_file; a ca_file that is missing or
#     holds no certificate is refused before any document is read.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

command -v node >/dev/null || fail "node is not installed (scripts/deps.sh installs nodejs)"
command -v openssl >/dev/null || fail "openssl is not installed (scripts/deps.sh installs it)"

key="sk-http2-$$-$RANDOM"
export OPENAI_API_KEY=$key
openai_ini h.ini
N=30
bash "$SRC/bench/gen_corpus.sh" "$N" docs 6000 7 >/dev/null

# a self-signed certificate for 127.0.0.1: its own CA
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout front.key \
    -out front.pem -days 2 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" 2>openssl.err ||
    fail "openssl could not make a certificate: $(cat openssl.err)"

start_fake p --api-key "$key" --llm-latency-ms 100 --embed-latency-ms 30 --latency-dist fixed

declare -A FRONT=() FRONT_PID=()
stop_fronts() {
    local n
    for n in "${!FRONT_PID[@]}"; do
        kill -TERM "${FRONT_PID[$n]}" 2>/dev/null || true
        wait "${FRONT_PID[$n]}" 2>/dev/null || true
    done
}
# shellcheck disable=SC2154 # rc is the trap's own
trap 'rc=$?; stop_fronts; stop_fakes; (exit $rc); cleanup' EXIT

# start_front NAME [--http1-only]: FRONT[NAME] is its https base URL
start_front() {
    local name=$1 port
    shift
    node "$HERE/tls_front.mjs" --backend "${URL[p]}" --cert front.pem --key front.key "$@" \
        >"front-$name.out" 2>"front-$name.err" &
    FRONT_PID[$name]=$!
    port=$(port_from "front-$name.out" '^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$' "${FRONT_PID[$name]}")
    [[ -n $port ]] || fail "the TLS front $name did not start: $(cat "front-$name.err")"
    FRONT[$name]=https://127.0.0.1:$port
}
front_stats() {
    curl -sf --max-time 10 --cacert front.pem "${FRONT[$1]}/_front_stats" | jq -r "$2" 2>/dev/null ||
        echo INVALID
}

start_front h2
start_front h1 --http1-only

# run BASE_URL [--set ...]: both providers at BASE_URL, trusting the front
run_at() {
    local base=$1
    shift
    rm -rf .sluice
    sl -c h.ini --set "summarizer.base_url=$base/v1" --set "embedder.base_url=$base/v1" "$@" run --json docs
}
sums() { echo $(($(provider "$1" summarizer) + $(provider "$1" embedder))); }

# --- HTTP/2 offered ---
run_at "${FRONT[h2]}" --set summarizer.ca_file=front.pem --set embedder.ca_file=front.pem
check_eq "h2: exit status" "$RC" 0
[[ $RC -eq 0 ]] || echo "stderr: $(tail -c 2000 <<<"$ERR")" >&2
check_eq "h2: every document stored" "$(json .documents.stored)" "$N"
calls=$(sums requests)
check_gt "h2: calls made" "$calls" "$N"
check_eq "h2: every answer came over HTTP/2 (the report)" "$(sums http2_requests)" "$calls"
check_eq "h2: the front saw every call as an HTTP/2 stream" "$(front_stats h2 .http2_requests)" "$calls"
conns=$(sums connections)
echo "h2: $calls calls over $conns connections"
# the front's own count less its two /_front_stats calls (one connection each)
check_eq "h2: the report's connections are the ones the front accepted" \
    "$conns" "$(($(front_stats h2 .connections) - 2))"
check_gt "h2: at least one connection" "$conns" 0
check_gt "h2: calls multiplexed: a connection carried 4 calls or more on average" "$calls" "$((4 * conns - 1))"

# --- HTTP/1.1 only --- (four calls at a time per provider, so that
# connections are reused: with every call at once each needs its own)
run_at "${FRONT[h1]}" --set summarizer.ca_file=front.pem --set embedder.ca_file=front.pem \
    --set summarizer.max_concurrency=4 --set embedder.max_concurrency=4
check_eq "h1: exit status" "$RC" 0
check_eq "h1: every document stored" "$(json .documents.stored)" "$N"
calls=$(sums requests)
conns=$(sums connections)
echo "h1: $calls calls over $conns connections"
check_eq "h1: no answer over HTTP/2" "$(sums http2_requests)" 0
check_eq "h1: the front saw no HTTP/2 stream" "$(front_stats h1 .http2_requests)" 0
check_eq "h1: the front saw every call" "$(front_stats h1 .requests)" "$calls"
check_eq "h1: the report's connections are the ones the front accepted" \
    "$conns" "$(($(front_stats h1 .connections) - 3))"
check_gt "h1: calls overlapped on several connections" "$conns" 1
check_gt "h1: connections kept alive: fewer connections than calls" "$calls" "$conns"

# --- plain http to the fake: the report's connections are the fake's ---
fake_reset p
before=$(fake_stats p .connections.total)
run_at "${URL[p]}"
check_eq "plain: exit status" "$RC" 0
check_eq "plain: no answer over HTTP/2 (h2 is asked for over TLS only)" "$(sums http2_requests)" 0
# less the connection of the /_stats call that reads the count
check_eq "plain: the report's connections are the ones the fake accepted" \
    "$(sums connections)" "$(($(fake_stats p .connections.total) - before - 1))"

# --- check --connect names the version each provider answered in ---
for t in h2 h1; do
    sl -c h.ini --set "summarizer.base_url=${FRONT[$t]}/v1" --set "embedder.base_url=${FRONT[$t]}/v1" \
        --set summarizer.ca_file=front.pem --set embedder.ca_file=front.pem check --connect --json
    check_eq "check --connect, $t: exit status" "$RC" 0
    want=$([[ $t == h2 ]] && echo "2.0 2.0" || echo "1.1 1.1")
    check_eq "check --connect, $t: the providers' HTTP versions" \
        "$(json '[.connections[] | select(.role != "sink") | .http_version] | join(" ")')" "$want"
done
sl -c h.ini --set "summarizer.base_url=${FRONT[h2]}/v1" --set "embedder.base_url=${FRONT[h2]}/v1" \
    --set summarizer.ca_file=front.pem --set embedder.ca_file=front.pem check --connect
check_contains "check --connect, text: the http column says h2" "$OUT" "summarizer .* 200 h2 "

# --- a private CA not trusted: the run stops at once, naming ca_file ---
run_at "${FRONT[h2]}"
check_ne "untrusted: the run fails" "$RC" 0
check_eq "untrusted: nothing stored" "$(json .documents.stored)" 0
check_contains "untrusted: the message says what is wrong" "$ERR" "certificate"
check_contains "untrusted: ... and which option fixes it" "$ERR" "ca_file"

# --- ca_file refused up front ---
b=$(front_stats h2 .connections)
printf 'not a certificate\n' >notpem.txt
run_at "${FRONT[h2]}" --set summarizer.ca_file=notpem.txt
check_ne "not PEM: refused" "$RC" 0
check_contains "not PEM: the message names the option and the file" "$ERR" \
    "\\[summarizer\\] ca_file: .*/notpem\\.txt holds no PEM certificate"
run_at "${FRONT[h2]}" --set embedder.ca_file=missing.pem
check_ne "missing: refused" "$RC" 0
check_contains "missing: the message names the option, the file and why" "$ERR" \
    "\\[embedder\\] ca_file: .*/missing\\.pem: No such file or directory"
check_eq "refused before any call: the front saw no connection but this /_front_stats call" \
    "$(front_stats h2 .connections)" "$((b + 1))"

finish
