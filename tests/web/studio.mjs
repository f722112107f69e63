// studio.mjs -- the studio's pages in Debian's Chromium (fake camera and
// microphone) against the running stack; started by test_web.c, which
// starts and stops ingest-recorder when asked through CONTROL_DIR.
//
//   node tests/web/studio.mjs CONTROL_DIR SCREENSHOT_DIR
//
// Environment (from the test stack): API_URL, DATABASE_URL,
// SEASHORE_BUILD_DIR. Every MediaRecorder blob the pages produce is copied
// to this script (an init script wraps MediaRecorder), so the raw objects
// can be compared with what the browser really recorded.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [controlDir, shotDir] = process.argv.slice(2);
const API = process.env.API_URL;
const RECORD_MS = 10000;
const UPLOAD_TIMEOUT_MS = 120000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let failures = 0;

function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function run(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok - ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failures++;
    console.log(`not ok - ${name}: ${e.stack || e.message}`);
  }
}

let controlSeq = 0;
async function control(cmd) {
  const n = ++controlSeq;
  fs.writeFileSync(path.join(controlDir, `${n}.req.tmp`), cmd);
  fs.renameSync(path.join(controlDir, `${n}.req.tmp`), path.join(controlDir, `${n}.req`));
  const done = path.join(controlDir, `${n}.done`);
  for (let i = 0; i < 600 && !fs.existsSync(done); i++) await sleep(100);
  expect(fs.existsSync(done) && fs.readFileSync(done, 'utf8') === 'ok', `control ${cmd} failed`);
}

const apiKey = execFileSync(
  path.join(process.env.SEASHORE_BUILD_DIR, 'services/token-issuer/token-issuer'),
  ['create-api-key', '--email', 'web@example.test', '--name', 'web test'],
  { encoding: 'utf8' },
).trim();

async function api(p) {
  const r = await fetch(API + p, { headers: { authorization: `Bearer ${apiKey}` } });
  return { status: r.status, json: await r.json().catch(() => null) };
}

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

async function download(url) {
  const r = await fetch(url);
  expect(r.ok, `GET ${url.split('?')[0]}: HTTP ${r.status}`);
  return Buffer.from(await r.arrayBuffer());
}

function ffprobeOk(file) {
  const err = execFileSync('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-enc_time_base', '-1', '-f', 'null', '-'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const dur = Number(
    execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', file], { encoding: 'utf8' }),
  );
  return { clean: err.trim() === '', duration: dur };
}

async function until(what, fn, timeoutMs = UPLOAD_TIMEOUT_MS) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(500);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shotDir, `${name}.png`), fullPage: true });
}

// ---- the browser ----

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--autoplay-policy=no-user-gesture-required',
  ],
});

// blobs[page path][recorder index] = [Buffer, ...] in recording order
const blobs = new Map();
const TEE = `(() => {
  const Orig = window.MediaRecorder;
  let made = 0;
  window.__tee = { fired: 0, delivered: 0 }; // blobs seen / handed to the test
  class Tee extends Orig {
    constructor(...args) {
      super(...args);
      const id = ++made;
      let chain = Promise.resolve(), n = 0;
      this.addEventListener('dataavailable', (e) => {
        if (!e.data || !e.data.size) return;
        const i = n++, blob = e.data;
        window.__tee.fired++;
        chain = chain.then(async () => {
          const b = new Uint8Array(await blob.arrayBuffer());
          let s = '';
          for (let k = 0; k < b.length; k += 0x8000) s += String.fromCharCode.apply(null, b.subarray(k, k + 0x8000));
          await window.__teeBlob(location.pathname, id, i, btoa(s));
          window.__tee.delivered++;
        });
      });
    }
  }
  Tee.isTypeSupported = (t) => Orig.isTypeSupported(t);
  window.MediaRecorder = Tee;
})();`;

