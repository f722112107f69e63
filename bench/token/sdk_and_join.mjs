// sdk_and_join.mjs -- the peer and the end-to-end half of bench/token:
//   node sdk_and_join.mjs sdk SECONDS            livekit-server-sdk toJwt()/s
//   node sdk_and_join.mjs join SECONDS API_URL API_KEY CONCURRENCY
//        POST /v1/sessions/{sid}/participants (database, both tokens)
// Each prints one JSON object.
import { AccessToken } from 'livekit-server-sdk';

const [mode, secondsArg, api, key, concArg] = process.argv.slice(2);
const seconds = Number(secondsArg || 3);

async function sdk() {
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    const at = new AccessToken('APIbenchkey', 'bench-livekit-secret-0123456789abcdef0123', { identity: `guest-${n}`, name: 'Guest', ttl: '6h', metadata: '{"participant_id":"7d1c2b3a-0000-4000-8000-000000000001"}' });
    at.addGrant({ room: '3f2b8c1e-6d4a-4c1b-9a57-0e2f5d8c9b10', roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
    await at.toJwt();
    n++;
  }
  console.log(JSON.stringify({ sdk_tokens_per_s: Math.round(n / ((performance.now() - start) / 1000)) }));
}

async function join() {
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  const s = await (await fetch(`${api}/v1/sessions`, { method: 'POST', headers, body: '{"title":"bench"}' })).json();
  const lat = [];
  let n = 0, errors = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  async function worker() {
    while (performance.now() < end) {
      const t0 = performance.now();
      const r = await fetch(`${api}/v1/sessions/${s.id}/participants`, { method: 'POST', headers, body: '{"display_name":"Guest"}' });
      await r.arrayBuffer();
      if (r.status === 201) { n++; lat.push(performance.now() - t0); } else errors++;
    }
  }
  await Promise.all(Array.from({ length: Number(concArg || 8) }, worker));
  lat.sort((a, b) => a - b);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : 0);
  console.log(JSON.stringify({ joins_per_s: Math.round(n / ((performance.now() - start) / 1000)), p50_ms: +q(0.5).toFixed(2), p99_ms: +q(0.99).toFixed(2), errors }));
}

await (mode === 'sdk' ? sdk() : join());
