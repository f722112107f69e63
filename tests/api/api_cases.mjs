// api_cases.mjs -- token-issuer's HTTP/JSON API against the running stack
// (started by test_api.c: API_URL, API_KEY, OTHER_API_KEY, INGEST_URL,
// LIVEKIT_API_KEY/SECRET). LiveKit tokens are checked with the official
// livekit-server-sdk verifier; ingest tokens by ingest-recorder itself.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { TokenVerifier } from 'livekit-server-sdk';
import jwt from 'jsonwebtoken';
import { Webhook } from 'svix';
import { execFile, execFileSync } from 'node:child_process';
import { S3Client, PutObjectCommand } from '@aws-sdk/client-s3';
import { chunk, open, sha256 } from '../ingest/wsclient.mjs';

const env = process.env;
const API = env.API_URL;
const KEY = env.API_KEY;
let failures = 0;
const expect = (cond, what) => { if (!cond) throw new Error(what); };
async function run(name, fn) {
  try { await fn(); console.log(`ok   ${name}`); } catch (e) { failures++; console.log(`FAIL ${name}: ${e.message}`); }
}

async function call(method, path, { body, key = KEY, raw } = {}) {
  const headers = {};
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined || raw !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(API + path, { method, headers, body: raw !== undefined ? raw : body !== undefined ? JSON.stringify(body) : undefined });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text, headers: res.headers };
}

// A request with a path fetch() would normalise (../, %2e%2e).
function rawGet(path) {
  const u = new URL(API);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method: 'GET' }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, text: data }));
    });
    req.on('error', reject);
    req.end();
  });
}

const errCode = (r) => r.json && r.json.error && r.json.error.code;
const nasty = `<script>alert("x")</script>'; DROP TABLE sessions; --  ünïcødé`;
let session;

// bad-input: token-issuer API | no `Authorization` header | 401 `unauthorized`, the message names the header | none
await run('no credentials: 401 naming the missing header', async () => {
  const r = await call('GET', '/v1/sessions', { key: null });
  expect(r.status === 401 && errCode(r) === 'unauthorized' && /Authorization/.test(r.json.error.message), r.text);
});

// bad-input: token-issuer API | malformed, unknown or altered API key | 401 `unauthorized` | none
await run('bad credentials: malformed and unknown keys get 401', async () => {
  for (const key of ['nonsense', 'ssk_00000000_' + '0'.repeat(40), KEY.slice(0, -1) + (KEY.endsWith('a') ? 'b' : 'a')]) {
    const r = await call('GET', '/v1/sessions', { key });
    expect(r.status === 401, `${key}: ${r.status} ${r.text}`);
  }
});

// bad-input: token-issuer API | SQL and HTML in a session title | 201; stored and returned verbatim, never executed or rendered | stored as given
await run('create a session: SQL and HTML in the title stored and returned verbatim', async () => {
  const r = await call('POST', '/v1/sessions', { body: { title: nasty } });
  expect(r.status === 201 && r.json.title === nasty && r.json.state === 'open', r.text);
  expect(/^[0-9a-f-]{36}$/.test(r.json.id) && /^[0-9a-f]{64}$/.test(r.json.invite_token), r.text);
  session = r.json;
  const g = await call('GET', `/v1/sessions/${session.id}`);
  expect(g.status === 200 && g.json.title === nasty, g.text);
  const l = await call('GET', '/v1/sessions');
  expect(l.status === 200 && l.json.sessions.some((s) => s.id === session.id && s.title === nasty), l.text);
  // the dashboard needs each session's guest link from the list
  expect(l.json.sessions.find((s) => s.id === session.id).invite_token === session.invite_token, l.text);
});

// bad-input: token-issuer API | malformed JSON body, or JSON that is not an object | 400 `invalid_json` with the parser's line and column | none
await run('malformed JSON: 400 invalid_json with the parser position', async () => {
  const r = await call('POST', '/v1/sessions', { raw: '{"title": "x",' });
  expect(r.status === 400 && errCode(r) === 'invalid_json' && /line 1/.test(r.json.error.message), r.text);
  const a = await call('POST', '/v1/sessions', { raw: '["not", "an", "object"]' });
  expect(a.status === 400 && errCode(a) === 'invalid_json', a.text);
});