async function newContext(label) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await ctx.exposeBinding('__teeBlob', (src, pagePath, id, i, b64) => {
    const key = `${label}${pagePath}`;
    if (!blobs.has(key)) blobs.set(key, new Map());
    const rec = blobs.get(key);
    if (!rec.has(id)) rec.set(id, []);
    rec.get(id)[i] = Buffer.from(b64, 'base64');
  });
  await ctx.addInitScript(TEE);
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.log(`[${label}] page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && !/favicon/.test(m.text()) && console.log(`[${label}] console: ${m.text()}`));
  return { ctx, page };
}

// Before a recording: the page's recorders count from 1 again in each document.
function forgetRecorded(label, pagePath) {
  blobs.delete(`${label}${pagePath}`);
}

function recorded(label, pagePath, id) {
  const rec = blobs.get(`${label}${pagePath}`);
  const parts = rec && rec.get(id);
  expect(parts && parts.length > 0, `no MediaRecorder data from ${label} ${pagePath} recorder ${id}`);
  return Buffer.concat(parts.filter(Boolean));
}

// Dashboard -> new session -> greenroom (host) -> join -> session page.
async function hostJoins(page, title, shots) {
  await page.goto(`${API}/#key=${apiKey}`);
  await page.fill('#new-session-title', title);
  await page.click('#create-session');
  const li = page.locator('li.session', { hasText: title }).first();
  await li.waitFor();
  const sid = await li.getAttribute('data-session-id');
  const invite = await li.locator('a.invite-link').getAttribute('href');
  if (shots) await shot(page, 'dashboard');
  await page.goto(new URL(await li.locator('a.studio-link').getAttribute('href'), `${API}/`).href);
  await page.fill('#display-name', 'Host');
  if (shots) {
    await page.waitForFunction(() => document.querySelector('#preview')?.readyState >= 2, null, { timeout: 20000 });
    await page.click('#test-recording');
    await page.locator('#test-result[data-ok]').waitFor({ timeout: 20000 });
    const ok = await page.locator('#test-result').getAttribute('data-ok');
    expect(ok === 'true', `the greenroom's recording check: ${await page.locator('#test-result').textContent()}`);
    await shot(page, 'greenroom');
  }
  await page.click('#join');
  await page.waitForURL(/session\.html/, { timeout: 20000 });
  const pid = new URL(page.url()).searchParams.get('pid');
  return { sid, pid, invite };
}

async function waitUploaded(page) {
  await page.locator('#rec-state').filter({ hasText: /uploaded/i }).waitFor({ timeout: UPLOAD_TIMEOUT_MS });
}

async function trackOf(sid, pid, index) {
  return until(`track ${index} of ${pid} complete`, async () => {
    const r = await api(`/v1/sessions/${sid}/tracks`);
    const p = r.json && r.json.participants.find((x) => x.participant_id === pid);
    const t = p && p.tracks[index];
    return t && t.state === 'complete' && t.raw && t.raw.url ? t : null;
  });
}

async function indexedDbChunks(page) {
  return page.evaluate(async () => {
    const { listTracks, countChunks } = await import('/lib/store.js');
    const tracks = await listTracks();
    let n = 0;
    for (const t of tracks) n += await countChunks(t.trackId);
    return { tracks: tracks.map((t) => t.trackId), chunks: n };
  });
}

const host = await newContext('host');
let session = null;

await run('record 10 s: the files appear on the downloads page, valid, and the raw object is what MediaRecorder produced', async () => {
  const { page } = host;
  session = await hostJoins(page, 'Web test', true);
  forgetRecorded('host', '/session.html');
  await page.click('#start');
  await sleep(RECORD_MS);
  await shot(page, 'session-recording');
  await page.click('#stop');
  await waitUploaded(page);
  await shot(page, 'session-uploaded');
  const t = await trackOf(session.sid, session.pid, 0);
  const raw = await download(t.raw.url);
  const made = recorded('host', '/session.html', 1);
  expect(raw.length === made.length && sha256(raw) === sha256(made),
    `raw object ${raw.length} bytes ${sha256(raw)}, MediaRecorder made ${made.length} bytes ${sha256(made)}`);
  await page.goto(`${API}/downloads.html?sid=${session.sid}`);
  const files = page.locator(`.track[data-track-id="${t.track_id}"] a.file`);
  await until('editor files on the downloads page', async () => (await files.count()) >= 2);
  await shot(page, 'downloads');
  for (let i = 0; i < (await files.count()); i++) {
    const kind = await files.nth(i).getAttribute('data-kind');
    const file = path.join(shotDir, `..`, `web-${t.track_id}.${kind}`);
    fs.writeFileSync(file, await download(await files.nth(i).getAttribute('href')));
    const probe = ffprobeOk(file);
    expect(probe.clean, `${kind} does not decode cleanly`);
    expect(Math.abs(probe.duration - RECORD_MS / 1000) < 1.5, `${kind} lasts ${probe.duration} s`);
  }
  const dl = await api(`/v1/sessions/${session.sid}/tracks`);
  expect(dl.status === 200, 'tracks listing');
});

await run('ingest-recorder down in the middle: recording goes on, chunks wait in IndexedDB, the upload completes', async () => {
  const { page } = host;
  await page.goto(`${API}/session.html?sid=${session.sid}&pid=${session.pid}`);
  forgetRecorded('host', '/session.html');
  await page.click('#start');
  await sleep(3000);
  await control('stop-ingest');
  await sleep(5000);
  const state = await page.locator('#rec-state').textContent();
  expect(/record/i.test(state), `state while ingest is down: ${state}`);
  const local = await indexedDbChunks(page);
  expect(local.chunks > 0, `no chunks in IndexedDB while ingest is down: ${JSON.stringify(local)}`);
  await shot(page, 'session-ingest-down');
  await control('start-ingest');
  await sleep(3000);
  await page.click('#stop');
  await waitUploaded(page);
  const t = await trackOf(session.sid, session.pid, 1);
  const raw = await download(t.raw.url);
  const made = recorded('host', '/session.html', 1); // a fresh page: its first recorder
  expect(sha256(raw) === sha256(made), `raw object ${raw.length} bytes differs from the ${made.length} recorded`);
  expect((await indexedDbChunks(page)).chunks === 0, 'chunks left in IndexedDB after the upload');
});

