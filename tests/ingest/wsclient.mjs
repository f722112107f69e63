// wsclient.mjs -- a minimal recorder-protocol client for the ingest tests:
// protobuf frames from proto/ (protobufjs), websocket from `ws`. It makes
// bad clients easy: raw bytes, partial frames, no reads.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
const protoRoot = path.join(here, '..', '..', 'proto');

const root = new protobuf.Root();
root.resolvePath = (origin, target) => path.join(protoRoot, target);
root.loadSync('seashore/v1/ingest.proto', { keepCase: true });
export const ClientFrame = root.lookupType('seashore.v1.ClientFrame');
export const ServerFrame = root.lookupType('seashore.v1.ServerFrame');
export const ErrorCode = root.lookupEnum('seashore.v1.ErrorCode').values;
export const TrackKind = root.lookupEnum('seashore.v1.TrackKind').values;

export const sha256 = (buf) => createHash('sha256').update(buf).digest();

export function encode(frame) {
  return Buffer.from(ClientFrame.encode(ClientFrame.fromObject(frame)).finish());
}

export function hello(token, trackId, extra = {}) {
  return {
    hello: {
      protocol_version: 1, token, track_id: trackId,
      kind: TrackKind.TRACK_KIND_AUDIO_VIDEO, mime_type: 'video/webm;codecs=vp8,opus',
      capture_start_unix_us: Date.now() * 1000, client_name: 'ingest-test', ...extra,
    },
  };
}

export function chunk(seq, data, withSha = true) {
  return { chunk: { seq, data, sha256: withSha ? sha256(data) : Buffer.alloc(0) } };
}

// One connection: frames received are queued; next(pred) waits for one.
export class Conn {
  constructor(url, opts = {}) {
    this.frames = [];
    this.waiters = [];
    this.closed = null;
    this.ws = new WebSocket(url, opts.protocols ?? ['seashore.v1'], { maxPayload: 64 << 20 });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    this.ws.on('message', (data, isBinary) => {
      const f = isBinary ? ServerFrame.toObject(ServerFrame.decode(data), { longs: Number, defaults: true }) : { text: String(data) };
      this.frames.push(f);
      this.wake();
    });
    this.ws.on('close', (code, reason) => { this.closed = { code, reason: String(reason) }; this.wake(); });
    this.ws.on('error', () => {});
  }
  wake() { for (const w of this.waiters.splice(0)) w(); }
  send(frame) { this.ws.send(encode(frame)); }
  sendRaw(buf, opts = { binary: true }) { this.ws.send(buf, opts); }
  // The next frame matching pred (skipping others), or null on close/timeout.
  async next(pred = () => true, timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.closed || Date.now() > deadline) return null;
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, 50); });
    }
  }
  async waitClosed(timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }
  close() { this.ws.close(1000); }
}

// Connects and says Hello; returns [conn, welcome-or-first-frame].
export async function open(url, token, trackId, extra) {
  const c = new Conn(url);
  await c.opened;
  c.send(hello(token, trackId, extra));
  const f = await c.next();
  if (f && !f.welcome) c.frames.unshift(f); // an error stays for the caller to read
  return [c, f];
}
