// recorder-worker.js -- one track's uploader, in a module Worker so that
// hashing, IndexedDB and the websocket never block the page.
//
// Messages from the page:
//   { type: 'init', track, token }   a new track (track.nextSeq 0) or one
//                                    found by recovery (track from the store)
//   { type: 'blob', data, captureTimeUs }  a MediaRecorder blob, in order
//   { type: 'stop', durationUs }     no more blobs: End after the last chunk
//   { type: 'token', token }         answer to 'need-token'
// Messages to the page:
//   { type: 'progress', detail }     see StudioRecorder's 'progress' event
//   { type: 'need-token' }           the token expired or was refused
//   { type: 'busy' }                 another tab holds this track
//   { type: 'store-failed', error } a chunk could not be stored locally: the
//                                    worker takes no more blobs and ends the
//                                    track with what it stored
//
// Rules (docs/protocol.md): a chunk is in IndexedDB before it is sent; it is
// deleted only below Committed, never on Ack; resume from Welcome.resume_seq;
// End carries the sha256 of the whole stream, kept incrementally with its
// state in the track record so a recovered track can still compute it.
//
// One queue: every page message and every server frame runs in arrival
// order, one at a time (serialise), so a change of the track record (a
// stored blob, Committed, Ended, stop) always starts from the record the
// previous change left; none can overwrite another with a stale copy.
// pump() only reads the record and runs beside the queue.
import { SHA256 } from '/vendor/noble-hashes/sha2.js';
import { decodeServer, encodeClient, KIND_VALUES, loadProtocol } from './protocol.js';
import * as store from './store.js';

const MAX_CHUNK_BYTES = 1048576; // the server's default; Welcome may lower it
const PING_EVERY_MS = 10000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const MAX_BUFFERED_BYTES = 8 * 1048576; // websocket send buffer we allow
const SILENCE_MS = 30000; // no frame for this long (pings every 10 s): a dead connection

const HOLD_FALLBACK_MS = 1000; // TOO_MANY_INFLIGHT without retry_after_ms: wait for an Ack, at most this
const PER_CHUNK_CODES = new Set([
  'ERROR_CODE_SEQ_GAP',
  'ERROR_CODE_CHECKSUM_MISMATCH',
  'ERROR_CODE_TOO_MANY_INFLIGHT',
  'ERROR_CODE_BACK_PRESSURE',
]);

let proto = null;
let track = null; // the store's record, kept current here; changed only inside serialise()
let hasher = null; // SHA256 over chunks 0..nextSeq-1
let queue = Promise.resolve(); // see serialise()
let ws = null;
let tokenWaiters = [];
let token = null;
let storeError = null; // a blob could not be stored: no more blobs are taken
let discarded = false; // a track without a single chunk, dropped
const conn = {
  state: 'connecting',
  sendSeq: 0,
  lastAck: -1,
  ackedBytes: 0,
  maxChunk: MAX_CHUNK_BYTES,
  maxInflight: 32,
  endSent: false,
  retryTimer: null,
  backoff: BACKOFF_MIN_MS,
  retryAfterMs: 0, // the server's retry_after_ms for the next reconnect
  pauseUntil: 0, // Date.now() deadline from a per-chunk refusal's retry_after_ms
  holdUntil: 0, // TOO_MANY_INFLIGHT without retry_after_ms: until an Ack or this
  probeSeq: -1, // after BACK_PRESSURE: one chunk in flight until this seq is acked
  wakeTimer: null, // the one timer that ends a pause
  pingTimer: null,
  best: null, // { offset, rtt }
  nonce: 1,
  pumping: false,
  fatal: null,
  lastRx: 0,
};

function nowUs() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

function hashSave(h) {
  return { h: h.get(), buffer: h.buffer.slice(), length: h.length, pos: h.pos };
}

function hashLoad(state) {
  const h = new SHA256();
  if (state) {
    h.set(...state.h);
    h.buffer.set(state.buffer);
    h.length = state.length;
    h.pos = state.pos;
  }
  return h;
}

