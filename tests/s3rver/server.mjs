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
const { port } = await server.run();
console.log(`ready ${port}`);

let stopping = false;
async function stop() {
    if (stopping) return;
    stopping = true;
    await server.close();
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
