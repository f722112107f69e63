// greenroom.js -- device checks before joining: name, camera, microphone,
// resolution, live preview and level, a 2 s test recording, then join.

import { getApiKey, joinSession } from '/lib/api.js';
import { pickMimeType } from '/lib/recorder.js';
import { startLevelMeter } from '/lib/levels.js';
import {
  $, clearError, describeMediaError, el, formatBytes, initPage, mediaConstraints, params, saveJoin,
  showError, stopStream,
} from '/lib/pages/common.js';

const q = params();
const sid = q.get('sid') || '';
const invite = q.get('invite') || '';
const isHost = !invite && q.get('host') === '1';

let stream = null;
let meter = null;
let opening = 0;

function devicesChoice() {
  return {
    cameraId: $('camera').value,
    microphoneId: $('microphone').value,
    resolution: $('resolution').value,
  };
}

function fillSelect(select, devices, { noneLabel, fallbackLabel, current }) {
  const keep = current ?? select.value;
  const options = [];
  if (noneLabel) options.push(el('option', { value: '' }, noneLabel));
  devices.forEach((d, i) => {
    options.push(el('option', { value: d.deviceId }, d.label || `${fallbackLabel} ${i + 1}`));
  });
  select.replaceChildren(...options);
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  else if (devices.length) select.value = devices[0].deviceId;
}

async function listDevices(activeStream) {
  const all = await navigator.mediaDevices.enumerateDevices();
  const cams = all.filter((d) => d.kind === 'videoinput' && d.deviceId);
  const mics = all.filter((d) => d.kind === 'audioinput' && d.deviceId);
  const vt = activeStream?.getVideoTracks()[0];
  const at = activeStream?.getAudioTracks()[0];
  fillSelect($('camera'), cams, {
    noneLabel: 'No camera (audio only)',
    fallbackLabel: 'Camera',
    current: vt ? vt.getSettings().deviceId : $('camera').value,
  });
  fillSelect($('microphone'), mics, {
    fallbackLabel: 'Microphone',
    current: at ? at.getSettings().deviceId : $('microphone').value,
  });
  if (!mics.length) showError(new Error('No microphone found: connect one and reload.'));
}

async function openStream(choice) {
  const my = ++opening;
  meter?.stop();
  meter = null;
  stopStream(stream);
  stream = null;
  const status = $('device-status');
  status.textContent = 'Opening camera and microphone…';
  let s;
  try {
    s = await navigator.mediaDevices.getUserMedia(mediaConstraints(choice));
  } catch (err) {
    if (choice.cameraId !== '') {
      // no usable camera: fall back to audio only
      try {
        s = await navigator.mediaDevices.getUserMedia(mediaConstraints({ ...choice, cameraId: '' }));
        status.textContent = `${describeMediaError(err)} Continuing with audio only.`;
      } catch (err2) {
        status.textContent = '';
        showError(new Error(describeMediaError(err2)));
        return null;
      }
    } else {
      status.textContent = '';
      showError(new Error(describeMediaError(err)));
      return null;
    }
  }
  if (my !== opening) {
    stopStream(s);
    return null;
  }
  stream = s;
  const video = $('preview');
  video.srcObject = s;
  video.play().catch(() => {});
  meter = startLevelMeter(s, null, { meter: $('level') });
  const vt = s.getVideoTracks()[0];
  const settings = vt ? vt.getSettings() : null;
  if (!status.textContent.includes('audio only')) {
    status.textContent = vt
      ? `Camera: ${vt.label || 'on'}, ${settings.width}×${settings.height}. Microphone: ${s.getAudioTracks()[0]?.label || 'on'}.`
      : `Audio only. Microphone: ${s.getAudioTracks()[0]?.label || 'on'}.`;
  }
  return s;
}

async function restart() {
  clearError();
  const s = await openStream(devicesChoice());
  if (s) await listDevices(s);
}

