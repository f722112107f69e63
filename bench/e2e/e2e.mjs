// bench/e2e/e2e.mjs -- the measuring half of bench/e2e/run.sh and
// bench/scale/run.sh (which start the stack; BENCH_API and BENCH_KEY name it).
//
//   time-to-file SEND MEDIA MIME PREFIX RATE   one track through the stack
//       (RATE chunks of 1 MiB a second, 0 = unlimited): prints
//       {bytes, post_s, end_to_raw_s, end_to_files_s, files}
//   report-ttf MACHINE COMMAND SPEED      JSON lines on stdin -> markdown
//   scale SEND MEDIA MIME PREFIX N CHUNK   N recorders, one CHUNK-byte chunk a
//       second each, through the whole stack; CPU and RSS of every process of
//       the stack (BENCH_DEV_DIR, BENCH_BUILD) sampled; waits for the uploads
//   report-scale MACHINE COMMAND          JSON lines on stdin -> markdown
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';

const POLL_MS = 50;
const FILES_TIMEOUT_MS = 30 * 60 * 1000;
const EDITOR_KINDS = ['webm', 'mp4', 'wav']; // each done (with a URL) or skipped (e.g. no WebM of H.264)

const api = process.env.BENCH_API;
const headers = { authorization: `Bearer ${process.env.BENCH_KEY}`, 'content-type': 'application/json' };

