// session.js -- the studio: local recording (StudioRecorder), its upload
// progress, the participants' tracks, and the live call (LiveKit, optional:
// recording never depends on it).

import { getApiKey, getSession, reportProgress } from '/lib/api.js';
import { StudioRecorder, pickMimeType } from '/lib/recorder.js';
import {
  $, clearError, currentLivekit, describeMediaError, el, formatBytes, initPage, loadJoin,
  mediaConstraints, params, setBytes, setProgress, showError, stopStream, tokenGetter,
} from '/lib/pages/common.js';

const q = params();
const sid = q.get('sid') || '';
const pid = q.get('pid') || '';
const join = sid && pid ? loadJoin(sid, pid) : null;
const isHost = !!(join && join.role === 'host' && !join.invite && getApiKey());

let stream = null;
let recorder = null; // the current take
let recording = false;
const takes = new Map(); // trackId -> last progress detail (this page's takes)
const busy = new Set(); // recorders still uploading
let getToken = null;

const STATE_TEXT = {
  recording: 'Recording',
  finishing: 'Finishing upload',
  uploaded: 'Uploaded',
  discarded: 'Nothing was recorded',
};

function devices() {
  try {
    return JSON.parse(sessionStorage.getItem('seashore.devices') || 'null') || {};
  } catch {
    return {};
  }
}

async function openStream() {
  const choice = devices();
  try {
    return await navigator.mediaDevices.getUserMedia(mediaConstraints(choice));
  } catch (err) {
    if (choice.cameraId === '') throw err;
    if (err && err.name === 'OverconstrainedError') {
      // the chosen device is gone: any camera and microphone
      try {
        return await navigator.mediaDevices.getUserMedia(mediaConstraints({ resolution: choice.resolution }));
      } catch {
        /* fall through to audio only */
      }
    }
    const s = await navigator.mediaDevices.getUserMedia(mediaConstraints({ ...choice, cameraId: '' }));
    showError(new Error(`${describeMediaError(err)} Recording audio only.`));
    return s;
  }
}

function setButtons() {
  $('start').disabled = !stream || recording;
  $('stop').disabled = !recording;
}

function showProgress(d) {
  const state = $('rec-state');
  state.dataset.state = d.state || '';
  state.textContent = d.state === 'error' ? `Error: ${d.error || 'unknown error'}` : STATE_TEXT[d.state] || d.state || '';
  state.closest('.rec-state').dataset.state = d.state || '';
  setBytes($('recorded-bytes'), d.recordedBytes);
  setBytes($('acked-bytes'), d.ackedBytes);
  setBytes($('committed-bytes'), d.committedBytes);
  setProgress($('progress-acked'), d.ackedBytes, d.recordedBytes);
  setProgress($('progress-committed'), d.committedBytes, d.recordedBytes);
  $('connection').textContent = d.connection || '';
  $('connection').dataset.state = d.connection || '';
  const st = d.storage;
  const warn = $('storage-warning');
  if (st && st.quota > 0) {
    const ratio = st.usage / st.quota;
    $('storage-info').textContent = ` · browser storage ${formatBytes(st.usage)} of ${formatBytes(st.quota)}${st.persisted ? ' (persistent)' : ''}`;
    if (ratio > 0.8) {
      warn.textContent = `Browser storage is ${Math.round(ratio * 100)}% full (${formatBytes(st.usage)} of ${formatBytes(st.quota)}). ` +
        'Keep this page open until the upload catches up, and free disk space if you can.';
      warn.hidden = false;
    } else {
      warn.hidden = true;
    }
  }
}

function onProgress(rec, e) {
  const d = e.detail || {};
  if (d.trackId) takes.set(d.trackId, d);
  if (d.state === 'uploaded' || d.state === 'discarded' || (d.state === 'error' && !recording)) busy.delete(rec);
  if (rec === recorder && d.storeError && recording) {
    // this browser could not store the recording: it stopped, what was stored is uploaded
    recording = false;
    showError(new Error(`Recording stopped: ${d.storeError}`));
    setButtons();
  }
  if (rec === recorder) showProgress(d);
}

async function startRecording() {
  clearError();
  if (!stream || recording) return;
  $('start').disabled = true;
  const rec = new StudioRecorder({
    ingestUrl: join.ingest.url,
    getToken,
    stream,
    mimeType: pickMimeType(stream),
    timesliceMs: 1000,
    sessionId: sid,
    participantId: pid,
  });
  rec.addEventListener('progress', (e) => onProgress(rec, e));
  try {
    await rec.start();
    recorder = rec;
    recording = true;
    busy.add(rec);
    $('rec-state').textContent = 'Recording';
    $('rec-state').dataset.state = 'recording';
  } catch (err) {
    showError(new Error(`Cannot start recording: ${err.message || err}`));
  }
  setButtons();
  if (recording) $('stop').focus();
}

