// make_corpus.mjs -- writes the seed corpora of tests/fuzz/corpus/ (files
// named by the SHA-1 of their content, as libFuzzer names its own).
// Run from the repository root: node tests/fuzz/make_corpus.mjs
// The media seeds (fuzz_mux_input) need the ffmpeg CLI: tiny (< 16 KB)
// recordings in the containers and codecs browsers send.
import { execFileSync } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
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