async function testRecording() {
  const btn = $('test-recording');
  const result = $('test-result');
  const playback = $('test-playback');
  clearError();
  if (!stream) {
    result.hidden = false;
    result.textContent = 'Problem: no camera or microphone is open.';
    return;
  }
  if (typeof MediaRecorder === 'undefined') {
    result.hidden = false;
    result.textContent = 'Problem: this browser cannot record (no MediaRecorder). Use a recent Chrome, Edge, Firefox or Safari.';
    return;
  }
  btn.disabled = true;
  result.hidden = false;
  result.textContent = 'Recording 2 seconds…';
  playback.hidden = true;
  if (playback.src) URL.revokeObjectURL(playback.src);
  playback.removeAttribute('src');
  try {
    const mimeType = pickMimeType(stream);
    const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
    const chunks = [];
    recorder.ondataavailable = (e) => { if (e.data && e.data.size) chunks.push(e.data); };
    const done = new Promise((resolve, reject) => {
      recorder.onstop = resolve;
      recorder.onerror = (e) => reject(e.error || new Error('recorder error'));
    });
    recorder.start(500);
    await new Promise((r) => setTimeout(r, 2000));
    if (recorder.state !== 'inactive') recorder.stop();
    await done;
    const type = recorder.mimeType || mimeType || (chunks[0] && chunks[0].type) || 'unknown';
    const blob = new Blob(chunks, { type });
    const hasVideo = stream.getVideoTracks().length > 0;
    const ok = blob.size > 0;
    result.replaceChildren(
      el('strong', { class: ok ? 'test-ok' : 'test-problem' }, ok ? 'OK: ' : 'Problem: '),
      ok ? `recorded ${formatBytes(blob.size)} (${blob.size} bytes) as ${type}` : 'the recording is empty',
      hasVideo ? '' : ' (audio only)',
      el('br'),
      el('span', { class: 'muted small' }, `Type: ${type}. Bytes: ${blob.size}.`));
    result.dataset.ok = ok ? 'true' : 'false';
    result.dataset.type = type;
    result.dataset.bytes = String(blob.size);
    if (ok) {
      playback.src = URL.createObjectURL(blob);
      playback.hidden = false;
      playback.play().catch(() => {});
    }
  } catch (err) {
    result.dataset.ok = 'false';
    result.replaceChildren(el('strong', { class: 'test-problem' }, 'Problem: '),
      `recording failed: ${err.message || err}`);
  } finally {
    btn.disabled = false;
  }
}

async function join(e) {
  e.preventDefault();
  clearError();
  const name = $('display-name').value.trim();
  if (!name) {
    showError(new Error('Enter your display name.'));
    $('display-name').focus();
    return;
  }
  const key = isHost ? getApiKey() : '';
  if (isHost && !key) {
    showError(new Error('No host API key in this browser: open the dashboard and save it first.'));
    return;
  }
  const btn = $('join');
  btn.disabled = true;
  try {
    const reply = await joinSession(sid, { invite, displayName: name, key });
    const saved = { ...reply };
    if (invite) saved.invite = invite;
    saveJoin(saved);
    try {
      localStorage.setItem('seashore.displayName', name);
    } catch {
      /* not essential */
    }
    sessionStorage.setItem('seashore.devices', JSON.stringify(devicesChoice()));
    meter?.stop();
    stopStream(stream);
    location.href = `session.html?sid=${encodeURIComponent(sid)}&pid=${encodeURIComponent(reply.participant_id)}`;
  } catch (err) {
    btn.disabled = false;
    showError(err);
  }
}

async function main() {
  initPage();
  $('page-title').textContent = isHost ? 'Host greenroom' : 'Get ready to record';
  try {
    $('display-name').value = localStorage.getItem('seashore.displayName') || '';
  } catch {
    /* ignore */
  }
  try {
    const prev = JSON.parse(sessionStorage.getItem('seashore.devices') || 'null');
    if (prev && prev.resolution) $('resolution').value = prev.resolution;
  } catch {
    /* ignore */
  }
  $('join-form').addEventListener('submit', join);
  $('test-recording').addEventListener('click', testRecording);
  $('camera').addEventListener('change', restart);
  $('microphone').addEventListener('change', restart);
  $('resolution').addEventListener('change', restart);
  if (!sid) {
    showError(new Error('This link has no session id (sid). Ask the host for the invite link.'));
    $('join').disabled = true;
  } else if (!invite && !isHost) {
    showError(new Error('This link has no invite. Ask the host for the guest link.'));
    $('join').disabled = true;
  } else if (isHost && !getApiKey()) {
    showError(new Error('No host API key in this browser: open the dashboard and save it first.'));
  }
  if (!navigator.mediaDevices?.getUserMedia) {
    showError(new Error('This browser cannot open a camera or microphone (a secure https:// page is needed).'));
    return;
  }
  const s = await openStream({ cameraId: undefined, microphoneId: undefined, resolution: $('resolution').value });
  await listDevices(s).catch((err) => console.warn('enumerateDevices failed', err));
  navigator.mediaDevices.addEventListener?.('devicechange', () => listDevices(stream).catch(() => {}));
}

main();
