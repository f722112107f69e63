// limits_cases.mjs -- ingest-recorder's configured limits, run by
// test_ingest_limits.c with IDLE_TIMEOUT=2s, MAX_CONNECTIONS=4,
// MAX_INFLIGHT=2 and a 2 MiB chunk log (CHUNK_LOG_MAX_BYTES).
import { randomBytes, randomUUID } from 'node:crypto';
import { Conn, ErrorCode, chunk, open, sha256 } from './wsclient.mjs';
import { URL, expect, finish, run, sleep, token } from './cases.mjs';

await run('max_inflight: a client sending 20 chunks at once is slowed by flow control, not refused', async () => {
  const [c, w] = await open(URL, token(), randomUUID());
  expect(w.welcome && w.welcome.max_inflight === 2, `Welcome ${JSON.stringify(w)}`);
  const p = Array.from({ length: 20 }, () => randomBytes(50000));
  for (let i = 0; i < 20; i++) c.send(chunk(i, p[i]));
  const a = await c.next((f) => f.ack && f.ack.seq === 19, 20000);
  expect(a, `not all acked: ${JSON.stringify(c.frames.filter((f) => f.error))}`);
  const errors = c.frames.filter((f) => f.error);
  expect(errors.length === 0, `errors: ${JSON.stringify(errors)}`);
  const all = Buffer.concat(p);
  c.send({ end: { chunk_count: 20, total_bytes: all.length, sha256: sha256(all) } });
  expect(await c.next((f) => f.ended), 'no Ended');
  c.close();
  await c.waitClosed();
});

// bad-input: ingest websocket | a silent connection (no frame for `IDLE_TIMEOUT`) | dropped (1006) | none
await run('idle timeout: a silent connection is dropped; one that pings stays', async () => {
  const [silent] = await open(URL, token(), randomUUID());
  const [pinger] = await open(URL, token(), randomUUID());
  for (let i = 0; i < 8; i++) {
    pinger.send({ ping: { client_time_us: Date.now() * 1000, nonce: i } });
    await sleep(500);
  }
  expect(silent.closed, 'silent connection still open after 4 s (IDLE_TIMEOUT=2s)');
  expect(!pinger.closed, `pinging connection closed: ${JSON.stringify(pinger.closed)}`);
  const pong = await pinger.next((f) => f.pong && f.pong.nonce === 7);
  expect(pong && pong.pong.server_receive_time_us > 0, 'Pong carries server times');
  pinger.close();
  await pinger.waitClosed();
});

// bad-input: ingest websocket | connections over `MAX_CONNECTIONS` | `BACK_PRESSURE` (retryable), close 1013 | none
await run('max connections: the 5th gets BACK_PRESSURE and close 1013; a slot freed is usable', async () => {
  const held = [];
  for (let i = 0; i < 4; i++) {
    const [c, w] = await open(URL, token(), randomUUID());
    expect(w && w.welcome, `connection ${i}: ${JSON.stringify(w)}`);
    held.push(c);
  }
  const extra = new Conn(URL);
  await extra.opened;
  const e = await extra.next((f) => f.error);
  expect(e && e.error.code === ErrorCode.ERROR_CODE_BACK_PRESSURE && e.error.retryable, JSON.stringify(e));
  const cl = await extra.waitClosed();
  expect(cl && cl.code === 1013, `close ${JSON.stringify(cl)}`);
  held[0].close();
  await held[0].waitClosed();
  await sleep(200);
  const [again, w] = await open(URL, token(), randomUUID());
  expect(w && w.welcome, `after a slot was freed: ${JSON.stringify(w)}`);
  again.close();
  for (const c of held.slice(1)) c.close();
  await sleep(300);
});

// bad-input: ingest websocket | chunks while the chunk log is full | `BACK_PRESSURE` (retryable, `retry_after_ms`), connection stays open | nothing acked is lost
await run('full chunk log: BACK_PRESSURE (retryable, connection open), nothing acked is lost', async () => {
  const t = randomUUID();
  const [c] = await open(URL, token(), t);
  const p = [];
  let refused = null;
  for (let seq = 0; seq < 40 && !refused; seq++) {
    p.push(randomBytes(256 * 1024));
    c.send(chunk(seq, p[seq]));
    const f = await c.next((x) => (x.ack && x.ack.seq === seq) || x.error, 10000);
    expect(f, `no answer for chunk ${seq}`);
    if (f.error) refused = f.error;
  }
  expect(refused && refused.code === ErrorCode.ERROR_CODE_BACK_PRESSURE, `expected BACK_PRESSURE, got ${JSON.stringify(refused)}`);
  expect(refused.retryable && refused.retry_after_ms > 0, JSON.stringify(refused));
  expect(!c.closed, 'connection closed on back-pressure');
  const acked = p.slice(0, refused.seq);
  expect(acked.length > 0, 'nothing acked before the log filled');
  const all = Buffer.concat(acked);
  c.send({ end: { chunk_count: acked.length, total_bytes: all.length, sha256: sha256(all) } });
  const e = await c.next((f) => f.ended);
  expect(e, `End of the acked prefix refused: ${JSON.stringify(c.frames)}`);
  c.close();
});

finish();
