// capture_media.mjs -- records real MediaRecorder output from Debian's
// Chromium (fake camera and microphone) for the muxer's tests.
//
//   node tests/mux/capture_media.mjs OUT_DIR [SECONDS]
//
// For every MIME type in TYPES that this Chromium's MediaRecorder supports,
// records SECONDS (default 3) with a 1 s timeslice, as the studio page does,
// and writes OUT_DIR/<name>.<ext>. Prints one JSON line per type:
// {"name", "mime", "supported", "file", "bytes"}. Exit 1 if nothing could be
// recorded. Loopback only: a tiny HTTP server gives the page a secure origin.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const TYPES = [
  { name: 'webm-vp8-opus', mime: 'video/webm;codecs=vp8,opus', ext: 'webm' },
  { name: 'webm-vp9-opus', mime: 'video/webm;codecs=vp9,opus', ext: 'webm' },
  { name: 'webm-av1-opus', mime: 'video/webm;codecs=av1,opus', ext: 'webm' },
  { name: 'webm-h264-opus', mime: 'video/webm;codecs=h264,opus', ext: 'webm' },
  { name: 'mp4-avc1-mp4a', mime: 'video/mp4;codecs=avc1,mp4a.40.2', ext: 'mp4' },
  { name: 'mp4-avc1-opus', mime: 'video/mp4;codecs=avc1,opus', ext: 'mp4' },
  { name: 'mp4-vp9-opus', mime: 'video/mp4;codecs=vp9,opus', ext: 'mp4' },
  { name: 'audio-webm-opus', mime: 'audio/webm;codecs=opus', ext: 'webm' },
  { name: 'audio-mp4-opus', mime: 'audio/mp4;codecs=opus', ext: 'mp4' },
];

const [outDir, secondsArg] = process.argv.slice(2);
if (!outDir) {
  console.error('usage: node capture_media.mjs OUT_DIR [SECONDS]');
  process.exit(2);
}
const seconds = Number(secondsArg || 3);
fs.mkdirSync(outDir, { recursive: true });

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>capture</title>');
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}/`;

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
let recorded = 0;
try {
  const page = await browser.newPage();
  await page.goto(origin);
  for (const t of TYPES) {
    const result = await page.evaluate(async ({ mime, seconds }) => {
      if (!MediaRecorder.isTypeSupported(mime)) return { supported: false };
      const audioOnly = mime.startsWith('audio/');
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: audioOnly ? false : { width: 640, height: 360, frameRate: 30 },
      });
      const rec = new MediaRecorder(stream, { mimeType: mime });
      const parts = [];
      rec.ondataavailable = (e) => e.data.size && parts.push(e.data);
      const stopped = new Promise((resolve) => (rec.onstop = resolve));
      rec.start(1000);
      await new Promise((r) => setTimeout(r, seconds * 1000));
      rec.stop();
      await stopped;
      stream.getTracks().forEach((tr) => tr.stop());
      const buf = new Uint8Array(await new Blob(parts).arrayBuffer());
      let bin = '';
      for (let i = 0; i < buf.length; i += 0x8000)
        bin += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
      return { supported: true, mimeType: rec.mimeType, data: btoa(bin) };
    }, { mime: t.mime, seconds });
    const line = { name: t.name, mime: t.mime, supported: result.supported };
    if (result.supported) {
      const file = path.join(outDir, `${t.name}.${t.ext}`);
      fs.writeFileSync(file, Buffer.from(result.data, 'base64'));
      Object.assign(line, { recorded_as: result.mimeType, file, bytes: fs.statSync(file).size });
      recorded++;
    }
    console.log(JSON.stringify(line));
  }
} finally {
  await browser.close();
  server.close();
}
process.exit(recorded > 0 ? 0 : 1);
