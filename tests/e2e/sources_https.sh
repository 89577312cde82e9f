#!/usr/bin/env bash
# tests/e2e/sources_https.sh - https:// documents from a server whose
# certificate only [sluice] fetch_ca_file vouches for (a company CA): a
# real TLS server started here (Python's http.server in an ssl context,
# with a self-signed certificate made by openssl).
#   - without fetch_ca_file the document fails alone, at once (one TLS
#     handshake: a certificate is not retried), and the reason names the
#     option; the run goes on and stores a local document beside it;
#   - with it, the document is stored, and a rerun skips it;
#   - a dry run (which fetches with its own blocking request, as the s3://
#     listings do) says the same: would fail naming the setting, or new;
#   - s3:// over https: s3rver (tests/s3rver) behind the TLS front of the
#     HTTP/2 tests (tests/providers-e2e/tls_front.mjs), so the signed
#     listing and fetches go through TLS: refused naming the setting
#     without it, every object stored with it;
#   - a fetch_ca_file that is missing or holds no certificate is refused
#     before any document is read.
source "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || fail "openssl is not installed (scripts/deps.sh installs it)"
command -v node >/dev/null || fail "node is not installed (scripts/deps.sh installs it)"
[[ -d $SRC/tests/s3rver/node_modules/@20minutes/s3rver ]] ||
    fail "tests/s3rver/node_modules is missing: run scripts/deps.sh (npm ci in tests/s3rver)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out srv.pem \
    -days 2 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" 2>openssl.err ||
    fail "openssl could not make a certificate: $(cat openssl.err)"

mkdir www local
printf '# Remote\n\nA document behind a private CA about dugongword.\n' >www/doc.md
printf '# Local\n\nA local document about echidnaword.\n' >local/here.md

cat >server.py <<'EOF'
import http.server, os, ssl, threading
lock = threading.Lock()
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def translate_path(self, path):
        return os.path.join(os.getcwd(), 'www', path.lstrip('/'))
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def get_request(self):
        sock, addr = super().get_request()
        with lock, open('accepted.log', 'a') as f:
            f.write('connection\n')
        return sock, addr
