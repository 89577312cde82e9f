// tests/s3rver/server.mjs - s3rver (the 20 Minutes fork, which checks AWS
// Signature Version 4 as S3 does) on 127.0.0.1, for the s3:// source tests.
//
//   node --openssl-legacy-provider server.mjs DIR [BUCKET...]
//
// (s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3
// keeps in its legacy provider: without the flag a listing of more than
// 1000 keys answers 500.)
//
// Stores objects under DIR, creates each BUCKET, listens on a free port and
// prints "ready PORT" on stdout once it accepts connections; stops on
// SIGTERM or SIGINT. Its one account is access key S3RVER, secret S3RVER:
// a request signed with another secret is answered 403
// SignatureDoesNotMatch.
//
// With S3_GATE=FILE in the environment, a proxy of its own stands in front
// of s3rver (its port is the one printed): it prints "list URL" for every
// ListObjectsV2 request, and holds a request for a listing's second or later
// page (one with a continuation-token) until FILE exists. Requests pass
// unchanged, Host header included, so their signatures still hold.
import fs from 'node:fs';
import http from 'node:http';
import S3rver from '@20minutes/s3rver';

const [dir, ...buckets] = process.argv.slice(2);
if (!dir) {
    console.error('usage: node server.mjs DIR [BUCKET...]');
    process.exit(2);
}

const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory: dir,
    silent: true,
    vhostBuckets: false,
    configureBuckets: buckets.map((name) => ({ name, configs: [] })),
});
const { port: inner } = await server.run();
const gate = process.env.S3_GATE;
let proxy = null;
if (!gate) {
    console.log(`ready ${inner}`);
} else {
    proxy = http.createServer((req, res) => {
        const forward = () => {
            const up = http.request(
                { host: '127.0.0.1', port: inner, method: req.method, path: req.url, headers: req.headers },
                (answer) => {
                    res.writeHead(answer.statusCode, answer.headers);
                    answer.pipe(res);
                },
            );
            up.on('error', () => {
                res.statusCode = 502;
                res.end();
            });
            req.pipe(up);
        };
        if (req.method === 'GET' && req.url.includes('list-type=2')) console.log(`list ${req.url}`);
        if (!req.url.includes('continuation-token=')) return forward();
        const wait = () => (fs.existsSync(gate) ? forward() : setTimeout(wait, 50));
        wait();
    });
    proxy.listen(0, '127.0.0.1', () => console.log(`ready ${proxy.address().port}`));
}

let stopping = false;
async function stop() {
    if (stopping) return;
    stopping = true;
    if (proxy) proxy.close();
    await server.close();
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
