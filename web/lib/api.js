// api.js -- the token-issuer's HTTP/JSON API (docs/api.md), same origin.
//
// Hosts authenticate with their API key (Bearer ssk_...), kept in
// localStorage `seashore.apiKey`; guests pass the session's invite token in
// the body. Every failure throws an ApiError carrying the API's message.

const KEY_STORAGE = 'seashore.apiKey';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export function getApiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || '';
  } catch {
    return '';
  }
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

export function looksLikeApiKey(key) {
  return /^ssk_[0-9a-f]{8}_[0-9a-f]{40}$/.test(key);
}

// request(method, path, { body, key }) -> parsed JSON reply (or null on 204).
export async function request(method, path, { body, key } = {}) {
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, 'network', `Cannot reach the server (${err.message || err})`);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = data && data.error;
    let message = e && e.message ? e.message : `${res.status} ${res.statusText || 'error'}`;
    if (res.status === 429) {
      const after = res.headers.get('Retry-After');
      if (after) message += ` (retry in ${after} s)`;
    }
    throw new ApiError(res.status, (e && e.code) || 'http_error', message);
  }
  return data;
}

const enc = encodeURIComponent;

// --- hosts (API key) ---
// A page of the host's sessions, newest first: {sessions, next_before_id}.
export const listSessions = (key, beforeId) =>
  request('GET', `/v1/sessions${beforeId ? `?before_id=${enc(beforeId)}` : ''}`, { key });
export const createSession = (key, title) =>
  request('POST', '/v1/sessions', { key, body: title ? { title } : {} });
export const getSession = (key, sid) => request('GET', `/v1/sessions/${enc(sid)}`, { key });
export const endSession = (key, sid) => request('POST', `/v1/sessions/${enc(sid)}/end`, { key });
export const deleteSession = (key, sid) => request('DELETE', `/v1/sessions/${enc(sid)}`, { key });
export const getTracks = (key, sid) => request('GET', `/v1/sessions/${enc(sid)}/tracks`, { key });

// The manifest, or null while there is none yet (404).
export async function getManifest(key, sid) {
  try {
    return await request('GET', `/v1/sessions/${enc(sid)}/manifest`, { key });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

// --- hosts or guests ---
// join(sid, { invite, displayName, key }): a guest passes invite, a host key.
export function joinSession(sid, { invite, displayName, key } = {}) {
  const body = {};
  if (displayName) body.display_name = displayName;
  if (invite) body.invite = invite;
  else if (key) body.role = 'host';
  return request('POST', `/v1/sessions/${enc(sid)}/participants`, { key: invite ? undefined : key, body });
}

// Reports this page's takes [{track_id, recorded_bytes}] and returns every
// participant's progress {participants: [{participant_id, display_name, role,
// tracks: [{track_id, state, recorded_bytes, durable_bytes, committed_bytes}]}]}.
// Credentials as for refreshGrants.
export function reportProgress(sid, pid, tracks, { invite, refreshToken, key } = {}) {
  const body = invite ? { invite, refresh_token: refreshToken, tracks } : { tracks };
  return request('POST', `/v1/sessions/${enc(sid)}/participants/${enc(pid)}/progress`, {
    key: invite ? undefined : key,
    body,
  });
}

// Fresh grants {ingest: {url, token, expires_at}, livekit: {url, token} | null}
// (livekit null once the session has ended). A guest passes the invite and
// the refresh_token its join returned; a host its key.
export function refreshGrants(sid, pid, { invite, refreshToken, key } = {}) {
  return request('POST', `/v1/sessions/${enc(sid)}/participants/${enc(pid)}/ingest-token`, {
    key: invite ? undefined : key,
    body: invite ? { invite, refresh_token: refreshToken } : {},
  });
}