s = S(('127.0.0.1', 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain('srv.pem', 'srv.key')
s.socket = ctx.wrap_socket(s.socket, server_side=True, do_handshake_on_connect=False)
print('ready', s.server_address[1], flush=True)
s.serve_forever()
EOF
: >accepted.log
python3 server.py >https.log 2>&1 &
hpid=$!
s3pid='' fpid=''
# shellcheck disable=SC2154 # rc is the trap's own
trap 'rc=$?; kill $hpid $s3pid $fpid 2>/dev/null || true; (exit $rc); cleanup' EXIT
port=$(port_from https.log '^ready \([0-9][0-9]*\)$' "$hpid")
[[ -n $port ]] || fail "the HTTPS server did not start: $(cat https.log)"
url=https://127.0.0.1:$port/doc.md
sed '/^\[sluice\]/a retries = 3\nretry_base = 100ms' "$SRC/conf/default.ini" >https.ini
db=.sluice/store.db
accepted() { wc -l <accepted.log | tr -d ' '; }

# --- the CA not trusted ---
sl run -c https.ini --json "$url" local
check_eq "untrusted: exit status: a document failed" "$RC" 1
check_eq "untrusted: the local document is stored all the same" "$(json .documents.stored)" 1
check_eq "untrusted: the https document failed" "$(json .documents.failed)" 1
reason=$(json ".failed[] | select(.uri == \"$url\") | .reason")
check_contains "untrusted: the reason says certificate" "$reason" "certificate"
check_contains "untrusted: ... and names the option that fixes it" "$reason" "\\[sluice\\] fetch_ca_file"
check_eq "untrusted: one TLS handshake, not retried (retries = 3)" "$(accepted)" 1

# --- a dry run fetches on its own path (a blocking request, the one the
# s3:// listings use): the same verdicts ---
sl run -c https.ini --dry-run "$url"
check_eq "dry run, untrusted: exit status" "$RC" 1
check_contains "dry run, untrusted: would fail, naming the setting" "$OUT" \
    "fail .*doc\.md: .*certificate.*\[sluice\] fetch_ca_file"
sl run -c https.ini --set sluice.fetch_ca_file=srv.pem --dry-run "$url"
check_eq "dry run, trusted: exit status" "$RC" 0
check_contains "dry run, trusted: new" "$OUT" "^new +https://127\.0\.0\.1:$port/doc\.md"
: >accepted.log

# --- trusted through fetch_ca_file ---
sl run -c https.ini --set sluice.fetch_ca_file=srv.pem --json "$url"
check_eq "trusted: exit status" "$RC" 0
check_eq "trusted: stored" "$(json .documents.stored)" 1
check_gt "trusted: its text is in the store" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = '$url' AND c.text LIKE '%dugongword%';")" 0
sl run -c https.ini --set sluice.fetch_ca_file=srv.pem --json "$url"
check_eq "trusted, rerun: skipped (unchanged)" "$(json .documents.skipped)" 1

# --- s3:// over https, through the TLS front ---
mkdir s3data
node --openssl-legacy-provider "$SRC/tests/s3rver/server.mjs" "$T/s3data" corpus >s3.log 2>&1 &
s3pid=$!
s3port=$(port_from s3.log '^ready \([0-9][0-9]*\)$' "$s3pid")
[[ -n $s3port ]] || fail "s3rver did not start: $(cat s3.log)"
node "$SRC/tests/providers-e2e/tls_front.mjs" --backend "http://127.0.0.1:$s3port" --cert srv.pem \
    --key srv.key >front.log 2>&1 &
fpid=$!
fport=$(port_from front.log '^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$' "$fpid")
[[ -n $fport ]] || fail "the TLS front did not start: $(cat front.log)"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=eu-west-1
unset AWS_DEFAULT_REGION AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL
for name in manatee narwhal; do
    printf '# %s\n\nAn object about %sword.\n' "$name" "$name" >"$name.md"
    check_eq "upload of $name.md (plain http, straight to s3rver)" \
        "$(curl -s -o /dev/null -w '%{http_code}' -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
            --aws-sigv4 "aws:amz:eu-west-1:s3" -u S3RVER:S3RVER -T "$name.md" \
            "http://127.0.0.1:$s3port/corpus/docs/$name.md")" 200
done
rm -rf .sluice
sl run -c https.ini --set "sluice.s3_endpoint=https://127.0.0.1:$fport" --json s3://corpus/docs
check_ne "s3, untrusted: the listing fails" "$RC" 0
check_contains "s3, untrusted: the reason names the setting" "$ERR$OUT" "certificate.*\\[sluice\\] fetch_ca_file"
sl run -c https.ini --set "sluice.s3_endpoint=https://127.0.0.1:$fport" --set sluice.fetch_ca_file=srv.pem \
    --json s3://corpus/docs
check_eq "s3, trusted: exit status" "$RC" 0
[[ $RC -eq 0 ]] || echo "stderr: $(tail -c 2000 <<<"$ERR")" >&2
check_eq "s3, trusted: both objects stored" "$(json .documents.stored)" 2
check_gt "s3, trusted: their text is in the store" \
    "$(sql "$db" "SELECT count(*) FROM chunks WHERE text LIKE '%narwhalword%';")" 0

# --- refused up front ---
n=$(accepted)
printf 'no certificate here\n' >notpem.txt
sl run -c https.ini --set sluice.fetch_ca_file=notpem.txt --json "$url"
check_ne "not PEM: refused" "$RC" 0
check_contains "not PEM: the message names the setting and the file" "$ERR" \
    "\\[sluice\\] fetch_ca_file: .*/notpem\\.txt holds no PEM certificate"
sl run -c https.ini --set sluice.fetch_ca_file=gone.pem --json "$url"
check_ne "missing: refused" "$RC" 0
check_contains "missing: the message names the setting, the file and why" "$ERR" \
    "\\[sluice\\] fetch_ca_file: .*/gone\\.pem: No such file or directory"
check_eq "refused before any request: no new connection" "$(accepted)" "$n"

finish
