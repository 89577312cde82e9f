// tests/providers-e2e/tls_front.mjs - a TLS front for the fake provider,
// for the HTTP/2 tests: it answers https on 127.0.0.1 and passes every
// request to the fake provider over plain HTTP/1.1 (kept-alive), so sluice
// talks TLS and, unless --http1-only, HTTP/2 to the same fake it always
// talks to. Node's own http2, https and http modules; no npm packages.
//
//   node tls_front.mjs --backend http://127.0.0.1:PORT --cert C --key K [--http1-only]
//
// It prints "listening on 127.0.0.1:PORT" once ready. GET /_front_stats
// (answered by the front itself, not counted) gives what it saw:
// {"connections": TLS connections accepted, "requests": requests passed
// on, "http2_requests": of those, how many came as HTTP/2 streams,
// "alpn": {"h2": n, "http/1.1": n, "none": n}}. With --http1-only it
// offers no HTTP/2 at all (ALPN http/1.1), as an older server would.
// The Host header (HTTP/2's :authority) passes unchanged, so a request
// signed for the front (AWS Signature V4 for s3rver) still verifies.
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const backend = new URL(arg('--backend', ''));
const http1Only = process.argv.includes('--http1-only');
const tls = { cert: fs.readFileSync(arg('--cert')), key: fs.readFileSync(arg('--key')) };
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

const stats = { connections: 0, requests: 0, http2_requests: 0, alpn: { h2: 0, 'http/1.1': 0, none: 0 } };
// hop-by-hop headers and HTTP/2's pseudo-headers do not cross the front
const hop = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection',
  'http2-settings', 'te']);

function forward(req, res) {
  if (req.method === 'GET' && req.url === '/_front_stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  stats.requests++;
  if (req.httpVersionMajor === 2) stats.http2_requests++;
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (!k.startsWith(':') && !hop.has(k)) headers[k] = v;
  }
  if (!headers.host && req.headers[':authority']) headers.host = req.headers[':authority'];
  const up = http.request({ host: backend.hostname, port: backend.port, method: req.method, path: req.url,
    headers, agent }, (ur) => {
    const out = {};
    for (const [k, v] of Object.entries(ur.headers)) if (!hop.has(k)) out[k] = v;
    res.writeHead(ur.statusCode, out);
    ur.pipe(res);
  });
  up.on('error', (e) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`tls_front: the fake provider did not answer: ${e.message}\n`);
  });
  req.pipe(up);
}

const server = http1Only
  ? https.createServer({ ...tls, ALPNProtocols: ['http/1.1'] }, forward)
  : http2.createSecureServer({ ...tls, allowHTTP1: true,
    maxSessionMemory: 1024, settings: { maxConcurrentStreams: 1000 } }, forward);
server.on('secureConnection', (sock) => {
  stats.connections++;
  const p = sock.alpnProtocol;
  stats.alpn[p === 'h2' || p === 'http/1.1' ? p : 'none']++;
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0));
