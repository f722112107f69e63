// protocol_cases.mjs -- issue 3's protocol cases against a running
// ingest-recorder + chunk-store (started by test_ingest_protocol.c, which
// passes INGEST_URL, SESSION_ID, PARTICIPANT_ID, OTHER_PARTICIPANT_ID,
// INGEST_TOKEN_SECRET_FOR_TEST and NATS_URL). Each case prints ok/FAIL;
// the exit status is the number of failed cases.
import { randomBytes, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { connect as natsConnect } from 'nats';
import protobuf from 'protobufjs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Conn, ErrorCode, chunk, encode, hello, open, sha256 } from './wsclient.mjs';

const env = process.env;
const URL = env.INGEST_URL;
const SECRET = env.INGEST_TOKEN_SECRET_FOR_TEST;
const SID = env.SESSION_ID;
const PID = env.PARTICIPANT_ID;
const OTHER = env.OTHER_PARTICIPANT_ID;
const MAX_CHUNK = 1 << 20;
const ALLOWANCE = 16384;

const here = path.dirname(fileURLToPath(import.meta.url));
const root = new protobuf.Root();
root.resolvePath = (o, t) => path.join(here, '..', '..', 'proto', t);
root.loadSync('seashore/v1/chunks.proto', { keepCase: true });
root.loadSync('seashore/v1/work.proto', { keepCase: true });
const CommittedUpdate = root.lookupType('seashore.v1.CommittedUpdate');
const ResendRequest = root.lookupType('seashore.v1.ResendRequest');
const ReadReq = root.lookupType('seashore.v1.ReadRangeRequest');
const ReadRep = root.lookupType('seashore.v1.ReadRangeReply');

const nc = await natsConnect({ servers: env.NATS_URL });

function token({ sub = PID, sid = SID, exp = 300, key = SECRET, alg = 'HS256', iss = 'seashore', aud = 'seashore-ingest', tid } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss, aud, sub, sid, iat: now, exp: now + exp };
  if (tid) claims.tid = tid;
  return jwt.sign(claims, alg === 'none' ? '' : key, { algorithm: alg, noTimestamp: true });
}

async function readTrack(trackId) {
  const parts = [];
  let off = 0;
  for (;;) {
    const m = await nc.request('chunkstore.read', ReadReq.encode({ track_id: trackId, offset: off, length: MAX_CHUNK }).finish(), { timeout: 10000 });
    const r = ReadRep.toObject(ReadRep.decode(m.data), { longs: Number, defaults: true });
    if (r.error) throw new Error(`read ${trackId}: ${r.error}`);
    parts.push(Buffer.from(r.data));
    off += r.data.length;
    if (r.eof || r.data.length === 0) return Buffer.concat(parts);
  }
}

const errOf = (f) => (f && f.error ? f.error : null);
const isErr = (code) => (f) => f.error && f.error.code === code;
const isAck = (seq) => (f) => f.ack && f.ack.seq >= seq;

