// studio.mjs -- the studio's pages in Debian's Chromium (fake camera and
// microphone) against the running stack; started by test_web.c, which
// starts and stops ingest-recorder when asked through CONTROL_DIR.
//
//   node tests/web/studio.mjs CONTROL_DIR SCREENSHOT_DIR
//
// The helpers (the browser, the MediaRecorder tee, the stack's API) are in
// lib.mjs.
import fs from 'node:fs';
import path from 'node:path';
import {
  API, RECORD_MS, api, browser, control, download, expect, ffprobeOk, forgetRecorded, hostJoins,
  blobsOf, indexedDbChunks, newContext, recorded, result, run, sha256, shot, shotDir, sleep, trackOf, until,
  waitUploaded,
} from './lib.mjs';

// The editor files the muxer makes from a recording of this type
// (docs/muxer.md): H.264 gets no WebM, VP8/VP9 no MP4 (MUXER_TRANSCODE is
// off), Opus alone gets all three.
function expectedKinds(mimeType) {
  if (/h264|avc1/i.test(mimeType)) return ['mp4', 'wav'];
  if (/vp8|vp9|av01/i.test(mimeType)) return ['webm', 'wav'];
  return ['webm', 'mp4', 'wav'];
}

// "0:10.123" or "1:00:10.123" as on the page -> seconds
function shownSeconds(text) {
  return text.trim().split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
}

// The downloads page lists every editor file expected for the codec, the
// skipped ones as skipped; each file decodes cleanly, lasts the recording,
// and the page shows its real size and duration.
async function checkDownloads(page, sid, t) {
  const kinds = expectedKinds(t.mime_type || '');
  await page.goto(`${API}/downloads.html?sid=${sid}`);
  const section = page.locator(`.track[data-track-id="${t.track_id}"]`);
  await until(`the ${kinds.join(', ')} files on the downloads page`, async () => {
    await page.reload();
    const shown = await section.locator('a.file').evaluateAll((as) => as.map((a) => a.dataset.kind));
    return kinds.every((k) => shown.includes(k));
  });
  await shot(page, 'downloads');
  for (const skipped of ['webm', 'mp4', 'wav'].filter((k) => !kinds.includes(k))) {
    const st = await section.locator(`.output-state[data-kind="${skipped}"]`).getAttribute('data-state');
    expect(st === 'skipped', `${skipped} of a ${t.mime_type} track: ${st}, expected skipped`);
  }
  for (const kind of kinds) {
    const item = section.locator(`li.file-item[data-kind="${kind}"]`);
    // The files made live while recording can be made again from the
    // complete raw object (when the track's start moved, e.g. by the clock
    // offset its End reported): then the object is replaced after the page
    // was drawn. The page and the file agree again once it is; wait for that.
    let body = null, meta = {};
    for (let attempt = 0; attempt < 15; attempt++) {
      if (attempt) {
        await sleep(2000);
        await page.reload();
      }
      body = await download(await item.locator('a.file').getAttribute('href'));
      meta = await item.locator('dl.meta').evaluate((dl) => {
        const o = {};
        for (const dt of dl.querySelectorAll('dt')) o[dt.textContent] = dt.nextElementSibling.textContent;
        return o;
      });
      if ((meta.Size || '').includes(`(${body.length} bytes)`)) break;
      console.log(`# ${kind}: the page shows "${meta.Size}", the file has ${body.length} bytes; made again? reloading`);
    }
    const file = path.join(shotDir, '..', `web-${t.track_id}.${kind}`);
    fs.writeFileSync(file, body);
    const probe = ffprobeOk(file);
    expect(probe.clean, `${kind} does not decode cleanly: ${probe.errors}`);
    expect(Math.abs(probe.duration - RECORD_MS / 1000) < 1.5, `${kind} lasts ${probe.duration} s`);
    expect((meta.Size || '').includes(`(${body.length} bytes)`), `${kind}: the page shows size "${meta.Size}", the file has ${body.length} bytes`);
    expect(meta.Duration && Math.abs(shownSeconds(meta.Duration) - probe.duration) < 0.5,
      `${kind}: the page shows duration "${meta.Duration}", ffprobe ${probe.duration} s`);
  }
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
  await checkDownloads(page, session.sid, t);
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
  // Each page shows the other participant's take while it records: bytes
  // recorded (as that page reports them) and acknowledged by the server.
  const otherTake = (page, who, otherPid) => until(`${who}'s page showing the other participant's take`, () =>
    page.evaluate((p) => {
      const line = document.querySelector(`.participant-block[data-participant-id="${p}"] .track-line`);
      const field = (f) => line && line.querySelector(`[data-field="${f}"]`)?.textContent;
      return line && !/^0 B/.test(field('recorded')) && !/^0 B/.test(field('acked')) ? line.textContent : null;
    }, otherPid), 20000);
  await otherTake(host.page, 'the host', gpid);
  await otherTake(guest.page, 'the guest', h.pid);
  await sleep(2000);
  await shot(guest.page, 'guest-session');
  await shot(host.page, 'host-session-two');
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

await run('a track without a chunk (reload before the first timeslice) is dropped, not left finishing', async () => {
  const { page } = host;
  await page.goto(`${API}/session.html?sid=${session.sid}&pid=${session.pid}`);
  // what the upload worker stores when a recording starts, before any blob
  const trackId = await page.evaluate(async ([sid, pid]) => {
    const { putTrack } = await import('/lib/store.js');
    const { loadJoin } = await import('/lib/pages/common.js');
    const t = {
      trackId: crypto.randomUUID(), sessionId: sid, participantId: pid, kind: 'audio_video',
      mimeType: 'video/webm;codecs=vp8,opus', captureStartUs: Date.now() * 1000, ingestUrl: loadJoin(sid, pid).ingest.url,
      committedSeq: 0, committedBytes: 0, nextSeq: 0, totalBytes: 0, hashState: null, stopped: false, ended: false,
      durationUs: 0, createdAt: Date.now(),
    };
    await putTrack(t);
    return t.trackId;
  }, [session.sid, session.pid]);
  await page.reload();
  await page.locator(`#recovery .recovery-item[data-track-id="${trackId}"][data-state="discarded"]`).waitFor({ timeout: 20000 });
  expect((await indexedDbChunks(page)).tracks.length === 0, 'the empty track is still in IndexedDB');
});

await run('storage full: the recording stops with a message, and what was stored uploads whole', async () => {
  const q = await newContext('quota');
  const s = await hostJoins(q.page, 'Quota', false);
  forgetRecorded('quota', '/session.html');
  await q.page.locator('#start:not([disabled])').waitFor();
  // A real QuotaExceededError from IndexedDB: the origin may hold ~2 MB more.
  const { usage } = await q.page.evaluate(() => navigator.storage.estimate());
  const cdp = await q.ctx.newCDPSession(q.page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(API).origin, quotaSize: usage + 2e6 });
  await q.page.click('#start');
  await q.page.locator('#error', { hasText: /Recording stopped/ }).waitFor({ timeout: 30000 });
  await shot(q.page, 'session-storage-full');
  expect(await q.page.locator('#start').isEnabled(), 'start is not enabled again after the recording stopped');
  await waitUploaded(q.page);
  const t = await trackOf(s.sid, s.pid, 0);
  const raw = await download(t.raw.url);
  const parts = [];
  let made = Buffer.alloc(0);
  for (const b of blobsOf('quota', '/session.html', 1)) {
    if (made.length >= raw.length) break;
    made = Buffer.concat([made, b]);
    parts.push(b.length);
  }
  expect(made.equals(raw), `the raw object (${raw.length} bytes) is not the first ${parts.length} blobs recorded (${made.length} bytes)`);
  expect(raw.length > 0 && recorded('quota', '/session.html', 1).length > raw.length,
    `nothing was refused: ${raw.length} bytes uploaded of ${recorded('quota', '/session.html', 1).length}`);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(API).origin });
  await q.ctx.close();
});

