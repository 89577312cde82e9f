#!/usr/bin/env bash
# tests/e2e/sources_s3.sh - s3:// URIs against a real S3-compatible server:
# s3rver (tests/s3rver, installed by scripts/deps.sh with npm ci), which
# checks AWS Signature Version 4 as S3 does, so a request sluice signs
# wrongly is refused. A prefix is listed (ListObjectsV2) and each object
# stored as s3://BUCKET/KEY; a rerun stores nothing; a changed object alone
# is stored again; a missing key, a wrong secret, a wrong key id and an
# object over max_file_size each fail with a clear reason, and no secret
# ever appears in the output.
source "$(dirname "$0")/lib.sh"

command -v node >/dev/null || {
    echo "FAIL: node is not installed (scripts/deps.sh installs it)" >&2
    exit 1
}
[[ -d $SRC/tests/s3rver/node_modules/@20minutes/s3rver ]] || {
    echo "FAIL: tests/s3rver/node_modules is missing: run scripts/deps.sh (npm ci in tests/s3rver)" >&2
    exit 1
}

mkdir s3data
# the gate (server.mjs) holds a listing's later pages while it is missing
touch gate
S3_GATE=$T/gate node --openssl-legacy-provider "$SRC/tests/s3rver/server.mjs" "$T/s3data" corpus >s3.log 2>&1 &
s3pid=$!
stop_s3() { kill "$s3pid" 2>/dev/null || true; }
trap 'rc=$?; stop_s3; (exit $rc); cleanup' EXIT
for _ in $(seq 1 600); do
    grep -q '^ready ' s3.log && break
    kill -0 "$s3pid" 2>/dev/null || break
    sleep 0.1
done
port=$(awk '/^ready /{print $2}' s3.log)
[[ -n $port ]] || {
    echo "FAIL: s3rver did not start: $(cat s3.log)" >&2
    exit 1
}
endpoint=http://127.0.0.1:$port

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=eu-west-1
unset AWS_DEFAULT_REGION AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3
export AWS_ENDPOINT_URL=$endpoint

# put FILE KEY: uploads with curl's own SigV4 signing.
put() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
        --aws-sigv4 "aws:amz:eu-west-1:s3" -u S3RVER:S3RVER -T "$1" "$endpoint/corpus/$2")
    check_eq "upload of $2" "$code" 200
}

mkdir src
for name in alpha beta gamma; do
    printf '# About %s\n\nThe %s document talks about %sword and nothing else.\n' \
        "$name" "$name" "$name" >"src/$name.md"
    put "src/$name.md" "docs/$name.md"
done
put src/alpha.md "docs/sub/deep.md"   # under the prefix, one level down
put src/alpha.md "docs2/outside.md"   # shares the prefix's first letters only
printf 'not a document\n' >src/notes.bin
put src/notes.bin "docs/notes.bin"    # outside [sluice] include
db=.sluice/store.db

# 1. The prefix is listed; every object under it is a document.
sl_ok run --json s3://corpus/docs
check_eq "first run: stored" "$(json .documents.stored)" 4
check_eq "uris are s3://BUCKET/KEY" \
    "$(sql "$db" "SELECT group_concat(uri, ' ') FROM (SELECT uri FROM documents ORDER BY uri);")" \
    "s3://corpus/docs/alpha.md s3://corpus/docs/beta.md s3://corpus/docs/gamma.md s3://corpus/docs/sub/deep.md"
check_eq "the bytes are the object's" \
    "$(sql "$db" "SELECT bytes FROM documents WHERE uri = 's3://corpus/docs/beta.md';")" \
    "$(stat -c %s src/beta.md)"
check_gt "the text reached the chunks" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = 's3://corpus/docs/gamma.md' AND c.text LIKE '%gammaword%';")" 0
check_eq "media type from the name" \
    "$(sql "$db" "SELECT DISTINCT media_type FROM documents;")" "text/markdown"
check_eq "the object's ETag is kept as metadata" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE json_extract(metadata, '$.etag') LIKE '\"%\"';")" 4

# A dry run reads (fetches, blocking) and looks up the same way.
sl_ok run --dry-run s3://corpus/docs
check_contains "dry run: all unchanged" "$OUT" "0 new, 0 to replace, 4 unchanged"

# 2. Nothing changed: nothing stored.
sl_ok run --json s3://corpus/docs
check_eq "rerun: total" "$(json .documents.total)" 4
check_eq "rerun: skipped" "$(json .documents.skipped)" 4
check_eq "rerun: stored" "$(json .documents.stored)" 0

# 3. One object changes: it alone is stored again.
old_hash=$(sql "$db" "SELECT hash FROM documents WHERE uri = 's3://corpus/docs/beta.md';")
printf '# About beta\n\nRewritten: now it is about zanzibarquux.\n' >src/beta.md
put src/beta.md docs/beta.md
sl_ok run --json s3://corpus/docs
check_eq "changed: stored" "$(json .documents.stored)" 1
check_eq "changed: skipped" "$(json .documents.skipped)" 3
check_ne "changed: new hash" "$(sql "$db" "SELECT hash FROM documents WHERE uri = 's3://corpus/docs/beta.md';")" "$old_hash"
check_gt "changed: new text stored" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = 's3://corpus/docs/beta.md' AND c.text LIKE '%zanzibarquux%';")" 0
check_eq "changed: one row" "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = 's3://corpus/docs/beta.md';")" 1
check_eq "no duplicate chunks" "$(duplicate_chunks "$db")" 0