// bad-input: token-issuer API | request body over 65536 bytes | 413 `too_large` naming the limit | none
await run('body over the limit: 413', async () => {
  const r = await call('POST', '/v1/sessions', { raw: JSON.stringify({ title: 'x'.repeat(70000) }) });
  expect(r.status === 413 && errCode(r) === 'too_large' && /65536/.test(r.json.error.message), r.text);
});

// bad-input: token-issuer API | field of the wrong type or over its length limit | 400 `invalid_field` naming the field and the limit | none
await run('wrong types: 400 naming the field and the limit', async () => {
  for (const body of [{ title: 5 }, { title: ['a'] }, { title: 'x'.repeat(201) }]) {
    const r = await call('POST', '/v1/sessions', { body });
    expect(r.status === 400 && errCode(r) === 'invalid_field' && /title/.test(r.json.error.message) && /200/.test(r.json.error.message), r.text);
  }
});

// bad-input: token-issuer API | id in the path that is not a lowercase UUID; unknown id | 400 `invalid_id`; 404 `not_found` | none
await run('ids that are not UUIDs: 400 invalid_id; unknown ids: 404', async () => {
  for (const id of ['123', 'DROP%20TABLE', randomUUID().toUpperCase()]) {
    const r = await call('GET', `/v1/sessions/${id}`);
    expect(r.status === 400 && errCode(r) === 'invalid_id', `${id}: ${r.text}`);
  }
  const r = await call('GET', `/v1/sessions/${randomUUID()}`);
  expect(r.status === 404 && errCode(r) === 'not_found', r.text);
});

// bad-input: token-issuer API | another host's session id | 404, as if it did not exist | none; the other host's data untouched
await run("another host's session: 404, as if it did not exist", async () => {
  const paths = [['GET', ''], ['GET', '/tracks'], ['GET', '/manifest'], ['POST', '/end'], ['DELETE', ''],
    ['POST', '/participants'], ['POST', `/participants/${randomUUID()}/ingest-token`]];
  for (const [m, p] of paths) {
    const r = await call(m, `/v1/sessions/${session.id}${p}`, { key: env.OTHER_API_KEY, body: m === 'POST' ? {} : undefined });
    expect(r.status === 404 && r.json.error.message.includes(session.id), `${m} ${p}: ${r.status} ${r.text}`);
  }
  const l = await call('GET', '/v1/sessions', { key: env.OTHER_API_KEY });
  expect(l.status === 200 && !l.json.sessions.some((s) => s.id === session.id), l.text);
});

// bad-input: token-issuer API | session list with `limit` not an integer in 1..500, or a `before_id` that is not a UUID or not one of the caller's sessions | 400 `invalid_field` naming the parameter | none
await run('list sessions a page at a time (limit, before_id): newest first, every session once', async () => {
  const key = env.OTHER_API_KEY;
  for (let i = 1; i <= 5; i++) {
    const c = await call('POST', '/v1/sessions', { key, body: { title: `page ${i}` } });
    expect(c.status === 201, c.text);
  }
  const all = (await call('GET', '/v1/sessions?limit=500', { key })).json.sessions.map((x) => x.id);
  expect(all.length >= 5, `${all.length} sessions`);
  const seen = [];
  let before = null;
  for (let n = 0; n < 10; n++) {
    const r = await call('GET', `/v1/sessions?limit=2${before ? `&before_id=${before}` : ''}`, { key });
    expect(r.status === 200 && r.json.sessions.length <= 2, r.text);
    seen.push(...r.json.sessions.map((x) => x.id));
    before = r.json.next_before_id;
    if (!before) break;
  }
  expect(JSON.stringify(seen) === JSON.stringify(all), `pages ${seen.join(' ')} against ${all.join(' ')}`);
  for (const q of ['limit=0', 'limit=501', 'limit=abc', 'limit=2x']) {
    const r = await call('GET', `/v1/sessions?${q}`, { key });
    expect(r.status === 400 && /limit/.test(r.json.error.message), `${q}: ${r.text}`);
  }
  for (const q of ['before_id=../etc', `before_id=${randomUUID()}`, `before_id=${session.id}`]) {
    const r = await call('GET', `/v1/sessions?${q}`, { key });
    expect(r.status === 400 && /before_id/.test(r.json.error.message), `${q}: ${r.text}`);
  }
});