await run('reload in the middle of a recording: recovery uploads what was recorded', async () => {
  const { page } = host;
  await page.goto(`${API}/session.html?sid=${session.sid}&pid=${session.pid}`);
  forgetRecorded('host', '/session.html');
  await page.click('#start');
  await sleep(4000);
  const before = await indexedDbChunks(page);
  expect(before.tracks.length === 1, `tracks in IndexedDB: ${before.tracks}`);
  const trackId = before.tracks[0];
  // Reload right after the tee has handed over every timeslice so far: a
  // reload kills the old document's pending hand-overs, and a timeslice
  // that fires in between reaches IndexedDB (and the object) but not the
  // tee. So the object and the tee are both prefixes of the recording:
  // the shorter must be a prefix of the longer, and little may be missing.
  await page.waitForFunction(() => window.__tee.fired > 0 && window.__tee.fired === window.__tee.delivered);
  await page.reload();
  await page.locator(`#recovery .recovery-item[data-track-id="${trackId}"]`).waitFor({ timeout: 20000 });
  await shot(page, 'recovery');
  const t = await until('the recovered track complete', async () => {
    const r = await api(`/v1/sessions/${session.sid}/tracks`);
    const p = r.json.participants.find((x) => x.participant_id === session.pid);
    const x = p.tracks.find((y) => y.track_id === trackId);
    return x && x.state === 'complete' && x.raw && x.raw.url ? x : null;
  });
  const made = recorded('host', '/session.html', 1);
  const raw = await download(t.raw.url);
  const common = Math.min(raw.length, made.length);
  expect(raw.length > 0 && made.subarray(0, common).equals(raw.subarray(0, common)),
    `recovered object (${raw.length} bytes) and the ${made.length} bytes recorded differ within their first ${common}`);
  expect(raw.length >= made.length / 2, `only ${raw.length} of ${made.length} recorded bytes were recovered`);
  await until('IndexedDB empty after recovery', async () => (await indexedDbChunks(page)).tracks.length === 0);
});

await run('two participants in two browser contexts: two tracks with offsets in the manifest', async () => {
  const h = await hostJoins(host.page, 'Two people', false);
  const guest = await newContext('guest');
  await guest.page.goto(new URL(h.invite, `${API}/`).href);
  await guest.page.fill('#display-name', 'Guest');
  await guest.page.click('#join');
  await guest.page.waitForURL(/session\.html/, { timeout: 20000 });
  const gpid = new URL(guest.page.url()).searchParams.get('pid');
  // The guest's page refreshes its ingest token with the invite and the
  // refresh_token its join returned (kept with the join for recovery).
  const refreshed = await guest.page.evaluate(async ([sid, pid]) => {
    const c = await import('/lib/pages/common.js');
    const join = c.loadJoin(sid, pid);
    const token = await c.freshIngestToken(join);
    return { hasRefresh: /^[0-9a-f]{64}$/.test(join.refresh_token || ''), sub: JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub };
  }, [h.sid, gpid]);
  expect(refreshed.hasRefresh && refreshed.sub === gpid, `guest token refresh: ${JSON.stringify(refreshed)}`);
  // Each click is bracketed by the test's clock: under load a click takes
  // hundreds of ms to land, so the guest started between g0 - t1 and
  // g1 - t0 after the host (plus each page's own start latency).
  const t0 = Date.now();
  await host.page.click('#start');
  const t1 = Date.now();
  await sleep(1500);
  const g0 = Date.now();
  await guest.page.click('#start');
  const g1 = Date.now();
  await sleep(5000);
  await shot(guest.page, 'guest-session');
  await host.page.click('#stop');
  await guest.page.click('#stop');
  await waitUploaded(host.page);
  await waitUploaded(guest.page);
  const m = await until('both tracks muxed in the manifest', async () => {
    const r = await api(`/v1/sessions/${h.sid}/manifest`);
    if (r.status !== 200) return null;
    const tracks = r.json.participants.flatMap((p) => p.tracks.map((t) => ({ ...t, pid: p.id })));
    return tracks.length === 2 && tracks.every((t) => t.outputs.length === 3) ? tracks : null;
  });
  const hostTrack = m.find((t) => t.pid === h.pid), guestTrack = m.find((t) => t.pid === gpid);
  expect(hostTrack && guestTrack, 'a participant has no track in the manifest');
  expect(hostTrack.start_offset_us === 0, `host offset ${hostTrack.start_offset_us}`);
  const measured = guestTrack.start_offset_us / 1000;
  const lo = g0 - t1, hi = g1 - t0;
  expect(measured > lo - 500 && measured < hi + 500,
    `guest offset ${measured} ms, started ${lo}..${hi} ms after the host`);
  await guest.ctx.close();
});

await browser.close();
console.log(failures ? `${failures} failed` : 'all passed');
process.exit(failures ? 1 : 0);
