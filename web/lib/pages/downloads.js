// downloads.js -- a session's recordings per participant: each track's
// editor files (webm/mp4/wav), unfinished outputs, the raw object, the
// timeline offset and the session manifest. Refreshes every 3 s until every
// track is muxed.

import { ApiError, getApiKey, getManifest, getTracks } from '/lib/api.js';
import {
  $, clearError, el, formatBytes, formatDurationUs, formatTime, initPage, params, showError,
} from '/lib/pages/common.js';

const sid = params().get('sid') || '';
const REFRESH_MS = 3000;
let timer = 0;
let loading = false;
let manifestWaits = 0;

const basename = (key, fallback) => (key ? String(key).split('/').pop() : fallback);

// A track is settled once it failed or the muxer has written all its outputs.
function settled(t) {
  if (t.state === 'failed') return true;
  const outs = t.outputs || [];
  return outs.length > 0 && outs.every((o) => o.state !== 'pending');
}

function meta(pairs) {
  const dl = el('dl', { class: 'meta' });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === '') continue;
    dl.append(el('dt', {}, k), el('dd', {}, v));
  }
  return dl;
}

function fileItem(f) {
  const name = basename(f.object_key, `track.${f.kind}`);
  const res = f.width && f.height ? `${f.width}×${f.height}` : null;
  const audio = f.sample_rate ? `${f.sample_rate} Hz${f.channels ? `, ${f.channels} ch` : ''}` : null;
  const codecs = Array.isArray(f.codecs) ? f.codecs.join(', ') : f.codecs;
  return el('li', { class: 'file-item', dataset: { kind: f.kind } },
    el('a', { class: 'file', href: f.url, download: name, dataset: { kind: f.kind } },
      `Download ${String(f.kind).toUpperCase()}`),
    el('span', { class: 'muted small' }, ` ${name}`),
    meta([
      ['Size', f.size_bytes != null ? `${formatBytes(f.size_bytes)} (${f.size_bytes} bytes)` : null],
      ['Duration', f.duration_us != null ? formatDurationUs(f.duration_us) : null],
      ['Codecs', codecs],
      ['Resolution', res],
      ['Audio', audio],
      ['SHA-256', f.sha256 ? el('span', { class: 'mono' }, f.sha256) : null],
      ['Link expires', f.url_expires_at ? formatTime(typeof f.url_expires_at === 'number' ? f.url_expires_at * 1000 : f.url_expires_at) : null],
    ]));
}

function trackSection(t, i) {
  const fileKinds = new Set((t.files || []).map((f) => f.kind));
  const unfinished = (t.outputs || []).filter((o) => o.state !== 'done' || !fileKinds.has(o.kind));
  const total = t.total_bytes;
  const saved = t.committed_bytes ?? t.durable_bytes;
  const section = el('section', { class: 'track', dataset: { trackId: t.track_id, state: t.state } },
    el('div', { class: 'row spread' },
      el('h3', {}, `Track ${i + 1}`, el('span', { class: 'muted small' }, ` · ${t.kind || ''} ${t.mime_type ? `(${t.mime_type})` : ''}`)),
      el('span', { class: 'badge track-state', dataset: { state: t.state } }, t.state)),
    meta([
      ['Started', formatTime(t.created_at)],
      ['Ended', t.ended_at ? formatTime(t.ended_at) : null],
      ['Recorded', total != null ? formatBytes(total) : null],
      ['Saved', saved != null ? `${formatBytes(saved)}${total ? ` of ${formatBytes(total)}` : ''}` : null],
      ['Timeline start', t.start_offset_us != null
        ? el('span', { class: 'start-offset', dataset: { us: t.start_offset_us } }, `${formatDurationUs(t.start_offset_us)} from the session start`)
        : 'not known until muxed'],
      ['Upload', t.upload ? `${t.upload.state} (${t.upload.parts_uploaded} parts)${t.upload.error_message ? `: ${t.upload.error_code || ''} ${t.upload.error_message}` : ''}` : null],
      ['Failure', t.failure],
    ]));
  if (t.files && t.files.length) {
    section.append(el('ul', { class: 'files' }, t.files.map(fileItem)));
  } else if (!unfinished.length) {
    section.append(el('p', { class: 'muted small' },
      t.state === 'failed' ? 'No files: the track failed.' : 'Editor files appear here once the track is uploaded and muxed.'));
  }
  if (unfinished.length) {
    section.append(el('ul', { class: 'outputs small' }, unfinished.map((o) =>
      el('li', { class: 'output-state', dataset: { kind: o.kind, state: o.state } },
        `${String(o.kind).toUpperCase()}: ${o.state}`, o.failure_reason ? ` (${o.failure_reason})` : ''))));
  }
  if (t.raw && t.raw.url) {
    section.append(el('p', { class: 'small' },
      el('a', { class: 'raw', href: t.raw.url, download: basename(t.raw.object_key, 'raw.webm') },
        'Raw recording (as uploaded)'),
      t.raw.size_bytes != null ? ` · ${formatBytes(t.raw.size_bytes)}` : ''));
  }
  return section;
}

