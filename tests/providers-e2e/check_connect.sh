#!/usr/bin/env bash
# tests/providers-e2e/check_connect.sh - `sluice check --connect` makes one
# real request to each provider and opens a session with each sink, and
# says how each answered: a working fake (exit 0, HTTP 200, one request per
# provider, no document read), a dead port, a wrong key ("authentication
# failed", neither key printed), a model the server does not list, an
# embedder whose vectors have another dimension than the config says, and a
# PostgreSQL that is not running, or running. Any failure exits 2.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"
source "$HERE/../plugins/sink-postgres/pglib.sh"
trap 'rc=$?; stop_fakes; (exit $rc); pg_cleanup' EXIT

right="sk-right-$$-$RANDOM"
wrong="sk-wrong-$$-$RANDOM"
start_fake good --api-key "$right"
# a port where nothing listens: a fake started and stopped
start_fake gone
dead=${URL[gone]}
stop_fake gone

openai_ini o.ini
u=${URL[good]}
ok_args=(-c o.ini --set "summarizer.base_url=$u/v1" --set "embedder.base_url=$u/v1")

# A folder of documents beside it, to show none is read.
mkdir docs && printf '# Never read\n\ntext\n' >docs/a.md

# 1. everything answers
export OPENAI_API_KEY=$right
sl "${ok_args[@]}" check --connect
check_eq "working fake: exit 0" "$RC" 0
check_contains "working fake: the routes are printed as by check" "$OUT" 'route\.text'
check_contains "working fake: the route names every stage, the summarizer too" "$OUT" \
    'route\.text\] text/markdown: markdown -> chunker -> summarizer \(summaries\) -> embedder \(1536 dimensions\) -> store'
check_contains "working fake: the summarizer's probe row" "$OUT" 'summarizer +llm-openai +llm +probe +[0-9.]+ms +200 +ok'
check_contains "working fake: the embedder's probe row" "$OUT" 'embedder +embed-openai +embedder +embed 1 text +[0-9.]+ms +200 +ok'
check_contains "working fake: the store's session row" "$OUT" 'store +sink-sqlite +sink +session .* ok'
check_contains "working fake: verdict" "$OUT" 'connect: ok'
check_eq "working fake: one model list request" "$(fake_stats good '.by_path["/v1/models"]')" 1
check_eq "working fake: one embedding request" "$(fake_stats good '.by_path["/v1/embeddings"]')" 1
check_eq "working fake: two requests in all (no document)" "$(fake_stats good .requests)" 2
check "no store was written with documents" test ! -s .sluice/openai.db -o "$(sql .sluice/openai.db 'SELECT count(*) FROM documents;' 2>/dev/null || echo 0)" = 0

sl "${ok_args[@]}" check --connect --json
check_eq "json: exit 0" "$RC" 0
check_eq "json: ok" "$(json .ok)" true
check_eq "json: three connections" "$(json '.connections | length')" 3
check_eq "json: statuses" "$(json '[.connections[].http_status] | map(tostring) | join(" ")')" "200 200 0"
check_eq "json: HTTP versions (plain http is 1.1; no answer, none)" \
    "$(json '[.connections[].http_version] | map(tostring) | join(" ")')" "1.1 1.1 null"
check "json: latencies are numbers >= 0" jq -e '[.connections[].latency_ms] | all(type == "number" and . >= 0)' <<<"$OUT"

# 2. a wrong key
export OPENAI_API_KEY=$wrong
sl "${ok_args[@]}" check --connect
check_eq "wrong key: exit 2" "$RC" 2
check_contains "wrong key: the summarizer's authentication failed" "$OUT" 'summarizer .* 401 +authentication failed'
check_contains "wrong key: the embedder's authentication failed" "$OUT" 'embedder .* 401 +authentication failed'
check_contains "wrong key: verdict" "$OUT" 'connect: FAILED'
check_lacks "wrong key: the wrong key is never printed" "$OUT$ERR" "$wrong"
check_lacks "wrong key: the right key is never printed" "$OUT$ERR" "$right"
sl "${ok_args[@]}" check --connect --json
check_eq "wrong key json: auth_failed for both providers" "$(json '[.connections[] | select(.auth_failed)] | length')" 2
check_lacks "wrong key json: no key" "$OUT$ERR" "$wrong"
export OPENAI_API_KEY=$right

