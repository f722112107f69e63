// backpressure.mjs -- the recorder against a full chunk log; started by
// test_web.c built as test_web_backpressure: a 7 MiB log, 5 MiB parts, and
// no r2-uploader until this script asks for it, so nothing leaves the log
// and it fills while the page records.
//
//   node tests/web/backpressure.mjs CONTROL_DIR SCREENSHOT_DIR INGEST_METRICS_URL
//
// While the log is full the server refuses chunks (BACK_PRESSURE, with
// retry_after_ms 1000; chunks pipelined behind a refusal get SEQ_GAP). The
// worker must wait retry_after_ms and then probe with one chunk: about one
// refusal a second. The old worker resent its whole window about four times
// a second, each pass drawing a BACK_PRESSURE and a SEQ_GAP per chunk
// behind it. Once the uploader runs, parts leave the log and the recording
// must still arrive byte-exact.
import {
  browser, control, download, expect, forgetRecorded, hostJoins, indexedDbChunks, newContext, recorded,
  result, run, sha256, shot, sleep, trackOf, until, waitUploaded,
} from './lib.mjs';

const metricsUrl = process.argv[4];
const MEASURE_MS = 15000;
const MAX_REFUSALS_PER_S = 2; // retry_after_ms is 1000: one probe a second, and a stale SEQ_GAP now and then

// seashore_ingest_error_frames_total by code
async function errorFrames() {
  const text = await (await fetch(metricsUrl)).text();
  const by = {};
  for (const m of text.matchAll(/^seashore_ingest_error_frames_total\{code="([^"]+)"\} (\S+)$/gm)) {
    by[m[1].replace(/^ERROR_CODE_/, '')] = Number(m[2]);
  }
  return by;
}

const refusals = (by) => (by.BACK_PRESSURE || 0) + (by.SEQ_GAP || 0);

await run('full chunk log: the recorder waits retry_after_ms and probes; after the log drains the raw object is exact', async () => {
  const { page } = await newContext('host');
  const s = await hostJoins(page, 'Back pressure', false);
  forgetRecorded('host', '/session.html');
  await page.locator('#start:not([disabled])').waitFor();
  await page.click('#start');
  await until('the chunk log full (a BACK_PRESSURE)', async () => ((await errorFrames()).BACK_PRESSURE || 0) > 0, 240000);
  const before = await errorFrames();
  const t0 = Date.now();
  await sleep(MEASURE_MS);
  const after = await errorFrames();
  const seconds = (Date.now() - t0) / 1000;
  const rate = (refusals(after) - refusals(before)) / seconds;
  console.log(`# refusals while the log is full: ${JSON.stringify(before)} -> ${JSON.stringify(after)} in ${seconds.toFixed(1)} s: ${rate.toFixed(2)}/s`);
  await shot(page, 'session-log-full');
  const state = await page.locator('#rec-state').textContent();
  expect(/record/i.test(state), `state while the log is full: ${state}`);
  expect((await indexedDbChunks(page)).chunks > 0, 'no chunks wait in IndexedDB while the log is full');
  expect(refusals(after) > refusals(before), 'no refusal while the log is full: nothing was retried');
  expect(rate <= MAX_REFUSALS_PER_S, `${rate.toFixed(2)} refusals a second while the log is full (at most ${MAX_REFUSALS_PER_S})`);
  // Acknowledged is not enough to forget a chunk: nothing is uploaded yet
  // (no uploader, so no Committed), so the first chunk, acked long ago,
  // must still be in IndexedDB.
  const first = await page.evaluate(async () => {
    const { listTracks, getChunk } = await import('/lib/store.js');
    const [t] = await listTracks();
    return t ? { acked: document.querySelector('#acked-bytes')?.textContent, chunk0: !!(await getChunk(t.trackId, 0)) } : null;
  });
  expect(first && first.chunk0 && !/^0 B/.test(first.acked || ''),
    `chunk 0 gone from IndexedDB before anything was committed: ${JSON.stringify(first)}`);
  await control('start-uploader');
  await sleep(5000);
  await page.click('#stop');
  await waitUploaded(page);
  const t = await trackOf(s.sid, s.pid, 0);
  const raw = await download(t.raw.url);
  const made = recorded('host', '/session.html', 1);
  expect(raw.length === made.length && sha256(raw) === sha256(made),
    `raw object ${raw.length} bytes ${sha256(raw)}, MediaRecorder made ${made.length} bytes ${sha256(made)}`);
  expect((await indexedDbChunks(page)).chunks === 0, 'chunks left in IndexedDB once everything is committed');
});

await browser.close();
console.log(result.failures ? `${result.failures} failed` : 'all passed');
process.exit(result.failures ? 1 : 0);
