#!/usr/bin/env node
// fault_proxy_check.mjs -- self-check of fault_proxy.mjs, against a real
// Swift s3api (swift/start-swift.sh in a temporary directory on a free port,
// stopped again with swift/stop-swift.sh whatever happens).
//
//   node tests/harness/fault_proxy_check.mjs        (about 15 s)
//
// 1. The schedule: faultSchedule() is deterministic, depends on the seed,
//    honours the rate and the kinds.
// 2. Two proxies with the same seed give the same faults (and the same
//    outcomes) to the same 30 requests, and that is faultSchedule(); each
//    fault looks as documented; --only-methods and --control-file work.
// 3. The AWS SDK through the proxy (fault rate 0.5, all six kinds, a seed
//    that gives each kind at least once): CreateBucket, a multipart upload
//    of 3 x 5 MiB random parts, Complete, GetObject; the object's sha256
//    matches; the proxy's summary counted every kind.
//
// Prints progress on stdout; exits 0 on success, 1 with the reason on
// stderr. SEASHORE_KEEP_TMP=1 keeps the Swift directory (logs in log/).
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const {
  S3Client,
  CreateBucketCommand,
  HeadBucketCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
  GetObjectCommand,
} = await import('@aws-sdk/client-s3');
const { NodeHttpHandler } = await import('@smithy/node-http-handler');
const { faultSchedule, FAULT_KINDS } = await import('./fault_proxy.mjs');

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROXY = path.join(HERE, 'fault_proxy.mjs');
const START_SWIFT = path.join(HERE, 'swift', 'start-swift.sh');
const STOP_SWIFT = path.join(HERE, 'swift', 'stop-swift.sh');

// The S3 run: with this seed, fault rate 0.5 and these kinds, the SDK's
// request sequence gets (one op per group; see the README):
//   CreateBucket 503,none | CreateMultipartUpload none | part 1 reset,stall,none
//   | part 2 500,none | part 3 truncate,none | Complete truncate,none
//   | GetObject truncate,slow
// The check does not rely on it: if a kind is missing it sends HeadBucket
// requests until every kind was seen.
const SEED = 162025;
const RATE = 0.5;
const KINDS = ['500', '503', 'reset', 'truncate', 'slow', 'stall'];
const STALL_MS = 5000;
const REQUEST_TIMEOUT_MS = 3000;
const MiB = 1024 * 1024;

const T0 = Date.now();
const say = (msg) => console.log(`[${((Date.now() - T0) / 1000).toFixed(1).padStart(5)} s] ${msg}`);
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const md5 = (b) => createHash('md5').update(b).digest('hex');

// ------------------------------------------------------------ processes

const children = new Set();

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function run(cmd, args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(t);
      children.delete(child);
      resolve({ code, signal, out, err });
    });
  });
}

async function startSwift(dir) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const r = await run(START_SWIFT, [dir, String(port)], 60000);
    if (r.code === 0) {
      const env = {};
      for (const line of r.out.split('\n')) {
        const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
        if (m) env[m[1]] = m[2];
      }
      assert(env.S3_ENDPOINT && env.S3_ACCESS_KEY, `start-swift.sh printed no settings:\n${r.out}`);
      return { ...env, port };
    }
    // the free port may have been taken meanwhile: try another one
    if (attempt < 3 && /taken|in use/i.test(r.err)) continue;
    throw new Error(`start-swift.sh failed (exit ${r.code ?? r.signal}):\n${r.err}`);
  }
}