# 3. a dead port
sl -c o.ini --set "summarizer.base_url=$dead/v1" --set "embedder.base_url=$dead/v1" check --connect
check_eq "dead port: exit 2" "$RC" 2
check_contains "dead port: connection refused, no HTTP status" "$OUT" 'summarizer .*ms +- +.*(refused|connect)'
check_contains "dead port: the embedder too" "$OUT" 'embedder .*ms +- +.*(refused|connect)'

# 4. a model the server does not list, and vectors of another dimension
sl "${ok_args[@]}" --set summarizer.model=no-such-model --set embedder.dimension=384 check --connect --json
check_eq "model and dimension: exit 2" "$RC" 2
check_contains "unknown model: said" "$(json '.connections[] | select(.instance == "summarizer") | .result')" "no-such-model.*not among"
check_contains "dimension: mismatch said" "$(json '.connections[] | select(.instance == "embedder") | .result')" "^dimension mismatch: .*1536.*384"

# 5. PostgreSQL: not running, then running
cat >pg.ini <<'EOF'
[route.text]
media = text/markdown
stages = markdown chunker
sink = store

[markdown]
plugin = parse-markdown

[chunker]
plugin = chunk-text

[store]
plugin = sink-postgres
host = 127.0.0.1
dbname = postgres
user = postgres
EOF
sl -c pg.ini --set "store.port=${dead##*:}" check --connect
check_eq "PostgreSQL not running: exit 2" "$RC" 2
check_contains "PostgreSQL not running: the store's init row says why" "$OUT" 'store +sink-postgres +sink +init .*cannot connect'
pg_start
sl -c pg.ini --set "store.port=$PG_PORT" check --connect
check_eq "PostgreSQL running: exit 0" "$RC" 0
check_contains "PostgreSQL running: a session" "$OUT" 'store +sink-postgres +sink +session .* ok'

# One plugin file: `check --plugin X.so --connect` probes it after its
# contract; a dead port is a FAIL row; a plugin with nothing to connect to
# is refused (it used to accept --connect and never probe).
llm=$BUILD/plugins/llm-openai.so
models_before=$(fake_stats good '.by_path["/v1/models"]')
sl check --plugin "$llm" --set "base_url=$u/v1" --set "api_key=$right" --connect
check_eq "check --plugin --connect, working fake: exit 0" "$RC" 0
check_contains "check --plugin --connect: the probe row" "$OUT" 'ok +connect: probe in [0-9.]+ ms, HTTP 200: ok'
check_eq "check --plugin --connect: one model list request" \
    "$(fake_stats good '.by_path["/v1/models"]')" $((models_before + 1))
check_lacks "check --plugin --connect: the key is never printed" "$OUT$ERR" "$right"
sl check --plugin "$llm" --set "base_url=$dead/v1" --set "api_key=$right" --connect
check_eq "check --plugin --connect, dead port: exit 1 (failed checks)" "$RC" 1
check_contains "check --plugin --connect, dead port: a FAIL row" "$OUT" 'FAIL +connect: probe in [0-9.]+ ms: .*connection refused'
sl check --plugin "$BUILD/plugins/parse-markdown.so" --connect
check_eq "check --plugin PARSER --connect: refused, exit 2" "$RC" 2
check_contains "check --plugin PARSER --connect: says why" "$ERR" 'parse-markdown is a cpu parser plugin without a probe: it connects to nothing'
sl check --input docs/a.md
check_eq "check --input without --plugin: refused, exit 2" "$RC" 2
check_contains "check --input without --plugin: says what goes with it" "$ERR" '--input goes with --plugin'
sl check --help
check_contains "check --help lists --input" "$OUT" 'check --plugin FILE.so --input FILE'
check_contains "check --help: --plugin takes --connect" "$OUT" 'check --plugin FILE.so \[--set KEY=VALUE\]\.\.\. \[--connect\]'

finish
