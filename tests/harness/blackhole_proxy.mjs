// blackhole_proxy.mjs -- a plain loopback TCP proxy (no protocol parsing)
// that can break the connections it carries on request:
//
//   * black hole: they stay established but no byte moves in either
//     direction any more (a peer that vanished without a FIN, a NAT that
//     dropped the flow);
//   * cut: each is cut N bytes later (counting both directions): the
//     bytes before the cut are delivered, then both sides get a FIN, so a
//     peer sees its connection end in the middle of whatever was in flight
//     (a websocket frame, a NATS PUB or MSG and its payload).
//
// New connections are forwarded normally.
//
//   node blackhole_proxy.mjs --target PORT --control FILE
//
// Prints PROXY_PORT=<port>. When FILE exists, its content says what to do
// to every connection open at that moment (FILE is then removed):
//   empty or "hole"   black-hole them
//   "cut N"           cut each after N more bytes
// and one line per action: "black-holed K connection(s)", "cutting K
// connection(s) after N bytes", and per cut "cut <dir> at byte B of a
// D-byte read (mid-line|after a line end) next: <the next 16 bytes>",
// dir being c2u (client to target) or u2c. Loopback only.
import fs from 'node:fs';
import net from 'node:net';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const target = Number(args.target);
const control = args.control;
if (!target || !control) {
  console.error('usage: node blackhole_proxy.mjs --target PORT --control FILE');
  process.exit(2);
}

const live = new Set();
const server = net.createServer((client) => {
  const upstream = net.connect(target, '127.0.0.1');
  const pair = { client, upstream, holed: false, cutLeft: -1, cut: false };
  live.add(pair);
  const forward = (from, to, dir) =>
    from.on('data', (d) => {
      if (pair.holed || pair.cut) return;
      if (pair.cutLeft < 0 || d.length <= pair.cutLeft) {
        if (pair.cutLeft >= 0) pair.cutLeft -= d.length;
        to.write(d);
        return;
      }
      // cut inside this read: deliver the bytes before, then FIN both ways
      const at = Math.max(1, pair.cutLeft);
      const mid = d[at - 1] !== 0x0a;
      const next = JSON.stringify(d.subarray(at, at + 16).toString('latin1'));
      console.log(`cut ${dir} at byte ${at} of a ${d.length}-byte read (${mid ? 'mid-line' : 'after a line end'}) next: ${next}`);
      pair.cut = true;
      to.end(d.subarray(0, at));
      from.end();
      setTimeout(() => {
        client.destroy();
        upstream.destroy();
      }, 2000).unref();
    });
  forward(client, upstream, 'c2u');
  forward(upstream, client, 'u2c');
  // a black hole passes on no close either: each side finds out alone
  const end = (side, other) => () => {
    side.destroy();
    if (!pair.holed && !pair.cut) other.destroy();
    if (side.destroyed && other.destroyed) live.delete(pair);
  };
  client.on('close', end(client, upstream)).on('error', end(client, upstream));
  upstream.on('close', end(upstream, client)).on('error', end(upstream, client));
});
server.listen(0, '127.0.0.1', () => console.log(`PROXY_PORT=${server.address().port}`));

setInterval(() => {
  if (!fs.existsSync(control)) return;
  const what = fs.readFileSync(control, 'utf8').trim();
  fs.rmSync(control);
  const open = [...live].filter((p) => !p.holed && !p.cut && !p.client.destroyed && !p.upstream.destroyed);
  const m = /^cut (\d+)$/.exec(what);
  if (m) {
    for (const p of open) p.cutLeft = Number(m[1]);
    console.log(`cutting ${open.length} connection(s) after ${m[1]} bytes`);
    return;
  }
  for (const p of live) p.holed = true; // established, silent, never closed by us
  console.log(`black-holed ${live.size} connection(s)`);
}, 100);