// bad-input: token-issuer static files | path traversal (`..`, encoded `%2e%2e`, `%2f`) | 4xx, nothing outside the web root is served | none
await run('path traversal: never outside the web root or the API', async () => {
  for (const p of ['/../../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/..%2f..%2fetc%2fpasswd', '/v1/sessions/..%2f..%2f..%2fetc%2fpasswd', '/v1/../../etc/passwd']) {
    const r = await rawGet(p);
    expect(r.status >= 400 && r.status < 500 && !/root:/.test(r.text), `${p}: ${r.status} ${r.text.slice(0, 80)}`);
  }
});

let host;
await run('join as the host: participant, ingest token (accepted by ingest-recorder), LiveKit token (verified by livekit-server-sdk)', async () => {
  const r = await call('POST', `/v1/sessions/${session.id}/participants`, { body: { display_name: 'Host <b>', role: 'host' } });
  expect(r.status === 201 && r.json.role === 'host' && r.json.display_name === 'Host <b>', r.text);
  host = r.json;
  expect(r.json.ingest.url === env.INGEST_URL && r.json.ingest.expires_at > Date.now() / 1000, r.text);
  const v = new TokenVerifier(env.LIVEKIT_API_KEY, env.LIVEKIT_API_SECRET);
  const claims = await v.verify(r.json.livekit.token);
  expect(claims.sub === r.json.identity && claims.name === 'Host <b>', JSON.stringify(claims));
  expect(claims.video.room === session.id && claims.video.roomJoin && claims.video.canPublish && claims.video.canSubscribe && claims.video.canPublishData, JSON.stringify(claims));
  expect(JSON.parse(claims.metadata).participant_id === r.json.participant_id, claims.metadata);
  const [c, w] = await open(env.INGEST_URL, r.json.ingest.token, randomUUID());
  expect(w && w.welcome && w.welcome.participant_id === r.json.participant_id, JSON.stringify(w));
  c.close();
});

// bad-input: LiveKit token | token signed with another secret | refused by livekit-server-sdk's verifier | none
await run('LiveKit token signed with another secret is refused by the SDK verifier', async () => {
  const v = new TokenVerifier(env.LIVEKIT_API_KEY, 'another-secret-0123456789abcdef0123456789');
  let refused = false;
  try { await v.verify(host.livekit.token); } catch { refused = true; }
  expect(refused, 'verified with the wrong secret');
});

// bad-input: token-issuer API | wrong invite token for a guest join | 404 `not_found` | no participant created
await run('join as a guest with the invite token (no API key); a wrong invite is 404', async () => {
  const r = await call('POST', `/v1/sessions/${session.id}/participants`, { key: null, body: { invite: session.invite_token, display_name: 'Guest' } });
  expect(r.status === 201 && r.json.role === 'guest' && r.json.ingest.token, r.text);
  const bad = await call('POST', `/v1/sessions/${session.id}/participants`, { key: null, body: { invite: 'f'.repeat(64), display_name: 'Guest' } });
  expect(bad.status === 404, bad.text);
  const hostRole = await call('POST', `/v1/sessions/${session.id}/participants`, { key: null, body: { invite: session.invite_token, role: 'host' } });
  expect(hostRole.status === 400 && /role/.test(hostRole.json.error.message), hostRole.text);
  const dup = await call('POST', `/v1/sessions/${session.id}/participants`, { body: { identity: r.json.identity } });
  expect(dup.status === 409, dup.text);
});

await run('refresh an ingest token, and the LiveKit token of the same identity while the session is open', async () => {
  const r = await call('POST', `/v1/sessions/${session.id}/participants/${host.participant_id}/ingest-token`);
  expect(r.status === 200 && r.json.ingest.token && r.json.ingest.expires_at >= host.ingest.expires_at, r.text);
  const claims = await new TokenVerifier(env.LIVEKIT_API_KEY, env.LIVEKIT_API_SECRET).verify(r.json.livekit.token);
  expect(claims.sub === host.identity && claims.name === 'Host <b>' && claims.video.room === session.id, JSON.stringify(claims));
  const u = await call('POST', `/v1/sessions/${session.id}/participants/${randomUUID()}/ingest-token`);
  expect(u.status === 404, u.text);
});

const jwtClaims = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());

