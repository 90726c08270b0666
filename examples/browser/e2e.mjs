// Real-browser end-to-end tests of the relay binary.
//
//   node examples/browser/e2e.mjs http://127.0.0.1:PORT      (or RELAY_URL=http://...)
//
// Starts nothing but a headless Chromium (Debian's /usr/bin/chromium, or CHROMIUM=/path) and a
// tiny HTTP server on 127.0.0.1 for seed.html; the relay must already listen at the given URL.
// WebRTC gathers the address of every interface, so run this (and the relay) inside a
// loopback-only network namespace; the script refuses to run with any other interface up,
// unless E2E_ALLOW_NETWORK=1. `examples/tests/browser.rs` does all of that:
//
//   SIGNALING_REQUIRE_BROWSER=1 cargo test -p examples --test browser -- --nocapture
//
// Scenarios (each bounded by SCENARIO_TIMEOUT_MS, 30 s by default):
//   a. two demo-page tabs in one room get a video call both ways; a third tab is refused;
//   b. the seed client (seed.html) offers first; a demo-page tab answers through the relay.
// Prints one PASS/FAIL line per scenario; exits non-zero if any failed.
// E2E_SCREENSHOT (default /tmp/relay-demo.png) is where scenario a's screenshot goes.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const BASE = (process.argv[2] || process.env.RELAY_URL || '').replace(/\/+$/, '');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCENARIO_TIMEOUT_MS = Number(process.env.SCENARIO_TIMEOUT_MS || 30_000);
const SCREENSHOT = process.env.E2E_SCREENSHOT || '/tmp/relay-demo.png';
const RUN = Math.random().toString(36).slice(2, 8);

if (!/^https?:\/\//.test(BASE)) {
  console.error('usage: node e2e.mjs http://127.0.0.1:PORT   (or RELAY_URL=...)');
  process.exit(2);
}

// Refuse to let the browser near a real network: every interface must be loopback.
const outside = Object.entries(networkInterfaces())
  .filter(([, addrs]) => addrs.some((a) => !a.internal))
  .map(([name]) => name);
if (outside.length && process.env.E2E_ALLOW_NETWORK !== '1') {
  console.error(
    `refusing to run: network interfaces other than loopback are up (${outside.join(', ')}); ` +
      "run inside a loopback-only namespace (unshare --net sh -c 'ip link set lo up && ...') " +
      'or set E2E_ALLOW_NETWORK=1',
  );
  process.exit(2);
}

