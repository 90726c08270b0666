// Load figure of the media_server: one publisher and N viewers in one headless Chromium, and the
// server's CPU (% of one core, from /proc/PID/stat) and memory (VmRSS, VmHWM) over a window.
//
//   MEDIA_PID=<server pid> node examples/browser/media_load.mjs http://127.0.0.1:PORT
//
// Environment: VIEWERS (default 10), WINDOW_S (default 20), SETTLE_S (seconds between all
// viewers playing and the window, default 3). The publisher is the demo page (camera 640x480,
// VP8 + Opus); the viewers are seed clients in their default receive-only mode. Like media.mjs,
// run it inside a loopback-only network namespace (it refuses to run next to a real network):
//
//   unshare --net sh -c 'ip link set lo up &&
//     target/release/media_server --listen 127.0.0.1:8081 2>/tmp/media.log & pid=$!;
//     MEDIA_PID=$pid node examples/browser/media_load.mjs http://127.0.0.1:8081; kill $pid'
//
// Prints the figures and exits non-zero if a viewer does not play.

import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  RUN,
  baseUrl,
  launchChromium,
  note,
  openPage,
  refuseNetwork,
  serveSeed,
  sleep,
  waitForFrames,
  waitForHttp,
  withTimeout,
} from './harness.mjs';

const BASE = baseUrl('MEDIA_URL', 'MEDIA_PID=PID node media_load.mjs http://127.0.0.1:PORT');
const PID = Number(process.env.MEDIA_PID);
const VIEWERS = Number(process.env.VIEWERS || 10);
const WINDOW_S = Number(process.env.WINDOW_S || 20);
const SETTLE_S = Number(process.env.SETTLE_S || 3);
refuseNetwork();
if (!PID) {
  console.error('MEDIA_PID=<pid of the media_server> is required');
  process.exit(2);
}

const TICKS = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;

/** utime + stime of the process, in seconds (fields 14 and 15 of /proc/PID/stat). */
function cpuSeconds() {
  const stat = readFileSync(`/proc/${PID}/stat`, 'utf8');
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

function memory() {
  const status = readFileSync(`/proc/${PID}/status`, 'utf8');
  const kib = (key) => Number((new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status) || [])[1] || 0);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}

/** Video frames decoded and bytes received (audio and video) so far by a seed viewer. */
const received = (page) =>
  page.evaluate(async () => {
    const stats = [...(await window.seed.pc.getStats()).values()].filter((s) => s.type === 'inbound-rtp');
    return {
      frames: stats.filter((s) => s.kind === 'video').reduce((n, s) => n + (s.framesDecoded || 0), 0),
      bytes: stats.reduce((n, s) => n + (s.bytesReceived || 0), 0),
    };
  });

async function main() {
  console.log(`media_server load: 1 publisher, ${VIEWERS} viewers, ${WINDOW_S} s window (pid ${PID})`);
  const stop = setTimeout(() => {
    console.error('FAIL: time limit reached');
    process.exit(1);
  }, (120 + WINDOW_S) * 1000);
  stop.unref();
  await waitForHttp(`${BASE}/`);
  const idle = memory();
  const browser = await launchChromium();
  const seed = await serveSeed();
  const logs = [];
  const name = `load-${RUN}`;
  const publisher = await openPage(browser, 'publisher', logs);
  await publisher.goto(`${BASE}/?name=${name}`);
  await publisher.click('#publish');
  await publisher.waitForFunction(() => window.demo && window.demo.connected, null, { timeout: 30_000 });
  const ws = `${BASE.replace(/^http/, 'ws')}/api/ws?src=${name}`;
  const viewers = [];
  for (let i = 0; i < VIEWERS; i += 1) {
    const page = await openPage(browser, `viewer ${i + 1}`, logs);
    await page.goto(`${seed.base}/seed.html?ws=${encodeURIComponent(ws)}`);
    viewers.push(page);
  }
  try {
    await withTimeout(Promise.all(viewers.map((v) => waitForFrames(v, '#video', 60_000))), 65_000, 'viewers playing');
  } catch (e) {
    console.log(`FAIL: ${e.message}`);
    for (const line of logs) console.log(`    ${line}`);
    process.exit(1);
  }
  note(`all ${VIEWERS} viewers play`);
  await sleep(SETTLE_S * 1000);
  const before = await Promise.all(viewers.map(received));
  const cpu0 = cpuSeconds();
  const t0 = process.hrtime.bigint();
  await sleep(WINDOW_S * 1000);
  const cpu1 = cpuSeconds();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = await Promise.all(viewers.map(received));
  const mem = memory();
  const fps = after.map((a, i) => (a.frames - before[i].frames) / seconds);
  const kbps = after.map((a, i) => (8 * (a.bytes - before[i].bytes)) / seconds / 1000);
  const minFps = Math.min(...fps);
  const avgFps = fps.reduce((a, b) => a + b, 0) / fps.length;
  console.log(`server CPU: ${((100 * (cpu1 - cpu0)) / seconds).toFixed(1)} % of one core over ${seconds.toFixed(1)} s`);
  console.log(`server memory: VmRSS ${mem.rssMiB.toFixed(1)} MiB (idle before the browser: ${idle.rssMiB.toFixed(1)} MiB), peak VmHWM ${mem.peakMiB.toFixed(1)} MiB`);
  console.log(`viewers decode ${avgFps.toFixed(1)} fps on average (slowest ${minFps.toFixed(1)} fps), receiving ${(kbps.reduce((a, b) => a + b, 0) / kbps.length).toFixed(0)} kbit/s each`);
  seed.server.close();
  await withTimeout(browser.close(), 10_000, 'closing chromium').catch(() => {});
  process.exit(minFps > 5 ? 0 : 1);
}

main().catch((e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
