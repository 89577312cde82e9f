#!/usr/bin/env bash
# tests/e2e/sources_s3_hostile.sh - an S3 endpoint that answers what no S3
# does, from a server started here (Python's http.server, path style as for
# any S3-compatible endpoint, unsigned requests): each bucket's listing
# fails alone, with the URI and a reason, and the run ends.
#   loop:    a truncated page whose continuation token is the one just sent
#            (asking again would bring the same page forever)
#   dtd:     a page declaring an entity that spells each key 500 times over
#   denied:  a 403 whose <Message> holds a newline and a terminal escape
#   garbage: a 200 that is not well-formed XML
# fuzz/fuzz_s3_listing.c fuzzes the same parser; this checks the request
# path around it.
source "$(dirname "$0")/lib.sh"

cat >server.py <<'EOF'
import http.server, sys, urllib.parse
NS = 'http://s3.amazonaws.com/doc/2006-03-01/'
def page(body, dtd=''):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + dtd +
            '<ListBucketResult xmlns="%s">%s</ListBucketResult>' % (NS, body)).encode()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def answer(self, status, body, ctype='application/xml'):
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        with open('requests.log', 'a') as f:
            f.write(self.path + '\n')
        if u.path == '/loop' and q.get('list-type') == ['2']:
            return self.answer(200, page('<IsTruncated>true</IsTruncated>'
                                         '<Contents><Key>a.md</Key><Size>40</Size></Contents>'
                                         '<NextContinuationToken>c2FtZQ==</NextContinuationToken>'))
        if u.path == '/loop/a.md':
            return self.answer(200, b'# Looped\n\nThe first page of a loop: koalaword.\n', 'text/markdown')
        if u.path == '/dtd':
            return self.answer(200, page('<IsTruncated>false</IsTruncated>' +
                                         '<Contents><Key>&k;</Key><Size>1</Size></Contents>' * 200,
                                         '<!DOCTYPE ListBucketResult [<!ENTITY k "%sx">]>\n' % ('key/' * 500)))
        if u.path == '/denied':
            return self.answer(403, b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                                    b'<Message>first line\nforged: level=error msg=ok \x1b[31mred</Message></Error>')
        if u.path == '/garbage':
            return self.answer(200, page('<IsTruncated>false</IsTruncated>')[:-10])
        self.answer(404, b'<Error><Code>NoSuchKey</Code><Message>no such object</Message></Error>')
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
s.daemon_threads = True
print('ready', s.server_address[1], flush=True)
s.serve_forever()
EOF
python3 server.py >s3.log 2>&1 &
hpid=$!
trap 'rc=$?; kill $hpid 2>/dev/null || true; (exit $rc); cleanup' EXIT
for _ in $(seq 1 300); do
    grep -q '^ready ' s3.log && break
    sleep 0.1
done
port=$(awk '/^ready /{print $2}' s3.log)
[[ -n $port ]] || {
    echo "FAIL: the S3 server did not start: $(cat s3.log)" >&2
    exit 1
}
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3 AWS_DEFAULT_REGION
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_REGION=us-east-1
db=.sluice/store.db

sl run --json s3://loop s3://dtd s3://denied s3://garbage
check_eq "exit status: documents failed" "$RC" 1
check_eq "four listings failed" "$(json '[.failed[] | select(.uri | test("^s3://[a-z]+/$"))] | length')" 4
reason() { json ".failed[] | select(.uri == \"$1/\") | .reason"; }

check_contains "loop: the reason" "$(reason s3://loop)" \
    "listing s3://loop: the server answered the continuation token it was asked with"
# (a run walks its inputs twice, counting them first: each walk asks for the
# first page, then once for the page the token names)
check_gt "loop: the first page asked for" "$(grep -c '^/loop?list-type=2' requests.log)" 0
check_eq "loop: the token's page asked for once a listing, not forever" \
    "$(grep -c '^/loop?continuation-token=' requests.log)" "$(grep -c '^/loop?list-type=2' requests.log)"
check_eq "loop: the first page's object stored" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = 's3://loop/a.md';")" 1

check_contains "dtd: the reason" "$(reason s3://dtd)" "listing s3://dtd: the answer declares a DTD"
check_eq "dtd: no object asked for" "$(grep -c '^/dtd/' requests.log)" 0

check_contains "denied: S3's code and message" "$(reason s3://denied)" \
    "HTTP 403 AccessDenied: first line forged: level=error msg=ok \\?\\[31mred"
check_lacks "denied: no escape byte in the reason" "$(reason s3://denied)" $'\x1b'
check_lacks "denied: no escape byte on stderr" "$ERR" $'\x1b'

check_contains "garbage: where" "$(reason s3://garbage)" \
    "listing s3://garbage: the answer is not a ListBucketResult \\(not well-formed XML at line 2\\)"
check_lacks "libxml2 writes nothing of the answer to stderr" "$ERR" "parser error"
check_eq "documents stored" "$(json .documents.stored)" 1
finish