async function call(method, path, body) {
  const r = await fetch(`${api}${path}`, { method, headers, body: body && JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

// A session and one participant; its ingest grant {url, token}.
export async function joinOne(title) {
  const s = await call('POST', '/v1/sessions', { title });
  const j = await call('POST', `/v1/sessions/${s.id}/participants`, { display_name: 'Bench guest' });
  return { sessionId: s.id, ingest: j.ingest };
}

export async function sessionTracks(sessionId) {
  const s = await call('GET', `/v1/sessions/${sessionId}/tracks`);
  return s.participants.flatMap((p) => p.tracks);
}

export function run(cmd, args, logPath) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (logPath) writeFileSync(logPath, out + err);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// When the track's raw object and its editor files first showed up (ms).
function observe(track, seen, now) {
  if (seen.raw === undefined && track.upload?.state === 'completed' && track.raw?.url) seen.raw = now;
  if (track.upload?.state === 'failed') throw new Error(`upload failed: ${JSON.stringify(track.upload)}`);
  const failed = (track.outputs || []).filter((o) => o.state === 'failed');
  if (failed.length) throw new Error(`muxer failed: ${JSON.stringify(failed)}`);
  const outputs = track.outputs || [];
  const files = track.files || [];
  const ready = (k) => outputs.some((o) => o.kind === k &&
    (o.state === 'skipped' || (o.state === 'done' && files.some((f) => f.kind === k && f.url))));
  if (seen.files === undefined && EDITOR_KINDS.every(ready)) {
    seen.files = now;
    seen.list = files.map((f) => ({ kind: f.kind, size_bytes: f.size_bytes, duration_us: f.duration_us }));
  }
}

async function timeToFile(send, media, mime, prefix, rate) {
  const { sessionId, ingest } = await joinOne('bench time to file');
  writeFileSync(`${prefix}.token`, ingest.token, { mode: 0o600 });
  const trackId = randomUUID();
  const sending = run(send, ['--url', ingest.url, '--token-file', `${prefix}.token`, '--mime', mime,
    '--track-id', trackId, '--chunk-size', '1048576', '--rate', String(rate || 0), '--quiet', '--stats-json', `${prefix}.stats.json`,
    media], `${prefix}.send.log`);
  let sent = false;
  sending.then(() => (sent = true), () => (sent = true));
  const seen = {};
  const deadline = Date.now() + FILES_TIMEOUT_MS;
  while (seen.files === undefined || seen.raw === undefined) {
    if (Date.now() > deadline) throw new Error(`track ${trackId}: no files after ${FILES_TIMEOUT_MS} ms`);
    const track = (await sessionTracks(sessionId)).find((t) => t.track_id === trackId);
    if (track) observe(track, seen, Date.now());
    if (sent) await sending; // rethrows a failed send
    await sleep(POLL_MS);
  }
  await sending;
  const stats = JSON.parse(readFileSync(`${prefix}.stats.json`, 'utf8'));
  const endMs = stats.last_end_sent_unix_us / 1000;
  return {
    track_id: trackId, bytes: stats.bytes, post_s: +stats.seconds.toFixed(2),
    post_mbs: +(stats.bytes / 1e6 / stats.seconds).toFixed(1),
    end_to_raw_s: +((seen.raw - endMs) / 1000).toFixed(2),
    end_to_files_s: +((seen.files - endMs) / 1000).toFixed(2), files: seen.list,
  };
}

function reportTtf(machine, command, speed, rows) {
  const first = rows[0];
  const lines = [
    `# End-to-end benchmark: time to file, ${new Date().toISOString().slice(0, 10)}`, '',
    `- Machine: ${machine}`, `- Command: \`${command}\` (release build, the whole stack on loopback: scripts/dev.sh)`,
    `- Media: 1080p30 H.264 at ~6 Mbit/s + Opus 128 kbit/s in Matroska (\`video/webm;codecs=h264,opus\`), posted by seashore-send in 1 MiB chunks at ${+speed ? `${speed}× real time` : 'the speed the stack acknowledges'}`,
    '- Peer: `ffmpeg -i track -c copy -movflags +faststart out.mp4` on local disk, same file, same run: the one remux any upload-then-process pipeline does after the guest stops', '',
    '| track | bytes | post MB/s | End → raw complete s | End → all editor files s | peer remux s | files / peer | files vs 5 min |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    lines.push(`| ${r.minutes} min | ${r.bytes} | ${r.post_mbs} | ${r.end_to_raw_s} | ${r.end_to_files_s} | ${r.peer_s} | ` +
      `${(r.end_to_files_s / r.peer_s).toFixed(2)} | ${(r.end_to_files_s / first.end_to_files_s).toFixed(2)}× for ${(r.minutes / first.minutes).toFixed(0)}× the length |`);
  }
  const longest = rows[rows.length - 1];
  lines.push('', `Target: under 10 s for a 60-minute track: ${longest.minutes >= 60 ? (longest.end_to_files_s < 10 ? '**met**' : '**not met**') : 'not measured (no 60-minute track in this run)'} (${longest.minutes} min: ${longest.end_to_files_s} s).`, '');
  return lines.join('\n');
}

// ---- scale ----

const SAMPLE_MS = 500;
const DRAIN_TIMEOUT_MS = 5 * 60 * 1000;
const CLK_TCK = 100;
const SERVICES = ['token-issuer', 'ingest-recorder', 'chunk-store', 'r2-uploader', 'muxer'];

function procRead(pid, file) {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return null;
  }
}

// name -> [pids]: the five services, nats-server, PostgreSQL (postmaster and
// backends), s3rver, and the client.
function stackProcesses(devDir, build, clientPid) {
  const groups = { client: [clientPid] };
  const pgMaster = +readFileSync(`${devDir}/pg/postmaster.pid`, 'utf8').split('\n')[0];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmd = (procRead(entry, 'cmdline') ?? '').split('\0');
    const stat = procRead(entry, 'stat');
    if (!stat) continue;
    const ppid = +stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
    let name = SERVICES.find((n) => cmd[0] === `${build}/services/${n}/${n}`);
    if (!name && cmd.includes(`${devDir}/nats.conf`)) name = 'nats-server';
    if (!name && cmd.includes(`${devDir}/s3`)) name = 's3rver';
    if (!name && (+entry === pgMaster || ppid === pgMaster)) name = 'postgres';
    if (name) (groups[name] ??= []).push(+entry);
  }
  return groups;
}

function cpuTicks(pid) {
  const stat = procRead(pid, 'stat');
  if (!stat) return 0;
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return +f[11] + +f[12]; // utime + stime
}

// Proportional set size: shared pages (PostgreSQL's shared buffers) are
// split between the processes that map them instead of counted in each.
function pssKiB(pid) {
  const m = /Pss:\s+(\d+)/.exec(procRead(pid, 'smaps_rollup') ?? '');
  return m ? +m[1] : 0;
}

