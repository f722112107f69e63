#!/usr/bin/env node
// fault_proxy.mjs -- a fault-injecting HTTP/1.1 reverse proxy for tests.
//
// It sits between an S3 client (r2-uploader: libcurl with keep-alive, or the
// AWS SDK) and a real S3 server on loopback (Swift s3api, see swift/), and
// injects faults into a seeded, reproducible subset of the requests.
//
//   node tests/harness/fault_proxy.mjs --listen 127.0.0.1:0 \
//        --target 127.0.0.1:PORT --seed N --fault-rate 0.3 \
//        [--faults 500,503,reset,stall,slow,truncate] [--stall-ms 60000] \
//        [--only-methods PUT,POST] [--control-file PATH] \
//        [--slow-bytes 64] [--slow-step 4] [--slow-interval-ms 100]
//        [--s3-finished-uploads] [--deny-requests PUT:partNumber,POST:uploadId]
//
// --deny-requests: requests of that method whose query has that parameter
// get 403 AccessDenied (logged as fault "deny"), a refusal for good, as a
// store answers a key whose permission was taken away.
//
// --s3-finished-uploads: once a Complete (POST ?uploadId=) or an Abort
// (DELETE ?uploadId=) of an upload succeeded through the proxy, any later
// request naming that upload gets 404 NoSuchUpload, as S3 and R2 answer;
// Swift's s3api still lists a completed upload's parts and takes its
// Complete again.
//
// stdout: exactly one line, FAULT_PROXY_PORT=<port>, once it listens.
// stderr: one JSON line per request,
//   {"n":1,"method":"PUT","path":"/b/k?partNumber=1&uploadId=..","fault":"none","status":200,
//    "t0":1764756000123,"t1":1764756000456}
// (t0: its head arrived, t1: it ended, Unix ms)
// (plus "error":"..." when a request ended abnormally), and on SIGTERM or
// SIGINT {"summary":{"requests":N,"faults":{"500":a,"503":b,...}}}; exit 0.
//
// It works on raw bytes, not with node:http, so that what it forwards is
// byte-exact in both directions: the request head (Host included, so SigV4
// still verifies), the body (streamed, with backpressure, never buffered
// whole) and the response. It only parses enough HTTP/1.1 to find where each
// message ends (Content-Length, chunked, HEAD/1xx/204/304, close-delimited).
// Every client connection gets its own upstream connection, opened at its
// first forwarded request and kept alive as long as both sides keep it, so
// keep-alive behaves as without the proxy (the server closing an idle
// connection closes the client's too).
//
// Faults are decided per request (per request whose method is in
// --only-methods, when given) by makeFaultPicker(): mulberry32(seed), three
// draws per request (fault or not, which kind, a fraction used for where to
// cut), so the same seed and the same request sequence give the same
// schedule (faultSchedule() below lists it). See tests/harness/README.md for
// what each fault does.
//
// The module can be imported without side effects (it exports the PRNG and
// the schedule); it only runs the proxy when executed directly.
import net from 'node:net';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

export const FAULT_KINDS = ['500', '503', 'reset', 'stall', 'slow', 'truncate'];

// ---------------------------------------------------------------- schedule

/** mulberry32: a tiny deterministic PRNG; returns floats in [0, 1). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed from a CLI string: an integer (decimal or 0x..) as uint32, else
 * the FNV-1a hash of the string. */
