// make_corpus.mjs -- writes the seed corpora of tests/fuzz/corpus/ (files
// named by the SHA-1 of their content, as libFuzzer names its own).
// Run from the repository root: node tests/fuzz/make_corpus.mjs
// The media seeds (fuzz_mux_input) need the ffmpeg CLI: tiny (< 16 KB)
// recordings in the containers and codecs browsers send.
import { execFileSync } from 'node:child_process';
import { createHash, createHmac, createSign } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import protobuf from 'protobufjs';

const root = new URL('../../', import.meta.url).pathname;
const out = (target, bytes) => {
  const dir = `${root}tests/fuzz/corpus/${target}`;
  mkdirSync(dir, { recursive: true });
  const buf = Buffer.from(bytes);
  writeFileSync(`${dir}/${createHash('sha1').update(buf).digest('hex')}`, buf);
};

// ---- fuzz_client_frame: one ClientFrame of each kind, good and refused ----
const proto = await protobuf.load(`${root}proto/seashore/v1/ingest.proto`);
const ClientFrame = proto.lookupType('seashore.v1.ClientFrame');
const frame = (f) => out('fuzz_client_frame', ClientFrame.encode(ClientFrame.create(f)).finish());
const uuid = '0b6f3c2e-6a4f-4d4e-9b1a-2f8c1d7e5a90';
const sha = (b) => createHash('sha256').update(b).digest();
const hello = { protocolVersion: 1, token: 'x.y.z', trackId: uuid, kind: 3,
  mimeType: 'video/webm;codecs=vp8,opus', captureStartUnixUs: 1700000000000000, clientName: 'web' };
frame({ hello });
frame({ hello: { ...hello, protocolVersion: 2 } });
frame({ hello: { ...hello, trackId: uuid.toUpperCase() } });
frame({ hello: { ...hello, kind: 0 } });
frame({ hello: { ...hello, kind: -1 } });
frame({ hello: { ...hello, mimeType: 'a'.repeat(256) } });
frame({ hello: { ...hello, captureStartUnixUs: -1 } });
frame({ hello: { ...hello, clientName: 'c'.repeat(300) } });
const data = Buffer.from('OggS\0'.repeat(40));
frame({ chunk: { seq: 0, data, sha256: sha(data) } });
frame({ chunk: { seq: 7, data } });
frame({ chunk: { seq: 1, data: Buffer.alloc(0) } });
frame({ chunk: { seq: 2, data, sha256: Buffer.alloc(33) } });
frame({ chunk: { seq: 3, data: Buffer.alloc(1025, 1), sha256: Buffer.alloc(32) } });
frame({ end: { chunkCount: 12, totalBytes: 123456, sha256: sha(data), durationUs: 3000000 } });
frame({ end: { chunkCount: 1, totalBytes: 1, sha256: Buffer.alloc(31) } });
frame({ ping: { nonce: 5, clientTimeUs: 1700000000000000, rttUs: 1200, offsetUs: -300 } });
out('fuzz_client_frame', Buffer.alloc(0));

// ---- fuzz_ingest_token: mode byte 0 = token, 1 = claims to sign ----
const secret = 'fuzz-ingest-secret-0123456789abcdef'; // FUZZ_SECRET
const now = 1700000000; // FUZZ_NOW_S
const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
const jwt = (header, claims, key = secret) => {
  const head = `${b64u(header)}.${b64u(claims)}`;
  return `${head}.${createHmac('sha256', key).update(head).digest('base64url')}`;
};
const claims = { iss: 'seashore', aud: 'seashore-ingest', sub: uuid,
  sid: '7d1e2f3a-0000-4000-8000-00000000abcd', iat: now - 10, exp: now + 3600 };
const token = (t) => out('fuzz_ingest_token', Buffer.concat([Buffer.from([0]), Buffer.from(t)]));
const signed = (c) => out('fuzz_ingest_token', Buffer.concat([Buffer.from([1]), Buffer.from(JSON.stringify(c))]));
const hs = { alg: 'HS256', typ: 'JWT' };
token(jwt(hs, claims));
token(jwt(hs, { ...claims, tid: uuid }));
token(jwt(hs, { ...claims, exp: now - 3600 }));
token(jwt(hs, claims, 'another key'));
token(jwt({ alg: 'none' }, claims).replace(/\.[^.]*$/, '.'));
token(jwt({ alg: 'RS256' }, claims));
token(`${b64u('{"alg":"HS256"')}.e30.`);
token('a.b');
signed(claims);
signed({ ...claims, tid: 'not-a-uuid' });
signed({ ...claims, exp: 'soon', iat: now + 7200 });
signed({ ...claims, aud: ['seashore-ingest'], sub: 12 });