# 4. An object named on its own, and one that is not there: the missing one
#    fails alone, named, with its reason.
sl run --json s3://corpus/docs/alpha.md s3://corpus/docs/missing.md s3://corpus/docs2
check_eq "missing key: exit status says a document failed" "$RC" 1
check_eq "missing key: failed" "$(json .documents.failed)" 1
check_eq "missing key: the named object went on (unchanged)" "$(json .documents.skipped)" 1
check_eq "missing key: the other prefix went on (new)" "$(json .documents.stored)" 1
check_contains "missing key: reason" \
    "$(json '.failed[] | select(.uri == "s3://corpus/docs/missing.md") | .reason')" "no such object"
check_eq "docs2 is a document of its own" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = 's3://corpus/docs2/outside.md';")" 1

# 5. A wrong secret: S3 refuses the signature; the run says so and never
#    prints the secret, even at -vv.
secret=WrongSecretKey0123456789abcdefXYZ
AWS_SECRET_ACCESS_KEY=$secret sl run --json -vv s3://corpus/docs
check_eq "wrong secret: exit status" "$RC" 1
check_contains "wrong secret: S3's refusal is the reason" "$(json '.failed[0].reason')" \
    "403 SignatureDoesNotMatch"
check_contains "wrong secret: the reason names the URI" "$(json '.failed[0].reason')" "s3://corpus/docs"
check_lacks "wrong secret: not on stdout" "$OUT" "$secret"
check_lacks "wrong secret: not on stderr" "$ERR" "$secret"
check_lacks "the right secret is not printed either" "$OUT$ERR" "S3RVER:"

# 6. A key id the server does not know.
AWS_ACCESS_KEY_ID=NOSUCHKEY sl run --json s3://corpus/docs
check_contains "wrong key id: reason" "$(json '.failed[0].reason')" "403 InvalidAccessKeyId"

# 7. A session token travels as x-amz-security-token (signed with the rest)
#    and is never printed.
token=SessionTokenXYZ987654321
AWS_SESSION_TOKEN=$token sl_ok run --json -vv s3://corpus/docs
check_eq "session token: everything unchanged" "$(json .documents.skipped)" 4
check_lacks "session token: not printed" "$OUT$ERR" "$token"

# 8. The endpoint from [sluice] s3_endpoint (no AWS_ENDPOINT_URL), and
#    max_file_size bounding what is fetched.
head -c 3000 /dev/zero | tr '\0' 'x' >src/big.md
put src/big.md big/big.md
put src/alpha.md big/small.md
sed "/^\[sluice\]/a s3_endpoint = $endpoint\nmax_file_size = 2K" "$SRC/conf/default.ini" \
    | sed '/^max_file_size = 64M/d' >s3.ini
env -u AWS_ENDPOINT_URL "$SLUICE" run -c s3.ini --json s3://corpus/big >out.json 2>err.txt </dev/null || true
OUT=$(cat out.json)
check_eq "s3_endpoint: the small object stored" "$(json .documents.stored)" 1
check_contains "max_file_size: the large object fails, said so" \
    "$(json '.failed[] | select(.uri == "s3://corpus/big/big.md") | .reason')" "larger than max_file_size"

# 9. More keys than one ListObjectsV2 page (1000): the listing follows its
#    continuation token, and every object is stored once.
mkdir many
for i in $(seq -w 1 1005); do printf '# Page %s\n\nText of page %s.\n' "$i" "$i" >"many/p$i.md"; done
codes=$(curl -s -o /dev/null -w '%{http_code}\n' -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    --aws-sigv4 "aws:amz:eu-west-1:s3" -u S3RVER:S3RVER -T "many/p[0001-1005].md" "$endpoint/corpus/many/")
check_eq "upload of 1005 objects" "$(sort <<<"$codes" | uniq -c | tr -s ' ')" " 1005 200"
#    The second page is held back (the gate) until the first page's 1000
#    documents are stored: a run waiting on a listing's page must still
#    finish what it has (the page is fetched on a thread of its own, never
#    on the loop thread that every document's fetch and store needs). Each
#    page is asked for once: the progress count lists no s3:// prefix.
rm gate
lists0=$(grep -c '^list ' s3.log || true)
timeout -k 10 "$SLUICE_TIMEOUT" "$SLUICE" run --json s3://corpus/many >many.json 2>many.err </dev/null &
run_pid=$!
page_one_stored() {
    (($(sql "$db" "SELECT count(*) FROM documents WHERE uri LIKE 's3://corpus/many/%';") >= 1000))
}
waited=0
until page_one_stored || ((waited >= 1200)) || ! kill -0 "$run_pid" 2>/dev/null; do
    sleep 0.1
    waited=$((waited + 1))
done
check "the first page's documents stored while the second page is held" page_one_stored
check "the run still waits for the second page" kill -0 "$run_pid"
check_eq "nothing of the second page yet" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE uri LIKE 's3://corpus/many/%';")" 1000
touch gate
wait "$run_pid" && RC=0 || RC=$?
OUT=$(cat many.json)
check_eq "two pages: exit status" "$RC" 0
check_eq "two pages: stored" "$(json .documents.stored)" 1005
check_eq "two pages: each once" \
    "$(sql "$db" "SELECT count(DISTINCT uri) || ' ' || count(*) FROM documents WHERE uri LIKE 's3://corpus/many/%';")" \
    "1005 1005"
check_eq "two pages: each listed once" "$(($(grep -c '^list ' s3.log) - lists0))" 2

finish