/** Starts a proxy; resolves once it printed its port. */
function startProxy(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PROXY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const p = { child, port: 0, lines: [], records: [], summary: null, stdout: '', exited: null };
    let errBuf = '';
    child.stderr.on('data', (d) => {
      errBuf += d;
      let i;
      while ((i = errBuf.indexOf('\n')) >= 0) {
        const line = errBuf.slice(0, i);
        errBuf = errBuf.slice(i + 1);
        p.lines.push(line);
        let j;
        try {
          j = JSON.parse(line);
        } catch {
          continue;
        }
        if (j.summary) p.summary = j.summary;
        else if (typeof j.n === 'number') p.records.push(j);
      }
    });
    const t = setTimeout(() => reject(new Error(`proxy did not start in 5 s: ${p.lines.join('\n')}`)), 5000);
    child.stdout.on('data', (d) => {
      p.stdout += d;
      const m = /^FAULT_PROXY_PORT=(\d+)\n/.exec(p.stdout);
      if (m && !p.port) {
        p.port = Number(m[1]);
        clearTimeout(t);
        resolve(p);
      }
    });
    child.on('close', (code, signal) => {
      children.delete(child);
      p.exited = { code, signal };
      clearTimeout(t);
      if (!p.port) reject(new Error(`proxy exited (${code ?? signal}) before listening:\n${p.lines.join('\n')}`));
    });
    p.stop = () =>
      new Promise((res) => {
        if (p.exited) return res(p);
        child.once('close', () => res(p));
        child.kill('SIGTERM');
      });
  });
}

/** SIGTERM; checks the summary line and exit 0; returns the proxy. */
async function stopProxy(p) {
  await p.stop();
  assert(p.exited.code === 0, `proxy exit ${JSON.stringify(p.exited)}, stderr:\n${p.lines.join('\n')}`);
  assert(p.summary, `no summary line from the proxy:\n${p.lines.slice(-5).join('\n')}`);
  assert(/^FAULT_PROXY_PORT=\d+\n$/.test(p.stdout), `stdout is not exactly one line: ${JSON.stringify(p.stdout)}`);
  const counts = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0]));
  for (const r of p.records) if (r.fault !== 'none') counts[r.fault]++;
  assert(
    p.summary.requests === p.records.length && isDeepStrictEqual(p.summary.faults, counts),
    `summary ${JSON.stringify(p.summary)} does not match the ${p.records.length} logged requests ${JSON.stringify(counts)}`,
  );
  return p;
}

/** One request on a new connection; never rejects. */
function request(port, method, urlPath, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let done = false;
    const finish = (o) => {
      if (!done) {
        done = true;
        resolve({ ...o, ms: Date.now() - t0 });
      }
    };
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        finish(
          res.complete
            ? { status: res.statusCode, body: Buffer.concat(chunks).toString() }
            : { error: 'incomplete body', status: res.statusCode },
        ),
      );
      res.on('error', (e) => finish({ error: `body: ${e.code || e.message}`, status: res.statusCode }));
      res.on('close', () => finish({ error: 'incomplete body', status: res.statusCode }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (e) => finish({ error: e.code || e.message }));
    req.end();
  });
}

// ------------------------------------------------------------ 1. schedule

function checkSchedule() {
  const a = faultSchedule(SEED, RATE, KINDS, 500);
  assert(isDeepStrictEqual(a, faultSchedule(SEED, RATE, KINDS, 500)), 'same seed, different schedules');
  assert(isDeepStrictEqual(a.slice(0, 40), faultSchedule(SEED, RATE, KINDS, 40)), 'a prefix differs');
  assert(!isDeepStrictEqual(a, faultSchedule(SEED + 1, RATE, KINDS, 500)), 'seed does not matter');
  assert(isDeepStrictEqual(faultSchedule(String(SEED), RATE, KINDS, 50), a.slice(0, 50)), 'string seed');
  const faults = a.filter((f) => f !== 'none').length;
  assert(faults > 200 && faults < 300, `rate 0.5 gave ${faults}/500 faults`);
  for (const k of KINDS) assert(a.includes(k), `kind ${k} never drawn in 500`);
  assert(faultSchedule(SEED, 0, KINDS, 200).every((f) => f === 'none'), 'rate 0 faulted');
  assert(faultSchedule(SEED, 1, ['reset'], 200).every((f) => f === 'reset'), 'rate 1 missed');
  assert(faultSchedule(SEED, 1, [], 50).every((f) => f === 'none'), 'no kinds faulted');
  // the kind list changes which fault, not whether: same positions
  const b = faultSchedule(SEED, RATE, ['500'], 500);
  assert(a.every((f, i) => (f === 'none') === (b[i] === 'none')), 'kinds changed the positions');
  say(`schedule: deterministic; seed ${SEED}: ${a.slice(0, 14).join(' ')} ...`);
}