function sampler(devDir, build, clientPid) {
  const state = { first: null, last: null, peakRss: {}, pidTicks: {} };
  const take = () => {
    const groups = stackProcesses(devDir, build, clientPid);
    const now = Date.now();
    const ticks = {};
    for (const [name, pids] of Object.entries(groups)) {
      for (const p of pids) state.pidTicks[p] = { name, ticks: Math.max(state.pidTicks[p]?.ticks ?? 0, cpuTicks(p)) };
      const rss = pids.reduce((a, p) => a + pssKiB(p), 0);
      state.peakRss[name] = Math.max(state.peakRss[name] ?? 0, rss);
    }
    // per pid, the last ticks seen: a process that exited keeps its time
    for (const { name, ticks: t } of Object.values(state.pidTicks)) ticks[name] = (ticks[name] ?? 0) + t;
    if (!state.first) state.first = { now, ticks };
    state.last = { now, ticks };
  };
  take();
  const timer = setInterval(take, SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      take();
      const secs = (state.last.now - state.first.now) / 1000;
      const out = {};
      for (const name of Object.keys(state.peakRss)) {
        const used = ((state.last.ticks[name] ?? 0) - (state.first.ticks[name] ?? 0)) / CLK_TCK;
        out[name] = { cpu_pct: Math.round((100 * used) / secs), peak_rss_mib: +(state.peakRss[name] / 1024).toFixed(1) };
      }
      return out;
    },
  };
}

// "track T: WHY; reconnecting in S s" lines -> { WHY with numbers as N: count }
function reconnectReasons(log) {
  const why = {};
  for (const m of log.matchAll(/: track \S+: (.*); reconnecting in /g)) {
    const k = m[1].replace(/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}/g, 'ID').replace(/\d+/g, 'N');
    why[k] = (why[k] ?? 0) + 1;
  }
  return why;
}

// The sending phase, offered and acknowledged. Track j sends chunk i at
// j/n + i seconds (seashore-send spreads the tracks over the first second),
// so the clients offer their bytes over (n-1)/n + (k-1) seconds plus the
// part of a second the last chunk stands for. The stack acknowledges them
// from the first Ack to the last plus that same part: a stack that keeps up
// scores 1 (the ack latency is at both ends). Connecting before, and the
// End handshake after, are not in it.
function sendingPhase(stats, n, chunk) {
  const perTrack = stats.bytes / n;
  const chunks = Math.ceil(perTrack / chunk);
  const lastChunkS = perTrack / chunk - (chunks - 1);
  const offeredS = (n - 1) / n + (chunks - 1) + lastChunkS;
  const ackedS = (stats.last_ack_unix_us - stats.first_ack_unix_us) / 1e6 + lastChunkS;
  return { offered_mbs: stats.bytes / 1e6 / offeredS, acked_mbs: stats.bytes / 1e6 / ackedS };
}

async function scale(send, media, mime, prefix, n, chunk) {
  const { sessionId, ingest } = await joinOne(`bench scale ${n}`);
  writeFileSync(`${prefix}.token`, ingest.token, { mode: 0o600 });
  const child = spawn(send, ['--url', ingest.url, '--token-file', `${prefix}.token`, '--mime', mime,
    '--copies', String(n), '--rate', '1', '--chunk-size', String(chunk),
    '--stats-json', `${prefix}.stats.json`, media], { stdio: ['ignore', 'ignore', openSync(`${prefix}.log`, 'w')] });
  const exited = new Promise((r) => child.on('close', r));
  const s = sampler(process.env.BENCH_DEV_DIR, process.env.BENCH_BUILD, child.pid);
  const code = await exited;
  const usage = s.stop();
  const err = readFileSync(`${prefix}.log`, 'utf8');
  if (code !== 0) throw new Error(`seashore-send exited ${code}: ${err.slice(-500)}`);
  const stats = JSON.parse(readFileSync(`${prefix}.stats.json`, 'utf8'));
  const t0 = Date.now();
  let uploaded = 0;
  while (Date.now() - t0 < DRAIN_TIMEOUT_MS) {
    const tracks = await sessionTracks(sessionId);
    uploaded = tracks.filter((t) => t.upload?.state === 'completed').length;
    if (uploaded >= n) break;
    await sleep(500);
  }
  const phase = sendingPhase(stats, n, chunk);
  return {
    recorders: n, chunk_bytes: chunk, offered_mbs: +phase.offered_mbs.toFixed(1),
    acked_mbs: +phase.acked_mbs.toFixed(1), seconds: +stats.seconds.toFixed(1),
    end_p50_ms: +(stats.end_latency_us.p50 / 1000).toFixed(1), end_p99_ms: +(stats.end_latency_us.p99 / 1000).toFixed(1),
    ack_p50_ms: +(stats.ack_latency_us.p50 / 1000).toFixed(1), ack_p99_ms: +(stats.ack_latency_us.p99 / 1000).toFixed(1),
    reconnects: stats.reconnects, reconnect_why: reconnectReasons(err), drain_s: +((Date.now() - t0) / 1000).toFixed(1), uploaded, usage,
  };
}