export function parseSeed(s) {
  const str = String(s).trim();
  if (/^-?\d+$/.test(str) || /^0x[0-9a-f]+$/i.test(str)) return Number(str) >>> 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < str.length; i++) {
    h ^= str.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Returns pick(rate, kinds) -> {fault, frac}. Every call consumes exactly
 * three draws, whatever the rate or kinds, so a schedule position depends
 * only on how many requests came before. frac is in [0.1, 0.9). */
export function makeFaultPicker(seed) {
  const rnd = mulberry32(seed);
  return (rate, kinds) => {
    const a = rnd();
    const b = rnd();
    const c = rnd();
    const frac = 0.1 + 0.8 * c;
    if (!kinds.length || !(a < rate)) return { fault: 'none', frac };
    return { fault: kinds[Math.floor(b * kinds.length)], frac };
  };
}

/** The faults the proxy gives the first n (eligible) requests. */
export function faultSchedule(seed, rate, kinds, n) {
  const pick = makeFaultPicker(typeof seed === 'number' ? seed >>> 0 : parseSeed(seed));
  const out = [];
  for (let i = 0; i < n; i++) out.push(pick(rate, kinds).fault);
  return out;
}

// ---------------------------------------------------------------- HTTP bits

const EMPTY = Buffer.alloc(0);
const CRLFCRLF = Buffer.from('\r\n\r\n');
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n');
const MAX_HEAD = 64 * 1024;
const OUT_HIGH_WATER = 256 * 1024;

const REASONS = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** Header lines -> Map(lowercase name -> [values]). */
function parseHeaderLines(lines) {
  const h = new Map();
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i <= 0) throw new Error(`bad header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    if (!h.has(name)) h.set(name, []);
    h.get(name).push(v);
  }
  return h;
}
const tokens = (h, name) =>
  (h.get(name) || [])
    .join(',')
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);

/** Where a message body ends: 'none', 'length' (Content-Length), 'chunked'
 * (tracks the chunk framing without changing a byte) or 'eof'. */
class BodyTracker {
  constructor(kind, length = 0) {
    this.kind = kind;
    this.left = length;
    this.length = length;
    this.state = 'size';
    this.line = '';
    this.done = kind === 'none' || (kind === 'length' && length === 0);
  }
  /** How many leading bytes of buf belong to the body; sets this.done. */
  feed(buf) {
    if (this.done) return 0;
    if (this.kind === 'eof') return buf.length;
    if (this.kind === 'length') {
      const n = Math.min(this.left, buf.length);
      this.left -= n;
      if (this.left === 0) this.done = true;
      return n;
    }
    let i = 0;
    while (i < buf.length && !this.done) {
      if (this.state === 'data') {
        const n = Math.min(this.left, buf.length - i);
        i += n;
        this.left -= n;
        if (this.left === 0) this.state = 'crlf';
        continue;
      }
      // 'size', 'crlf' (after data) and 'trailer' read one line
      const j = buf.indexOf(10, i);
      const end = j < 0 ? buf.length : j + 1;
      this.line += buf.toString('latin1', i, end);
      i = end;
      if (this.line.length > 8192) throw new Error('chunk framing line too long');
      if (j < 0) break;
      const line = this.line.replace(/\r?\n$/, '');
      this.line = '';
      if (this.state === 'size') {
        const m = /^\s*([0-9a-fA-F]{1,13})\s*(;.*)?$/.exec(line);
        if (!m) throw new Error(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
        const size = parseInt(m[1], 16);
        if (size === 0) this.state = 'trailer';
        else {
          this.left = size;
          this.state = 'data';
        }
      } else if (this.state === 'crlf') {
        if (line !== '') throw new Error('no CRLF after chunk data');
        this.state = 'size';
      } else if (line === '') {
        this.done = true; // end of trailers
      }
    }
    return i;
  }
}

function xmlEscape(s) {
  return String(s).replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c],
  );
}

/** The uploadId query parameter of a request target, or null. */
function uploadIdOf(target) {
  const q = target.indexOf('?');
  return q < 0 ? null : new URLSearchParams(target.slice(q + 1)).get('uploadId');
}

function s3Error(status, code, message, resource, rid) {
  return Buffer.from(
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<Error><Code>${code}</Code><Message>${message}</Message>` +
      `<Resource>${xmlEscape(resource)}</Resource><RequestId>${rid}</RequestId></Error>`,
  );
}

// ---------------------------------------------------------------- the proxy