let failures = 0;
function expect(cond, what) {
  if (!cond) throw new Error(what);
}
async function run(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

// Sends chunks [from, to) of data pieces and waits for the Ack of to-1.
async function sendChunks(c, pieces, from, to) {
  for (let i = from; i < to; i++) c.send(chunk(i, pieces[i]));
  const a = await c.next(isAck(to - 1));
  expect(a, `no Ack for seq ${to - 1} (frames: ${JSON.stringify(c.frames.slice(0, 3))}, closed ${JSON.stringify(c.closed)})`);
}

function endFrame(pieces, over = {}) {
  const all = Buffer.concat(pieces);
  return { end: { chunk_count: pieces.length, total_bytes: all.length, sha256: sha256(all), ...over } };
}

async function expectError(c, code, closeCode) {
  const f = await c.next((x) => x.error);
  expect(f && f.error.code === code, `expected error ${code}, got ${JSON.stringify(f || c.closed)}`);
  expect(f.error.message.length > 0, 'error message empty');
  if (closeCode !== undefined) {
    const cl = await c.waitClosed();
    expect(cl && cl.code === closeCode, `expected close ${closeCode}, got ${JSON.stringify(cl)}`);
  }
  return f.error;
}

const pieces = (n, size = 70000) => Array.from({ length: n }, () => randomBytes(size - Math.floor(Math.random() * 1000)));

// A complete track used by several cases.
const doneTrack = randomUUID();
const donePieces = pieces(5);

await run('happy path: Welcome, in-order chunks, cumulative Acks, End -> Ended, byte-exact read', async () => {
  const [c, w] = await open(URL, token(), doneTrack);
  expect(w.welcome && w.welcome.resume_seq === 0, `Welcome ${JSON.stringify(w)}`);
  expect(w.welcome.max_chunk_bytes === MAX_CHUNK && w.welcome.max_inflight > 0, 'limits in Welcome');
  expect(w.welcome.session_id === SID && w.welcome.participant_id === PID, 'ids in Welcome');
  await sendChunks(c, donePieces, 0, 5);
  c.send(endFrame(donePieces));
  const e = await c.next((f) => f.ended);
  expect(e && e.ended.chunk_count === 5, `Ended ${JSON.stringify(e || c.closed)}`);
  expect(Buffer.from(e.ended.sha256).equals(sha256(Buffer.concat(donePieces))), 'Ended sha256');
  c.close();
  expect((await readTrack(doneTrack)).equals(Buffer.concat(donePieces)), 'read back differs');
});

await run('reconnect to an ended track: Welcome resume_seq = count, then Ended; identical resend re-acked', async () => {
  const [c, w] = await open(URL, token(), doneTrack);
  expect(w.welcome && w.welcome.resume_seq === 5, `Welcome ${JSON.stringify(w)}`);
  expect(await c.next((f) => f.ended), 'no Ended after Welcome');
  c.send(chunk(1, donePieces[1]));
  expect(await c.next(isAck(4)), 'identical resend of a durable chunk not re-acked');
  c.close();
});

// bad-input: ingest websocket | a chunk after the track ended | `TRACK_ENDED`, close 1008 | the ended track unchanged
await run('chunk after End: TRACK_ENDED, close 1008', async () => {
  const [c] = await open(URL, token(), doneTrack);
  c.send(chunk(5, randomBytes(100)));
  await expectError(c, ErrorCode.ERROR_CODE_TRACK_ENDED, 1008);
});

await run('resume: reconnect in the middle resumes at the first chunk not durable', async () => {
  const t = randomUUID();
  const p = pieces(6);
  let [c] = await open(URL, token(), t);
  await sendChunks(c, p, 0, 3);
  c.close();
  await c.waitClosed();
  [c] = await open(URL, token(), t).then(([cc, w]) => {
    expect(w.welcome && w.welcome.resume_seq === 3, `resume_seq ${JSON.stringify(w)}`);
    return [cc];
  });
  await sendChunks(c, p, 3, 6);
  c.send(endFrame(p));
  expect(await c.next((f) => f.ended), 'no Ended');
  c.close();
  expect((await readTrack(t)).equals(Buffer.concat(p)), 'read back differs');
});

// bad-input: ingest websocket | a binary message that is not protobuf | `BAD_FRAME`, close 1002 | none
await run('not protobuf: BAD_FRAME, close 1002', async () => {
  const c = new Conn(URL);
  await c.opened;
  c.sendRaw(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
  await expectError(c, ErrorCode.ERROR_CODE_BAD_FRAME, 1002);
});

// bad-input: ingest websocket | a text websocket message | `BAD_FRAME`, close 1002 | none
await run('text message: BAD_FRAME, close 1002', async () => {
  const c = new Conn(URL);
  await c.opened;
  c.sendRaw('hello', { binary: false });
  await expectError(c, ErrorCode.ERROR_CODE_BAD_FRAME, 1002);
});

// bad-input: ingest websocket | a truncated protobuf frame | `BAD_FRAME`, close 1002 | none
await run('truncated frame: BAD_FRAME, close 1002', async () => {
  const c = new Conn(URL);
  await c.opened;
  const full = encode(hello(token(), randomUUID()));
  c.sendRaw(full.subarray(0, full.length - 7));
  await expectError(c, ErrorCode.ERROR_CODE_BAD_FRAME, 1002);
});

// bad-input: ingest websocket | a websocket message over max_chunk_bytes + 16 KiB | `FRAME_TOO_LARGE`, close 1009 | none
await run('frame over the size limit: FRAME_TOO_LARGE, close 1009', async () => {
  const t = randomUUID();
  const [c] = await open(URL, token(), t);
  c.send(chunk(0, randomBytes(MAX_CHUNK + ALLOWANCE + 10)));
  const e = await expectError(c, ErrorCode.ERROR_CODE_FRAME_TOO_LARGE, 1009);
  expect(/limit/.test(e.message), `message names the limit: ${e.message}`);
});

// bad-input: ingest websocket | chunk data over `max_chunk_bytes` inside the frame allowance | `FRAME_TOO_LARGE` | none
await run('chunk data over max_chunk_bytes inside the frame allowance: FRAME_TOO_LARGE', async () => {
  const [c] = await open(URL, token(), randomUUID());
  c.send(chunk(0, randomBytes(MAX_CHUNK + 100)));
  await expectError(c, ErrorCode.ERROR_CODE_FRAME_TOO_LARGE, 1009);
});

// bad-input: ingest websocket | a chunk before `Hello` | `HELLO_REQUIRED`, close 1002 | none
await run('chunk before Hello: HELLO_REQUIRED, close 1002', async () => {
  const c = new Conn(URL);
  await c.opened;
  c.send(chunk(0, randomBytes(10)));
  await expectError(c, ErrorCode.ERROR_CODE_HELLO_REQUIRED, 1002);
});

// bad-input: ingest websocket | `Hello.protocol_version` other than 1 | `UNSUPPORTED_VERSION` | none
await run('unsupported protocol version: UNSUPPORTED_VERSION', async () => {
  const [c] = await open(URL, token(), randomUUID(), { protocol_version: 9 });
  await expectError(c, ErrorCode.ERROR_CODE_UNSUPPORTED_VERSION, 1002);
});

for (const [name, tok, code] of [
  ['missing token', '', ErrorCode.ERROR_CODE_BAD_TOKEN],
  ['malformed token', 'not.a.jwt', ErrorCode.ERROR_CODE_BAD_TOKEN],
  ['wrongly signed token', token({ key: 'another-secret-0123456789abcdef0123' }), ErrorCode.ERROR_CODE_BAD_TOKEN],
  ['alg none token', token({ alg: 'none' }), ErrorCode.ERROR_CODE_BAD_TOKEN],
  ['wrong audience', token({ aud: 'livekit' }), ErrorCode.ERROR_CODE_BAD_TOKEN],
  ['expired token', token({ exp: -3600 }), ErrorCode.ERROR_CODE_TOKEN_EXPIRED],
  ['token of another participant for a foreign track', token({ sub: OTHER }), ErrorCode.ERROR_CODE_TOKEN_SCOPE],
  ['token scoped to another track', token({ tid: randomUUID() }), ErrorCode.ERROR_CODE_TOKEN_SCOPE],
  ['token of an unknown participant', token({ sub: randomUUID() }), ErrorCode.ERROR_CODE_UNKNOWN_TRACK],
  ['token of an unknown session', token({ sid: randomUUID() }), ErrorCode.ERROR_CODE_UNKNOWN_TRACK],
]) {
  // bad-input: ingest websocket | ingest token missing, malformed, wrongly signed, `alg: none`, wrong audience, expired, of another participant or track, of an unknown session or participant | `BAD_TOKEN`, `TOKEN_EXPIRED`, `TOKEN_SCOPE` or `UNKNOWN_TRACK`, close 1008 | none
  await run(`${name}: error ${code}, close 1008`, async () => {
    // an existing track for scope errors, a new one for unknown session/participant
    const track = code === ErrorCode.ERROR_CODE_UNKNOWN_TRACK ? randomUUID() : doneTrack;
    const [c] = await open(URL, tok, track);
    await expectError(c, code, 1008);
  });
}

// bad-input: ingest websocket | a token in the URL and a different one in `Hello` | `BAD_TOKEN` | none
await run('token in the URL and a different one in Hello: BAD_TOKEN', async () => {
  const c = new Conn(`${URL}?token=${token()}`);
  await c.opened;
  c.send(hello(token({ exp: 200 }), randomUUID()));
  await expectError(c, ErrorCode.ERROR_CODE_BAD_TOKEN, 1008);
});

await run('token in the URL only: accepted', async () => {
  const c = new Conn(`${URL}?token=${token()}`);
  await c.opened;
  c.send(hello('', randomUUID()));
  const w = await c.next();
  expect(w && w.welcome, `Welcome ${JSON.stringify(w)}`);
  c.close();
});

// bad-input: ingest websocket | a chunk seq that skips ahead | `SEQ_GAP` (retryable), connection stays open | the chunk discarded; nothing stored out of order
await run('seq skips ahead: SEQ_GAP, connection stays open and continues', async () => {
  const t = randomUUID();
  const [c] = await open(URL, token(), t);
  c.send(chunk(2, randomBytes(100)));
  const e = await expectError(c, ErrorCode.ERROR_CODE_SEQ_GAP);
  expect(e.seq === 2 && e.retryable && /expected seq 0/.test(e.message), JSON.stringify(e));
  const p = pieces(1, 1000);
  await sendChunks(c, p, 0, 1);
  c.close();
});

// bad-input: ingest websocket | a chunk whose sha256 does not match its data | `CHECKSUM_MISMATCH`, connection stays open | the chunk discarded
await run('wrong chunk sha256: CHECKSUM_MISMATCH, connection stays open', async () => {
  const [c] = await open(URL, token(), randomUUID());
  c.send({ chunk: { seq: 0, data: randomBytes(100), sha256: Buffer.alloc(32, 1) } });
  const e = await expectError(c, ErrorCode.ERROR_CODE_CHECKSUM_MISMATCH);
  expect(e.seq === 0 && e.retryable, JSON.stringify(e));
  await sendChunks(c, [randomBytes(50)], 0, 1);
  c.close();
});

// bad-input: ingest websocket | a resend of a durable chunk with other bytes | `RESEND_MISMATCH`, close 1008 | the stored chunk stays
await run('differing resend of a durable chunk: RESEND_MISMATCH, close 1008, stored chunk stays', async () => {
  const t = randomUUID();
  const p = pieces(3, 5000);
  let [c] = await open(URL, token(), t);
  await sendChunks(c, p, 0, 3);
  c.send(chunk(1, randomBytes(5000)));
  await expectError(c, ErrorCode.ERROR_CODE_RESEND_MISMATCH, 1008);
  // after a reconnect (the check goes through chunk-store's index)
  [c] = await open(URL, token(), t);
  c.send(chunk(0, Buffer.concat([p[0], Buffer.from('x')])));
  await expectError(c, ErrorCode.ERROR_CODE_RESEND_MISMATCH, 1008);
  [c] = await open(URL, token(), t);
  c.send(endFrame(p));
  expect(await c.next((f) => f.ended), 'End after refused resends');
  c.close();
  expect((await readTrack(t)).equals(Buffer.concat(p)), 'stored bytes changed');
});

// bad-input: ingest websocket | `End` with a wrong count, size or sha256 | `END_MISMATCH` naming the field and both values, close 1008 | the track stays open; a right `End` then works
await run('End with a wrong count, size or sha256: END_MISMATCH naming the field, close 1008; then a right End works', async () => {
  const t = randomUUID();
  const p = pieces(3, 4000);
  let [c] = await open(URL, token(), t);
  await sendChunks(c, p, 0, 3);
  const all = Buffer.concat(p);
  for (const [over, field] of [
    [{ chunk_count: 4 }, 'chunk_count'],
    [{ total_bytes: all.length + 1 }, 'total_bytes'],
    [{ sha256: sha256(Buffer.from('other')) }, 'sha256'],
  ]) {
    c.send(endFrame(p, over));
    const e = await expectError(c, ErrorCode.ERROR_CODE_END_MISMATCH, 1008);
    expect(e.message.includes(field), `message names ${field}: ${e.message}`);
    [c] = await open(URL, token(), t);
  }
  c.send(endFrame(p));
  expect(await c.next((f) => f.ended), 'right End refused');
  c.close();
  expect((await readTrack(t)).equals(all), 'stored bytes changed');
});

// bad-input: ingest websocket | the connection cut in the middle of a frame | none (the connection is gone) | nothing partial stored; resume works
await run('connection dropped in the middle of a frame: nothing partial stored, resume works', async () => {
  const t = randomUUID();
  const p = pieces(3, 100000);
  let [c] = await open(URL, token(), t);
  await sendChunks(c, p, 0, 1);
  // a masked binary frame announcing 100 kB, cut after 1 kB
  const body = encode(chunk(1, p[1]));
  const head = Buffer.alloc(14);
  head[0] = 0x82;
  head[1] = 0x80 | 127;
  head.writeBigUInt64BE(BigInt(body.length), 2);
  randomBytes(4).copy(head, 10);
  const sock = c.ws._socket;
  sock.write(Buffer.concat([head, body.subarray(0, 1000)]));
  await new Promise((r) => setTimeout(r, 200));
  sock.destroy();
  await c.waitClosed();
  let w;
  [c, w] = await open(URL, token(), t);
  expect(w.welcome && w.welcome.resume_seq === 1, `resume_seq ${JSON.stringify(w)}`);
  await sendChunks(c, p, 1, 3);
  c.send(endFrame(p));
  expect(await c.next((f) => f.ended), 'no Ended');
  c.close();
  expect((await readTrack(t)).equals(Buffer.concat(p)), 'read back differs');
});

// bad-input: ingest websocket | a client that never reads (slow consumer) | disconnected once 64 frames are unsent (ingest logs `slow consumer: closing`; its close 1008 "slow consumer" sits behind the unread frames, and the client sees the connection drop, 1006) | none; another track recorded meanwhile is byte-exact
await run('slow consumer (never reads): disconnected, another track byte-exact', async () => {
  const [slow] = await open(URL, token(), randomUUID());
  slow.ws._socket.pause();
  const ping = encode({ ping: { client_time_us: Date.now() * 1000, nonce: 1 } });
  const start = Date.now();
  // keep sending pings without reading the pongs until the server gives up
  while (!slow.ws._socket.destroyed && slow.ws.readyState === 1 && Date.now() - start < 60000) {
    for (let i = 0; i < 2000; i++) slow.ws.send(ping);
    await new Promise((r) => setTimeout(r, 20));
    if (slow.ws._socket.writableLength > 8 << 20) break; // server stopped reading us
  }
  // meanwhile another client records a track, read back byte-exact
  const t = randomUUID();
  const p = pieces(4, 50000);
  const [c] = await open(URL, token(), t);
  await sendChunks(c, p, 0, 4);
  c.send(endFrame(p));
  const e = await c.next((f) => f.ended);
  expect(e && Buffer.from(e.ended.sha256).equals(sha256(Buffer.concat(p))), 'other track: no Ended with its sha256');
  c.close();
  expect((await readTrack(t)).equals(Buffer.concat(p)), 'other track: read back differs');
  slow.ws._socket.resume();
  const cl = await slow.waitClosed(90000);
  expect(cl, 'slow consumer never disconnected');
  // what arrives: the connection dropped (1006); a close frame would have
  // to be 1008 "slow consumer" (test_ingest_protocol checks ingest's log)
  expect(cl.code === 1006 || (cl.code === 1008 && /^slow consumer/.test(cl.reason)), `close ${JSON.stringify(cl)}`);
});

await run('Committed: forwarded when the uploader reports progress, never backwards', async () => {
  const t = randomUUID();
  const p = pieces(4, 2000);
  const [c, w] = await open(URL, token(), t);
  expect(w.welcome && w.welcome.committed_seq === 0, 'committed_seq starts at 0');
  await sendChunks(c, p, 0, 4);
  const pub = (seq) => nc.publish(`track.committed.${t}`, CommittedUpdate.encode({ track_id: t, committed_seq: seq, committed_bytes: seq * 2000 }).finish());
  pub(2);
  const f = await c.next((x) => x.committed);
  expect(f && f.committed.committed_seq === 2, `Committed ${JSON.stringify(f)}`);
  pub(1); // stale: ignored
  pub(3);
  const g = await c.next((x) => x.committed);
  expect(g && g.committed.committed_seq === 3, `Committed ${JSON.stringify(g)}`);
  c.close();
});

await run('Resend: forwarded to the connected client, then close 1012 so it resumes from a new Welcome', async () => {
  const t = randomUUID();
  const p = pieces(2, 1000);
  const [c] = await open(URL, token(), t);
  await sendChunks(c, p, 0, 2);
  nc.publish(`track.resend.${t}`, ResendRequest.encode({ track_id: t, from_seq: 1, reason: 'test' }).finish());
  const f = await c.next((x) => x.resend);
  expect(f && f.resend.from_seq === 1 && f.resend.reason === 'test', `Resend ${JSON.stringify(f || c.closed)}`);
  const cl = await c.waitClosed();
  expect(cl && cl.code === 1012, `close ${JSON.stringify(cl)}`);
});

// bad-input: ingest websocket | more un-acked chunks than `Welcome.max_inflight` | no error: ingest stops reading the connection at the limit (TCP backpressure) until chunks are durable | none; every chunk acked, the track byte-exact
await run('chunks over max_inflight in one burst: read as Acks come, no error, byte-exact', async () => {
  const t = randomUUID();
  const [c, w] = await open(URL, token(), t);
  const limit = w.welcome.max_inflight;
  // twice the limit of about 1 MiB chunks in one burst, no waiting for Acks
  const p = pieces(limit * 2, MAX_CHUNK);
  for (let i = 0; i < p.length; i++) c.send(chunk(i, p[i]));
  expect(await c.next(isAck(p.length - 1), 60000), `no Ack for seq ${p.length - 1}: ${JSON.stringify(c.closed)}`);
  const errs = c.frames.filter((f) => f.error);
  expect(errs.length === 0, `errors: ${JSON.stringify(errs.slice(0, 2))}`);
  c.send(endFrame(p));
  expect(await c.next((x) => x.ended), 'no Ended');
  c.close();
  expect((await readTrack(t)).equals(Buffer.concat(p)), 'read back differs');
});

for (const [name, track, extra, field] of [
  ['track_id not a UUID', 'not-a-uuid', {}, 'track_id'],
  ['track_id an upper-case UUID', randomUUID().toUpperCase(), {}, 'track_id'],
  ['kind unset', null, { kind: 0 }, 'kind'],
  ['empty mime_type', null, { mime_type: '' }, 'mime_type'],
  ['mime_type over 255 bytes', null, { mime_type: `video/webm;${'x'.repeat(250)}` }, 'mime_type'],
  ['capture_start_unix_us 0', null, { capture_start_unix_us: 0 }, 'capture_start_unix_us'],
  ['capture_start_unix_us negative', null, { capture_start_unix_us: -5 }, 'capture_start_unix_us'],
  ['client_name over 255 bytes', null, { client_name: 'x'.repeat(256) }, 'client_name'],
]) {
  // bad-input: ingest websocket | `Hello` with `track_id` not a canonical lower-case UUID, `kind` unset, `mime_type` empty or over 255 bytes, `capture_start_unix_us` <= 0, or `client_name` over 255 bytes | `BAD_FRAME` naming the field, close 1002 | none (no track created)
  await run(`Hello with ${name}: BAD_FRAME naming ${field}, close 1002`, async () => {
    const t = track ?? randomUUID();
    const [c] = await open(URL, token(), t, extra);
    const e = await expectError(c, ErrorCode.ERROR_CODE_BAD_FRAME, 1002);
    expect(e.message.includes(`Hello.${field}`), `message names Hello.${field}: ${e.message}`);
    if (track === null) {
      // the same Hello with the field right opens a new track at seq 0
      const [ok, w] = await open(URL, token(), t);
      expect(w.welcome && w.welcome.resume_seq === 0, `Welcome ${JSON.stringify(w)}`);
      ok.close();
    }
  });
}

for (const [name, bad, what] of [
  ['an empty chunk', (seq) => ({ chunk: { seq, data: Buffer.alloc(0), sha256: Buffer.alloc(0) } }), 'data is empty'],
  ['a chunk sha256 of 31 bytes', (seq, d) => ({ chunk: { seq, data: d, sha256: sha256(d).subarray(0, 31) } }), 'sha256 is 31 bytes'],
  ['a chunk sha256 of 33 bytes', (seq, d) => ({ chunk: { seq, data: d, sha256: Buffer.concat([sha256(d), Buffer.from([0])]) } }), 'sha256 is 33 bytes'],
]) {
  // bad-input: ingest websocket | an empty chunk, or a chunk `sha256` neither absent nor 32 bytes | `BAD_FRAME` naming the seq, close 1002 | the chunk discarded; resume at its seq, the track byte-exact
  await run(`${name}: BAD_FRAME, close 1002, nothing stored, resume works`, async () => {
    const t = randomUUID();
    const p = pieces(3, 8000);
    let [c] = await open(URL, token(), t);
    await sendChunks(c, p, 0, 2);
    c.send(bad(2, p[2]));
    const e = await expectError(c, ErrorCode.ERROR_CODE_BAD_FRAME, 1002);
    expect(e.message.includes('chunk seq 2') && e.message.includes(what), `message: ${e.message}`);
    let w;
    [c, w] = await open(URL, token(), t);
    expect(w.welcome && w.welcome.resume_seq === 2, `resume_seq ${JSON.stringify(w)}`);
    await sendChunks(c, p, 2, 3);
    c.send(endFrame(p));
    expect(await c.next((x) => x.ended), 'no Ended');
    c.close();
    expect((await readTrack(t)).equals(Buffer.concat(p)), 'read back differs');
  });
}

// bad-input: ingest websocket | `End.sha256` not 32 bytes | `BAD_FRAME` naming its length, close 1002 | the track stays open; a right End then works, byte-exact
await run('End.sha256 of the wrong length: BAD_FRAME, close 1002; then a right End works', async () => {
  const t = randomUUID();
  const p = pieces(2, 6000);
  let [c] = await open(URL, token(), t);
  await sendChunks(c, p, 0, 2);
  for (const len of [0, 16]) {
    c.send(endFrame(p, { sha256: Buffer.alloc(len, 7) }));
    const e = await expectError(c, ErrorCode.ERROR_CODE_BAD_FRAME, 1002);
    expect(e.message.includes(`End.sha256 is ${len} bytes`), `message: ${e.message}`);
    [c] = await open(URL, token(), t);
  }
  c.send(endFrame(p));
  expect(await c.next((x) => x.ended), 'right End refused');
  c.close();
  expect((await readTrack(t)).equals(Buffer.concat(p)), 'read back differs');
});

await run('tracks refused above are unchanged', async () => {
  expect((await readTrack(doneTrack)).equals(Buffer.concat(donePieces)), 'done track changed');
});

await nc.close();
console.log(`${failures} case(s) failed`);
process.exit(failures);