function stateOf() {
  if (conn.fatal) return 'error';
  if (discarded) return 'discarded';
  if (isUploaded()) return 'uploaded';
  return track.stopped ? 'finishing' : 'recording';
}

function progress(extra = {}) {
  postMessage({
    type: 'progress',
    detail: {
      trackId: track.trackId,
      sessionId: track.sessionId,
      participantId: track.participantId,
      state: stateOf(),
      connection: conn.state,
      recordedBytes: track.totalBytes,
      ackedBytes: Math.max(conn.ackedBytes, track.committedBytes),
      committedBytes: track.committedBytes,
      chunks: track.nextSeq,
      ended: track.ended,
      error: conn.fatal,
      storeError,
      clockOffsetUs: conn.best ? conn.best.offset : null,
      ...extra,
    },
  });
}

function fail(what, e) {
  conn.fatal = `${what}: ${e && e.message ? e.message : e}`;
  if (track) progress();
}

// Runs fn after everything queued before it; a failure is reported and
// does not stop the queue.
function serialise(what, fn) {
  const run = queue.then(fn);
  queue = run.catch((e) => fail(what, e));
  return run;
}

// ---- storing blobs ----

async function sha256(buf) {
  return crypto.subtle.digest('SHA-256', buf);
}

// Splits a blob into chunks and stores them with the record that counts
// them. The running hash and the record change only once IndexedDB has
// them: a failed write leaves both as they were.
async function storeBlob(data) {
  if (storeError || track.stopped) return; // nothing may follow a hole
  const bytes = new Uint8Array(data);
  const h = hasher.clone();
  const chunks = [];
  for (let off = 0; off < bytes.length; off += conn.maxChunk) {
    const piece = bytes.slice(off, Math.min(bytes.length, off + conn.maxChunk));
    chunks.push({ seq: track.nextSeq + chunks.length, data: piece.buffer, sha256: await sha256(piece) });
    h.update(piece);
  }
  if (chunks.length === 0) return;
  const next = {
    ...track,
    nextSeq: track.nextSeq + chunks.length,
    totalBytes: track.totalBytes + bytes.length,
    hashState: hashSave(h),
  };
  try {
    await store.appendChunks(next, chunks); // durable locally before any send
  } catch (e) {
    await storeFailed(e);
    return;
  }
  hasher = h;
  track = next;
  progress();
  pump();
}

// IndexedDB refused a blob (QuotaExceededError, most likely). Taking later
// blobs would leave a hole in the stream, so the recording ends here: what
// was stored is uploaded and ended as the whole track, and the page is told
// to stop its MediaRecorder.
async function storeFailed(e) {
  storeError = `storing the recording in this browser failed (${e && e.name ? `${e.name}: ` : ''}${e && e.message ? e.message : e}); ` +
    `recording stopped after ${track.totalBytes} bytes, which are uploaded`;
  postMessage({ type: 'store-failed', error: storeError });
  await stopTrack(0);
}

// No more blobs: End follows the last chunk. A track without a chunk has
// nothing to upload and is dropped.
async function stopTrack(durationUs) {
  if (track.stopped) return;
  track = { ...track, stopped: true, durationUs };
  if (track.nextSeq === 0) {
    await discard();
    return;
  }
  await store.putTrack(track).catch(() => {}); // if lost, recovery stops it again
  progress();
  pump();
}

async function discard() {
  discarded = true;
  await store.deleteTrack(track.trackId);
  closeConnection('nothing recorded');
  progress();
}

// ---- the connection ----

function send(frame) {
  ws.send(encodeClient(proto, frame));
}