export class FaultProxy {
  constructor(opts) {
    this.opts = opts;
    this.seq = 0;
    this.requests = 0;
    this.counts = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0]));
    this.pick = makeFaultPicker(opts.seed);
    this.conns = new Set();
    this.drains = new Set(); // upstream sockets read to their end after a truncate
    this.defaults = { rate: opts.rate, kinds: opts.kinds, mode: 'normal' };
    this.finishedUploads = new Set(); // --s3-finished-uploads
    this.control = { ...this.defaults };
    this.server = net.createServer({ allowHalfOpen: true }, (sock) => {
      const c = new Conn(this, sock);
      this.conns.add(c);
    });
  }

  listen(host, port) {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, exclusive: true }, () => {
        this.server.off('error', reject);
        resolve(this.server.address().port);
      });
    });
  }

  /** Re-reads --control-file: {"fault_rate":x, "faults":[..]|"a,b",
   * "mode":"down"|"normal"}. A missing file means the CLI settings; an
   * unreadable or half-written one keeps the last good settings. */
  readControl() {
    const f = this.opts.controlFile;
    if (!f) return;
    let text;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch (e) {
      if (e.code === 'ENOENT') this.control = { ...this.defaults };
      return;
    }
    try {
      const j = JSON.parse(text);
      const c = { ...this.defaults };
      if (typeof j.fault_rate === 'number' && j.fault_rate >= 0) c.rate = j.fault_rate;
      if (j.faults !== undefined) c.kinds = parseKinds(j.faults);
      if (j.mode === 'down') c.mode = 'down';
      this.control = c;
    } catch {
      /* keep the last good control */
    }
  }

  /** Numbers a new request and picks its fault. */
  decide(method) {
    this.readControl();
    const n = ++this.seq;
    this.requests++;
    let fault = 'none';
    let frac = 0.5;
    const only = this.opts.onlyMethods;
    if (!only || only.has(method)) {
      ({ fault, frac } = this.pick(this.control.rate, this.control.kinds));
    }
    const down = this.control.mode === 'down';
    if (down) fault = '503';
    if (fault !== 'none') this.counts[fault]++;
    return { n, fault, frac, down };
  }

  /** With --s3-finished-uploads: whether the request names a finished
   * upload; and, for a successful answer, whether it finished one. */
  uploadFinished(path) {
    const id = uploadIdOf(path);
    return this.opts.finishedUploads && id !== null && this.finishedUploads.has(id);
  }

  /** With --deny-requests: whether this request is one to refuse. */
  denied(method, target) {
    const q = target.indexOf('?');
    const params = new URLSearchParams(q < 0 ? '' : target.slice(q + 1));
    return (this.opts.deny || []).some((d) => d.method === method && params.has(d.param));
  }

  noteAnswer(r) {
    const id = uploadIdOf(r.path);
    const ends = r.method === 'POST' || r.method === 'DELETE';
    if (this.opts.finishedUploads && id !== null && ends && r.status >= 200 && r.status < 300) {
      this.finishedUploads.add(id);
    }
  }

  log(r, extra) {
    if (r.logged) return;
    r.logged = true;
    const o = { n: r.n, method: r.method, path: r.path, fault: r.fault, status: r.status ?? null, t0: r.t0, t1: Date.now() };
    if (extra) o.error = extra;
    process.stderr.write(JSON.stringify(o) + '\n');
  }

  summary() {
    return { summary: { requests: this.requests, faults: { ...this.counts } } };
  }

  shutdown() {
    this.server.close();
    for (const c of [...this.conns]) c.teardown('proxy shutting down');
    for (const u of [...this.drains]) u.destroy();
  }
}

class Conn {
  constructor(proxy, sock) {
    this.p = proxy;
    this.c = sock;
    this.u = null; // upstream socket for this client connection
    this.ubuf = EMPTY;
    this.inbuf = EMPTY;
    this.req = null; // the request being handled
    this.dead = false;
    this.busy = false;
    this.clientEnded = false;
    this.paused = new Set(); // reasons the client socket is paused
    this.timers = new Set();
    sock.setNoDelay(true);
    sock.on('data', (d) => {
      this.inbuf = this.inbuf.length ? Buffer.concat([this.inbuf, d]) : d;
      this.process();
    });
    sock.on('end', () => this.onClientEnd());
    sock.on('error', (e) => {
      this.clientError = e.code || e.message;
    });
    sock.on('close', () => this.teardown(this.clientError ? `client ${this.clientError}` : 'client closed'));
    sock.on('drain', () => {
      const r = this.req;
      if (r && r.clientBlocked) {
        r.clientBlocked = false;
        this.upstreamFlow(r);
      }
    });
  }

  timer(fn, ms) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  pauseClient(why) {
    this.paused.add(why);
    this.c.pause();
  }
  resumeClient(why) {
    this.paused.delete(why);
    if (!this.paused.size && !this.dead) this.c.resume();
  }

  // ------------------------------------------------------ client side

  process() {
    if (this.busy || this.dead) return;
    this.busy = true;
    try {
      while (!this.dead) {
        if (!this.req) {
          if (!this.inbuf.length || !this.parseHead()) break;
          continue;
        }
        const r = this.req;
        if (r.bodyDone || !this.inbuf.length) break;
        let used;
        try {
          used = r.body.feed(this.inbuf);
        } catch (e) {
          this.p.log(r, `bad request body: ${e.message}`);
          this.teardown('bad request body');
          break;
        }
        const chunk = this.inbuf.subarray(0, used);
        this.inbuf = this.inbuf.subarray(used);
        r.bodyBytes += used;
        if (r.body.done) r.bodyDone = true;
        this.onBody(r, chunk);
      }
    } finally {
      this.busy = false;
    }
    // Bytes of a next (pipelined) request wait until this one is answered.
    if (!this.dead && this.req && this.req.bodyDone && this.inbuf.length > MAX_HEAD) {
      this.pauseClient('pipelined');
    }
  }

