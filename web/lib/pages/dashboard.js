// dashboard.js -- the host's sessions: API key, create, list, links, end, delete.

import {
  createSession, deleteSession, endSession, getApiKey, listSessions, setApiKey,
} from '/lib/api.js';
import { $, clearError, el, formatTime, initPage, showError } from '/lib/pages/common.js';

function takeKeyFromHash() {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
  const key = hash.get('key');
  if (!key) return;
  setApiKey(key.trim());
  hash.delete('key');
  const rest = hash.toString();
  history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
}

function showKeyStatus() {
  const key = getApiKey();
  $('key-status').textContent = key
    ? `A key is saved in this browser (${key.slice(0, 12)}…).`
    : 'No key yet: paste the host API key to see and create sessions.';
  $('forget-key').hidden = !key;
  $('create-session').disabled = !key;
}

const pageUrl = (path) => new URL(path, location.href).href;

async function copyText(text, button) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    const ta = el('textarea', { 'aria-hidden': 'true', style: 'position:fixed;left:-9999px' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    ta.remove();
  }
  const status = button.parentElement.querySelector('.copy-status');
  if (status) status.textContent = ok ? 'Copied' : 'Copy failed: select the link and copy it';
  setTimeout(() => { if (status) status.textContent = ''; }, 3000);
}

function sessionItem(s) {
  const sid = s.id;
  const inviteUrl = pageUrl(`greenroom.html?sid=${encodeURIComponent(sid)}&invite=${encodeURIComponent(s.invite_token || '')}`);
  const title = s.title || 'Untitled session';
  const open = s.state === 'open';

  const endBtn = el('button', { type: 'button', class: 'end-session secondary', disabled: !open },
    s.state === 'ended' ? 'Ended' : 'End session');
  endBtn.setAttribute('aria-label', `End session ${title}`);
  endBtn.addEventListener('click', async () => {
    clearError();
    endBtn.disabled = true;
    try {
      await endSession(getApiKey(), sid);
      await refresh();
    } catch (err) {
      endBtn.disabled = false;
      showError(err);
    }
  });

  const delBtn = el('button', { type: 'button', class: 'delete-session danger', disabled: s.state === 'deleting' }, 'Delete');
  delBtn.setAttribute('aria-label', `Delete session ${title}`);
  delBtn.addEventListener('click', async () => {
    if (!confirm(`Delete "${title}" and all its recordings? This cannot be undone.`)) return;
    clearError();
    delBtn.disabled = true;
    try {
      await deleteSession(getApiKey(), sid);
      await refresh();
    } catch (err) {
      delBtn.disabled = false;
      showError(err);
    }
  });

  const copyBtn = el('button', { type: 'button', class: 'copy-invite secondary' }, 'Copy');
  copyBtn.setAttribute('aria-label', `Copy guest invite link for ${title}`);
  copyBtn.addEventListener('click', () => copyText(inviteUrl, copyBtn));

  return el('li', { class: 'session', dataset: { sessionId: sid, state: s.state } },
    el('div', { class: 'row spread' },
      el('span', { class: 'title' }, title),
      el('span', { class: 'badge state', dataset: { state: s.state } }, s.state)),
    el('div', { class: 'muted small' },
      'Created ', el('time', { class: 'created', datetime: s.created_at }, formatTime(s.created_at)),
      s.ended_at ? [' · ended ', el('time', { datetime: s.ended_at }, formatTime(s.ended_at))] : null),
    el('div', { class: 'actions' },
      el('a', { class: 'studio-link button', href: `greenroom.html?sid=${encodeURIComponent(sid)}&host=1` }, 'Open studio'),
      el('a', { class: 'downloads-link button secondary', href: `downloads.html?sid=${encodeURIComponent(sid)}` }, 'Downloads'),
      endBtn, delBtn),
    el('div', { class: 'row small' },
      el('span', {}, open ? 'Guest link: ' : 'Guest link (session not open): '),
      el('a', { class: 'invite-link mono', href: inviteUrl }, inviteUrl),
      copyBtn,
      el('span', { class: 'copy-status muted', 'aria-live': 'polite' })));
}

let loading = false;
let nextBefore = null; // the API's next_before_id: older sessions remain

function showCount(list, more) {
  const n = list.children.length;
  $('list-status').textContent = n
    ? `${n}${more ? '+' : ''} session${n === 1 && !more ? '' : 's'}`
    : 'No sessions yet.';
  $('more-sessions').hidden = !more;
}

// The newest page again (older: true appends the next older page).
async function refresh({ older = false } = {}) {
  const key = getApiKey();
  const list = $('sessions');
  const status = $('list-status');
  if (!key) {
    list.replaceChildren();
    status.textContent = 'Save your API key to list sessions.';
    $('more-sessions').hidden = true;
    return;
  }
  if (loading) return;
  loading = true;
  status.textContent = 'Loading…';
  try {
    const reply = await listSessions(key, older ? nextBefore : null);
    const sessions = (reply && reply.sessions) || [];
    if (older) list.append(...sessions.map(sessionItem));
    else list.replaceChildren(...sessions.map(sessionItem));
    nextBefore = (reply && reply.next_before_id) || null;
    showCount(list, Boolean(nextBefore));
  } catch (err) {
    status.textContent = '';
    showError(err);
  } finally {
    loading = false;
  }
}

function main() {
  takeKeyFromHash();
  initPage();
  showKeyStatus();

  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    clearError();
    const key = $('api-key').value.trim();
    if (!key) {
      showError(new Error('Enter the API key first.'));
      $('api-key').focus();
      return;
    }
    setApiKey(key);
    $('api-key').value = '';
    showKeyStatus();
    refresh();
  });
  $('forget-key').addEventListener('click', () => {
    setApiKey('');
    showKeyStatus();
    refresh();
  });

  $('create-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError();
    const btn = $('create-session');
    btn.disabled = true;
    try {
      const created = await createSession(getApiKey(), $('new-session-title').value.trim());
      $('new-session-title').value = '';
      await refresh();
    } catch (err) {
      showError(err);
    } finally {
      btn.disabled = !getApiKey();
    }
  });
  $('reload-sessions').addEventListener('click', () => { clearError(); refresh(); });
  $('more-sessions').addEventListener('click', () => { clearError(); refresh({ older: true }); });

  refresh();
}

main();
