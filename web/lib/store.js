// store.js -- the recorder's local copy in IndexedDB: every chunk is written
// here before it is sent, and deleted only once the server says it is in the
// object store (Committed). Survives reloads and crashes; recovery.js finds
// the unfinished tracks here.
//
// Database "seashore-recorder", version 1:
//   tracks  key trackId: { trackId, sessionId, participantId, kind, mimeType,
//           captureStartUs, ingestUrl, nextSeq, totalBytes, hashState,
//           stopped, ended, committedSeq, committedBytes, durationUs,
//           createdAt, updatedAt }
//   chunks  key [trackId, seq]: { trackId, seq, data: ArrayBuffer,
//           sha256: ArrayBuffer }

const DB_NAME = 'seashore-recorder';
const DB_VERSION = 1;

let dbPromise = null;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('IndexedDB transaction aborted'));
  });
}

export function openStore() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains('tracks')) db.createObjectStore('tracks', { keyPath: 'trackId' });
        if (!db.objectStoreNames.contains('chunks')) db.createObjectStore('chunks', { keyPath: ['trackId', 'seq'] });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error('IndexedDB is blocked by another tab with an older version'));
    });
  }
  return dbPromise;
}

export async function getTrack(trackId) {
  const db = await openStore();
  return request(db.transaction('tracks').objectStore('tracks').get(trackId));
}

export async function listTracks() {
  const db = await openStore();
  return request(db.transaction('tracks').objectStore('tracks').getAll());
}

export async function putTrack(track) {
  const db = await openStore();
  const tx = db.transaction('tracks', 'readwrite');
  tx.objectStore('tracks').put({ ...track, updatedAt: Date.now() });
  return done(tx);
}

// Appends chunks (in seq order, starting at track.nextSeq) and the updated
// track record in one transaction: either both are stored or neither.
export async function appendChunks(track, chunks) {
  const db = await openStore();
  const tx = db.transaction(['tracks', 'chunks'], 'readwrite');
  const store = tx.objectStore('chunks');
  for (const c of chunks) store.put({ trackId: track.trackId, seq: c.seq, data: c.data, sha256: c.sha256 });
  tx.objectStore('tracks').put({ ...track, updatedAt: Date.now() });
  return done(tx);
}

export async function getChunk(trackId, seq) {
  const db = await openStore();
  return request(db.transaction('chunks').objectStore('chunks').get([trackId, seq]));
}

// Deletes chunks [0, belowSeq) and stores the track record with them.
export async function deleteChunksBelow(track, belowSeq) {
  const db = await openStore();
  const tx = db.transaction(['tracks', 'chunks'], 'readwrite');
  if (belowSeq > 0) tx.objectStore('chunks').delete(IDBKeyRange.bound([track.trackId, 0], [track.trackId, belowSeq - 1]));
  tx.objectStore('tracks').put({ ...track, updatedAt: Date.now() });
  return done(tx);
}

// The track is in the object store whole: nothing local is needed any more.
export async function deleteTrack(trackId) {
  const db = await openStore();
  const tx = db.transaction(['tracks', 'chunks'], 'readwrite');
  tx.objectStore('chunks').delete(IDBKeyRange.bound([trackId, 0], [trackId, Number.MAX_SAFE_INTEGER]));
  tx.objectStore('tracks').delete(trackId);
  return done(tx);
}

export async function countChunks(trackId) {
  const db = await openStore();
  return request(
    db.transaction('chunks').objectStore('chunks').count(IDBKeyRange.bound([trackId, 0], [trackId, Number.MAX_SAFE_INTEGER])),
  );
}
