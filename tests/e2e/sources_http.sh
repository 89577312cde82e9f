#!/usr/bin/env bash
# tests/e2e/sources_http.sh - http:// URIs as documents, from a real HTTP
# server started here (Python's http.server, threaded): a URL is one
# document, typed by its name or else its Content-Type; a rerun stores
# nothing; a 404 fails that document alone, naming the status; a 503 is
# retried and then stored; a server that never answers fails the document
# after [sluice] fetch_timeout, and the run goes on; a redirect is followed.
source "$(dirname "$0")/lib.sh"

mkdir www
printf '# Remote\n\nA remote document about quokkaword.\n' >www/doc.md
printf '<html><head><title>Page</title></head><body><p>Served as HTML: wombatword.</p></body></html>\n' \
    >www/page

cat >server.py <<'EOF'
import http.server, os, sys, threading, time
hits = {}
lock = threading.Lock()
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        with lock:
            hits[self.path] = hits.get(self.path, 0) + 1
            n = hits[self.path]
        with open('hits.log', 'a') as f:
            f.write(self.path + '\n')
        if self.path == '/hang':
            time.sleep(3600)  # accepts, never answers
            return
        if self.path == '/flaky.md' and n == 1:
            self.send_error(503, 'busy')
            return
        if self.path == '/moved.md':
            self.send_response(301)
            self.send_header('Location', '/doc.md')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        if self.path == '/flaky.md':
            self.path = '/doc.md'
        if self.path == '/page':
            body = open('www/page', 'rb').read()
            self.send_response(200)
            self.send_header('Content-Type', 'text/html; charset=utf-8')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()
    def translate_path(self, path):
        return os.path.join(os.getcwd(), 'www', path.lstrip('/'))
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
s.daemon_threads = True
print('ready', s.server_address[1], flush=True)
s.serve_forever()
EOF
python3 server.py >http.log 2>&1 &
hpid=$!
trap 'rc=$?; kill $hpid 2>/dev/null || true; (exit $rc); cleanup' EXIT
for _ in $(seq 1 300); do
    grep -q '^ready ' http.log && break
    sleep 0.1
done
port=$(awk '/^ready /{print $2}' http.log)
[[ -n $port ]] || {
    echo "FAIL: the HTTP server did not start: $(cat http.log)" >&2
    exit 1
}
base=http://127.0.0.1:$port
sed '/^\[sluice\]/a fetch_timeout = 2s\nretries = 1\nretry_base = 100ms' "$SRC/conf/default.ini" >http.ini
db=.sluice/store.db

sl run -c http.ini --json "$base/doc.md" "$base/page" "$base/missing.md" "$base/flaky.md" "$base/hang" \
    "$base/moved.md"
check_eq "exit status: documents failed" "$RC" 1
check_eq "stored: the document, the HTML page, the retried one, the moved one" "$(json .documents.stored)" 4
check_gt "a redirect is followed: stored under the URL asked for" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = '$base/moved.md' AND c.text LIKE '%quokkaword%';")" 0
check_eq "failed: the 404 and the hang" "$(json .documents.failed)" 2
check_eq "the uri is the URL" "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = '$base/doc.md';")" 1
check_gt "its text was stored" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = '$base/doc.md' AND c.text LIKE '%quokkaword%';")" 0
check_eq "no extension: the type is the Content-Type's" \
    "$(sql "$db" "SELECT media_type FROM documents WHERE uri = '$base/page';")" "text/html"
check_gt "the HTML page was parsed" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = '$base/page' AND c.text LIKE '%wombatword%';")" 0
check_contains "404: the reason names the status" \
    "$(json ".failed[] | select(.uri == \"$base/missing.md\") | .reason")" "HTTP 404"
check_eq "404: asked once, not retried" "$(grep -c '^/missing.md$' hits.log)" 1
check_eq "503: asked again" "$(grep -c '^/flaky.md$' hits.log)" 2
check_contains "hang: the reason says timed out" \
    "$(json ".failed[] | select(.uri == \"$base/hang\") | .reason")" "timed out"
check_eq "hang: retried once (retries = 1)" "$(grep -c '^/hang$' hits.log)" 2

# A rerun: the unchanged documents are skipped.
sl run -c http.ini --json "$base/doc.md" "$base/page"
check_eq "rerun: exit status" "$RC" 0
check_eq "rerun: skipped" "$(json .documents.skipped)" 2
check_eq "rerun: stored" "$(json .documents.stored)" 0

# A changed document is stored again.
printf '# Remote\n\nNow about numbatword.\n' >www/doc.md
sl run -c http.ini --json "$base/doc.md" "$base/page"
check_eq "changed: stored" "$(json .documents.stored)" 1
check_eq "changed: skipped" "$(json .documents.skipped)" 1
check_gt "changed: the new text" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = '$base/doc.md' AND c.text LIKE '%numbatword%';")" 0

finish
