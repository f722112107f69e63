// cases.mjs -- what the Node case files run by the ingest tests share: the
// stack's ingest URL and a token for its participant (from the environment
// ingest_stack.c passes), and a tiny case runner whose exit status is the
// number of failed cases.
import jwt from 'jsonwebtoken';

const env = process.env;
export const URL = env.INGEST_URL;
export const token = () => {
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign({ iss: 'seashore', aud: 'seashore-ingest', sub: env.PARTICIPANT_ID, sid: env.SESSION_ID, iat: now, exp: now + 600 }, env.INGEST_TOKEN_SECRET_FOR_TEST, { algorithm: 'HS256', noTimestamp: true });
};
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const expect = (cond, what) => { if (!cond) throw new Error(what); };

let failures = 0;
export async function run(name, fn) {
  try { await fn(); console.log(`ok   ${name}`); } catch (e) { failures++; console.log(`FAIL ${name}: ${e.message}`); }
}
export function finish() {
  console.log(`${failures} case(s) failed`);
  process.exit(failures);
}
