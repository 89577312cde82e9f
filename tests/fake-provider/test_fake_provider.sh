#!/usr/bin/env bash
# test_fake_provider.sh - drives the fake provider over real HTTP with the
# curl CLI and jq: every endpoint's shape, deterministic outputs, auth, rate
# limits, each injected fault, the counters of /_stats, keep-alive,
# pipelining, chunked bodies, the blocking benchmark client, and a clean stop
# on SIGTERM. Run by ctest as
#
#   test_fake_provider.sh FAKE_PROVIDER BLOCKING_CLIENT
#
# A failing check is counted and the script goes on, so one run shows every
# broken check; the exit status is the verdict. Servers are started on port 0
# (the first stdout line says which port) and killed by pid at exit.
set -uo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 FAKE_PROVIDER BLOCKING_CLIENT" >&2
    exit 2
fi
FP=$(realpath "$1")
BC=$(realpath "$2")
for tool in curl jq base64 od awk timeout; do
    command -v "$tool" >/dev/null || {
        echo "FAIL: $tool is not installed (scripts/deps.sh installs it)" >&2
        exit 1
    }
done

tmp_base=${SLUICE_TEST_TMP:-${TMPDIR:-/tmp}}
mkdir -p "$tmp_base"
T=$(mktemp -d "$tmp_base/fake-provider.XXXXXX")
servers=()
cleanup() {
    local rc=$?
    for p in "${servers[@]}"; do
        kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT

failures=0
checks=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
# eq WHAT ACTUAL EXPECTED
eq() {
    checks=$((checks + 1))
    [[ $2 == "$3" ]] || fail "$1: got '$2', expected '$3'"
}
# ok WHAT COMMAND...: the command must succeed
ok() {
    local what=$1
    shift
    checks=$((checks + 1))
    "$@" || fail "$what"
}

# start NAME ARGS...: starts a server; sets PID and URL.
start() {
    local name=$1
    shift
    "$FP" "$@" >"$T/$name.out" 2>"$T/$name.err" &
    PID=$!
    servers+=("$PID")
    local line=""
    for _ in $(seq 100); do
        line=$(head -n1 "$T/$name.out" 2>/dev/null)
        [[ -n $line ]] && break
        sleep 0.1
    done
    checks=$((checks + 1))
    if [[ ! $line =~ ^listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]]; then
        fail "$name: first stdout line '$line' is not 'listening on 127.0.0.1:PORT'"
        cat "$T/$name.err" >&2
        exit 1
    fi
    URL="http://127.0.0.1:${BASH_REMATCH[1]}"
}

# post URL BODY [CURL ARGS...]: prints the body and leaves the status in $T/code.
post() {
    local url=$1 body=$2
    shift 2
    curl -sS -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$body" "$@" "$url" \
        >"$T/code" 2>"$T/curl.err"
    cat "$T/body"
}
code() { cat "$T/code"; }
stats() { curl -sS "$1/_stats"; }
config() { curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$2" "$1/_config"; }

# ---------------------------------------------------------------- formats
start main --seed 7
M=$URL
words="one two three four five six seven eight nine ten eleven twelve thirteen fourteen"

r=$(post "$M/v1/chat/completions" \
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"old question\"},{\"role\":\"assistant\",\"content\":\"old answer\"},{\"role\":\"user\",\"content\":\"$words\"}]}")
eq "openai chat status" "$(code)" 200
eq "openai chat content is Summary: + 12 words of the last user message" "$(jq -r '.choices[0].message.content' <<<"$r")" \
    "Summary: one two three four five six seven eight nine ten eleven twelve"
eq "openai chat object" "$(jq -r '.object + " " + .choices[0].message.role + " " + .choices[0].finish_reason' <<<"$r")" \
    "chat.completion assistant stop"
# 2 + 2 + 2 + 14 = 20 words in -> (20*4+2)/3 = 27; 13 words out -> 18
eq "openai chat usage" "$(jq -c '[.usage.prompt_tokens, .usage.completion_tokens, .usage.total_tokens]' <<<"$r")" "[27,18,45]"

r=$(post "$M/v1/chat/completions" '{"model":"m","max_tokens":4,"messages":[{"role":"user","content":[{"type":"text","text":"alpha beta gamma delta"}]}]}')
eq "openai chat max_tokens cuts the reply" "$(jq -r '.choices[0].message.content + "|" + .choices[0].finish_reason' <<<"$r")" \
    "Summary: alpha beta|length"
post "$M/v1/chat/completions" '{"model":"m","messages":[]}' >/dev/null
eq "openai chat with no messages is 400" "$(code)" 400
r=$(post "$M/v1/chat/completions" '{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}')
eq "openai chat stream:true is refused in OpenAI's error shape" "$(code) $(jq -r '.error.type' <<<"$r")" \
    "400 invalid_request_error"
r=$(post "$M/v1/chat/completions" '{"model": "m", "messages": [')
eq "invalid JSON gets OpenAI's error shape" "$(code) $(jq -r '.error | (.message | length > 0 | tostring) + " " + .type' <<<"$r")" \
    "400 true invalid_request_error"

r=$(post "$M/v1/embeddings" '{"model":"text-embedding-3-small","input":["the cat sat on the mat","the cat sat on a mat","quantum chromodynamics lattice"]}')
eq "openai embeddings status" "$(code)" 200
eq "openai embeddings shape" "$(jq -c '[.object, (.data | length), [.data[].index], [.data[].embedding | length], .model]' <<<"$r")" \
    '["list",3,[0,1,2],[1536,1536,1536],"text-embedding-3-small"]'
# 6 + 6 + 3 words -> 8 + 8 + 4 tokens (each input rounded on its own)
eq "openai embeddings usage" "$(jq -c '[.usage.prompt_tokens, .usage.total_tokens]' <<<"$r")" "[20,20]"
eq "embeddings are unit vectors" "$(jq '[.data[].embedding | map(. * .) | add | (. > 0.9999 and . < 1.0001)] | all' <<<"$r")" true
eq "texts sharing words are closer than unrelated ones" \
    "$(jq '[.data[].embedding] as [$a, $b, $c] | ([$a, $b] | transpose | map(.[0] * .[1]) | add) > ([$a, $c] | transpose | map(.[0] * .[1]) | add) + 0.3' <<<"$r")" true
v1=$(jq -c '.data[0].embedding' <<<"$r")
r=$(post "$M/v1/embeddings" '{"model":"text-embedding-3-small","input":"the cat sat on the mat"}')
eq "same model and text give the same vector" "$(jq -c '.data[0].embedding' <<<"$r")" "$v1"
r=$(post "$M/v1/embeddings" '{"model":"text-embedding-3-large","input":"the cat sat on the mat","dimensions":1536}')
checks=$((checks + 1))
[[ $(jq -c '.data[0].embedding' <<<"$r") != "$v1" ]] || fail "another model gives the same vector"
r=$(post "$M/v1/embeddings" '{"model":"m","input":["a b","c"],"dimensions":64}')
eq "dimensions is honoured" "$(jq -c '[.data[].embedding | length]' <<<"$r")" "[64,64]"
post "$M/v1/embeddings" '{"model":"m","input":""}' >/dev/null
eq "an empty input string is 400, as OpenAI answers" "$(code)" 400
post "$M/v1/embeddings" '{"model":"text-embedding-3-small","input":"x","dimensions":4000}' >/dev/null
eq "dimensions above the model's is 400" "$(code)" 400

rf=$(post "$M/v1/embeddings" '{"model":"m","input":"base sixty four","dimensions":32}')
rb=$(post "$M/v1/embeddings" '{"model":"m","input":"base sixty four","dimensions":32,"encoding_format":"base64"}')
jq -r '.data[0].embedding' <<<"$rb" | base64 -d >"$T/vec.bin"
eq "base64 embedding decodes to dimensions * 4 bytes" "$(wc -c <"$T/vec.bin")" 128
od -An -v -tf4 "$T/vec.bin" | tr -s ' ' '\n' | sed '/^$/d' >"$T/vec.b64"
jq -r '.data[0].embedding[]' <<<"$rf" >"$T/vec.float"
# shellcheck disable=SC2016 # awk program
ok "base64 floats (little-endian float32) equal the float encoding" \
    awk 'NR == FNR { a[FNR] = $1; n = FNR; next } { d = a[FNR] - $1; if (d < 0) d = -d; if (d > 1e-6) bad = 1; m = FNR }
         END { exit (bad || m != n || n != 32) }' "$T/vec.float" "$T/vec.b64"
post "$M/v1/embeddings" '{"model":"m","input":"x","encoding_format":"hex"}' >/dev/null
eq "an unknown encoding_format is 400" "$(code)" 400

post "$M/v1/messages" '{"model":"claude","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}' >"$T/r"
eq "anthropic without anthropic-version is 400 in Anthropic's shape" "$(code) $(jq -r '.type + " " + .error.type' "$T/r")" \
    "400 error invalid_request_error"
r=$(post "$M/v1/messages" \
    '{"model":"claude","max_tokens":100,"system":"you summarise","messages":[{"role":"user","content":[{"type":"text","text":"alpha beta"},{"type":"text","text":"gamma"}]}]}' \
    -H 'anthropic-version: 2023-06-01')
eq "anthropic messages" "$(code) $(jq -c '[.type, .role, .content[0].type, .content[0].text, .stop_reason, .usage.input_tokens, .usage.output_tokens]' <<<"$r")" \
    '200 ["message","assistant","text","Summary: alpha beta gamma","end_turn",7,6]'
post "$M/v1/messages" '{"model":"claude","messages":[{"role":"user","content":"hi"}]}' -H 'anthropic-version: 2023-06-01' >/dev/null
eq "anthropic without max_tokens is 400" "$(code)" 400

r=$(post "$M/api/chat" '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"red green blue"}]}')
eq "ollama chat" "$(code) $(jq -c '[.message.role, .message.content, .done, .prompt_eval_count, .eval_count]' <<<"$r")" \
    '200 ["assistant","Summary: red green blue",true,4,6]'
post "$M/api/chat" '{"model":"llama3.2","messages":[{"role":"user","content":"red green blue"}]}' >"$T/ndjson"
eq "ollama chat streams NDJSON when stream is not false" \
    "$(jq -sc '[length, (map(.message.content) | join("")), .[-1].done, .[0].done]' "$T/ndjson")" \
    '[5,"Summary: red green blue",true,false]'
r=$(post "$M/api/embed" '{"model":"nomic-embed-text","input":["one","two words"]}')
eq "ollama embed" "$(code) $(jq -c '[.model, (.embeddings | length), (.embeddings | map(length)), .prompt_eval_count]' <<<"$r")" \
    '200 ["nomic-embed-text",2,[768,768],5]'
r2=$(post "$M/api/embed" '{"model":"nomic-embed-text","input":"two words"}')
eq "ollama embed of one string is deterministic" "$(jq -c '.embeddings[0]' <<<"$r2")" "$(jq -c '.embeddings[1]' <<<"$r")"

r=$(curl -sS "$M/v1/models")
eq "openai models list" "$(jq -c '[.object, (.data | length > 0), .data[0].object]' <<<"$r")" '["list",true,"model"]'
r=$(curl -sS -o "$T/body" -w '%{http_code}' "$M/v1/nothing-here")
eq "unknown path is 404 with OpenAI's unknown_url" "$r $(jq -r '.error.code' "$T/body")" "404 unknown_url"
r=$(curl -sS -o /dev/null -w '%{http_code}' "$M/v1/embeddings")
eq "wrong method is 405" "$r" 405

# ---------------------------------------------------------------- HTTP
big=$(head -c 2000000 /dev/zero | tr '\0' 'a')
printf '{"model":"m","input":"%s big","dimensions":8}' "$big" >"$T/big.json"
r=$(curl -sS -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$T/big.json" "$M/v1/embeddings")
eq "a 2 MB body is read whole" "$r $(jq -c '.data[0].embedding | length' "$T/body")" "200 8"
r=$(curl -sS -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' --data-binary @"$T/big.json" "$M/v1/embeddings")
eq "a chunked request body is read" "$(jq -c '.data[0].embedding | length' <<<"$r")" 8
curl -sS -v -H 'Expect: 100-continue' -H 'Content-Type: application/json' \
    --data-binary '{"model":"m","input":"x","dimensions":2}' "$M/v1/embeddings" >"$T/body" 2>"$T/verbose"
ok "Expect: 100-continue gets 100 Continue" grep -q '< HTTP/1.1 100 Continue' "$T/verbose"
eq "and then the answer" "$(jq -c '.data[0].embedding | length' "$T/body")" 2

before=$(stats "$M" | jq '.connections.total')
curl -sS -o /dev/null -o /dev/null "$M/v1/models" "$M/v1/models"
after=$(stats "$M" | jq '.connections.total')
# two requests on one connection, plus the /_stats connection of each side
eq "keep-alive: two requests share one connection" "$((after - before))" 2

pbody='{"model":"m","input":"p","dimensions":3}'
exec 3<>"/dev/tcp/127.0.0.1/${M##*:}"
printf 'GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\nPOST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%sGET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
    "${#pbody}" "$pbody" >&3
timeout 10 cat <&3 >"$T/pipelined"
exec 3<&-
n=$(grep -a -o 'HTTP/1.1 200 OK' "$T/pipelined" | wc -l)
eq "pipelining: three 200 replies on one connection" "$n" 3
ids=$(grep -a -o -E 'req_fake[0-9]+' "$T/pipelined" | sed 's/req_fake//' | tr '\n' ' ')
ok "pipelining: replies come in request order ($ids)" awk -v s="$ids" 'BEGIN { n = split(s, a, " "); exit !(n == 3 && a[2] == a[1] + 1 && a[3] == a[2] + 1) }'
ok "pipelining: the embeddings reply sits second" awk 'BEGIN { RS = "HTTP/1.1 " } NR == 3 && /"object":"list","data":\[\{"object":"embedding"/ { found = 1 } END { exit !found }' "$T/pipelined"

# ---------------------------------------------------------------- stats and reset
curl -sS -X POST "$M/_reset" >/dev/null
s=$(stats "$M")
eq "/_reset zeroes the counters" "$(jq -c '[.requests, .in_flight, .tokens.input, .tokens.output, (.by_path | length), (.status | length)]' <<<"$s")" \
    "[0,0,0,0,0,0]"
post "$M/v1/chat/completions" '{"model":"m","messages":[{"role":"user","content":"a b c"}]}' >/dev/null
post "$M/v1/chat/completions" '{"model":"m","messages":[{"role":"user","content":"a b c"}]}' >/dev/null
post "$M/v1/embeddings" '{"model":"m","input":["a b c","d e f"]}' >/dev/null
post "$M/v1/embeddings" '{"model":"m","input":""}' >/dev/null
s=$(stats "$M")
eq "/_stats counts requests, paths, statuses and tokens" \
    "$(jq -c '[.requests, .by_path["/v1/chat/completions"], .by_path["/v1/embeddings"], .status["200"], .status["400"], .tokens.input, .tokens.output, .in_flight]' <<<"$s")" \
    "[4,2,2,3,1,16,12,0]"

# peak_concurrent: 50 requests at once, each held 1 s by the latency.
eq "/_config accepts latency" "$(config "$M" '{"latency-ms":1000}')" 200
# shellcheck disable=SC2046 # one word per URL
curl -s -Z --parallel-immediate --parallel-max 50 $(for _ in $(seq 50); do printf '%s ' "$M/v1/models"; done) \
    >/dev/null 2>&1
s=$(stats "$M")
ok "50 concurrent requests give peak_concurrent >= 40 (got $(jq .peak_concurrent <<<"$s"))" jq -e '.peak_concurrent >= 40 and .in_flight == 0' <<<"$s" >/dev/null
eq "/_config accepts latency 0" "$(config "$M" '{"latency_ms":0}')" 200

# ---------------------------------------------------------------- faults through /_config
eq "unknown /_config option is 400" "$(config "$M" '{"fault-typo":1}')" 400
eq "start-only option is refused at runtime" "$(config "$M" '{"port":1}')" 400
eq "probabilities above 1 in sum are refused" "$(config "$M" '{"fault-5xx":0.7,"fault-reset":0.7}')" 400
eq "a refused /_config changes nothing" "$(curl -sS "$M/_config" | jq -c '[.["fault-5xx"], .["fault-reset"]]')" "[0,0]"
curl -sS -X POST "$M/_reset" >/dev/null
E='{"model":"m","input":"fault me","dimensions":4}'

config "$M" '{"fault-5xx":1}' >/dev/null
r=$(post "$M/v1/embeddings" "$E")
eq "fault-5xx answers 500 in OpenAI's shape" "$(code) $(jq -r '.error.type' <<<"$r")" "500 server_error"
r=$(post "$M/v1/messages" '{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}]}' -H 'anthropic-version: 2023-06-01')
eq "fault-5xx answers 500 in Anthropic's shape" "$(code) $(jq -r '.error.type' <<<"$r")" "500 api_error"

config "$M" '{"fault-5xx":0,"fault-reset":1}' >/dev/null
post "$M/v1/embeddings" "$E" >/dev/null
rc=$(grep -c -E 'reset by peer|Empty reply|Recv failure' "$T/curl.err")
eq "fault-reset resets the connection" "$(code) $rc" "000 1"

config "$M" '{"fault-reset":0,"fault-stall":1}' >/dev/null
curl -sS -o /dev/null --max-time 1 -H 'Content-Type: application/json' --data-binary "$E" "$M/v1/embeddings" 2>/dev/null
eq "fault-stall never answers (curl times out)" "$?" 28

config "$M" '{"fault-stall":0,"fault-truncate":1}' >/dev/null
curl -sS -o "$T/body" -H 'Content-Type: application/json' --data-binary "$E" "$M/v1/embeddings" 2>/dev/null
eq "fault-truncate sends less than Content-Length (curl: partial file)" "$?" 18

config "$M" '{"fault-truncate":0,"fault-malformed":1}' >/dev/null
post "$M/v1/embeddings" "$E" >"$T/r"
checks=$((checks + 1))
if [[ $(code) != 200 ]] || jq -e . "$T/r" >/dev/null 2>&1; then fail "fault-malformed: expected 200 with invalid JSON"; fi

config "$M" '{"fault-malformed":0,"fault-drip":1,"drip-interval-ms":2}' >/dev/null
r=$(post "$M/v1/embeddings" "$E")
eq "fault-drip still delivers the whole body" "$(code) $(jq -c '.data[0].embedding | length' <<<"$r")" "200 4"

config "$M" '{"fault-drip":0}' >/dev/null
s=$(stats "$M")
eq "/_stats counts each fault once" "$(jq -c '.faults | [.["5xx"], .reset, .stall, .truncate, .malformed, .drip]' <<<"$s")" "[2,1,1,1,1,1]"
r=$(post "$M/v1/embeddings" "$E" -H 'x-fake-fault: 429')
eq "x-fake-fault: STATUS answers that status" "$(code)" 429
r=$(post "$M/v1/embeddings" "$E")
eq "with every fault off, answers are clean again" "$(code) $(jq -c '.data[0].embedding | length' <<<"$r")" "200 4"

# The same seed faults the same requests: /_reset reseeds.
pattern() {
    curl -sS -X POST "$M/_reset" >/dev/null
    for _ in $(seq 24); do
        post "$M/v1/embeddings" "$E" >/dev/null
        code
    done | tr '\n' ' '
}
config "$M" '{"fault-5xx":0.5,"seed":42}' >/dev/null
p1=$(pattern)
p2=$(pattern)
eq "fault draws repeat for the same seed" "$p1" "$p2"
# shellcheck disable=SC2016 # bash -c program
ok "fault-5xx 0.5 gives both 200 and 500 ($p1)" bash -c '[[ $1 == *200* && $1 == *500* ]]' _ "$p1"
config "$M" '{"seed":43}' >/dev/null
p3=$(pattern)
checks=$((checks + 1))
[[ $p3 != "$p1" ]] || fail "another seed draws the same faults"
config "$M" '{"fault-5xx":0}' >/dev/null

config "$M" '{"max-concurrent":1,"latency-ms":3000}' >/dev/null
curl -sS -o /dev/null "$M/v1/models" &
slow=$!
for _ in $(seq 100); do
    [[ $(stats "$M" | jq .in_flight) == 1 ]] && break
    sleep 0.05
done
curl -sS -o "$T/body" -D "$T/headers" -w '%{http_code}' "$M/v1/models" >"$T/code"
eq "max-concurrent answers 429 while the limit is in flight" "$(code)" 429
ok "that 429 carries Retry-After" grep -qi '^retry-after: [0-9]' "$T/headers"
wait "$slow"
config "$M" '{"max-concurrent":0,"latency-ms":0}' >/dev/null

config "$M" '{"tpm":10}' >/dev/null
r=$(post "$M/v1/embeddings" '{"model":"m","input":"w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12","dimensions":2}')
eq "tpm: a request over the token budget is 429 of type tokens" "$(code) $(jq -r '.error.type' <<<"$r")" "429 tokens"
config "$M" '{"tpm":0}' >/dev/null

config "$M" '{"down":true}' >/dev/null
curl -sS -o /dev/null "$M/v1/models" 2>/dev/null
rc=$?
eq "/_config down resets every request (curl fails)" "$((rc == 52 || rc == 56))" 1
eq "control endpoints still answer while down" "$(stats "$M" | jq .faults.down)" 1
config "$M" '{"down":false}' >/dev/null
eq "up again" "$(curl -sS -o /dev/null -w '%{http_code}' "$M/v1/models")" 200

# ---------------------------------------------------------------- flags
start det --seed 9
r=$(post "$URL/v1/embeddings" '{"model":"text-embedding-3-small","input":"the cat sat on the mat"}')
eq "another server process gives the same vector" "$(jq -c '.data[0].embedding' <<<"$r")" "$v1"

start auth --api-key sekret
post "$URL/v1/chat/completions" '{"model":"m","messages":[{"role":"user","content":"x"}]}' >"$T/r"
eq "no key: 401 invalid_api_key" "$(code) $(jq -r '.error.code' "$T/r")" "401 invalid_api_key"
post "$URL/v1/chat/completions" '{"model":"m","messages":[{"role":"user","content":"x"}]}' -H 'Authorization: Bearer wrong' >/dev/null
eq "wrong key: 401" "$(code)" 401
post "$URL/v1/chat/completions" '{"model":"m","messages":[{"role":"user","content":"x"}]}' -H 'Authorization: Bearer sekret' >/dev/null
eq "right bearer key: 200" "$(code)" 200
post "$URL/v1/messages" '{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}]}' \
    -H 'anthropic-version: 2023-06-01' -H 'Authorization: Bearer sekret' >"$T/r"
eq "anthropic wants x-api-key, not a bearer token" "$(code) $(jq -r '.error.type' "$T/r")" "401 authentication_error"
post "$URL/v1/messages" '{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}]}' \
    -H 'anthropic-version: 2023-06-01' -H 'x-api-key: sekret' >/dev/null
eq "anthropic with x-api-key: 200" "$(code)" 200
post "$URL/api/embed" '{"model":"m","input":"x"}' >"$T/r"
eq "ollama without a key: 401 in Ollama's shape" "$(code) $(jq -r '.error | type' "$T/r")" "401 string"
post "$URL/api/embed" '{"model":"m","input":"x"}' -H 'Authorization: Bearer sekret' >/dev/null
eq "ollama with the key: 200" "$(code)" 200

start rpm --rpm 2
U=$URL
post "$U/v1/embeddings" "$E" >/dev/null
c1=$(code)
post "$U/v1/embeddings" "$E" >/dev/null
c2=$(code)
curl -sS -o "$T/body" -D "$T/headers" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$E" \
    "$U/v1/embeddings" >"$T/code"
eq "--rpm 2: two answers, then 429" "$c1 $c2 $(code)" "200 200 429"
ra=$(grep -i '^retry-after:' "$T/headers" | tr -dc '0-9')
ok "429 carries Retry-After in whole seconds (got '$ra')" test "${ra:-0}" -ge 1 -a "${ra:-0}" -le 30
ok "429 carries x-ratelimit-limit-requests: 2" grep -qi '^x-ratelimit-limit-requests: 2' "$T/headers"
ok "429 says x-ratelimit-remaining-requests: 0" grep -qi '^x-ratelimit-remaining-requests: 0' "$T/headers"
eq "429 in OpenAI's shape" "$(jq -r '.error.code' "$T/body")" rate_limit_exceeded
eq "/_stats counts the 429" "$(stats "$U" | jq '.status["429"]')" 1

start window --rpm 2 --rpm-window
U=$URL
statuses=$(for _ in 1 2 3; do curl -sS -o /dev/null -w '%{http_code} ' -H 'Content-Type: application/json' \
    --data-binary "$E" "$U/v1/embeddings"; done)
eq "--rpm 2 --rpm-window: two answers, then 429" "$statuses" "200 200 429 "
eq "--rpm-window: /_stats peak_minute is 2" "$(stats "$U" | jq .peak_minute)" 2

# close-reused: the second request on a kept-alive connection is read,
# counted and its connection closed; curl resends it on a fresh one
start closer --fault-close-reused 1
U=$URL
statuses=$(curl -sS -o /dev/null -w '%{http_code} ' -H 'Content-Type: application/json' --data-binary "$E" \
    "$U/v1/embeddings" --next -sS -o /dev/null -w '%{http_code} ' -H 'Content-Type: application/json' \
    --data-binary "$E" "$U/v1/embeddings" 2>"$T/curl.err")
eq "--fault-close-reused 1: both answered (the second after curl's resend)" "$statuses" "200 200 "
eq "--fault-close-reused 1: three requests seen, one dropped" \
    "$(stats "$U" | jq -c '[.requests, .faults.close_reused, .status["200"]]')" "[3,1,2]"

start failfirst --fail-first 2
U=$URL
statuses=$(for _ in 1 2 3; do curl -sS -o /dev/null -w '%{http_code} ' "$U/v1/models"; done)
eq "--fail-first 2: 503, 503, then 200" "$statuses" "503 503 200 "
eq "/_stats counts fail_first" "$(stats "$U" | jq .faults.fail_first)" 2

start down --down
curl -sS -o /dev/null "$URL/v1/models" 2>/dev/null
rc=$?
eq "--down: the request's connection is reset" "$((rc == 52 || rc == 56))" 1

start models --models text-embedding-3-small,llama3.2
r=$(curl -sS "$URL/v1/models")
eq "--models lists exactly those" "$(jq -c '[.data[].id]' <<<"$r")" '["text-embedding-3-small","llama3.2"]'
post "$URL/v1/embeddings" '{"model":"other","input":"x"}' >"$T/r"
eq "--models: another model is 404 model_not_found" "$(code) $(jq -r '.error.code' "$T/r")" "404 model_not_found"
post "$URL/api/chat" '{"model":"llama3.2:latest","stream":false,"messages":[{"role":"user","content":"x"}]}' >/dev/null
eq "--models: ollama's :latest tag matches" "$(code)" 200

"$FP" --fault-5xx 2 >/dev/null 2>&1
eq "a probability above 1 is a usage error" "$?" 2
"$FP" --no-such-flag >/dev/null 2>&1
eq "an unknown flag is a usage error" "$?" 2

# ---------------------------------------------------------------- blocking client
start bench --latency-ms 5
r=$("$BC" --url "$URL" --docs 6 --threads 3 --chunks-per-doc 5 --batch 2)
eq "blocking-client exits 0" "$?" 0
eq "blocking-client report" "$(jq -c '[.docs, .threads, .requests, .failed_docs, (.wall_s > 0)]' <<<"$r")" "[6,3,24,0,true]"
eq "blocking-client: one summary and ceil(5/2) embeddings calls per document" \
    "$(stats "$URL" | jq -c '[.by_path["/v1/chat/completions"], .by_path["/v1/embeddings"], .status["200"]]')" "[6,18,24]"

# ---------------------------------------------------------------- stop
# SIGTERM with a stalled request open: the server closes it and exits 0.
config "$M" '{"fault-stall":1}' >/dev/null
curl -sS -o /dev/null --max-time 20 "$M/v1/models" 2>/dev/null &
client=$!
for _ in $(seq 100); do
    [[ $(stats "$M" | jq .in_flight) == 1 ]] && break
    sleep 0.05
done
main_pid=${servers[0]}
kill -TERM "$main_pid"
timeout 10 tail --pid="$main_pid" -f /dev/null
wait "$main_pid"
eq "SIGTERM stops the server with status 0" "$?" 0
wait "$client"
ok "the stalled client saw its connection close, not a timeout" test $? -ne 28
kill -INT "$PID"
wait "$PID"
eq "SIGINT stops the server with status 0" "$?" 0
# Every other server stops cleanly too (under ASan this is also the leak check).
for p in "${servers[@]}"; do
    kill -0 "$p" 2>/dev/null || continue
    kill -TERM "$p"
    wait "$p"
    eq "server $p stops on SIGTERM with status 0" "$?" 0
done

echo "$checks checks, $failures failed"
[[ $failures -eq 0 ]]
