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
//
// Rules (docs/protocol.md): a chunk is in IndexedDB before it is sent; it is
// deleted only below Committed, never on Ack; resume from Welcome.resume_seq;
// End carries the sha256 of the whole stream, kept incrementally with its
// state in the track record so a recovered track can still compute it.
import { SHA256 } from '/vendor/noble-hashes/sha2.js';
import { decodeServer, encodeClient, KIND_VALUES, loadProtocol } from './protocol.js';
import * as store from './store.js';

const MAX_CHUNK_BYTES = 1048576; // the server's default; Welcome may lower it
const PING_EVERY_MS = 10000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const MAX_BUFFERED_BYTES = 8 * 1048576; // websocket send buffer we allow
const SILENCE_MS = 30000; // no frame for this long (pings every 10 s): a dead connection

let proto = null;
let track = null; // the store's record, kept current here
let hasher = null; // SHA256 over chunks 0..nextSeq-1
let queue = Promise.resolve(); // blobs are stored strictly in order
let ws = null;
let tokenWaiters = [];
let token = null;
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

function progress(extra = {}) {
  const uploaded = track.ended && track.committedSeq === track.nextSeq;
  postMessage({
    type: 'progress',
    detail: {
      trackId: track.trackId,
      sessionId: track.sessionId,
      participantId: track.participantId,
      state: conn.fatal ? 'error' : uploaded ? 'uploaded' : track.stopped ? 'finishing' : 'recording',
      connection: conn.state,
      recordedBytes: track.totalBytes,
      ackedBytes: Math.max(conn.ackedBytes, track.committedBytes),
      committedBytes: track.committedBytes,
      chunks: track.nextSeq,
      ended: track.ended,
      error: conn.fatal,
      clockOffsetUs: conn.best ? conn.best.offset : null,
      ...extra,
    },
  });
}

// ---- storing blobs ----

async function sha256(buf) {
  return crypto.subtle.digest('SHA-256', buf);
}

async function storeBlob(data) {
  const bytes = new Uint8Array(data);
  const chunks = [];
  for (let off = 0; off < bytes.length; off += conn.maxChunk) {
    const piece = bytes.slice(off, Math.min(bytes.length, off + conn.maxChunk));
    chunks.push({ seq: track.nextSeq + chunks.length, data: piece.buffer, sha256: await sha256(piece) });
    hasher.update(piece);
  }
  if (chunks.length === 0) return;
  const next = {
    ...track,
    nextSeq: track.nextSeq + chunks.length,
    totalBytes: track.totalBytes + bytes.length,
    hashState: hashSave(hasher),
  };
  await store.appendChunks(next, chunks); // durable locally before any send
  track = next;
  progress();
  pump();
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

function scheduleReconnect() {
  if (conn.retryTimer || conn.fatal || isUploaded()) return;
  const delay = conn.backoff / 2 + Math.random() * (conn.backoff / 2);
  conn.backoff = Math.min(conn.backoff * 2, BACKOFF_MAX_MS);
  conn.state = 'reconnecting';
  progress();
  conn.retryTimer = setTimeout(() => {
    conn.retryTimer = null;
    connect();
  }, delay);
}

async function connect() {
  if (conn.fatal || isUploaded()) return;
  const tok = await getToken();
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
    onFrame(decodeServer(proto, e.data)).catch((err) => console.error(err));
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    ws = null;
    clearInterval(conn.pingTimer);
    conn.pingTimer = null;
    scheduleReconnect();
  };
  sock.onerror = () => {}; // onclose follows
}

// A half-open connection (the server or a middlebox vanished without a
// FIN) never closes by itself: after SILENCE_MS without a frame it is
// abandoned and a new one is opened.
function dropSilent() {
  const s = ws;
  ws = null;
  clearInterval(conn.pingTimer);
  conn.pingTimer = null;
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
  if (!conn.pingTimer) {
    for (let i = 0; i < 3; i++) setTimeout(ping, i * 200);
    conn.pingTimer = setInterval(ping, PING_EVERY_MS);
  }
  await onCommitted({ committedSeq: w.committedSeq, committedBytes: track.committedBytes });
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
    track = { ...track, ended: true };
    await store.putTrack(track);
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
  clearInterval(conn.pingTimer);
  conn.pingTimer = null;
  if (ws) {
    const s = ws;
    ws = null;
    s.close(1000, 'uploaded');
  }
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
  // per-chunk refusals: rewind to the first chunk not acked and go again
  conn.sendSeq = conn.lastAck + 1;
  const wait = e.retryAfterMs || 250;
  setTimeout(pump, wait);
}

async function onFrame(f) {
  switch (f.kind) {
    case 'welcome':
      return onWelcome(f.welcome);
    case 'ack':
      conn.lastAck = Math.max(conn.lastAck, f.ack.seq);
      conn.ackedBytes = Math.max(conn.ackedBytes, f.ack.durableBytes);
      progress();
      return pump();
    case 'committed':
      return onCommitted(f.committed);
    case 'ended':
      return onEnded();
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

// Sends what the window allows; End once every chunk is sent and the
// recording stopped.
async function pump() {
  if (conn.pumping || !ws || ws.readyState !== WebSocket.OPEN || conn.state !== 'connected') return;
  conn.pumping = true;
  try {
    while (ws && conn.sendSeq < track.nextSeq && conn.sendSeq - 1 - conn.lastAck < conn.maxInflight) {
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
      if (!ws || seq !== conn.sendSeq) break; // reconnected or rewound meanwhile
      send({ chunk: { seq, data: new Uint8Array(c.data), sha256: new Uint8Array(c.sha256) } });
      conn.sendSeq = seq + 1;
    }
    if (ws && track.stopped && !conn.endSent && conn.sendSeq === track.nextSeq && track.nextSeq > 0) {
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

function fail(what, e) {
  conn.fatal = `${what}: ${e.message}`;
  if (track) progress();
}

// Every message waits for the ones before it (the queue), so blobs are
// stored in order and only after init.
function onMessage(msg) {
  if (msg.type === 'token') {
    token = msg.token;
    const waiters = tokenWaiters;
    tokenWaiters = [];
    waiters.forEach((w) => w(token));
    return;
  }
  queue = queue.then(async () => {
    if (msg.type === 'init') {
      if (!(await acquireLock(msg.track.trackId))) return postMessage({ type: 'busy' });
      return init(msg).catch((e) => fail('starting the upload', e));
    }
    if (!track) return undefined; // busy, or init failed
    if (msg.type === 'blob') return storeBlob(msg.data).catch((e) => fail('storing a chunk locally failed', e));
    if (msg.type === 'stop' && !track.stopped) {
      track = { ...track, stopped: true, durationUs: msg.durationUs || 0 };
      await store.putTrack(track);
      progress();
      pump();
    }
    return undefined;
  });
}

self.onmessage = (e) => onMessage(e.data);
