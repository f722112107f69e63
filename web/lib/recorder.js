// recorder.js -- the Sea Shore recorder for web pages (docs/recorder.md).
//
//   const rec = new StudioRecorder({ ingestUrl, getToken, stream, sessionId, participantId });
//   rec.addEventListener('progress', (e) => render(e.detail));
//   await rec.start();  ...  await rec.stop();
//
// MediaRecorder runs here (it does not exist in workers); every blob goes to
// the track's Web Worker (recorder-worker.js), which writes it to IndexedDB
// before sending it over the websocket protocol and deletes it only once
// the object store holds it. A reload or a crash loses nothing written to
// IndexedDB: recovery.js resumes the upload.

const PREFERRED_TYPES = [
  // H.264 first: the editors' MP4 is then a stream copy
  'video/webm;codecs=h264,opus',
  'video/x-matroska;codecs=avc1,opus',
  'video/mp4;codecs=avc1,mp4a.40.2',
  'video/mp4;codecs=avc1,opus',
  'video/webm;codecs=vp9,opus',
  'video/webm;codecs=vp8,opus',
  'video/mp4',
  'video/webm',
];
const AUDIO_TYPES = ['audio/webm;codecs=opus', 'audio/mp4;codecs=opus', 'audio/mp4', 'audio/ogg;codecs=opus', 'audio/webm'];

export function kindOf(stream) {
  const v = stream.getVideoTracks().length > 0, a = stream.getAudioTracks().length > 0;
  return v && a ? 'audio_video' : v ? 'video' : 'audio';
}

// The best MediaRecorder type for editors that this browser records.
export function pickMimeType(stream) {
  const list = kindOf(stream) === 'audio' ? AUDIO_TYPES : PREFERRED_TYPES;
  return list.find((t) => MediaRecorder.isTypeSupported(t)) || '';
}

export function extensionOf(mimeType) {
  if (mimeType.includes('mp4')) return 'mp4';
  if (mimeType.includes('ogg')) return 'ogg';
  if (mimeType.includes('matroska')) return 'mkv';
  return 'webm';
}

function nowUs() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

// Asks the browser to keep IndexedDB even under storage pressure, and
// reports usage against the quota. Never throws.
export async function storageStatus() {
  const s = navigator.storage;
  if (!s) return { usage: 0, quota: 0, persisted: false };
  let persisted = false;
  try {
    persisted = (await s.persisted()) || (await s.persist());
  } catch {
    persisted = false;
  }
  const { usage = 0, quota = 0 } = await s.estimate().catch(() => ({}));
  return { usage, quota, persisted };
}

// Starts a track's upload worker; handles its token requests.
export function startUploadWorker(track, firstToken, getToken, onProgress) {
  const worker = new Worker(new URL('./recorder-worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = async (e) => {
    const m = e.data;
    if (m.type === 'progress') onProgress(m.detail);
    else if (m.type === 'busy') onProgress({ trackId: track.trackId, state: 'busy' });
    else if (m.type === 'need-token') {
      let tok = null;
      for (let wait = 1000; !tok; wait = Math.min(wait * 2, 30000)) {
        tok = await Promise.resolve(getToken()).catch(() => null);
        if (!tok) await new Promise((r) => setTimeout(r, wait));
      }
      worker.postMessage({ type: 'token', token: tok });
    }
  };
  worker.onerror = (e) =>
    onProgress({ trackId: track.trackId, state: 'error', error: `upload worker: ${e.message || 'failed to load'}` });
  worker.postMessage({ type: 'init', track, token: firstToken });
  return worker;
}

export class StudioRecorder extends EventTarget {
  constructor({ ingestUrl, getToken, stream, mimeType, timesliceMs = 1000, sessionId, participantId }) {
    super();
    this.opts = { ingestUrl, getToken, stream, timesliceMs, sessionId, participantId };
    this.mimeType = mimeType || pickMimeType(stream);
    this.trackId = null;
    this.detail = null;
    this.storage = { usage: 0, quota: 0, persisted: false };
  }

  emit(detail) {
    this.detail = { ...this.detail, ...detail, storage: this.storage };
    this.dispatchEvent(new CustomEvent('progress', { detail: this.detail }));
  }

  async start() {
    if (this.recorder) throw new Error('already started');
    this.storage = await storageStatus();
    this.trackId = crypto.randomUUID();
    this.recorder = new MediaRecorder(this.opts.stream, this.mimeType ? { mimeType: this.mimeType } : undefined);
    this.mimeType = this.recorder.mimeType || this.mimeType;
    const captureStartUs = nowUs();
    const track = {
      trackId: this.trackId,
      sessionId: this.opts.sessionId,
      participantId: this.opts.participantId,
      kind: kindOf(this.opts.stream),
      mimeType: this.mimeType,
      captureStartUs,
      ingestUrl: this.opts.ingestUrl,
    };
    const first = await this.opts.getToken();
    this.worker = startUploadWorker(track, first, this.opts.getToken, (d) => {
      this.emit(d);
      if (d.storeError) this.stop(); // the worker takes no more blobs: stop recording
    });
    this.startedAt = performance.now();
    // blobs reach the worker in order, and all of them before 'stop'
    this.pending = Promise.resolve();
    this.recorder.ondataavailable = (e) => {
      if (!e.data || e.data.size === 0) return;
      const blob = e.data, at = nowUs();
      this.pending = this.pending
        .then(() => blob.arrayBuffer())
        .then((data) => this.worker.postMessage({ type: 'blob', data, captureTimeUs: at }, [data]));
    };
    this.stopped = new Promise((resolve) => (this.recorder.onstop = resolve));
    this.quotaTimer = setInterval(async () => {
      this.storage = await storageStatus();
      this.emit({});
    }, 5000);
    this.recorder.start(this.opts.timesliceMs);
    this.emit({ trackId: this.trackId, state: 'recording', recordedBytes: 0, ackedBytes: 0, committedBytes: 0 });
  }

  // Stops recording; the upload goes on until the object store holds it all.
  async stop() {
    if (!this.recorder || this.recorder.state === 'inactive') return;
    this.recorder.stop();
    await this.stopped; // the last dataavailable fires before onstop
    await this.pending;
    const durationUs = Math.round((performance.now() - this.startedAt) * 1000);
    this.worker.postMessage({ type: 'stop', durationUs });
    clearInterval(this.quotaTimer);
  }
}