// IndexedDB writes that take 700 ms to report back (a slow disk): blobs,
// Acks, Welcome and stop all queue behind them in the worker, and the
// object must still be exactly what was recorded. (The race this guards
// against, a Committed handled while a blob's write is pending, needs a
// part committed during the recording: the fake camera records ~70 KB/s,
// so a 5 MiB part takes over a minute, and this case does not reach it.)
const SLOW_STORE = `
export * from '/lib/store.js?real';
import * as real from '/lib/store.js?real';
self.__slowStoreWrites = 0;
const late = (p) => p.then((v) => new Promise((r) => setTimeout(() => { self.__slowStoreWrites++; r(v); }, 700)));
export function putTrack(...a) { return late(real.putTrack(...a)); }
export function appendChunks(...a) { return late(real.appendChunks(...a)); }
export function deleteChunksBelow(...a) { return late(real.deleteChunksBelow(...a)); }
`;

await run('slow IndexedDB writes: the raw object is still what was recorded', async () => {
  const slow = await newContext('slow');
  await slow.ctx.route((u) => u.pathname === '/lib/store.js' && u.search === '', (r) =>
    r.fulfill({ status: 200, contentType: 'text/javascript', body: SLOW_STORE }));
  const s = await hostJoins(slow.page, 'Slow disk', false);
  forgetRecorded('slow', '/session.html');
  await slow.page.locator('#start:not([disabled])').waitFor();
  await slow.page.click('#start');
  await sleep(12000);
  await slow.page.click('#stop');
  const slowed = await Promise.all(slow.page.workers().map((w) => w.evaluate(() => self.__slowStoreWrites || 0).catch(() => 0)));
  expect(slowed.some((n) => n > 0), `the slow store was not used by the upload worker: ${slowed}`);
  await waitUploaded(slow.page);
  const t = await trackOf(s.sid, s.pid, 0);
  const raw = await download(t.raw.url);
  const made = recorded('slow', '/session.html', 1);
  expect(raw.length === made.length && sha256(raw) === sha256(made),
    `raw object ${raw.length} bytes ${sha256(raw)}, MediaRecorder made ${made.length} bytes ${sha256(made)}`);
  await slow.ctx.close();
});

await browser.close();
console.log(result.failures ? `${result.failures} failed` : 'all passed');
process.exit(result.failures ? 1 : 0);