  onClientEnd() {
    this.clientEnded = true;
    const r = this.req;
    if (!r && !this.inbuf.length) return this.closeClient();
    if (r && !r.bodyDone) {
      this.p.log(r, 'client closed its side before the end of the request body');
      return this.teardown('client half-closed');
    }
    // else: answer the request that is in progress, then close
  }

  /** Parses one request head from inbuf; false if incomplete or bad. */
  parseHead() {
    let s = 0;
    while (s < this.inbuf.length && (this.inbuf[s] === 13 || this.inbuf[s] === 10)) s++;
    if (s) this.inbuf = this.inbuf.subarray(s);
    const idx = this.inbuf.indexOf(CRLFCRLF);
    if (idx < 0) {
      if (this.inbuf.length > MAX_HEAD) this.reject(431, 'request head too large');
      return false;
    }
    if (idx + 4 > MAX_HEAD) {
      this.reject(431, 'request head too large');
      return false;
    }
    const head = this.inbuf.subarray(0, idx + 4);
    this.inbuf = this.inbuf.subarray(idx + 4);
    const lines = head.toString('latin1', 0, idx).split('\r\n');
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/(\d)\.(\d)$/.exec(lines[0]);
    let h;
    try {
      if (!m) throw new Error(`bad request line ${JSON.stringify(lines[0].slice(0, 80))}`);
      h = parseHeaderLines(lines.slice(1));
    } catch (e) {
      this.reject(400, e.message);
      return false;
    }
    const [, method, target, major, minor] = m;
    const http11 = Number(major) > 1 || (major === '1' && Number(minor) >= 1);
    let body;
    const te = tokens(h, 'transfer-encoding');
    const cls = h.get('content-length');
    if (te.length) {
      if (te[te.length - 1] !== 'chunked') {
        this.reject(400, 'Transfer-Encoding without chunked last');
        return false;
      }
      body = new BodyTracker('chunked');
    } else if (cls) {
      const vals = new Set(cls.join(',').split(',').map((v) => v.trim()));
      const v = [...vals][0];
      if (vals.size !== 1 || !/^\d{1,15}$/.test(v)) {
        this.reject(400, `bad Content-Length ${JSON.stringify(cls)}`);
        return false;
      }
      body = new BodyTracker('length', Number(v));
    } else {
      body = new BodyTracker('none');
    }
    const conn = tokens(h, 'connection');
    const d = this.p.decide(method.toUpperCase());
    const r = {
      t0: Date.now(),
      n: d.n,
      method,
      path: target,
      fault: this.p.denied(method.toUpperCase(), target)
        ? 'deny'
        : this.p.uploadFinished(target) ? 'nosuchupload' : d.fault,
      frac: d.frac,
      down: d.down,
      head,
      body,
      bodyDone: body.done,
      bodyBytes: 0,
      keepAlive: http11 ? !conn.includes('close') : conn.includes('keep-alive'),
      expect100: tokens(h, 'expect').includes('100-continue'),
      status: null,
      logged: false,
      // response side (forwarded requests)
      forwarded: false,
      resp: null,
      q: [],
      qBytes: 0,
      outBytes: 0,
      cut: null,
      cutReached: false,
      upDone: false,
      respDone: false,
      clientBlocked: false,
      slowLeft: 0,
      slowNext: 0,
      pumpTimer: null,
    };
    this.req = r;
    this.startRequest(r);
    return true;
  }

  startRequest(r) {
    switch (r.fault) {
      case 'none':
      case 'slow':
      case 'truncate':
        this.forward(r);
        break;
      case 'reset':
        if (r.bodyDone) return this.reset(r, 'before answering');
        // Reset after a fraction of the body (1 byte at least); for a chunked
        // body of unknown size, after a fraction of 64 KiB.
        r.resetAt = Math.max(1, Math.floor(r.frac * (r.body.kind === 'length' ? r.body.length : 65536)));
        if (r.expect100) this.c.write(CONTINUE);
        break;
      default: // 500, 503, nosuchupload, deny, stall: drain the body, then answer (or not)
        if (r.bodyDone) return this.onBodyComplete(r);
        if (r.expect100) this.c.write(CONTINUE);
    }
  }