function render(reply, manifest) {
  const parts = (reply && reply.participants) || [];
  $('page-title').textContent = `Downloads: ${reply.title || 'Untitled session'}`;
  $('session-info').textContent = `State: ${reply.state} · created ${formatTime(reply.created_at)}` +
    (reply.ended_at ? ` · ended ${formatTime(reply.ended_at)}` : '');
  const link = $('manifest-link');
  if (manifest && manifest.manifest_object && manifest.manifest_object.url) {
    link.href = manifest.manifest_object.url;
    link.setAttribute('download', basename(manifest.manifest_object.object_key, 'manifest.json'));
    link.hidden = false;
  } else {
    link.hidden = true;
  }
  if (!parts.length) {
    $('participants').replaceChildren(el('p', { class: 'card muted' }, 'Nobody has joined this session yet.'));
    return;
  }
  $('participants').replaceChildren(...parts.map((p) => {
    const tracks = p.tracks || [];
    return el('section', { class: 'card participant', dataset: { participantId: p.participant_id } },
      el('h2', {}, p.display_name || p.identity || 'Participant',
        el('span', { class: 'muted small' }, ` · ${p.role}`)),
      tracks.length ? tracks.map(trackSection) : el('p', { class: 'muted small' }, 'No recordings.'));
  }));
}

async function load() {
  clearTimeout(timer);
  if (loading) return;
  loading = true;
  const status = $('status');
  status.textContent = 'Refreshing…';
  let again = true;
  try {
    const key = getApiKey();
    const reply = await getTracks(key, sid);
    const tracks = (reply.participants || []).flatMap((p) => p.tracks || []);
    // The manifest exists once a track is muxed: do not ask before (404).
    const anyMuxed = tracks.some((t) => (t.outputs || []).length > 0);
    const manifest = anyMuxed ? await getManifest(key, sid) : null;
    clearError();
    render(reply, manifest);
    const done = tracks.length > 0 && tracks.every(settled);
    // the manifest is written just after the outputs: wait for it a little
    if (done && !manifest && manifestWaits < 10) manifestWaits++;
    else if (manifest) manifestWaits = 10;
    again = !done || (!manifest && manifestWaits < 10);
    status.textContent = done
      ? `All ${tracks.length} track${tracks.length === 1 ? ' is' : 's are'} muxed. Updated ${new Date().toLocaleTimeString()}.`
      : `Updated ${new Date().toLocaleTimeString()}; refreshing every ${REFRESH_MS / 1000} s until every track is muxed.`;
  } catch (err) {
    showError(err);
    status.textContent = '';
    if (err instanceof ApiError && (err.status === 401 || err.status === 404 || err.status === 400)) again = false;
  } finally {
    loading = false;
  }
  if (again) timer = setTimeout(load, REFRESH_MS);
}

function main() {
  initPage();
  $('refresh').addEventListener('click', load);
  if (!sid) {
    showError(new Error('No session id (sid) in the address.'));
    return;
  }
  if (!getApiKey()) {
    showError(new Error('No host API key in this browser: open the dashboard and save it first.'));
    return;
  }
  load();
}

main();
