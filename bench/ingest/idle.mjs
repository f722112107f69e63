// idle.mjs -- K idle recorder connections, for bench/ingest/run.sh.
//
//   INGEST_TOKEN=<token> node bench/ingest/idle.mjs <ws-url> <K> [concurrency]
//
// Opens K websocket connections to ingest-recorder, each says Hello with a
// fresh track id and waits for its Welcome; then prints "ready <K>" on stdout
// and holds them all (one Ping per connection every 10 s, as a recorder
// does, so none reaches IDLE_TIMEOUT) until SIGTERM or SIGINT, when it
// drops them and exits 0. If a connection fails to reach its Welcome, or
// the server closes one (e.g. because it stopped), it says so on stderr and
// exits 1.
import { randomUUID } from 'node:crypto';
import { open } from '../../tests/ingest/wsclient.mjs';

const [url, kArg, concArg] = process.argv.slice(2);
const token = process.env.INGEST_TOKEN;
const K = Number(kArg);
const concurrency = Number(concArg ?? 50);
if (!url || !Number.isInteger(K) || K < 1 || !Number.isInteger(concurrency) || concurrency < 1 || !token) {
  console.error('usage: INGEST_TOKEN=<token> node idle.mjs <ws-url> <K> [concurrency]');
  process.exit(2);
}

const PING_MS = 10000;
const conns = [];
let nonce = 0;

async function openOne() {
  const [c, f] = await open(url, token, randomUUID());
  if (!f || !f.welcome) {
    const why = f ? JSON.stringify(f) : c.closed ? `closed ${c.closed.code} ${c.closed.reason}` : 'no answer';
    c.ws.terminate();
    throw new Error(`no Welcome: ${why}`);
  }
  conns.push(c);
  // Pings at a random phase, so K connections do not ping in one burst.
  const ping = () => c.send({ ping: { client_time_us: Date.now() * 1000, nonce: ++nonce } });
  c.timer = setTimeout(function tick() {
    if (c.closed) return;
    ping();
    c.frames.length = 0; // Pongs: nothing to keep
    c.timer = setTimeout(tick, PING_MS);
  }, Math.floor(Math.random() * PING_MS));
}

async function openAll() {
  let next = 0;
  const worker = async () => {
    while (next < K) {
      next++;
      await openOne();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, K) }, worker));
}

function closeAll(code) {
  for (const c of conns) {
    clearTimeout(c.timer);
    c.ws.terminate();
  }
  process.exit(code);
}

process.on('SIGTERM', () => closeAll(0));
process.on('SIGINT', () => closeAll(0));

try {
  await openAll();
} catch (err) {
  console.error(`idle.mjs: ${conns.length} of ${K} connections open; ${err.message}`);
  closeAll(1);
}
const dropped = conns.filter((c) => c.closed);
if (dropped.length) {
  console.error(`idle.mjs: ${dropped.length} connections closed by the server (e.g. ${dropped[0].closed.code})`);
  closeAll(1);
}
process.stdout.write(`ready ${conns.length}\n`);
// Report a connection the server drops while we hold them.
setInterval(() => {
  const gone = conns.filter((c) => c.closed);
  if (gone.length) {
    console.error(`idle.mjs: ${gone.length} connections closed by the server while idle (e.g. ${gone[0].closed.code})`);
    closeAll(1);
  }
}, 500);