// ---- fuzz_api_json: mode byte 0 = body, 1 = webhook, 2 = body too large ----
const body = (mode, text) => out('fuzz_api_json', Buffer.concat([Buffer.from([mode]), Buffer.from(text)]));
body(0, '{"title":"Episode 12"}');
body(0, '{"invite":"' + 'f'.repeat(64) + '","display_name":"Ana","role":"guest","identity":"ana-1"}');
body(0, '{"role":"host","display_name":null,"identity":"x\\u0000y"}');
body(0, '{"title":1,"title":2}');
body(0, '[{"title":"x"}]');
body(0, '{"title":"' + 't'.repeat(201) + '"}');
body(0, '{"a":[1,2.5e300,true,false,null,{"b":"\\ud83d\\ude00"}]}');
body(2, '{"title":"x"}');
const whsec = Buffer.from('0123456789abcdef0123456789abcdef').toString('base64');
const event = '{"type":"user.created","data":{"id":"user_2abc","first_name":"Ana",' +
  '"primary_email_address_id":"e1","email_addresses":[{"id":"e1","email_address":"a@b.c"}]}}';
const svix = createHmac('sha256', Buffer.from(whsec, 'base64'))
  .update(`msg_1.${now}.${event}`).digest('base64');
body(1, `whsec_${whsec}\nmsg_1\n${now}\nv1,bad v1,${svix}\n${event}`);
body(1, `${whsec}\nmsg_2\n${now}\nv1,${svix}\n{"type":"session.created"}`);
body(1, `whsec_====\nid\n1\nv1,x\n`);

// ---- fuzz_api_http: byte 0 = trusted proxies - 1, then NUL-separated
// method, URL, ?limit=, ?before_id=, Authorization, X-Forwarded-For ----
const http = (proxies, ...fields) => out('fuzz_api_http',
  Buffer.concat([Buffer.from([proxies - 1]), Buffer.from(fields.join('\0'))]));
const sid = '7d1e2f3a-0000-4000-8000-00000000abcd';
const apiKey = `ssk_0123abcd_${'0123456789abcdef'.repeat(2)}01234567`;
http(1, 'GET', '/v1/sessions', '25', sid, `Bearer ${apiKey}`, '203.0.113.7, 10.0.0.2');
http(1, 'POST', '/v1/sessions', '', '', `Bearer ${apiKey.toUpperCase()}`, '2001:db8::1');
http(2, 'GET', `/v1/sessions/${sid}`, '0', sid.toUpperCase(), 'Bearer eyJhbGciOiJSUzI1NiJ9.e30.x',
  'evil, 198.51.100.1, 10.0.0.1');
http(1, 'DELETE', `/v1/sessions/${sid}`, '501', 'x', 'Basic dXNlcjpwYXNz', ' 192.0.2.1 \t, ');
http(1, 'POST', `/v1/sessions/${sid}/end`, '+7', '', 'Bearer ssk_short', ',,,');
http(1, 'GET', `/v1/sessions/${sid}/tracks`, ' 500', '', 'Bearer ', '1.2.3.4 5.6.7.8');
http(3, 'GET', `//v1//sessions/${sid}/manifest/`, '-1', '', '', Array(20).fill('10.0.0.1').join(','));
http(1, 'POST', `/v1/sessions/${sid}/participants`, '9999999999999999999999');
http(1, 'POST', `/v1/sessions/${sid}/participants/${uuid}/ingest-token`);
http(1, 'POST', `/v1/sessions/${sid}/participants/${uuid}/ingest-token/x`);
http(1, 'POST', '/v1/sessions/not-a-uuid/participants');
http(1, 'POST', '/v1/webhooks/clerk');
http(1, 'GET', '/v1/' + 'a/'.repeat(300));
http(1, 'GET', '/');
http(1, 'GET', '/app.js');
http(1, 'GET', '/sub/../index.html');
http(1, 'GET', '/../outside/secret');
http(1, 'GET', '/up/secret');
http(1, 'GET', '/secret-link');
http(1, 'GET', '/self/self/page-link');
http(1, 'GET', '/loop');
http(1, 'GET', '/sibling/secret');
http(1, 'GET', 'x/secret');
http(1, 'GET', '/sub/./page.html/');

