// check.mjs -- end-to-end check of the Swift s3api server that
// start-swift.sh starts, with the AWS SDK from /work/main/node_modules.
//
//   eval "$(tests/harness/swift/start-swift.sh /tmp/swift 18080 | sed 's/^/export /')"
//   node tests/harness/swift/check.mjs
//
// Reads S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION from the
// environment (defaults: http://127.0.0.1:18080, test:tester, testing,
// us-east-1).  Prints one "ok"/"not ok" line per check and ends with
// "N passed, N failed"; exits 1 if any check failed.
import {
  S3Client,
  CreateBucketCommand,
  PutObjectCommand,
  GetObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  ListPartsCommand,
  CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { createHash, randomBytes } from 'node:crypto';

const endpoint = process.env.S3_ENDPOINT || 'http://127.0.0.1:18080';
const accessKeyId = process.env.S3_ACCESS_KEY || 'test:tester';
const secretAccessKey = process.env.S3_SECRET_KEY || 'testing';
const region = process.env.S3_REGION || 'us-east-1';
const Bucket = 'seashore-test';

function client(secret = secretAccessKey) {
  return new S3Client({
    endpoint,
    region,
    credentials: { accessKeyId, secretAccessKey: secret },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
}
const s3 = client();

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    passed++;
    console.log(`ok - ${name} (${Date.now() - t0} ms)${detail ? ': ' + detail : ''}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${e && e.stack ? e.stack : e}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const sha = (b) => createHash('sha256').update(b).digest('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function bodyBytes(res) {
  return Buffer.from(await res.Body.transformToByteArray());
}

const smallKey = 'hello.txt';
const small = Buffer.from(`hello from sea shore ${new Date().toISOString()}\n`);

await check(`CreateBucket ${Bucket}`, async () => {
  try {
    await s3.send(new CreateBucketCommand({ Bucket }));
    return 'created';
  } catch (e) {
    if (e.name === 'BucketAlreadyOwnedByYou' || e.name === 'BucketAlreadyExists') {
      return `already there (${e.name})`;
    }
    throw e;
  }
});

await check('PutObject', async () => {
  const r = await s3.send(
    new PutObjectCommand({ Bucket, Key: smallKey, Body: small, ContentType: 'text/plain' }),
  );
  return `ETag ${r.ETag}`;
});

await check('GetObject returns the bytes', async () => {
  const r = await s3.send(new GetObjectCommand({ Bucket, Key: smallKey }));
  const got = await bodyBytes(r);
  assert(got.equals(small), `body mismatch: ${JSON.stringify(got.toString())}`);
  return `${got.length} bytes, Content-Type ${r.ContentType}`;
});

await check('wrong secret key is refused (header SigV4 is verified)', async () => {
  try {
    await client('not-the-secret').send(new GetObjectCommand({ Bucket, Key: smallKey }));
  } catch (e) {
    const status = e.$metadata && e.$metadata.httpStatusCode;
    assert(status === 403, `expected 403, got ${status} ${e.name}`);
    return `403 ${e.name}`;
  }
  throw new Error('request with a wrong secret succeeded');
});

const mpKey = 'multipart.bin';
const MiB = 1024 * 1024;
const part1 = randomBytes(5 * MiB);
const part2 = randomBytes(5 * MiB);
await check('multipart upload: 2 x 5 MiB parts, ListParts, Complete', async () => {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: mpKey }));
  assert(UploadId, 'no UploadId');
  try {
    const etags = [];
    for (const [i, body] of [part1, part2].entries()) {
      const r = await s3.send(
        new UploadPartCommand({ Bucket, Key: mpKey, UploadId, PartNumber: i + 1, Body: body }),
      );
      etags.push(r.ETag);
    }
    const lp = await s3.send(new ListPartsCommand({ Bucket, Key: mpKey, UploadId }));
    const parts = lp.Parts || [];
    assert(parts.length === 2, `ListParts: ${parts.length} parts`);
    assert(
      parts.every((p, i) => p.PartNumber === i + 1 && p.Size === 5 * MiB && p.ETag === etags[i]),
      `ListParts mismatch: ${JSON.stringify(parts)}`,
    );
    const c = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key: mpKey,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
    );
    return `ListParts ok, complete ETag ${c.ETag}`;
  } catch (e) {
    await s3.send(new AbortMultipartUploadCommand({ Bucket, Key: mpKey, UploadId })).catch(() => {});
    throw e;
  }
});

await check('GetObject of the multipart object returns both parts', async () => {
  const r = await s3.send(new GetObjectCommand({ Bucket, Key: mpKey }));
  const got = await bodyBytes(r);
  const want = Buffer.concat([part1, part2]);
  assert(got.length === want.length, `length ${got.length} != ${want.length}`);
  assert(sha(got) === sha(want), 'content differs');
  return `${got.length} bytes, sha256 matches`;
});

await check('ListObjectsV2 shows both objects', async () => {
  const r = await s3.send(new ListObjectsV2Command({ Bucket }));
  const keys = (r.Contents || []).map((o) => o.Key);
  assert(keys.includes(smallKey) && keys.includes(mpKey), `keys: ${keys}`);
  return keys.join(', ');
});

const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket, Key: smallKey }), {
  expiresIn: 300,
});

await check('presigned GET URL -> 200 and the bytes', async () => {
  const res = await fetch(url);
  const got = Buffer.from(await res.arrayBuffer());
  assert(res.status === 200, `status ${res.status}: ${got}`);
  assert(got.equals(small), 'body mismatch');
  return `200, ${got.length} bytes`;
});

await check('presigned URL with one signature character changed -> 403', async () => {
  const u = new URL(url);
  const sig = u.searchParams.get('X-Amz-Signature');
  assert(sig && /^[0-9a-f]{64}$/.test(sig), `unexpected signature ${sig}`);
  const last = sig[sig.length - 1];
  const bad = sig.slice(0, -1) + (last === '0' ? '1' : '0');
  u.searchParams.set('X-Amz-Signature', bad);
  const res = await fetch(u);
  const text = await res.text();
  assert(res.status === 403, `status ${res.status}: ${text}`);
  const code = (text.match(/<Code>([^<]*)<\/Code>/) || [])[1];
  return `403 ${code}`;
});

await check('presigned URL with expiresIn 1, fetched after 3 s -> 403', async () => {
  const shortUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket, Key: smallKey }), {
    expiresIn: 1,
  });
  await sleep(3000);
  const res = await fetch(shortUrl);
  const text = await res.text();
  assert(res.status === 403, `status ${res.status}: ${text}`);
  const code = (text.match(/<Code>([^<]*)<\/Code>/) || [])[1];
  const msg = (text.match(/<Message>([^<]*)<\/Message>/) || [])[1];
  return `403 ${code} (${msg})`;
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
