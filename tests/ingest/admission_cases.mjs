// admission_cases.mjs -- run by test_ingest_admission.c on a chunk log with
// room for two recording tracks: a new track whose connection closes before
// any chunk of it is durable gives its admission back.
import { randomUUID } from 'node:crypto';
import { ErrorCode, open } from './wsclient.mjs';
import { URL, expect, finish, run, sleep, token } from './cases.mjs';

await run('a new track that closes before sending a chunk gives its room in the log back', async () => {
  const held = [];
  for (let i = 0; i < 2; i++) {
    const [c, w] = await open(URL, token(), randomUUID());
    expect(w && w.welcome, `track ${i}: ${JSON.stringify(w)}`);
    held.push(c);
  }
  const [third, e] = await open(URL, token(), randomUUID());
  expect(e && e.error && e.error.code === ErrorCode.ERROR_CODE_BACK_PRESSURE && e.error.retryable &&
    /no room for another recording track/.test(e.error.message), `third track: ${JSON.stringify(e)}`);
  const cl = await third.waitClosed();
  expect(cl && cl.code === 1013, `third track closed with ${JSON.stringify(cl)}`);
  for (const c of held) c.close();
  for (const c of held) await c.waitClosed();
  let last = null;
  for (let i = 0; i < 50; i++) {
    const [c, w] = await open(URL, token(), randomUUID());
    last = w;
    c.close();
    await c.waitClosed();
    if (w && w.welcome) return;
    await sleep(200);
  }
  throw new Error(`no new track admitted 10 s after the two closed: ${JSON.stringify(last)}`);
});

finish();