  onBody(r, chunk) {
    if (r.forwarded) {
      if (chunk.length && this.u && !this.u.destroyed && !this.u.write(chunk)) {
        this.pauseClient('upstream');
      }
    } else if (r.fault === 'reset') {
      if (r.bodyBytes >= r.resetAt || r.bodyDone) {
        return this.reset(r, `after ${r.bodyBytes} body bytes`);
      }
    }
    if (r.bodyDone) this.onBodyComplete(r);
  }

  onBodyComplete(r) {
    if (['500', '503', 'nosuchupload', 'deny'].includes(r.fault)) return this.sendError(r);
    if (r.fault === 'stall') {
      this.p.log(r);
      this.timer(() => this.teardown('stall over'), this.p.opts.stallMs);
      return;
    }
    if (r.forwarded) this.maybeFinish(r);
  }

  sendError(r) {
    const rid = `faultproxy-${r.n}`;
    let status, code, msg;
    if (r.fault === '500') {
      [status, code, msg] = [500, 'InternalError', 'We encountered an internal error. Please try again.'];
    } else if (r.fault === 'deny') {
      [status, code, msg] = [403, 'AccessDenied', 'Access Denied'];
    } else if (r.fault === 'nosuchupload') {
      [status, code, msg] = [404, 'NoSuchUpload', 'The specified multipart upload does not exist.'];
    } else if (r.down) {
      [status, code, msg] = [503, 'ServiceUnavailable', 'Service is unable to handle request.'];
    } else {
      [status, code, msg] = [503, 'SlowDown', 'Please reduce your request rate.'];
    }
    const body = s3Error(status, code, msg, r.path.split('?')[0], rid);
    const keep = r.keepAlive && !this.clientEnded;
    const head =
      `HTTP/1.1 ${status} ${REASONS[status]}\r\n` +
      'Content-Type: application/xml\r\n' +
      `Content-Length: ${body.length}\r\n` +
      `x-amz-request-id: ${rid}\r\n` +
      `Date: ${new Date().toUTCString()}\r\n` +
      `Connection: ${keep ? 'keep-alive' : 'close'}\r\n\r\n`;
    this.c.write(r.method === 'HEAD' ? Buffer.from(head) : Buffer.concat([Buffer.from(head), body]));
    r.status = status;
    r.respDone = true;
    this.maybeFinish(r);
  }

