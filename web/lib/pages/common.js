// common.js -- shared helpers for the studio pages: DOM building (text only,
// never HTML from data), formatting, errors, the saved join info, ingest
// token getters and the "Recovering unfinished recordings" panel.

import { ApiError, getApiKey, refreshGrants } from '/lib/api.js';
import { startRecovery } from '/lib/recovery.js';

export const $ = (id) => document.getElementById(id);

// el('li', { class: 'x', dataset: { a: 1 }, onclick: fn }, 'text', child...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'text') node.textContent = v;
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function params() {
  return new URLSearchParams(location.search);
}

// --- formatting ---

export function formatBytes(n) {
  n = Number(n) || 0;
  if (n < 1000) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

// Sets a byte count on an element: human text, exact count in data-bytes.
export function setBytes(node, n) {
  n = Number(n) || 0;
  node.dataset.bytes = String(n);
  node.textContent = formatBytes(n);
}

export function formatDurationUs(us) {
  if (us === null || us === undefined) return '';
  const totalMs = Math.round(Number(us) / 1000);
  const ms = totalMs % 1000;
  const s = Math.floor(totalMs / 1000) % 60;
  const m = Math.floor(totalMs / 60000) % 60;
  const h = Math.floor(totalMs / 3600000);
  const mm = String(m).padStart(2, '0');
  const ss = String(s).padStart(2, '0');
  const frac = String(ms).padStart(3, '0');
  return h > 0 ? `${h}:${mm}:${ss}.${frac}` : `${m}:${ss}.${frac}`;
}

export function formatTime(value) {
  if (!value) return '';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

// A <progress> with value/max (max at least 1 so an empty bar shows 0%).
export function setProgress(node, value, max) {
  const m = Math.max(Number(max) || 0, 1);
  node.max = m;
  node.value = Math.min(Number(value) || 0, m);
  const pct = Math.round((node.value / m) * 100);
  node.textContent = `${pct}%`;
  node.setAttribute('aria-valuetext', `${pct}%`);
}

// --- errors ---

export function showError(err, target = $('error')) {
  if (!target) return;
  const msg = err instanceof ApiError ? err.message : err && err.message ? err.message : String(err);
  target.textContent = msg;
  target.hidden = false;
}

export function clearError(target = $('error')) {
  if (!target) return;
  target.textContent = '';
  target.hidden = true;
}

// --- saved join info: localStorage seashore.join.<sid>.<pid> ---

const JOIN_PREFIX = 'seashore.join.';

export const joinStorageKey = (sid, pid) => `${JOIN_PREFIX}${sid}.${pid}`;

export function loadJoin(sid, pid) {
  try {
    const raw = localStorage.getItem(joinStorageKey(sid, pid));
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function saveJoin(join) {
  localStorage.setItem(joinStorageKey(join.session_id, join.participant_id), JSON.stringify(join));
}

export function savedJoins() {
  const out = [];
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (!k || !k.startsWith(JOIN_PREFIX)) continue;
    try {
      const j = JSON.parse(localStorage.getItem(k));
      if (j && j.session_id && j.participant_id) out.push(j);
    } catch {
      /* ignore a damaged entry */
    }
  }
  return out;
}

// Asks for fresh grants for a saved join (invite and the join's
// refresh_token for guests, the stored API key for hosts) and keeps them in
// the saved join info; returns the ingest token.
export async function freshIngestToken(join) {
  return (await freshGrants(join)).ingest.token;
}

async function freshGrants(join) {
  const sid = join.session_id;
  const pid = join.participant_id;
  const reply = await refreshGrants(
    sid,
    pid,
    join.invite ? { invite: join.invite, refreshToken: join.refresh_token } : { key: getApiKey() },
  );
  const saved = loadJoin(sid, pid) || join;
  saved.ingest = { ...(saved.ingest || {}), ...reply.ingest };
  if (reply.livekit) saved.livekit = reply.livekit;
  try {
    saveJoin(saved);
  } catch {
    /* storage full: the tokens still work */
  }
  return reply;
}

// The join's LiveKit grant, refreshed first when its token expires within a
// minute (a tab reopened hours later rejoins the call as the same
// participant); the saved one when the refresh fails.
export async function currentLivekit(join) {
  const lk = join.livekit;
  const exp = lk && lk.token ? jwtExp(lk.token) : 0;
  if (!lk || exp - Date.now() / 1000 > 60) return lk;
  try {
    return (await freshGrants(join)).livekit || lk;
  } catch {
    return lk;
  }
}

function jwtExp(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(b64)).exp || 0;
  } catch {
    return 0;
  }
}

const stillValid = (grant, marginS = 30) =>
  grant && grant.token && (!grant.expires_at || grant.expires_at - Date.now() / 1000 > marginS);

// The recorder's getToken: the join's token first, a fresh one after that.
export function tokenGetter(join) {
  let first = true;
  return async () => {
    if (first) {
      first = false;
      if (stillValid(join.ingest)) return join.ingest.token;
    }
    return freshIngestToken(join);
  };
}

// --- recovery panel ---

// Starts the recovery of unfinished recordings and shows each track in
// #recovery (a .recovery-item[data-track-id] per track) while there are any.
export function initRecovery() {
  const panel = $('recovery');
  const joins = savedJoins();
  const ingestUrl = (joins.find((j) => j.ingest && j.ingest.url) || {}).ingest?.url || null;
  const getToken = async ({ sessionId, participantId }) => {
    const join = loadJoin(sessionId, participantId);
    if (!join) return null;
    try {
      return await freshIngestToken(join);
    } catch (err) {
      if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429) return null;
      return stillValid(join.ingest, 5) ? join.ingest.token : null;
    }
  };
  let events;
  try {
    events = startRecovery({ getToken, ingestUrl });
  } catch (err) {
    console.error('recovery failed to start', err);
    return null;
  }
  if (!panel || !events) return events;
  const items = new Map();
  events.addEventListener('progress', (e) => {
    const d = e.detail || {};
    if (!d.trackId) return;
    let item = items.get(d.trackId);
    if (!item) {
      const label = el('span', { class: 'recovery-label' });
      const state = el('span', { class: 'recovery-state badge' });
      const bar = el('progress', { class: 'recovery-progress', max: 1, value: 0 });
      const bytes = el('span', { class: 'recovery-bytes muted' });
      const err = el('span', { class: 'recovery-error', role: 'alert' });
      const node = el('div', { class: 'recovery-item', dataset: { trackId: d.trackId } },
        el('div', { class: 'row' }, label, state), bar, bytes, err);
      item = { node, label, state, bar, bytes, err };
      items.set(d.trackId, item);
      panel.append(node);
      panel.hidden = false;
    }
    const join = d.sessionId && d.participantId ? loadJoin(d.sessionId, d.participantId) : null;
    item.label.textContent = join && join.display_name
      ? `${join.display_name} · track ${d.trackId.slice(0, 8)}`
      : `Track ${d.trackId.slice(0, 8)}`;
    item.state.textContent = d.state || '';
    item.state.dataset.state = d.state || '';
    item.node.dataset.state = d.state || '';
    const bar = item.bar;
    setProgress(bar, d.committedBytes, d.recordedBytes);
    bar.setAttribute('aria-label', `Upload of track ${d.trackId.slice(0, 8)}`);
    item.bytes.textContent = `${formatBytes(d.committedBytes)} of ${formatBytes(d.recordedBytes)} saved on the server`;
    item.err.textContent = d.error ? `Error: ${d.error}` : d.storeError ? `Stopped: ${d.storeError}` : '';
  });
  return events;
}