async function getToken() {
  if (token) return token;
  postMessage({ type: 'need-token' });
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

function isDone() {
  return discarded || isUploaded();
}

// Exponential backoff with jitter, and never sooner than the server's
// retry_after_ms (docs/protocol.md §8).
function reconnectDelay() {
  const jittered = conn.backoff / 2 + Math.random() * (conn.backoff / 2);
  conn.backoff = Math.min(conn.backoff * 2, BACKOFF_MAX_MS);
  const delay = Math.max(jittered, conn.retryAfterMs);
  conn.retryAfterMs = 0;
  return delay;
}

function scheduleReconnect() {
  if (conn.retryTimer || conn.fatal || isDone()) return;
  const delay = reconnectDelay();
  conn.state = 'reconnecting';
  progress();
  conn.retryTimer = setTimeout(() => {
    conn.retryTimer = null;
    connect();
  }, delay);
}

async function connect() {
  if (conn.fatal || isDone()) return;
  const tok = await getToken();
  if (conn.fatal || isDone()) return;
  let sock;
  try {
    sock = new WebSocket(track.ingestUrl, 'seashore.v1');
  } catch (e) {
    conn.fatal = `cannot open ${track.ingestUrl}: ${e.message}`;
    progress();
    return;
  }
  ws = sock;
  sock.binaryType = 'arraybuffer';
  sock.onopen = () => {
    send({
      hello: {
        protocolVersion: 1,
        token: tok,
        trackId: track.trackId,
        kind: proto.TrackKind[KIND_VALUES[track.kind]],
        mimeType: track.mimeType,
        captureStartUnixUs: track.captureStartUs,
        clientName: `seashore-web (${navigator.userAgent})`.slice(0, 255),
        nextSeq: track.committedSeq,
      },
    });
  };
  conn.lastRx = Date.now();
  sock.onmessage = (e) => {
    conn.lastRx = Date.now();
    const f = decodeServer(proto, e.data);
    serialise('handling a server frame', () => onFrame(f, sock));
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    ws = null;
    stopTimers();
    scheduleReconnect();
  };
  sock.onerror = () => {}; // onclose follows
}

function stopTimers() {
  clearInterval(conn.pingTimer);
  conn.pingTimer = null;
  clearTimeout(conn.wakeTimer);
  conn.wakeTimer = null;
}

function closeConnection(why) {
  stopTimers();
  clearTimeout(conn.retryTimer);
  conn.retryTimer = null;
  if (ws) {
    const s = ws;
    ws = null;
    s.close(1000, why);
  }
}

// A half-open connection (the server or a middlebox vanished without a
// FIN) never closes by itself: after SILENCE_MS without a frame it is
// abandoned and a new one is opened.
function dropSilent() {
  const s = ws;
  ws = null;
  stopTimers();
  s.onclose = s.onmessage = null;
  s.close(4000, 'silent');
  scheduleReconnect();
}

function ping() {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  if (Date.now() - conn.lastRx > SILENCE_MS) {
    dropSilent();
    return;
  }
  send({
    ping: {
      clientTimeUs: nowUs(),
      nonce: conn.nonce++,
      offsetUs: conn.best ? conn.best.offset : 0,
      rttUs: conn.best ? Math.max(1, conn.best.rtt) : 0,
    },
  });
}

function onPong(p) {
  const t3 = nowUs();
  const t0 = p.clientTimeUs, t1 = p.serverReceiveTimeUs, t2 = p.serverSendTimeUs;
  const offset = Math.round((t1 - t0 + (t2 - t3)) / 2);
  const rtt = t3 - t0 - (t2 - t1);
  if (!conn.best || rtt < conn.best.rtt) conn.best = { offset, rtt };
}

async function onWelcome(w) {
  conn.state = 'connected';
  conn.backoff = BACKOFF_MIN_MS;
  conn.maxChunk = w.maxChunkBytes || MAX_CHUNK_BYTES;
  conn.maxInflight = w.maxInflight || 32;
  conn.sendSeq = w.resumeSeq;
  conn.lastAck = w.resumeSeq - 1;
  conn.endSent = false;
  // a new connection: resume_seq rules, earlier refusals are void
  conn.pauseUntil = conn.holdUntil = 0;
  conn.probeSeq = -1;
  conn.retryAfterMs = 0;
  clearTimeout(conn.wakeTimer);
  conn.wakeTimer = null;
  if (!conn.pingTimer) {
    for (let i = 0; i < 3; i++) setTimeout(ping, i * 200);
    conn.pingTimer = setInterval(ping, PING_EVERY_MS);
  }
  await onCommitted({ committedSeq: w.committedSeq, committedBytes: track.committedBytes });
  progress();
  pump();
}

function onAck(a) {
  conn.lastAck = Math.max(conn.lastAck, a.seq);
  conn.ackedBytes = Math.max(conn.ackedBytes, a.durableBytes);
  conn.holdUntil = 0;
  if (conn.probeSeq >= 0 && conn.lastAck >= conn.probeSeq) conn.probeSeq = -1; // the log takes chunks again
  progress();
  pump();
}

async function onCommitted(c) {
  if (c.committedSeq <= track.committedSeq) return;
  const next = { ...track, committedSeq: c.committedSeq, committedBytes: c.committedBytes || track.committedBytes };
  await store.deleteChunksBelow(next, next.committedSeq);
  track = next;
  await finishIfUploaded();
  progress();
}

async function onEnded() {
  if (!track.ended) {
    const next = { ...track, ended: true };
    await store.putTrack(next);
    track = next;
  }
  await finishIfUploaded();
  progress();
}

function isUploaded() {
  return track && track.ended && track.committedSeq === track.nextSeq;
}

async function finishIfUploaded() {
  if (!isUploaded()) return;
  await store.deleteTrack(track.trackId);
  closeConnection('uploaded');
}

// A refused chunk (the connection stays open), as tools/seashore-send does:
// pause for retry_after_ms; ignore refusals of chunks at or beyond the send
// pointer (they were pipelined behind a refusal already rewound for);
// otherwise rewind to the refused seq (SEQ_GAP, or a seq already acked: to
// the first chunk not acked). After BACK_PRESSURE only one chunk goes until
// the log takes it (its Ack), so a full log sees one chunk per retry, not a
// window of them.
function onRefused(e) {
  const now = Date.now();
  if (e.retryAfterMs) conn.pauseUntil = Math.max(conn.pauseUntil, now + e.retryAfterMs);
  if (e.code === 'ERROR_CODE_TOO_MANY_INFLIGHT' && !e.retryAfterMs) conn.holdUntil = now + HOLD_FALLBACK_MS;
  if (e.seq >= conn.sendSeq) return; // predates the last rewind
  const to = e.code === 'ERROR_CODE_SEQ_GAP' || e.seq <= conn.lastAck ? conn.lastAck + 1 : e.seq;
  conn.sendSeq = to;
  if (e.code === 'ERROR_CODE_BACK_PRESSURE') conn.probeSeq = to;
  pump();
}

function onError(e) {
  const code = e.code;
  if (code === 'ERROR_CODE_TOKEN_EXPIRED' || code === 'ERROR_CODE_BAD_TOKEN') {
    token = null; // the reconnect asks for a fresh one
    return;
  }
  if (!e.retryable) {
    conn.fatal = `${code}: ${e.message}`;
    progress();
    return;
  }
  // Hello refused (connection limit, admission: BACK_PRESSURE seq 0), INTERNAL,
  // SHUTTING_DOWN: the server closes; reconnect no sooner than it asked.
  if (conn.state === 'connected' && PER_CHUNK_CODES.has(code)) onRefused(e);
  else conn.retryAfterMs = Math.max(conn.retryAfterMs, e.retryAfterMs || 0);
}

// Frames about the connection count only while their socket is the current
// one; Committed and Ended are facts about the track, whenever they come.
async function onFrame(f, sock) {
  const current = sock === ws;
  switch (f.kind) {
    case 'committed':
      return onCommitted(f.committed);
    case 'ended':
      return onEnded();
    default:
      break;
  }
  if (!current) return undefined;
  switch (f.kind) {
    case 'welcome':
      return onWelcome(f.welcome);
    case 'ack':
      return onAck(f.ack);
    case 'pong':
      return onPong(f.pong);
    case 'error':
      return onError(f.error);
    case 'resend':
      conn.sendSeq = Math.min(conn.sendSeq, f.resend.fromSeq); // the server closes; Welcome resets
      return undefined;
    default:
      return undefined;
  }
}

// True while a refusal asked to wait; arms the one timer that resumes.
function paused() {
  const until = Math.max(conn.pauseUntil, conn.holdUntil);
  const wait = until - Date.now();
  if (wait <= 0) return false;
  clearTimeout(conn.wakeTimer);
  conn.wakeTimer = setTimeout(() => {
    conn.wakeTimer = null;
    pump();
  }, wait);
  return true;
}

// Chunks that may be un-acked now: one while probing a full log.
function sendWindow() {
  return conn.probeSeq >= 0 ? 1 : conn.maxInflight;
}

function mayEnd() {
  return track.stopped && !conn.endSent && track.nextSeq > 0 && conn.sendSeq === track.nextSeq &&
    conn.lastAck + 1 === track.nextSeq;
}

// Sends what the window allows, unless a refusal asked to wait; End once
// every chunk is acked and the recording stopped.
async function pump() {
  if (conn.pumping || !ws || ws.readyState !== WebSocket.OPEN || conn.state !== 'connected') return;
  if (paused()) return;
  conn.pumping = true;
  try {
    while (ws && conn.sendSeq < track.nextSeq && conn.sendSeq - 1 - conn.lastAck < sendWindow()) {
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        setTimeout(pump, 50);
        break;
      }
      const seq = conn.sendSeq;
      const c = await store.getChunk(track.trackId, seq);
      if (!c) {
        conn.fatal = `chunk ${seq} of track ${track.trackId} is missing from IndexedDB`;
        progress();
        break;
      }
      // reconnected, rewound or refused meanwhile
      if (!ws || seq !== conn.sendSeq || paused()) break;
      send({ chunk: { seq, data: new Uint8Array(c.data), sha256: new Uint8Array(c.sha256) } });
      conn.sendSeq = seq + 1;
    }
    if (ws && mayEnd()) {
      const digest = hasher.clone().digest();
      send({ end: { chunkCount: track.nextSeq, totalBytes: track.totalBytes, sha256: digest, durationUs: track.durationUs || 0 } });
      conn.endSent = true;
    }
  } finally {
    conn.pumping = false;
  }
}