// ------------------------------------------------------------ 2. behaviour

function expectOutcome(fault, o, what) {
  const s = JSON.stringify(o);
  switch (fault) {
    case 'none':
      assert(o.status === 200 && /OK/.test(o.body), `${what}: fault none: ${s}`);
      break;
    case '500':
      assert(o.status === 500 && /<Code>InternalError<\/Code>/.test(o.body), `${what}: 500: ${s}`);
      break;
    case '503':
      assert(o.status === 503 && /<Code>SlowDown<\/Code>/.test(o.body), `${what}: 503: ${s}`);
      break;
    case 'reset':
      assert(o.error && !o.status, `${what}: reset: ${s}`);
      break;
    case 'truncate':
      assert(o.error, `${what}: truncate: ${s}`);
      break;
    default:
      throw new Error(`${what}: unexpected fault ${fault}`);
  }
}

async function checkBehaviour(sw) {
  const target = `127.0.0.1:${sw.port}`;
  const kinds = ['500', '503', 'reset', 'truncate'];
  const common = ['--listen', '127.0.0.1:0', '--target', target, '--fault-rate', '0.5', '--faults', kinds.join(',')];
  const ctl = path.join(sw.dir, 'fault-control.json');

  const [p1, p2, p3, p4, p5] = await Promise.all([
    startProxy([...common, '--seed', '4242']),
    startProxy([...common, '--seed', '4242']),
    startProxy([
      ...['--target', target, '--seed', '1', '--fault-rate', '1', '--faults', '500'],
      ...['--only-methods', 'GET', '--control-file', ctl],
    ]),
    startProxy(['--target', target, '--seed', '9', '--fault-rate', '1', '--faults', 'slow']),
    startProxy(['--target', target, '--seed', '9', '--fault-rate', '1', '--faults', 'stall', '--stall-ms', '700']),
  ]);

  // Two proxies, same seed, same 30 requests (GET /healthcheck: Swift's
  // 200 "OK", before s3api): same faults, as faultSchedule() says.
  const N = 30;
  const twins = [p1, p2].map(async (p) => {
    const outcomes = [];
    for (let i = 0; i < N; i++) outcomes.push(await request(p.port, 'GET', '/healthcheck'));
    return outcomes;
  });

  // slow: completes, but the first 64 bytes take 16 x 100 ms.
  const slow = request(p4.port, 'GET', '/healthcheck');
  // stall: no answer; the connection is closed after --stall-ms.
  const stall = request(p5.port, 'GET', '/healthcheck', 3000);

  // --only-methods GET and --control-file, with fault rate 1 and kind 500.
  const c = [];
  c.push(['GET, no control file -> 500', await request(p3.port, 'GET', '/healthcheck'), 500]);
  c.push(['HEAD (not in --only-methods) -> 200', await request(p3.port, 'HEAD', '/healthcheck'), 200]);
  fs.writeFileSync(ctl, '{"fault_rate":0.0}');
  c.push(['GET, fault_rate 0 -> 200', await request(p3.port, 'GET', '/healthcheck'), 200]);
  fs.writeFileSync(ctl, '{"mode":"down"}');
  const down = await request(p3.port, 'GET', '/healthcheck');
  c.push(['GET, mode down -> 503', down, 503]);
  c.push(['HEAD, mode down -> 503', await request(p3.port, 'HEAD', '/healthcheck'), 503]);
  fs.unlinkSync(ctl);
  c.push(['GET, control file gone -> 500', await request(p3.port, 'GET', '/healthcheck'), 500]);
  for (const [what, o, status] of c) assert(o.status === status, `control: ${what}: got ${JSON.stringify(o)}`);
  assert(/<Code>ServiceUnavailable<\/Code>/.test(down.body), `down body: ${down.body}`);

  const [o1, o2] = await Promise.all(twins);
  const [s, st] = await Promise.all([slow, stall]);
  await Promise.all([p1, p2, p3, p4, p5].map(stopProxy));

  const f1 = p1.records.map((r) => r.fault);
  const f2 = p2.records.map((r) => r.fault);
  const want = faultSchedule(4242, 0.5, kinds, N);
  assert(isDeepStrictEqual(f1, f2), `same seed, different faults:\n${f1.join(' ')}\n${f2.join(' ')}`);
  assert(isDeepStrictEqual(f1, want), `faults ${f1.join(' ')} are not faultSchedule() ${want.join(' ')}`);
  for (let i = 0; i < N; i++) {
    expectOutcome(f1[i], o1[i], `proxy 1 request ${i + 1}`);
    expectOutcome(f2[i], o2[i], `proxy 2 request ${i + 1}`);
    assert((o1[i].status ?? null) === (o2[i].status ?? null), `request ${i + 1}: ${JSON.stringify([o1[i], o2[i]])}`);
  }
  for (const k of kinds) assert(f1.includes(k), `seed 4242 gave no ${k} in ${N} requests`);
  say(`two proxies, seed 4242, ${N} requests: same faults: ${f1.join(' ')}`);

  assert(s.status === 200 && s.body === 'OK' && s.ms >= 1400, `slow: ${JSON.stringify(s)}`);
  assert(p4.records[0].fault === 'slow' && p4.records[0].status === 200, `slow log: ${p4.lines[0]}`);
  assert(st.error && !st.status && st.ms >= 650 && st.ms < 2500, `stall: ${JSON.stringify(st)}`);
  assert(p5.records[0].fault === 'stall', `stall log: ${p5.lines[0]}`);
  say(`slow: 200 after ${s.ms} ms; stall: ${st.error} after ${st.ms} ms; only-methods and control file ok`);
}