// ---- fuzz_clerk_token: "parties\n" then the token (byte 0 even) or the
// claims signed with the test key (odd); the key of fuzz_clerk_token.c ----
const clerkKey = `-----BEGIN PRIVATE KEY-----
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAL8myrfADR+TnP6g
Dy6lpEMQZzfKZWQG0kd0h+AW7eQL24t+cOqG2Eph8WRigVFbGYd75uxF5A35dMPQ
7JWnbBd748v+8wgcWjsRcjTtLQj5L9IPIeodRGI9gyCKAujPzBUqnM9h6x5FkZab
tkc0zD85ZEO6I+Lt+7P0UfPd25IlAgMBAAECgYEAkZV/67cPx67rcVqCdaqekp1Z
n7o8wpQXb2inW9ra0EbfrTxdz6Fn9i7mZOhJSacyqGeLlwQcDzCg58qlhc1/molF
I8Lrxn+B2ZZAqy552eQzK57RqC3ev5Pc3iEPwR2W3wk4ZImgxK9BDVlyBtvb4D0m
KC9K3vEjmouDJT0oP8ECQQDuw75nMIpRQ1jsPZ8VYN24aNfE6Wso9yWutkk1EtUX
SsI3h7rE/tiUo6mar25SiNAwEB2b4efE0whh8PBkK+hpAkEAzPMuTdsU+WFeZ+jY
haOGuv3bZNptnw5RqjdwSKuV+cOtcSbWdjly+n+h7P8sRNCpFEWGYPUw8QlYUKZK
M0KEXQJANJjQR+EMh0xDuX71nXsCPM5zwb/9yD9xgKRNSjDE2mWwlRUEUsMlKNFI
2neM4QecfQn/y8gfC1/Ft/WgryBxCQJAeQox0ZdOts1zhOi2X46pNmxQkyqRTTuW
rXGaZcC4jU6sc0QdqqrZJeoVBrPZQDb/dFJvP3nvUptTRiY/cjCZnQJBALGfFh4P
PwTMMdFftNr5ziJiLXn0vVdlJWsFmWUkfmFIHGRg6yGg9Q5+IQb59Qp1PW+Alcm4
MmacbvOl9CxvsOo=
-----END PRIVATE KEY-----`;
const rs256 = (header, claims) => {
  const head = `${b64u(header)}.${b64u(claims)}`;
  return `${head}.${createSign('RSA-SHA256').update(head).sign(clerkKey, 'base64url')}`;
};
const origin = 'https://studio.example.com';
const clerkClaims = { sub: 'user_2abc', azp: origin, iss: 'https://clerk.example.com',
  sid: 'sess_1', iat: now - 10, nbf: now - 10, exp: now + 60 };
const clerk = (mode, parties, text) => out('fuzz_clerk_token',
  Buffer.concat([Buffer.from([mode]), Buffer.from(`${parties}\n${text}`)]));
const rs = { alg: 'RS256', typ: 'JWT' };
clerk(0, '', rs256(rs, clerkClaims));
clerk(0, `${origin}, http://localhost:5173`, rs256(rs, clerkClaims));
clerk(0, 'https://other.example.com', rs256(rs, clerkClaims));
clerk(0, origin, rs256(rs, { ...clerkClaims, exp: now - 3600 }));
clerk(0, '', rs256(rs, { ...clerkClaims, sub: '' }));
clerk(0, '', rs256({ alg: 'HS256' }, clerkClaims));
clerk(0, '', jwt(hs, clerkClaims));
clerk(0, '', rs256(rs, clerkClaims).replace(/.$/, 'A'));
clerk(1, '', JSON.stringify(clerkClaims));
clerk(1, ` , ${origin} ,, `, JSON.stringify(clerkClaims));
clerk(1, origin, JSON.stringify({ ...clerkClaims, azp: 7 }));
clerk(1, '', JSON.stringify({ ...clerkClaims, nbf: now + 3600 }));
clerk(1, '', JSON.stringify({ ...clerkClaims, exp: 1.7e9, sub: 's'.repeat(201) }));
clerk(1, '', JSON.stringify({ ...clerkClaims, exp: '1700000060', nbf: null }));

// ---- fuzz_mux_input: tiny recordings ----
const tmp = mkdtempSync(`${tmpdir()}/fuzz-media-`);
const video = ['-f', 'lavfi', '-i', 'testsrc2=size=32x24:rate=10:duration=0.4'];
const audio = ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=0.4'];
const media = [
  ['av.webm', [...video, ...audio, '-c:v', 'libvpx', '-b:v', '20k', '-c:a', 'libopus', '-b:a', '16k']],
  ['v9.webm', [...video, '-c:v', 'libvpx-vp9', '-b:v', '20k']],
  ['a.webm', [...audio, '-c:a', 'libopus', '-b:a', '16k']],
  ['a.ogg', [...audio, '-c:a', 'libopus', '-b:a', '16k']],
  ['av.mp4', [...video, ...audio, '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', '-b:a', '24k']],
  ['a.mp4', [...audio, '-c:a', 'aac', '-b:a', '24k', '-movflags', 'frag_keyframe+empty_moov']],
  ['a.wav', ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=8000:duration=0.2', '-c:a', 'pcm_s16le']],
];
for (const [name, args] of media) {
  execFileSync('ffmpeg', ['-v', 'error', '-y', ...args, `${tmp}/${name}`]);
  const bytes = readFileSync(`${tmp}/${name}`);
  if (bytes.length > 16384) throw new Error(`${name} is ${bytes.length} bytes`);
  out('fuzz_mux_input', bytes);
  out('fuzz_mux_input', bytes.subarray(0, bytes.length >> 1)); // a truncated upload
}
rmSync(tmp, { recursive: true });