  /** Answers a request the proxy could not parse, then closes. */
  reject(status, why) {
    const r = { n: ++this.p.seq, method: null, path: null, fault: 'none', status, logged: false };
    this.p.requests++;
    this.p.log(r, why);
    const body = Buffer.from(`${why}\n`);
    this.c.end(
      Buffer.concat([
        Buffer.from(
          `HTTP/1.1 ${status} ${REASONS[status]}\r\nContent-Type: text/plain\r\n` +
            `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
        ),
        body,
      ]),
    );
    this.dead = true;
    this.destroyUpstream();
  }

  reset(r, when) {
    this.p.log(r);
    if (typeof this.c.resetAndDestroy === 'function' && !this.c.destroyed) {
      try {
        this.c.resetAndDestroy(); // SO_LINGER 0: the client gets an RST
      } catch {
        this.c.destroy();
      }
    } else {
      this.c.destroy();
    }
    this.teardown(`reset ${when}`);
  }

  /** The request is answered (and its body read): next one, or close. */
  maybeFinish(r) {
    if (!r.respDone || this.req !== r) return;
    this.p.log(r);
    this.req = null;
    const upClose = r.resp && r.resp.close;
    if (!r.bodyDone || !r.keepAlive || upClose || this.clientEnded) {
      // Answered before the whole body came (we can't find the next request
      // then), or either side wants to close.
      return this.closeClient();
    }
    this.resumeClient('pipelined');
    this.resumeClient('upstream');
    if (!this.busy) setImmediate(() => this.process());
  }

  closeClient() {
    if (this.dead) return;
    this.dead = true;
    this.clearTimers();
    this.destroyUpstream();
    this.c.end(() => this.c.destroy());
    this.p.conns.delete(this);
  }

  clearTimers() {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.req && this.req.pumpTimer) clearTimeout(this.req.pumpTimer);
  }

  destroyUpstream() {
    if (this.u) {
      this.u.gone = true;
      this.u.destroy();
      this.u = null;
    }
  }

  /** Ends the connection now (idempotent); logs an unfinished request. */
  teardown(why) {
    const r = this.req;
    if (r && !r.logged) this.p.log(r, why);
    this.dead = true;
    this.clearTimers();
    if (!this.c.destroyed) this.c.destroy();
    this.destroyUpstream();
    this.p.conns.delete(this);
  }

  // ------------------------------------------------------ upstream side

  forward(r) {
    r.forwarded = true;
    if (!this.u || this.u.destroyed || this.u.gone) this.connectUpstream();
    this.ubuf = EMPTY;
    this.u.write(r.head);
    r.slowLeft = r.fault === 'slow' ? this.p.opts.slowBytes : 0;
  }

  connectUpstream() {
    const { host, port } = this.p.opts.target;
    const u = net.connect({ host, port });
    u.setNoDelay(true);
    this.u = u;
    u.on('data', (d) => this.onUpstreamData(u, d));
    u.on('end', () => this.upstreamGone(u, 'server closed the connection'));
    u.on('error', (e) => {
      u.errorMsg = e.code || e.message;
    });
    u.on('close', () => this.upstreamGone(u, u.errorMsg ? `upstream ${u.errorMsg}` : 'upstream closed'));
    u.on('drain', () => this.resumeClient('upstream'));
  }

  onUpstreamData(u, d) {
    if (u !== this.u) return;
    const r = this.req;
    if (!r || !r.forwarded || r.upDone) {
      // bytes nobody asked for: drop the connection
      u.gone = true;
      u.destroy();
      this.u = null;
      return;
    }
    this.ubuf = this.ubuf.length ? Buffer.concat([this.ubuf, d]) : d;
    while (this.ubuf.length && !r.upDone && !r.cutReached) {
      if (!r.resp) {
        const idx = this.ubuf.indexOf(CRLFCRLF);
        if (idx < 0) {
          if (this.ubuf.length > MAX_HEAD) return this.upstreamBroken(r, 'response head too large');
          return;
        }
        const head = this.ubuf.subarray(0, idx + 4);
        this.ubuf = this.ubuf.subarray(idx + 4);
        const lines = head.toString('latin1', 0, idx).split('\r\n');
        const m = /^HTTP\/(\d)\.(\d) (\d{3})(?: .*)?$/.exec(lines[0]);
        let h;
        try {
          if (!m) throw new Error(`bad status line ${JSON.stringify(lines[0].slice(0, 80))}`);
          h = parseHeaderLines(lines.slice(1));
        } catch (e) {
          return this.upstreamBroken(r, e.message);
        }
        const status = Number(m[3]);
        if (status >= 100 && status < 200 && status !== 101) {
          this.c.write(head); // interim (100 Continue): straight through
          continue;
        }
        const http11 = Number(m[1]) > 1 || (m[1] === '1' && Number(m[2]) >= 1);
        const conn = tokens(h, 'connection');
        let body;
        if (r.method === 'HEAD' || status === 204 || status === 304) body = new BodyTracker('none');
        else if (tokens(h, 'transfer-encoding').length) body = new BodyTracker('chunked');
        else if (h.get('content-length')) body = new BodyTracker('length', Number(h.get('content-length')[0]) || 0);
        else body = new BodyTracker('eof');
        r.status = status;
        this.p.noteAnswer(r);
        r.resp = {
          headLen: head.length,
          body,
          close: body.kind === 'eof' || (http11 ? conn.includes('close') : !conn.includes('keep-alive')),
        };
        if (r.fault === 'truncate') {
          // No body to cut into: cut inside the status line. (Cut after it,
          // libcurl takes EOF for the end of the headers and reports success.)
          if (body.done) r.cut = Math.max(1, Math.floor(r.frac * (head.indexOf('\r\n') || 1)));
          else if (body.kind === 'length') r.cut = head.length + Math.floor(r.frac * body.length);
          // chunked / eof: decided at the first body bytes
        }
        this.out(r, head);
        if (body.done) r.upDone = true;
        continue;
      }
      let used;
      try {
        used = r.resp.body.feed(this.ubuf);
      } catch (e) {
        return this.upstreamBroken(r, e.message);
      }
      const chunk = this.ubuf.subarray(0, used);
      this.ubuf = this.ubuf.subarray(used);
      if (r.fault === 'truncate' && r.cut === null && chunk.length) {
        r.cut = r.resp.headLen + Math.floor(r.frac * chunk.length);
      }
      if (r.resp.body.done) r.upDone = true;
      this.out(r, chunk);
    }
    if (r.upDone && this.ubuf.length) {
      // more than the response: not HTTP as we know it; don't reuse
      r.resp.close = true;
      this.ubuf = EMPTY;
    }
    if (r.upDone) this.pump(r);
  }

  /** The upstream connection ended or failed. */
  upstreamGone(u, why) {
    if (u.gone) return;
    u.gone = true;
    if (u !== this.u) return;
    this.u = null;
    const r = this.req;
    if (r && r.forwarded && !r.upDone) {
      if (r.resp && r.resp.body.kind === 'eof') {
        r.upDone = true;
        r.resp.close = true;
        return this.pump(r);
      }
      return this.upstreamBroken(r, why);
    }
    // Idle: the server closed a kept-alive connection; so do we, as the
    // server would have without us.
    if (!r && !this.inbuf.length && !this.dead) this.closeClient();
  }

  /** The server failed mid-request: 502 if nothing was sent yet, else cut. */
  upstreamBroken(r, why) {
    if (this.u) {
      this.u.gone = true;
      this.u.destroy();
      this.u = null;
    }
    if (r.cutReached) return; // the client is gone already
    if (!r.resp && !this.dead) {
      r.status = 502;
      this.p.log(r, why);
      const body = Buffer.from(`fault_proxy: upstream: ${why}\n`);
      this.c.end(
        Buffer.concat([
          Buffer.from(
            `HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n` +
              'Connection: close\r\n\r\n',
          ),
          body,
        ]),
      );
      this.dead = true;
      this.clearTimers();
      this.p.conns.delete(this);
      return;
    }
    this.p.log(r, why);
    this.teardown(why);
  }

  // ------------------------------------------------------ response output

  /** Queues response bytes for the client, applying truncate's cut. */
  out(r, buf) {
    if (r.cutReached) return; // discarding the rest (truncate)
    if (r.cut !== null && r.outBytes + buf.length >= r.cut) {
      buf = buf.subarray(0, r.cut - r.outBytes);
      r.cutReached = true;
    }
    r.outBytes += buf.length;
    if (buf.length) {
      r.q.push(buf);
      r.qBytes += buf.length;
    }
    this.pump(r);
  }

  /** Writes queued bytes: slow trickles the first bytes; honours the
   * client's backpressure; finishes the response when all is written. */
  pump(r) {
    if (this.dead || r.pumpTimer) return;
    while (r.q.length) {
      if (r.slowLeft > 0) {
        const now = Date.now();
        if (now < r.slowNext) {
          r.pumpTimer = setTimeout(() => {
            r.pumpTimer = null;
            this.pump(r);
          }, r.slowNext - now);
          break;
        }
        const b = r.q[0];
        const n = Math.min(this.p.opts.slowStep, r.slowLeft, b.length);
        this.c.write(b.subarray(0, n));
        if (n === b.length) r.q.shift();
        else r.q[0] = b.subarray(n);
        r.qBytes -= n;
        r.slowLeft -= n;
        r.slowNext = now + this.p.opts.slowIntervalMs;
        continue;
      }
      const b = r.q.shift();
      r.qBytes -= b.length;
      if (!this.c.write(b)) r.clientBlocked = true;
    }
    this.upstreamFlow(r);
    if (r.q.length) return;
    if (r.cutReached) return this.cutNow(r);
    if (r.upDone && !r.respDone) {
      r.respDone = true;
      if (r.resp.close && this.u) {
        this.u.gone = true;
        this.u.destroy();
        this.u = null;
      }
      this.maybeFinish(r);
    }
  }

  upstreamFlow(r) {
    if (!this.u || this.u.destroyed) return;
    if (r.clientBlocked || r.qBytes > OUT_HIGH_WATER) this.u.pause();
    else this.u.resume();
  }

  /** truncate: the cut point is written; close the client connection (FIN
   * after the bytes), and let the server finish its response unseen. */
  cutNow(r) {
    this.p.log(r);
    const u = this.u;
    if (u && !u.destroyed && !u.gone && r.bodyDone && !r.upDone) {
      // Read the rest of the response and drop it, so that the server
      // completes the request as if the client had got it (at most 60 s).
      this.u = null;
      const rest = this.ubuf;
      this.ubuf = EMPTY;
      const body = r.resp.body;
      const feed = (d) => {
        try {
          body.feed(d);
        } catch {
          body.done = true;
        }
        if (body.done) u.destroy();
      };
      u.removeAllListeners('data');
      u.removeAllListeners('drain');
      u.on('data', feed);
      const t = setTimeout(() => u.destroy(), 60000);
      this.p.drains.add(u);
      u.once('close', () => {
        clearTimeout(t);
        this.p.drains.delete(u);
      });
      u.resume();
      if (rest.length) feed(rest);
    }
    this.closeClient(); // FIN after the bytes before the cut
  }
}

// ---------------------------------------------------------------- CLI

function parseKinds(v) {
  const list = (Array.isArray(v) ? v : String(v).split(','))
    .map((s) => String(s).trim().toLowerCase())
    .filter(Boolean);
  for (const k of list) {
    if (!FAULT_KINDS.includes(k)) throw new Error(`unknown fault kind '${k}' (known: ${FAULT_KINDS.join(',')})`);
  }
  return [...new Set(list)];
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

function parseHostPort(v, what) {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(v) || /^([^:]+):(\d+)$/.exec(v) || /^(::1):(\d+)$/.exec(v);
  if (!m) throw new Error(`${what}: expected HOST:PORT, got '${v}'`);
  const host = m[1];
  const port = Number(m[2]);
  if (!LOOPBACK.has(host)) throw new Error(`${what}: only loopback (127.0.0.1, ::1, localhost) is allowed, got '${host}'`);
  if (port > 65535) throw new Error(`${what}: bad port ${port}`);
  return { host, port };
}

export function parseArgs(argv) {
  const o = {
    listen: { host: '127.0.0.1', port: 0 },
    target: null,
    seed: 1,
    rate: 0,
    kinds: [...FAULT_KINDS],
    stallMs: 60000,
    onlyMethods: null,
    controlFile: null,
    slowBytes: 64,
    slowStep: 4,
    slowIntervalMs: 100,
    finishedUploads: false,
    deny: [],
  };
  const num = (name, v, min) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min) throw new Error(`${name}: expected a number >= ${min}, got '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    } else if (a !== '--help' && a !== '-h' && a !== '--s3-finished-uploads') {
      v = argv[++i];
    }
    switch (a) {
      case '--listen': o.listen = parseHostPort(String(v), '--listen'); break;
      case '--target': o.target = parseHostPort(String(v), '--target'); break;
      case '--seed': if (v === undefined) throw new Error('--seed: missing value'); o.seed = parseSeed(v); break;
      case '--fault-rate': o.rate = num(a, v, 0); if (o.rate > 1) throw new Error('--fault-rate: must be in [0, 1]'); break;
      case '--faults': o.kinds = parseKinds(v ?? ''); break;
      case '--stall-ms': o.stallMs = num(a, v, 0); break;
      case '--only-methods':
        o.onlyMethods = new Set(String(v ?? '').split(',').map((s) => s.trim().toUpperCase()).filter(Boolean));
        break;
      case '--control-file': if (!v) throw new Error('--control-file: missing path'); o.controlFile = v; break;
      case '--slow-bytes': o.slowBytes = num(a, v, 0); break;
      case '--slow-step': o.slowStep = num(a, v, 1); break;
      case '--slow-interval-ms': o.slowIntervalMs = num(a, v, 0); break;
      case '--s3-finished-uploads': o.finishedUploads = true; break;
      case '--deny-requests':
        o.deny = String(v ?? '').split(',').filter(Boolean).map((e) => {
          const [method, param] = e.split(':');
          if (!method || !param) throw new Error(`--deny-requests: '${e}' is not METHOD:queryParameter`);
          return { method: method.toUpperCase(), param };
        });
        break;
      case '--help':
      case '-h':
        o.help = true;
        break;
      default:
        throw new Error(`unknown argument '${a}'`);
    }
  }
  if (!o.help && !o.target) throw new Error('--target HOST:PORT is required');
  return o;
}

const USAGE = `usage: node fault_proxy.mjs --target 127.0.0.1:PORT [--listen 127.0.0.1:0]
       [--seed N] [--fault-rate 0..1] [--faults ${FAULT_KINDS.join(',')}]
       [--stall-ms 60000] [--only-methods PUT,POST] [--control-file PATH]
       [--slow-bytes 64] [--slow-step 4] [--slow-interval-ms 100] [--s3-finished-uploads]
       [--deny-requests PUT:partNumber,POST:uploadId]`;

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`fault_proxy: ${e.message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (opts.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const proxy = new FaultProxy(opts);
  let port;
  try {
    port = await proxy.listen(opts.listen.host, opts.listen.port);
  } catch (e) {
    process.stderr.write(`fault_proxy: cannot listen on ${opts.listen.host}:${opts.listen.port}: ${e.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`FAULT_PROXY_PORT=${port}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    proxy.shutdown();
    process.stderr.write(JSON.stringify(proxy.summary()) + '\n');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function isMain() {
  if (!process.argv[1]) return false;
  if (import.meta.url === pathToFileURL(process.argv[1]).href) return true;
  try {
    return import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  main();
}