// ------------------------------------------------------------ 3. S3 run

async function checkS3(sw) {
  const p = await startProxy([
    ...['--listen', '127.0.0.1:0', '--target', `127.0.0.1:${sw.port}`, '--seed', String(SEED)],
    ...['--fault-rate', String(RATE), '--faults', KINDS.join(','), '--stall-ms', String(STALL_MS)],
  ]);
  const s3 = new S3Client({
    endpoint: `http://127.0.0.1:${p.port}`,
    region: sw.S3_REGION,
    credentials: { accessKeyId: sw.S3_ACCESS_KEY, secretAccessKey: sw.S3_SECRET_KEY },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 10,
    // requestTimeout alone only logs a warning in this @smithy version:
    // throwOnRequestTimeout makes it end a stalled request.
    requestHandler: new NodeHttpHandler({
      requestTimeout: REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
      connectionTimeout: 2000,
    }),
  });
  const Bucket = 'fault-proxy-check';
  const Key = 'mpu.bin';
  const errName = (e) => `${e.name}${e.code && e.code !== e.name ? `/${e.code}` : ''}: ${String(e.message).split('\n')[0]}`;

  /** The SDK retries by itself (maxAttempts 10); this retries on top when
   * it gives up, or when a body read fails (GetObject). */
  async function op(name, fn, tries = 5) {
    for (let i = 1; ; i++) {
      try {
        const out = await fn();
        say(`${name}: ok`);
        return out;
      } catch (e) {
        if (i >= tries) throw new Error(`${name}: failed ${tries} times, last: ${errName(e)}`);
        say(`${name}: ${errName(e)}; retrying`);
      }
    }
  }

  try {
    await op('CreateBucket', async () => {
      try {
        await s3.send(new CreateBucketCommand({ Bucket }));
      } catch (e) {
        // a truncated CreateBucket was done by the server: the retry gets 409
        if (e.name !== 'BucketAlreadyOwnedByYou') throw e;
      }
    });
    const { UploadId } = await op('CreateMultipartUpload', () =>
      s3.send(new CreateMultipartUploadCommand({ Bucket, Key })),
    );
    assert(UploadId, 'no UploadId');
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(5 * MiB)];
    const etags = [];
    for (const [i, Body] of parts.entries()) {
      const r = await op(`UploadPart ${i + 1}`, () =>
        s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body })),
      );
      assert(r.ETag === `"${md5(Body)}"`, `part ${i + 1}: ETag ${r.ETag}, md5 ${md5(Body)}`);
      etags.push(r.ETag);
    }
    const c = await op('CompleteMultipartUpload', () =>
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket,
          Key,
          UploadId,
          MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      ),
    );
    const want = Buffer.concat(parts);
    const mpEtag = `"${md5(Buffer.concat(parts.map((b) => createHash('md5').update(b).digest())))}-3"`;
    assert(c.ETag === mpEtag, `Complete ETag ${c.ETag}, expected ${mpEtag}`);
    const got = await op('GetObject', async () => {
      const r = await s3.send(new GetObjectCommand({ Bucket, Key }));
      return Buffer.from(await r.Body.transformToByteArray());
    });
    assert(got.length === want.length, `GetObject: ${got.length} bytes, expected ${want.length}`);
    assert(sha256(got) === sha256(want), 'GetObject: sha256 differs');
    say(`GetObject: ${got.length} bytes, sha256 ${sha256(got).slice(0, 16)}... matches`);

    // Should the SDK's request sequence ever differ from the one the seed
    // was chosen for, make sure every kind still shows up.
    for (let i = 0; i < 40; i++) {
      const seen = new Set(p.records.map((r) => r.fault));
      const missing = KINDS.filter((k) => !seen.has(k));
      if (!missing.length) break;
      if (i === 0) say(`not seen yet: ${missing.join(',')}: HeadBucket until they are`);
      await s3.send(new HeadBucketCommand({ Bucket })).catch(() => {});
    }
  } finally {
    s3.destroy();
    await stopProxy(p);
  }

  const faults = p.records.map((r) => r.fault);
  for (const r of p.records) {
    say(`  #${r.n} ${r.method} ${r.path.split('?')[0]}?${(r.path.split('?')[1] || '').slice(0, 24)} ${r.fault} ${r.status}`);
  }
  const sched = faultSchedule(SEED, RATE, KINDS, faults.length);
  assert(isDeepStrictEqual(faults, sched), `logged faults ${faults.join(' ')} != faultSchedule ${sched.join(' ')}`);
  for (const k of KINDS) assert(p.summary.faults[k] >= 1, `no ${k} fault in ${JSON.stringify(p.summary)}`);
  say(`summary ${JSON.stringify(p.summary)}`);
}