const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
const note = (...args) => console.log(`  [${elapsed()}]`, ...args);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Last resort: whatever happens, never hang.
const hardStop = setTimeout(() => {
  console.error(`FAIL: overall time limit reached after ${elapsed()}`);
  process.exit(1);
}, 4 * SCENARIO_TIMEOUT_MS + 30_000);
hardStop.unref();

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A new page in a new context, with its console and errors kept for the failure report. */
async function openPage(browser, name, logs) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  page.on('console', (m) => logs.push(`${name} console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`${name} page error: ${e.message}`));
  return page;
}

/**
 * Waits until the <video> matching `selector` plays decoded frames: a non-zero size, and at least
 * `min` new frames (requestVideoFrameCallback) with currentTime advancing. Returns what it saw.
 */
async function waitForFrames(page, selector, timeout, min = 5) {
  return page.evaluate(
    ({ selector, timeout, min }) =>
      new Promise((resolve, reject) => {
        const video = document.querySelector(selector);
        if (!video) return reject(new Error(`no element ${selector}`));
        const deadline = performance.now() + timeout;
        let frames = 0;
        let startTime = null;
        const done = () => {
          if (frames >= min && video.videoWidth > 0 && video.currentTime > startTime) {
            resolve({
              width: video.videoWidth,
              height: video.videoHeight,
              frames,
              currentTime: Number(video.currentTime.toFixed(2)),
            });
            return true;
          }
          return false;
        };
        const onFrame = () => {
          if (startTime === null) startTime = video.currentTime;
          frames += 1;
          if (!done()) video.requestVideoFrameCallback(onFrame);
        };
        video.requestVideoFrameCallback(onFrame);
        const check = setInterval(() => {
          if (performance.now() > deadline) {
            clearInterval(check);
            reject(
              new Error(
                `${selector}: ${frames} frames, ${video.videoWidth}x${video.videoHeight}, ` +
                  `readyState ${video.readyState}, srcObject ${video.srcObject ? 'set' : 'null'}`,
              ),
            );
          } else if (frames >= min && done()) {
            clearInterval(check);
          }
        }, 100);
      }),
    { selector, timeout, min },
  );
}

const demoURL = (room) => `${BASE}/?room=${encodeURIComponent(room)}`;
const demoStatus = (page) => page.evaluate(() => window.demoStatus);

async function waitDemoConnected(page, timeout) {
  await page.waitForFunction(() => window.demo && window.demo.connected === true, null, {
    timeout,
    polling: 100,
  });
}

/** Scenario a: a call between two demo tabs; a third tab in the same room is refused. */
async function scenarioCall(browser, logs, left) {
  const room = `r1-${RUN}`;
  const a = await openPage(browser, 'tab A', logs);
  const b = await openPage(browser, 'tab B', logs);
  await a.goto(demoURL(room));
  await b.goto(demoURL(room));
  await Promise.all([waitDemoConnected(a, left()), waitDemoConnected(b, left())]);
  note('both tabs report connectionState "connected"');
  const [fa, fb] = await Promise.all([
    waitForFrames(a, '#remote', left()),
    waitForFrames(b, '#remote', left()),
  ]);
  note(`tab A plays the peer's video: ${JSON.stringify(fa)}`);
  note(`tab B plays the peer's video: ${JSON.stringify(fb)}`);

  const info = async (p) =>
    p.evaluate(() => ({
      polite: window.demo.polite,
      glare: window.demo.glare,
      offersSent: window.demo.offersSent,
      signalingState: window.demo.pc.signalingState,
      transceivers: window.demo.pc.getTransceivers().length,
    }));
  const [ia, ib] = await Promise.all([info(a), info(b)]);
  note(`tab A: ${JSON.stringify(ia)}`);
  note(`tab B: ${JSON.stringify(ib)}`);
  if (ia.polite === ib.polite) throw new Error('both tabs got the same politeness hint');
  const glare = ia.glare + ib.glare;
  note(
    glare
      ? `glare path exercised: ${glare} colliding offer(s) handled by perfect negotiation`
      : 'glare path not exercised (no colliding offers this run)',
  );

  // A screenshot of tab B, to look at (two videos playing, the status line, the log).
  await b.screenshot({ path: SCREENSHOT, fullPage: true });
  note(`screenshot: ${SCREENSHOT}`);

  // A third tab: the room (capacity 2) is full; the relay closes its socket with 4001.
  const c = await openPage(browser, 'tab C', logs);
  await c.goto(demoURL(room));
  await c.waitForFunction(() => /^socket closed \(4001/.test(window.demoStatus || ''), null, {
    timeout: left(),
    polling: 100,
  });
  const statusC = await demoStatus(c);
  await sleep(1000);
  const pcC = await c.evaluate(() => window.demo.pc);
  if (pcC !== null) throw new Error('the refused tab created a peer connection');
  note(`third tab refused: status "${statusC}", no peer connection`);
  // ... and the call goes on.
  await Promise.all([waitDemoConnected(a, 2000), waitDemoConnected(b, 2000)]);
  await waitForFrames(a, '#remote', 5000, 3);
  note('the call between A and B is still up');
  for (const p of [a, b, c]) await p.context().close();
}

/** Scenario b: the seed client offers into an empty room; a demo tab joins and answers. */
async function scenarioSeed(browser, logs, left, seedBase) {
  const room = `seed-${RUN}`;
  const wsURL = `${BASE.replace(/^http/, 'ws')}/ws?room=${encodeURIComponent(room)}`;
  const seed = await openPage(browser, 'seed', logs);
  await seed.goto(`${seedBase}/seed.html?ws=${encodeURIComponent(wsURL)}`);
  // Its offer (and some candidates) go into the relay's mailbox: nobody else is in the room.
  await seed.waitForFunction(
    () => window.seed && window.seed.ws.readyState === 1 && window.seed.pc.signalingState === 'have-local-offer',
    null,
    { timeout: left(), polling: 50 },
  );
  await sleep(500);
  const seedSdp = await seed.evaluate(() => window.seed.pc.localDescription.sdp);
  const mlines = seedSdp.split('\n').filter((l) => l.startsWith('m=')).map((l) => l.split(' ')[0]);
  const dirs = seedSdp.split('\n').filter((l) => /^a=(sendonly|recvonly|sendrecv|inactive)/.test(l));
  note(`seed offered (${mlines.join(', ')}; ${dirs.map((d) => d.trim().slice(2)).join(', ')}) into an empty room`);

  const demo = await openPage(browser, 'demo', logs);
  await demo.goto(demoURL(room));
  await seed.waitForFunction(() => window.seed.pc.connectionState === 'connected', null, {
    timeout: left(),
    polling: 100,
  });
  await waitDemoConnected(demo, left());
  note('seed and demo tab report connectionState "connected"');
  const seedState = await seed.evaluate(() => ({
    signalingState: window.seed.pc.signalingState,
    receiving: window.seed.pc.getReceivers().map((r) => r.track.kind),
  }));
  note(`seed: ${JSON.stringify(seedState)}`);
  const fs = await waitForFrames(seed, '#video', left());
  note(`the seed plays the demo tab's camera: ${JSON.stringify(fs)}`);
  // The seed's media string ('video+audio') asks for no camera: it only receives, so the demo
  // tab has nothing to play; it must not have an error either way.
  const demoSide = await demo.evaluate(() => ({
    polite: window.demo.polite,
    glare: window.demo.glare,
    signalingState: window.demo.pc.signalingState,
    sending: window.demo.pc.getSenders().filter((s) => s.track).map((s) => s.track.kind),
  }));
  note(`demo tab: ${JSON.stringify(demoSide)}`);
  if (demoSide.signalingState !== 'stable') throw new Error('the demo tab is left mid-negotiation');
  for (const p of [seed, demo]) await p.context().close();
}

async function serveSeed() {
  const html = await readFile(join(HERE, 'seed.html'));
  const server = createServer((req, res) => {
    if (req.url.split('?')[0] === '/seed.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return server;
}

/** Waits (10 s at most) until the relay serves its demo page: it may still be starting. */
async function waitForRelay() {
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      const res = await fetch(`${BASE}/`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
      throw new Error(`GET / answered ${res.status}`);
    } catch (e) {
      if (Date.now() > until) throw new Error(`the relay at ${BASE} does not answer: ${e.message}`);
      await sleep(100);
    }
  }
}

async function main() {
  console.log(`browser end-to-end tests against ${BASE} (chromium: ${CHROMIUM})`);
  await waitForRelay();
  const browser = await withTimeout(
    chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // playwright-core gives the browser a fresh temporary profile (--user-data-dir).
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream',
        '--disable-background-networking',
        '--allow-loopback-in-peer-connection',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    }),
    SCENARIO_TIMEOUT_MS,
    'launching chromium',
  );
  note(`chromium ${browser.version()} started`);
  const seedServer = await serveSeed();
  const seedBase = `http://127.0.0.1:${seedServer.address().port}`;

  const scenarios = [
    ['a: two demo tabs in one room get a video call; a third tab is refused', scenarioCall],
    ['b: the seed client, unchanged, calls a demo tab through the relay', (br, logs, left) => scenarioSeed(br, logs, left, seedBase)],
  ];
  let failed = 0;
  for (const [name, run] of scenarios) {
    const logs = [];
    const start = Date.now();
    // Waits inside a scenario get what is left of its time, less a margin, so that a failure
    // names the step that did not happen rather than the scenario's time limit.
    const left = () => Math.max(1000, SCENARIO_TIMEOUT_MS - 2000 - (Date.now() - start));
    console.log(`scenario ${name}`);
    try {
      await withTimeout(run(browser, logs, left), SCENARIO_TIMEOUT_MS, name);
      console.log(`PASS ${name} (${((Date.now() - start) / 1000).toFixed(1)}s)`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL ${name} (${((Date.now() - start) / 1000).toFixed(1)}s): ${e.message}`);
      for (const line of logs) console.log(`    ${line}`);
      for (const context of browser.contexts()) {
        for (const page of context.pages()) {
          const text = await page
            .evaluate(() => `${document.title} | status: ${window.demoStatus ?? '-'} | log: ${document.getElementById('log')?.textContent ?? '-'}`)
            .catch(() => '(page gone)');
          console.log(`    page ${page.url()}: ${text}`);
        }
        await context.close().catch(() => {});
      }
    }
  }
  seedServer.close();
  await withTimeout(browser.close(), 10_000, 'closing chromium').catch((e) => console.error(e.message));
  console.log(failed ? `${failed} scenario(s) FAILED (${elapsed()})` : `all scenarios passed (${elapsed()})`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