// ---- messages from the page ----

async function init(msg) {
  proto = await loadProtocol();
  token = msg.token || null;
  const existing = await store.getTrack(msg.track.trackId);
  if (existing) existing.ingestUrl = msg.track.ingestUrl || existing.ingestUrl;
  track = existing || {
    committedSeq: 0,
    committedBytes: 0,
    nextSeq: 0,
    totalBytes: 0,
    hashState: null,
    stopped: false,
    ended: false,
    durationUs: 0,
    createdAt: Date.now(),
    ...msg.track,
  };
  hasher = hashLoad(track.hashState);
  if (!existing) await store.putTrack(track);
  if (track.stopped && track.nextSeq === 0) {
    await discard();
    return;
  }
  progress();
  connect();
}

// One tab uploads a track at a time: the lock is held while this worker
// lives. Resolves false when another worker holds it.
function acquireLock(trackId) {
  return new Promise((resolve) => {
    navigator.locks.request(`seashore-track-${trackId}`, { ifAvailable: true }, (lock) => {
      resolve(Boolean(lock));
      return lock ? new Promise(() => {}) : undefined;
    });
  });
}

async function onPageMessage(msg) {
  if (msg.type === 'init') {
    if (!(await acquireLock(msg.track.trackId))) return postMessage({ type: 'busy' });
    return init(msg).catch((e) => fail('starting the upload', e));
  }
  if (!track || discarded) return undefined; // busy, init failed, or dropped
  if (msg.type === 'blob') return storeBlob(msg.data);
  if (msg.type === 'stop') return stopTrack(msg.durationUs || 0);
  return undefined;
}

// Every message waits for the ones before it (the queue), so blobs are
// stored in order and only after init. A token answers a need-token that
// connect() awaits, outside the queue.
function onMessage(msg) {
  if (msg.type === 'token') {
    token = msg.token;
    const waiters = tokenWaiters;
    tokenWaiters = [];
    waiters.forEach((w) => w(token));
    return;
  }
  serialise(msg.type === 'blob' ? 'storing a chunk locally failed' : `handling '${msg.type}'`, () => onPageMessage(msg));
}

self.onmessage = (e) => onMessage(e.data);