// bad-input: token-issuer API | a guest refreshing an ingest token without its join's `refresh_token`, or with another participant's | 400 `invalid_field` / 401 `unauthorized` naming the field and the participant | no token issued
await run("a guest refreshes only its own ingest token: the invite alone, or another participant's refresh_token, is refused", async () => {
  const s = (await call('POST', '/v1/sessions', { body: { title: 'refresh scope' } })).json;
  const host = (await call('POST', `/v1/sessions/${s.id}/participants`, { body: { role: 'host' } })).json;
  const join = (name) => call('POST', `/v1/sessions/${s.id}/participants`, { key: null, body: { invite: s.invite_token, display_name: name } });
  const refresh = (pid, body) => call('POST', `/v1/sessions/${s.id}/participants/${pid}/ingest-token`, { key: null, body });
  const [a, b] = [await join('Guest A'), await join('Guest B')];
  expect(host.participant_id && a.status === 201 && b.status === 201, a.text + b.text);
  expect(/^[0-9a-f]{64}$/.test(a.json.refresh_token) && a.json.refresh_token !== b.json.refresh_token, a.text);
  const invite = s.invite_token;
  const own = await refresh(a.json.participant_id, { invite, refresh_token: a.json.refresh_token });
  expect(own.status === 200, own.text);
  const claims = jwtClaims(own.json.ingest.token);
  expect(claims.sub === a.json.participant_id && claims.sid === s.id, JSON.stringify(claims));
  const inviteOnly = await refresh(a.json.participant_id, { invite });
  expect(inviteOnly.status === 400 && /refresh_token/.test(inviteOnly.json.error.message), inviteOnly.text);
  for (const pid of [b.json.participant_id, host.participant_id]) {
    const other = await refresh(pid, { invite, refresh_token: a.json.refresh_token });
    expect(other.status === 401 && other.json.error.message.includes(pid) && !other.json.ingest, other.text);
  }
  const badInvite = await refresh(a.json.participant_id, { invite: 'f'.repeat(64), refresh_token: a.json.refresh_token });
  expect(badInvite.status === 404, badInvite.text);
});

// bad-input: token-issuer API | progress report whose `tracks` is not an array of at most 16 `{track_id, recorded_bytes}` | 400 `invalid_field` naming `tracks` or `tracks[i]` | nothing stored
await run("progress: each page reports what it recorded; everybody sees every participant's recorded, acknowledged and uploaded bytes", async () => {
  const s = (await call('POST', '/v1/sessions', { body: { title: 'progress' } })).json;
  const host = (await call('POST', `/v1/sessions/${s.id}/participants`, { body: { role: 'host' } })).json;
  const join = (name) => call('POST', `/v1/sessions/${s.id}/participants`, { key: null, body: { invite: s.invite_token, display_name: name } });
  const [a, b] = [(await join('Guest A')).json, (await join('Guest B')).json];
  const report = (p, body, key = null) => call('POST', `/v1/sessions/${s.id}/participants/${p.participant_id}/progress`,
    { key, body: { invite: s.invite_token, refresh_token: p.refresh_token, ...body } });
  const take = randomUUID();
  const r = await report(a, { tracks: [{ track_id: take, recorded_bytes: 123456 }] });
  expect(r.status === 200 && r.json.participants.length === 3, r.text);
  const byId = (reply, p) => reply.json.participants.find((x) => x.participant_id === p.participant_id);
  const mine = byId(r, a).tracks;
  expect(mine.length === 1 && mine[0].track_id === take && mine[0].recorded_bytes === 123456 &&
    mine[0].durable_bytes === 0 && mine[0].committed_bytes === 0 && mine[0].state === 'recording', r.text);
  // B sees A's take (and the host's empty list) without reporting anything
  const seen = await report(b, {});
  expect(seen.status === 200 && byId(seen, a).tracks[0].recorded_bytes === 123456 && byId(seen, host).tracks.length === 0, seen.text);
  // B cannot overwrite A's take; the host may report for anyone
  await report(b, { tracks: [{ track_id: take, recorded_bytes: 1 }] });
  const after = await report(host, { tracks: [] }, KEY);
  expect(after.status === 200 && byId(after, a).tracks[0].recorded_bytes === 123456 && byId(after, b).tracks.length === 0, after.text);
  // a guest reports only as itself
  const noRefresh = await call('POST', `/v1/sessions/${s.id}/participants/${a.participant_id}/progress`, { key: null, body: { invite: s.invite_token } });
  expect(noRefresh.status === 400 && /refresh_token/.test(noRefresh.text), noRefresh.text);
  const asOther = await report({ ...b, refresh_token: a.refresh_token }, {});
  expect(asOther.status === 401, asOther.text);
  for (const [tracks, field] of [['x', 'tracks'], [Array(17).fill({ track_id: take, recorded_bytes: 1 }), 'tracks'],
    [[{ track_id: take, recorded_bytes: -1 }], 'tracks[0]'], [[{ track_id: 'T', recorded_bytes: 1 }], 'tracks[0]'],
    [[{ track_id: take, recorded_bytes: 2 ** 54 }], 'tracks[0]']]) {
    const bad = await report(a, { tracks });
    expect(bad.status === 400 && errCode(bad) === 'invalid_field' && bad.json.error.message.includes(field), bad.text);
  }
  const unknown = await call('POST', `/v1/sessions/${s.id}/participants/${randomUUID()}/progress`, { body: {} });
  expect(unknown.status === 404, unknown.text);
});