// ------------------------------------------------------------ main

let swiftDir = null;
function cleanup() {
  for (const ch of children) ch.kill('SIGKILL');
  if (swiftDir) {
    const r = spawnSync(STOP_SWIFT, [swiftDir], { encoding: 'utf8', timeout: 20000 });
    if (r.status !== 0) console.error(`stop-swift.sh: exit ${r.status}: ${r.stderr}`);
    if (process.env.SEASHORE_KEEP_TMP === '1') console.error(`kept ${swiftDir}`);
    else fs.rmSync(swiftDir, { recursive: true, force: true });
    swiftDir = null;
  }
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    console.error(`fault_proxy_check: ${sig}, stopping`);
    cleanup();
    process.exit(1);
  });
}

let ok = false;
try {
  checkSchedule();
  swiftDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fault-proxy-check-'));
  const sw = await startSwift(swiftDir);
  sw.dir = swiftDir;
  say(`swift s3api on ${sw.S3_ENDPOINT} (${swiftDir})`);
  await checkBehaviour(sw);
  await checkS3(sw);
  ok = true;
} catch (e) {
  console.error(`fault_proxy_check: FAILED: ${e.message}`);
  if (process.env.FAULT_PROXY_CHECK_DEBUG) console.error(e.stack);
} finally {
  cleanup();
}
say(ok ? 'fault_proxy_check: ok' : 'fault_proxy_check: FAILED');
await sleep(0);
process.exit(ok ? 0 : 1);