const SHOWN = ['ingest-recorder', 'chunk-store', 'r2-uploader', 'muxer', 'nats-server', 'postgres', 's3rver', 'client'];

function reportScale(machine, command, rows) {
  const media = rows[0] ? `${rows[0].chunk_bytes} bytes a second per recorder (${((rows[0].chunk_bytes * 8) / 1e6).toFixed(1)} Mbit/s)` : '';
  const lines = [
    `# End-to-end benchmark: scale curve, ${new Date().toISOString().slice(0, 10)}`, '',
    `- Machine: ${machine}`, `- Command: \`${command}\` (release build; a fresh stack per step: scripts/dev.sh with s3rver, all on this machine, client included)`,
    `- Load: N seashore-send recorders (one process, \`--copies N --rate 1\`), one chunk of ${media}, 1080p H.264 + Opus media`,
    '- Peer: the offered load itself (acked / offered); the ingest benchmark compares the durable-ingest path with raw JetStream',
    '- Acked: bytes acknowledged (durable) over the sending phase, from the first Ack to the last (offered: the clients\' own schedule of the same bytes; a stack that keeps up scores 1.00); End→Ended: per track, from the client\'s End to the server\'s Ended (chunk-store checks the whole stream against its index)',
    '- Drain: from the clients\' last Ended until every track\'s raw object is complete in the store', '',
    `| recorders | offered MB/s | acked MB/s | acked / offered | ack p50 ms | ack p99 ms | End→Ended p50 / p99 ms | reconnects | drain s | CPU % ${SHOWN.join(' / ')} | peak memory (PSS) MiB ${SHOWN.join(' / ')} |`,
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  let pressure = null;
  for (const r of rows) {
    const ratio = r.acked_mbs / r.offered_mbs;
    if (pressure === null && (ratio < 0.95 || r.ack_p99_ms > 1000)) pressure = r.recorders;
    lines.push(`| ${r.recorders} | ${r.offered_mbs} | ${r.acked_mbs} | ${ratio.toFixed(2)} | ${r.ack_p50_ms} | ${r.ack_p99_ms} | ${r.end_p50_ms} / ${r.end_p99_ms} | ${r.reconnects} | ` +
      `${r.drain_s}${r.uploaded < r.recorders ? ` (${r.uploaded}/${r.recorders} uploaded)` : ''} | ` +
      `${SHOWN.map((n) => r.usage[n]?.cpu_pct ?? '-').join(' / ')} | ${SHOWN.map((n) => r.usage[n]?.peak_rss_mib ?? '-').join(' / ')} |`);
  }
  lines.push('', `Back-pressure (acked < 0.95 × offered, or ack p99 > 1 s) starts at: ${pressure === null ? 'none of these steps' : `**${pressure} recorders**`}.`, '');
  for (const r of rows.filter((x) => x.reconnects > 0)) {
    const why = Object.entries(r.reconnect_why ?? {}).sort((a, b) => b[1] - a[1]);
    lines.push(`Reconnects at ${r.recorders} recorders, by the client's reason: ${why.map(([k, v]) => `${v} × "${k}"`).join('; ')}`, '');
  }
  return lines.join('\n');
}

async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === 'time-to-file') {
    console.log(JSON.stringify(await timeToFile(...args)));
  } else if (cmd === 'report-ttf' || cmd === 'report-scale') {
    const rows = readFileSync(0, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    console.log(cmd === 'report-ttf' ? reportTtf(args[0], args[1], args[2], rows) : reportScale(args[0], args[1], rows));
  } else if (cmd === 'scale') {
    const [send, media, mime, prefix, n, chunk] = args;
    console.log(JSON.stringify(await scale(send, media, mime, prefix, +n, +chunk)));
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
}

main().catch((e) => {
  console.error(`e2e: ${e.message}`);
  process.exit(1);
});