await run("editors' listing: participants and their tracks", async () => {
  const r = await call('GET', `/v1/sessions/${session.id}/tracks`);
  expect(r.status === 200 && r.json.participants.length === 2, r.text);
  expect(r.json.participants.some((p) => p.participant_id === host.participant_id && Array.isArray(p.tracks)), r.text);
});

await run("editors' listing: finished files get presigned download URLs that the object store serves", async () => {
  const track = randomUUID();
  const data = Buffer.from('raw track bytes '.repeat(1000));
  const [c] = await open(env.INGEST_URL, host.ingest.token, track);
  c.send(chunk(0, data));
  c.send({ end: { chunk_count: 1, total_bytes: data.length, sha256: sha256(data) } });
  expect(await c.next((f) => f.ended), 'track not ended');
  c.close();
  // the uploader and muxer (later issues) record these; here SQL stands in for them
  const wavKey = `muxed/${session.id}/${host.participant_id}/${track}.wav`;
  execFileSync('psql', [env.DATABASE_URL, '-qc', `UPDATE tracks SET state = 'complete' WHERE id = '${track}'; INSERT INTO outputs (track_id, kind, state, object_key, size_bytes) VALUES ('${track}', 'wav', 'done', '${wavKey}', 4);`]);
  const s3 = new S3Client({ region: 'auto', endpoint: env.R2_ENDPOINT, forcePathStyle: true, credentials: { accessKeyId: env.R2_ACCESS_KEY_ID, secretAccessKey: env.R2_SECRET_ACCESS_KEY } });
  const rawKey = `raw/${session.id}/${host.participant_id}/${track}.webm`;
  await s3.send(new PutObjectCommand({ Bucket: env.R2_BUCKET_NAME, Key: rawKey, Body: data }));
  await s3.send(new PutObjectCommand({ Bucket: env.R2_BUCKET_NAME, Key: wavKey, Body: 'RIFF' }));
  const r = await call('GET', `/v1/sessions/${session.id}/tracks`);
  const t = r.json.participants.flatMap((p) => p.tracks).find((x) => x.track_id === track);
  expect(t && t.raw && t.raw.object_key === rawKey && /X-Amz-Signature=/.test(t.raw.url), JSON.stringify(t));
  expect(t.raw.url_expires_at > Date.now() / 1000 && /X-Amz-Expires=3600/.test(t.raw.url), t.raw.url);
  const rawAnswer = await fetch(t.raw.url);
  const got = Buffer.from(await rawAnswer.arrayBuffer());
  expect(got.equals(data), 'raw download differs');
  const wav = t.files.find((f) => f.kind === 'wav');
  const wavAnswer = wav && (await fetch(wav.url));
  expect(wav && (await wavAnswer.text()) === 'RIFF', JSON.stringify(t.files));
  // Saved as "<title> - <participant> - <track>": the title's and the
  // name's quotes, slashes and non-ASCII kept apart from the header syntax.
  const savedAs = (answer) => {
    const cd = answer.headers.get('content-disposition') || '';
    const star = /filename\*=UTF-8''([^;]+)$/.exec(cd);
    return { cd, name: star && decodeURIComponent(star[1]) };
  };
  const base = `${session.title.replace(/[/\\]/g, '_')} - Host <b> - ${track.slice(0, 8)}`;
  for (const [answer, want] of [[rawAnswer, `${base} (raw).webm`], [wavAnswer, `${base}.wav`]]) {
    const { cd, name } = savedAs(answer);
    expect(name === want && /^attachment; filename="[\x20-\x7e]+"; filename\*=/.test(cd) && !/[^\x20-\x7e]/.test(cd),
      `Content-Disposition ${cd} (wanted the name ${want})`);
  }
});