async function stopRecording() {
  if (!recorder || !recording) return;
  $('stop').disabled = true;
  try {
    await recorder.stop();
  } catch (err) {
    showError(new Error(`Stopping the recording failed: ${err.message || err}`));
  }
  recording = false;
  const st = $('rec-state');
  if (st.dataset.state === 'recording') {
    st.textContent = 'Finishing upload';
    st.dataset.state = 'finishing';
  }
  setButtons();
  $('start').focus();
}

// --- participants panel ---
// Everybody's takes, from the progress route: what each page has recorded
// (reported by it), what the server acknowledged (durable) and what is
// uploaded (committed). This page's own takes use its fresher local counts.

function bar(label, done, total) {
  const b = el('progress', { max: 1, value: 0 });
  setProgress(b, done, total);
  b.setAttribute('aria-label', label);
  return b;
}

function trackLine({ label, state, recorded, acked, uploaded, failure }) {
  const of = recorded ? ` of ${formatBytes(recorded)}` : '';
  return el('div', { class: 'track-line' },
    el('div', { class: 'row spread' },
      el('span', {}, label),
      el('span', { class: 'badge', dataset: { state } }, state)),
    el('span', { class: 'small muted', dataset: { field: 'recorded' } }, `${formatBytes(recorded || 0)} recorded`),
    bar(`${label} acknowledged`, acked, recorded || acked),
    el('span', { class: 'small muted', dataset: { field: 'acked' } }, `${formatBytes(acked)}${of} acknowledged`),
    bar(`${label} uploaded`, uploaded, recorded || acked),
    el('span', { class: 'small muted', dataset: { field: 'uploaded' } }, `${formatBytes(uploaded)}${of} uploaded`),
    failure ? el('span', { class: 'small', role: 'alert' }, `Failure: ${failure}`) : null);
}

function ownLine(d, n) {
  return trackLine({
    label: `Take ${n}`,
    state: d.state,
    recorded: d.recordedBytes,
    acked: d.ackedBytes || 0,
    uploaded: d.committedBytes || 0,
    failure: d.error,
  });
}

// Before the first answer (or if the server cannot be asked): our own takes.
function renderOwnTracks() {
  const me = el('div', { class: 'participant-block', dataset: { participantId: pid } },
    el('h3', {}, `${join.display_name || 'You'} (you)`));
  if (!takes.size) me.append(el('p', { class: 'muted small' }, 'No recording yet.'));
  let n = 0;
  for (const d of takes.values()) me.append(ownLine(d, ++n));
  $('participants').replaceChildren(me);
}

function participantBlock(p) {
  const mine = p.participant_id === pid;
  const name = p.display_name || p.identity || p.participant_id;
  const block = el('div', { class: 'participant-block', dataset: { participantId: p.participant_id } },
    el('h3', {}, name, mine ? ' (you)' : '', el('span', { class: 'muted small' }, ` · ${p.role}`)));
  const tracks = p.tracks || [];
  if (!tracks.length) block.append(el('p', { class: 'muted small' }, 'No recording yet.'));
  tracks.forEach((t, i) => {
    const local = mine ? takes.get(t.track_id) : null;
    const line = local ? ownLine(local, i + 1) : trackLine({
      label: `Take ${i + 1}`,
      state: t.state,
      // its page reports every 2 s; the server may already hold more
      recorded: Math.max(t.recorded_bytes || 0, t.total_bytes || 0, t.durable_bytes || 0),
      acked: t.durable_bytes || 0,
      uploaded: t.committed_bytes || 0,
    });
    line.dataset.trackId = t.track_id;
    block.append(line);
  });
  return block;
}

async function pollProgress() {
  const mine = [...takes.values()].filter((d) => d.trackId)
    .map((d) => ({ track_id: d.trackId, recorded_bytes: d.recordedBytes || 0 }));
  try {
    const reply = await reportProgress(sid, pid, mine.slice(-16),
      { invite: join.invite, refreshToken: join.refresh_token, key: getApiKey() });
    const parts = (reply && reply.participants) || [];
    if (parts.length) $('participants').replaceChildren(...parts.map(participantBlock));
    else renderOwnTracks();
  } catch (err) {
    console.warn('progress poll failed', err);
    renderOwnTracks();
  } finally {
    setTimeout(pollProgress, 2000);
  }
}

