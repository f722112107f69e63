// recovery.js -- on any page load: tracks left unfinished in IndexedDB (a
// reloaded tab, a crashed browser, a recording whose upload had not
// finished) are resumed, each in its own upload worker. A track this or
// another tab is still uploading is left to it (Web Locks).
//
//   const r = startRecovery({ getToken: async ({ sessionId, participantId }) => token });
//   r.addEventListener('progress', (e) => show(e.detail));
//
// A track whose recording was cut off (no stop) is ended with what was
// recorded: the MediaRecorder that made it is gone.
import { startUploadWorker } from './recorder.js';
import { listTracks } from './store.js';

export function startRecovery({ getToken, exclude = [] }) {
  const events = new EventTarget();
  events.tracks = new Map();
  (async () => {
    let tracks = [];
    try {
      tracks = await listTracks();
    } catch (e) {
      events.dispatchEvent(new CustomEvent('error', { detail: { error: `IndexedDB: ${e.message}` } }));
      return;
    }
    for (const t of tracks) {
      if (exclude.includes(t.trackId)) continue;
      const who = { sessionId: t.sessionId, participantId: t.participantId };
      const tokenFor = () => getToken(who);
      const first = await Promise.resolve(tokenFor()).catch(() => null);
      const worker = startUploadWorker(t, first, tokenFor, (detail) => {
        if (detail.state === 'busy') {
          worker.terminate(); // another tab (or this page's recorder) has it
          events.tracks.delete(t.trackId);
          return;
        }
        events.tracks.set(t.trackId, detail);
        events.dispatchEvent(new CustomEvent('progress', { detail: { ...detail, recovered: true } }));
      });
      if (!t.stopped) worker.postMessage({ type: 'stop', durationUs: 0 });
    }
    events.dispatchEvent(new CustomEvent('scanned', { detail: { count: tracks.length } }));
  })();
  return events;
}