// bad-input: token-issuer API | joining a session that has ended | 409 `conflict` | none
await run('end a session: state ended; joining it afterwards is 409', async () => {
  const r = await call('POST', `/v1/sessions/${session.id}/end`);
  expect(r.status === 200 && r.json.state === 'ended' && r.json.ended_at, r.text);
  const j = await call('POST', `/v1/sessions/${session.id}/participants`, { body: {} });
  expect(j.status === 409, j.text);
  // uploads may still finish: ingest tokens, but no more call
  const f = await call('POST', `/v1/sessions/${session.id}/participants/${host.participant_id}/ingest-token`);
  expect(f.status === 200 && f.json.ingest.token && f.json.livekit === null, f.text);
});

// One request per new connection (no keep-alive): libmicrohttpd keeps a
// connection on the thread that accepted it.
function freshCall(method, path) {
  const u = new URL(API);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method, agent: false,
      headers: { authorization: `Bearer ${KEY}` } }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, text: data }));
    });
    req.on('error', reject);
    req.end();
  });
}
const psql = (sql) => execFileSync('psql', [env.DATABASE_URL, '-Atc', sql]).toString().trim();
async function until(what, cond, ms = 20000) {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50)))
    if (cond()) return;
  throw new Error(`timed out waiting for ${what}`);
}

await run('a request waiting on a database lock does not hold up the others (API_THREADS)', async () => {
  const s = await call('POST', '/v1/sessions', { body: { title: 'locked' } });
  expect(s.status === 201, s.text);
  const marker = `lock-${randomUUID()}`;
  let released = false;
  const holder = new Promise((resolve) => execFile('psql', [env.DATABASE_URL, '-qc',
    `BEGIN; SELECT id FROM sessions WHERE id = '${s.json.id}' FOR UPDATE; ` +
    `SELECT pg_sleep(6), '${marker}'; COMMIT;`], (err) => { released = true; resolve(err); }));
  const active = (cond) => Number(psql(`SELECT count(*) FROM pg_stat_activity WHERE ${cond}`));
  await until('the lock holder', () => active(`query LIKE '%pg_sleep(6), ''${marker}''%' AND state = 'active' AND pid <> pg_backend_pid()`) === 1);
  let ended = null;
  const end = freshCall('POST', `/v1/sessions/${s.json.id}/end`).then((r) => { ended = r; return r; });
  await until('the end request to wait on the lock', () => active(`wait_event_type = 'Lock' AND query LIKE 'UPDATE sessions%'`) === 1);
  const list = await freshCall('GET', '/v1/sessions');
  expect(list.status === 200, list.text);
  expect(ended === null && !released, 'the list was answered only after the lock was released');
  const r = await end;
  expect(r.status === 200 && JSON.parse(r.text).state === 'ended', r.text);
  expect((await holder) === null, 'psql holding the lock failed');
});

await run('delete a session: 202, state deleting (the other services clean up)', async () => {
  const r = await call('DELETE', `/v1/sessions/${session.id}`);
  expect(r.status === 202 && r.json.state === 'deleting', r.text);
});

// bad-input: token-issuer API | more requests per second than `API_RATE_LIMIT` from one key | 429 `rate_limited` with `Retry-After`; other keys unaffected | none
await run('too many requests from one key: 429 with Retry-After; fine again after waiting', async () => {
  const key = env.RATE_API_KEY;
  const results = [];
  for (let i = 0; i < 8; i++) {
    results.push(...(await Promise.all(Array.from({ length: 50 }, () => call('GET', '/v1/sessions', { key })))));
  }
  const limited = results.filter((r) => r.status === 429);
  expect(limited.length > 0, `no 429 in ${results.length} requests`);
  const r = limited[0];
  const retry = Number(r.headers.get('retry-after'));
  expect(errCode(r) === 'rate_limited' && retry >= 1, `${r.text} retry-after ${retry}`);
  expect(results.filter((x) => x.status === 200).length >= 100, 'the burst was not served');
  const other = await call('GET', '/v1/sessions'); // another key is not limited
  expect(other.status === 200, other.text);
  await new Promise((res) => setTimeout(res, retry * 1000));
  const again = await call('GET', '/v1/sessions', { key });
  expect(again.status === 200, again.text);
});

