// blackhole_proxy.mjs -- a loopback TCP proxy that can turn the connections
// it carries half-open: on request they stay established but no byte moves
// in either direction any more (a peer that vanished without a FIN, a
// NAT that dropped the flow). New connections are forwarded normally.
//
//   node blackhole_proxy.mjs --target PORT --control FILE
//
// Prints PROXY_PORT=<port>. When FILE exists, every connection open at
// that moment becomes a black hole (FILE is then removed). Loopback only.
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
  const pair = { client, upstream, holed: false };
  live.add(pair);
  const forward = (from, to) =>
    from.on('data', (d) => {
      if (!pair.holed) to.write(d);
    });
  forward(client, upstream);
  forward(upstream, client);
  // a black hole passes on no close either: each side finds out alone
  const end = (side, other) => () => {
    side.destroy();
    if (!pair.holed) other.destroy();
    if (side.destroyed && other.destroyed) live.delete(pair);
  };
  client.on('close', end(client, upstream)).on('error', end(client, upstream));
  upstream.on('close', end(upstream, client)).on('error', end(upstream, client));
});
server.listen(0, '127.0.0.1', () => console.log(`PROXY_PORT=${server.address().port}`));

setInterval(() => {
  if (!fs.existsSync(control)) return;
  fs.rmSync(control);
  for (const p of live) p.holed = true; // established, silent, never closed by us
  console.log(`black-holed ${live.size} connection(s)`);
}, 100);
