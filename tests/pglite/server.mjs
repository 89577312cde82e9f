// tests/pglite/server.mjs - PGlite (PostgreSQL compiled to WASM) with the
// pgvector extension, served over PostgreSQL's wire protocol so that libpq,
// and so sink-postgres, talks to it as to any server. Debian has no pgvector
// package: this is how the sink's vector(n) + HNSW path is tested.
//
//   node server.mjs PORT [HOST]      (HOST defaults to 127.0.0.1)
//
// Prints "ready PORT" on stdout once it accepts connections, and stops on
// SIGTERM or SIGINT. In memory: every start is an empty database. PGlite is
// one backend, so every connection shares one session: the sink must be
// run with pool_size = 1 against it.
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const port = Number.parseInt(process.argv[2] ?? '', 10);
const host = process.argv[3] ?? '127.0.0.1';
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error('usage: node server.mjs PORT [HOST]');
    process.exit(2);
}

const db = await PGlite.create({ extensions: { vector } });
const server = new PGLiteSocketServer({ db, port, host, maxConnections: 8 });
server.addEventListener('error', (e) => console.error('pglite server error:', e.detail));
await server.start();
console.log(`ready ${port}`);

let stopping = false;
async function stop() {
    if (stopping) return;
    stopping = true;
    await server.stop();
    await db.close();
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
