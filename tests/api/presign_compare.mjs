// presign_compare.mjs -- our presigned GET URLs (ss_s3_presign_get, through
// tests/unit/presign_cli) against the AWS SDK's presigner for the same
// inputs and the same fixed date, character for character; and the limits.
//   node presign_compare.mjs <path to presign_cli>
import { execFileSync } from 'node:child_process';
import { S3Client, GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

process.removeAllListeners('warning'); // the SDK's Node-version notice
const cli = process.argv[2];
const creds = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const env = { ...process.env, PRESIGN_ACCESS_KEY: creds.accessKeyId, PRESIGN_SECRET_KEY: creds.secretAccessKey };
// The SDK is set not to add its optional flexible-checksum parameters
// (R2 and older S3-compatible stores do not know them); with them removed
// the two URLs must be identical.
const cases = [
  ['https://acc123.r2.cloudflarestorage.com', 'auto', 'seashore', 'muxed/a b/ü+x.mp4', 3600, '2026-11-25T10:00:00Z'],
  ['https://acc123.r2.cloudflarestorage.com', 'auto', 'seashore', 'raw/3f2b8c1e-6d4a-4c1b-9a57-0e2f5d8c9b10/p/t.webm', 604800, '2026-01-01T00:00:00Z'],
  ['https://s3.eu-west-1.amazonaws.com', 'eu-west-1', 'my-bucket', "manifests/s!'()*~@#$&=;,?.json", 60, '2027-02-28T23:59:59Z'],
  ['http://127.0.0.1:9000', 'us-east-1', 'seashore-test', 'muxed/x/y/z.wav', 1, '2026-11-25T10:00:00Z'],
  ['https://minio.example.test:8443', 'us-east-1', 'b', 'a//double/slash.wav', 86400, '2026-06-15T12:30:45Z'],
  // with a download file name (response-content-disposition)
  ['https://acc123.r2.cloudflarestorage.com', 'auto', 'seashore', 'muxed/s/p/t.mp4', 3600, '2026-11-25T10:00:00Z', 'attachment; filename="Ep 1 - Ana - 0a1b2c3d.mp4"; filename*=UTF-8\'\'Ep%201%20-%20Ana%20-%200a1b2c3d.mp4'],
  ['https://s3.eu-west-1.amazonaws.com', 'eu-west-1', 'my-bucket', 'raw/x.webm', 600, '2027-02-28T23:59:59Z', "attachment; filename=\"Z_e (raw).webm\"; filename*=UTF-8''Z%C3%BCe%20%28raw%29.webm"],
];
let failures = 0;
for (const [endpoint, region, bucket, key, expires, date, disposition] of cases) {
  const client = new S3Client({ region, endpoint, forcePathStyle: true, credentials: creds, responseChecksumValidation: 'WHEN_REQUIRED', requestChecksumCalculation: 'WHEN_REQUIRED' });
  const input = { Bucket: bucket, Key: key, ...(disposition ? { ResponseContentDisposition: disposition } : {}) };
  const sdk = await getSignedUrl(client, new GetObjectCommand(input), { expiresIn: expires, signingDate: new Date(date) });
  const args = [endpoint, region, bucket, key, String(expires), String(Date.parse(date) / 1000), ...(disposition ? [disposition] : [])];
  const ours = execFileSync(cli, args, { env }).toString().trim();
  if (ours === sdk) {
    console.log(`ok   ${endpoint} ${key}`);
  } else {
    failures++;
    console.log(`FAIL ${endpoint} ${key}\n  sdk:  ${sdk}\n  ours: ${ours}`);
  }
}
for (const expires of ['0', '604801']) {
  try {
    execFileSync(cli, ['https://x.example', 'auto', 'b', 'k', expires, '1790000000'], { env, stdio: 'pipe' });
    failures++;
    console.log(`FAIL expiry ${expires} accepted`);
  } catch (e) {
    console.log(`ok   expiry ${expires} refused: ${String(e.stderr).trim()}`);
  }
}
console.log(`${failures} case(s) failed`);
process.exit(failures);