// bad-input: token-issuer auth | failed authentications beyond `API_RATE_LIMIT` from one client address (behind `API_TRUSTED_PROXIES` proxies: the `X-Forwarded-For` entry the outermost one appended) | 429 `rate_limited` with `Retry-After`, before the credential is looked at; other addresses unaffected | none
await run('failed authentications are limited per client address, taken from X-Forwarded-For behind the trusted proxy', async () => {
  // Each request carries entries its client wrote (all different), then
  // the address the one trusted proxy (API_TRUSTED_PROXIES=1) saw.
  const bad = (xff) => fetch(API + '/v1/sessions', { headers: { authorization: `Bearer ssk_00000000_${'0'.repeat(40)}`, 'x-forwarded-for': xff } });
  const answers = [];
  for (let i = 0; i < 8; i++) {
    answers.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => bad(`10.9.${i}.${j}, 203.0.113.7`)))));
  }
  const statuses = answers.map((r) => r.status);
  expect(statuses.filter((s) => s === 401).length >= 100, `the burst was not answered 401: ${statuses.join(' ')}`);
  const limited = answers.find((r) => r.status === 429);
  expect(limited && Number(limited.headers.get('retry-after')) >= 1, `no 429 with Retry-After in ${statuses.length} failed attempts`);
  const neighbour = await bad('10.9.0.1, 203.0.113.8'); // another client of the same proxy
  expect(neighbour.status === 401, `another address got ${neighbour.status}`);
  const direct = await call('GET', '/v1/sessions', { key: 'ssk_00000000_' + '1'.repeat(40) }); // no header: the peer
  expect(direct.status === 401, direct.text);
});

const clerkToken = (claims, opts = {}) => jwt.sign({ sub: 'user_2abcDEF', sid: 'sess_1', iss: 'https://clerk.example.test', azp: 'https://studio.example.test', ...claims }, opts.key ?? env.CLERK_TEST_PRIVATE_KEY, { algorithm: opts.alg ?? 'RS256', expiresIn: opts.expiresIn ?? 60 });

await run('Clerk session token: verified offline with CLERK_JWT_KEY; the user becomes a host seeing only its sessions', async () => {
  const tok = clerkToken({});
  const r = await call('POST', '/v1/sessions', { key: tok, body: { title: 'clerk host' } });
  expect(r.status === 201, r.text);
  const l = await call('GET', '/v1/sessions', { key: tok });
  expect(l.status === 200 && l.json.sessions.length === 1 && l.json.sessions[0].title === 'clerk host', l.text);
  const other = await call('GET', `/v1/sessions/${r.json.id}`);
  expect(other.status === 404, 'an API-key host sees the Clerk host session');
});

// bad-input: token-issuer auth | Clerk JWT expired, wrongly signed, or HS256 "signed" with the public key (alg confusion) | 401 `unauthorized` | none
await run('Clerk: expired, wrongly signed and alg-confused tokens get 401', async () => {
  const expired = await call('GET', '/v1/sessions', { key: clerkToken({ iat: Math.floor(Date.now() / 1000) - 7200 }, { expiresIn: -3600 }) });
  expect(expired.status === 401 && /expired/.test(expired.json.error.message), expired.text);
  const { generateKeyPairSync } = await import('node:crypto');
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const wrong = await call('GET', '/v1/sessions', { key: clerkToken({}, { key: privateKey.export({ type: 'pkcs8', format: 'pem' }) }) });
  expect(wrong.status === 401 && /signature/.test(wrong.json.error.message), wrong.text);
  const pub = env.CLERK_JWT_KEY;
  const confused = jwt.sign({ sub: 'user_evil', exp: Math.floor(Date.now() / 1000) + 60 }, pub, { algorithm: 'HS256' });
  const c = await call('GET', '/v1/sessions', { key: confused });
  expect(c.status === 401 && /RS256/.test(c.json.error.message), c.text);
});

// bad-input: token-issuer auth | Clerk token made for another site (`azp` not in `CLERK_AUTHORIZED_PARTIES`, or none) | 401 `unauthorized` naming the azp | none
await run('Clerk: a token whose azp is not an authorized party is 401', async () => {
  for (const azp of ['https://evil.example.test', 'https://studio.example.test.evil', undefined]) {
    const r = await call('GET', '/v1/sessions', { key: clerkToken({ azp }) });
    expect(r.status === 401 && /azp/.test(r.json.error.message), `${azp}: ${r.text}`);
  }
  const other = await call('GET', '/v1/sessions', { key: clerkToken({ azp: 'http://localhost:3000' }) });
  expect(other.status === 200, other.text);
});