// Common page start: recovery panel (and nothing else yet).
export function initPage() {
  initRecovery();
}

// --- devices ---

export const RESOLUTIONS = {
  '360p': { width: 640, height: 360 },
  '720p': { width: 1280, height: 720 },
  '1080p': { width: 1920, height: 1080 },
};

// getUserMedia constraints for {cameraId, microphoneId, resolution};
// cameraId === '' (or 'none') means no camera.
export function mediaConstraints({ cameraId, microphoneId, resolution } = {}) {
  const res = RESOLUTIONS[resolution] || RESOLUTIONS['720p'];
  const noCamera = cameraId === '' || cameraId === 'none';
  const video = noCamera
    ? false
    : {
      width: { ideal: res.width },
      height: { ideal: res.height },
      frameRate: { ideal: 30 },
      ...(cameraId ? { deviceId: { exact: cameraId } } : {}),
    };
  const audio = {
    echoCancellation: true,
    noiseSuppression: false,
    autoGainControl: false,
    channelCount: { ideal: 1 },
    ...(microphoneId ? { deviceId: { exact: microphoneId } } : {}),
  };
  return { video, audio };
}

export function stopStream(stream) {
  if (stream) for (const t of stream.getTracks()) t.stop();
}

export function describeMediaError(err) {
  const name = err && err.name;
  if (name === 'NotAllowedError') return 'Camera/microphone permission was denied. Allow access in the browser and reload.';
  if (name === 'NotFoundError') return 'No camera or microphone was found.';
  if (name === 'NotReadableError') return 'The camera or microphone is in use by another application.';
  if (name === 'OverconstrainedError') return 'The chosen device or resolution is not available.';
  return `Cannot open the camera/microphone: ${(err && err.message) || err}`;
}
