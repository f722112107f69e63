// lib.mjs -- what the studio tests share: the stack's API, the control
// directory (test_web.c starts and stops services when asked), Chromium
// with fake devices, and the MediaRecorder tee (every blob a page records is
// copied here, so raw objects can be compared with what the browser really
// recorded).
//
// Environment (from the test stack): API_URL, SEASHORE_BUILD_DIR.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const [controlDir, shotDir] = process.argv.slice(2);
export const API = process.env.API_URL;
export const RECORD_MS = 10000;
export const UPLOAD_TIMEOUT_MS = 120000;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const result = { failures: 0 };

export function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

export async function run(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok - ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    result.failures++;
    console.log(`not ok - ${name}: ${e.stack || e.message}`);
  }
}

let controlSeq = 0;
export async function control(cmd) {
  const n = ++controlSeq;
  fs.writeFileSync(path.join(controlDir, `${n}.req.tmp`), cmd);
  fs.renameSync(path.join(controlDir, `${n}.req.tmp`), path.join(controlDir, `${n}.req`));
  const done = path.join(controlDir, `${n}.done`);
  for (let i = 0; i < 600 && !fs.existsSync(done); i++) await sleep(100);
  expect(fs.existsSync(done) && fs.readFileSync(done, 'utf8') === 'ok', `control ${cmd} failed`);
}

export const apiKey = execFileSync(
  path.join(process.env.SEASHORE_BUILD_DIR, 'services/token-issuer/token-issuer'),
  ['create-api-key', '--email', 'web@example.test', '--name', 'web test'],
  { encoding: 'utf8' },
).trim();

export async function api(p) {
  const r = await fetch(API + p, { headers: { authorization: `Bearer ${apiKey}` } });
  return { status: r.status, json: await r.json().catch(() => null) };
}

export const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

export async function download(url) {
  const r = await fetch(url);
  expect(r.ok, `GET ${url.split('?')[0]}: HTTP ${r.status}`);
  return Buffer.from(await r.arrayBuffer());
}

// ffmpeg decodes the whole file; any message it prints (on stderr, with
// -v error) is a decoding problem. ffprobe gives the container's duration.
export function ffprobeOk(file) {
  const dec = spawnSync('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-enc_time_base', '-1', '-f', 'null', '-'], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const dur = Number(
    execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', file], { encoding: 'utf8' }),
  );
  return { clean: dec.status === 0 && dec.stderr.trim() === '', errors: dec.stderr.trim(), duration: dur };
}

export async function until(what, fn, timeoutMs = UPLOAD_TIMEOUT_MS) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(500);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(shotDir, `${name}.png`), fullPage: true });
}

// ---- the browser ----

export const browser = await chromium.launch({
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
export const blobs = new Map();
export const TEE = `(() => {
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

// Console lines may hold URLs with tokens (LiveKit's access_token): not in logs.
export function redact(text) {
  return text.replace(/(access_token|token)=[^&\s']+/g, '$1=<redacted>');
}

// initScript: runs before the tee (e.g. to set MediaRecorder options)
export async function newContext(label, initScript = null) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  if (initScript) await ctx.addInitScript(initScript);
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
  page.on('console', (m) => m.type() === 'error' && !/favicon/.test(m.text()) && console.log(`[${label}] console: ${redact(m.text())}`));
  return { ctx, page };
}

// Before a recording: the page's recorders count from 1 again in each document.
export function forgetRecorded(label, pagePath) {
  blobs.delete(`${label}${pagePath}`);
}

// The blobs one recorder of a page made, in order.
export function blobsOf(label, pagePath, id) {
  const rec = blobs.get(`${label}${pagePath}`);
  const parts = rec && rec.get(id);
  expect(parts && parts.length > 0, `no MediaRecorder data from ${label} ${pagePath} recorder ${id}`);
  return parts.filter(Boolean);
}

export function recorded(label, pagePath, id) {
  const rec = blobs.get(`${label}${pagePath}`);
  const parts = rec && rec.get(id);
  expect(parts && parts.length > 0, `no MediaRecorder data from ${label} ${pagePath} recorder ${id}`);
  return Buffer.concat(parts.filter(Boolean));
}

// Dashboard -> new session -> greenroom (host) -> join -> session page.
export async function hostJoins(page, title, shots) {
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
  // the camera is chosen once the preview plays (a join before that records audio only)
  await page.waitForFunction(() => document.querySelector('#preview')?.readyState >= 2 && document.querySelector('#camera')?.value,
    null, { timeout: 20000 });
  if (shots) {
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

export async function waitUploaded(page) {
  await page.locator('#rec-state').filter({ hasText: /uploaded/i }).waitFor({ timeout: UPLOAD_TIMEOUT_MS });
}

export async function trackOf(sid, pid, index) {
  return until(`track ${index} of ${pid} complete`, async () => {
    const r = await api(`/v1/sessions/${sid}/tracks`);
    const p = r.json && r.json.participants.find((x) => x.participant_id === pid);
    const t = p && p.tracks[index];
    return t && t.state === 'complete' && t.raw && t.raw.url ? t : null;
  });
}

export async function indexedDbChunks(page) {
  return page.evaluate(async () => {
    const { listTracks, countChunks } = await import('/lib/store.js');
    const tracks = await listTracks();
    let n = 0;
    for (const t of tracks) n += await countChunks(t.trackId);
    return { tracks: tracks.map((t) => t.trackId), chunks: n };
  });
}