const hook = new Webhook(env.CLERK_WEBHOOK_SECRET.replace(/^whsec_/, ''));
async function sendHook(event, { tamper, at } = {}) {
  const body = JSON.stringify(event);
  const id = `msg_${randomUUID()}`;
  const when = at ?? new Date();
  const signature = hook.sign(id, when, body);
  return fetch(`${API}/v1/webhooks/clerk`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'svix-id': id, 'svix-timestamp': String(Math.floor(when.getTime() / 1000)), 'svix-signature': signature },
    body: tamper ? body.replace('Ada', 'Eve') : body,
  }).then(async (r) => ({ status: r.status, json: await r.json().catch(() => null) }));
}
// The webhook user's hosts row: id|email|display_name (the primary email).
const webhookHost = () => execFileSync('psql', [env.DATABASE_URL, '-tAc', "SELECT id || '|' || email || '|' || display_name FROM hosts WHERE clerk_user_id = 'user_webhook1'"]).toString().trim();
const userEvent = (type, first) => ({ type, data: { id: 'user_webhook1', first_name: first, last_name: 'Lovelace', primary_email_address_id: 'idn_1', email_addresses: [{ id: 'idn_0', email_address: 'old@example.test' }, { id: 'idn_1', email_address: 'ada@example.test' }] } });

await run('Clerk webhook (Svix-signed by the svix package): user.created and user.updated upsert one host', async () => {
  const a = await sendHook(userEvent('user.created', 'Ada'));
  expect(a.status === 200 && a.json.clerk_user_id === 'user_webhook1', JSON.stringify(a));
  const b = await sendHook(userEvent('user.updated', 'Augusta Ada'));
  expect(b.status === 200 && b.json.host_id === a.json.host_id, JSON.stringify(b));
  const c = await sendHook({ type: 'session.created', data: {} });
  expect(c.status === 200 && c.json.ignored, JSON.stringify(c));
  const row = webhookHost();
  expect(row === `${a.json.host_id}|ada@example.test|Augusta Ada Lovelace`, `hosts row: ${row}`);
});

// bad-input: Clerk webhook | bad Svix signature, or a timestamp over 5 min old | 401 | no host created or changed
await run('Clerk webhook: a bad signature or an old timestamp is 401 and changes nothing', async () => {
  const before = webhookHost();
  const bad = await sendHook(userEvent('user.updated', 'Ada'), { tamper: true });
  expect(bad.status === 401 && /signature/.test(bad.json.error.message), JSON.stringify(bad));
  const old = await sendHook(userEvent('user.updated', 'Ada'), { at: new Date(Date.now() - 3600 * 1000) });
  expect(old.status === 401 && /timestamp/.test(old.json.error.message), JSON.stringify(old));
  const none = await fetch(`${API}/v1/webhooks/clerk`, { method: 'POST', body: '{}' });
  expect(none.status === 401, String(none.status));
  expect(before.endsWith('|Augusta Ada Lovelace') && webhookHost() === before, `hosts row ${before} became ${webhookHost()}`);
});

await run('docs/api.md: every documented route answers (none is "no route")', async () => {
  const { readFileSync } = await import('node:fs');
  const doc = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
  const routes = [...doc.matchAll(/^\| `(GET|POST|DELETE|PUT|PATCH) (\/v1\/[^`]*)`/gm)].map((m) => [m[1], m[2]]);
  expect(routes.length >= 9, `found only ${routes.length} routes in docs/api.md`);
  for (const [method, path] of routes) {
    const concrete = path.replace('{sid}', randomUUID()).replace('{pid}', randomUUID());
    const r = await call(method, concrete, { body: method === 'GET' || method === 'DELETE' ? undefined : {} });
    const noRoute = r.status === 404 && /no route|no such API path/.test(r.text);
    expect(!noRoute, `${method} ${path} is documented but not served: ${r.text}`);
  }
});

// bad-input: token-issuer API | unknown route or method | 404 `not_found` naming the method | none
await run('unknown route and method: 404', async () => {
  const r = await call('PUT', '/v1/sessions');
  expect(r.status === 404, r.text);
});

console.log(`${failures} case(s) failed`);
process.exit(failures);
