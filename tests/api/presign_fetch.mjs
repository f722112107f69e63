// presign_fetch.mjs -- our presigned GET URLs (presign_cli) against a store
// that verifies signatures (Swift's s3api, tests/harness/swift/): fetched
// they serve the object; one changed signature character or an expired URL
// is refused with 403. Reads S3_ENDPOINT/S3_ACCESS_KEY/S3_SECRET_KEY/
// S3_REGION (from start-swift.sh).   node presign_fetch.mjs <presign_cli>
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

process.removeAllListeners('warning'); // the SDK's Node-version notice
const cli = process.argv[2];
const { S3_ENDPOINT: endpoint, S3_ACCESS_KEY: accessKeyId, S3_SECRET_KEY: secretAccessKey, S3_REGION: region } = process.env;
const bucket = 'seashore-test';
const key = 'muxed/a b/ü+track.wav';
const body = randomBytes(100000);
const s3 = new S3Client({ region, endpoint, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
await s3.send(new CreateBucketCommand({ Bucket: bucket }));
await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));

const env = { ...process.env, PRESIGN_ACCESS_KEY: accessKeyId, PRESIGN_SECRET_KEY: secretAccessKey };
const ours = (expires) => execFileSync(cli, [endpoint, region, bucket, key, String(expires), String(Math.floor(Date.now() / 1000))], { env }).toString().trim();
let failures = 0;
async function check(name, url, status, bytes) {
  const r = await fetch(url);
  const got = Buffer.from(await r.arrayBuffer());
  const ok = r.status === status && (!bytes || got.equals(bytes));
  if (!ok) failures++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${r.status}${ok ? '' : ` ${got.toString().slice(0, 200)}`}`);
}
const url = ours(3600);
await check('presigned URL serves the object', url, 200, body);
const i = url.indexOf('X-Amz-Signature=') + 'X-Amz-Signature='.length;
const tampered = url.slice(0, i) + (url[i] === '0' ? '1' : '0') + url.slice(i + 1);
await check('one signature character changed: refused', tampered, 403);
await check('the same signature for another key: refused', url.replace('track.wav?', 'track2.wav?'), 403);
const disposition = "attachment; filename=\"Ep 1 - Z_e.wav\"; filename*=UTF-8''Ep%201%20-%20Z%C3%BCe.wav";
const named = execFileSync(cli, [endpoint, region, bucket, key, '3600', String(Math.floor(Date.now() / 1000)), disposition], { env }).toString().trim();
await check('with a download name: served', named, 200, body);
const cd = (await fetch(named)).headers.get('content-disposition');
const cdOk = cd === disposition;
if (!cdOk) failures++;
console.log(`${cdOk ? 'ok  ' : 'FAIL'} the store answers with the signed Content-Disposition: ${cd}`);
await check('the download name changed: refused', named.replace('Ep%25201', 'Ep%25202'), 403);
const short = ours(1);
await new Promise((r) => setTimeout(r, 3000));
await check('expired URL: refused', short, 403);
console.log(`${failures} case(s) failed`);
process.exit(failures);