// --- live call ---

function setMode(text, live) {
  const mode = $('mode');
  mode.textContent = text;
  mode.dataset.mode = live ? 'live' : 'recording-only';
}

async function startCall() {
  const lk = await currentLivekit(join);
  if (!lk || !lk.url) {
    setMode('Recording only: no live call is configured (LIVEKIT_URL)', false);
    return;
  }
  let room;
  try {
    const LK = await import('/vendor/livekit-client.esm.mjs');
    const { Room, RoomEvent, Track } = LK;
    room = new Room({
      adaptiveStream: true,
      dynacast: true,
      publishDefaults: { simulcast: true, dtx: true },
    });
    const tiles = new Map(); // participant identity -> element
    const tileFor = (participant) => {
      let tile = tiles.get(participant.identity);
      if (!tile) {
        tile = el('div', { class: 'remote', dataset: { identity: participant.identity } },
          el('span', { class: 'name' }, participant.name || participant.identity));
        tiles.set(participant.identity, tile);
        $('call').append(tile);
      }
      return tile;
    };
    room.on(RoomEvent.TrackSubscribed, (track, _pub, participant) => {
      const media = track.attach();
      if (track.kind === Track.Kind.Video) {
        media.setAttribute('playsinline', '');
        media.setAttribute('aria-label', `${participant.name || participant.identity}'s camera`);
        tileFor(participant).prepend(media);
      } else {
        media.hidden = true;
        tileFor(participant).append(media);
      }
    });
    room.on(RoomEvent.TrackUnsubscribed, (track) => {
      for (const m of track.detach()) m.remove();
    });
    room.on(RoomEvent.ParticipantDisconnected, (participant) => {
      tiles.get(participant.identity)?.remove();
      tiles.delete(participant.identity);
    });
    room.on(RoomEvent.Reconnecting, () => setMode('Live call: reconnecting… (recording continues)', true));
    room.on(RoomEvent.Reconnected, () => setMode('Live call connected', true));
    room.on(RoomEvent.Disconnected, () => {
      setMode('Live call disconnected. Recording is not affected.', false);
      $('call').replaceChildren();
      tiles.clear();
    });
    let timer;
    await Promise.race([
      room.connect(lk.url, lk.token),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('timed out after 5 s')), 5000); }),
    ]).finally(() => clearTimeout(timer));
    setMode('Live call connected', true);
    // Publish clones so that the call can never stop or mute the recorded tracks.
    for (const t of stream ? stream.getTracks() : []) {
      const source = t.kind === 'video' ? Track.Source.Camera : Track.Source.Microphone;
      await room.localParticipant.publishTrack(t.clone(), { simulcast: true, dtx: true, source });
    }
    addEventListener('pagehide', () => room.disconnect());
  } catch (err) {
    console.warn('live call failed', err);
    try {
      room?.disconnect();
    } catch {
      /* ignore */
    }
    setMode(`Recording only: the live call failed (${err.message || err}). Recording still works.`, false);
  }
}

// --- page ---

async function main() {
  initPage();
  setButtons();
  if (!join) {
    showError(new Error('This browser has not joined this session: open the invite link (greenroom) first.'));
    setMode('Not joined.', false);
    return;
  }
  getToken = tokenGetter(join);
  $('page-title').textContent = `Studio: ${join.display_name || 'you'}`;
  if (isHost) {
    const link = $('downloads-link');
    link.href = `downloads.html?sid=${encodeURIComponent(sid)}`;
    link.hidden = false;
    getSession(getApiKey(), sid).then((s) => {
      if (s && s.title) $('session-name').textContent = s.title;
    }).catch(() => {});
  }
  $('start').addEventListener('click', startRecording);
  $('stop').addEventListener('click', stopRecording);
  addEventListener('beforeunload', (e) => {
    if (recording || busy.size) {
      e.preventDefault();
      e.returnValue = '';
    }
  });

  renderOwnTracks();
  pollProgress();

  try {
    stream = await openStream();
    const v = $('self-view');
    v.srcObject = stream;
    v.play().catch(() => {});
    if (!stream.getVideoTracks().length) v.setAttribute('aria-label', 'Audio only: no camera');
  } catch (err) {
    showError(new Error(describeMediaError(err)));
  }
  setButtons();
  startCall();
}

addEventListener('pagehide', () => {
  if (!recording) stopStream(stream);
});

main();
