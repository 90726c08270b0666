// Real-browser end-to-end tests of the relay binary: one relay, or two relays run as two nodes of
// a cluster (one NATS server), with the two tabs of a call on different nodes.
//
//   node examples/browser/e2e.mjs http://127.0.0.1:PORT      (or RELAY_URL=http://...)
//   node examples/browser/e2e.mjs http://127.0.0.1:PORT1 http://127.0.0.1:PORT2   (two nodes)
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
//   a. two demo-page tabs in one room get a video call both ways; a third tab is refused
//      (with two nodes: tab A on node 1, tabs B and C on node 2);
//   b. the seed client (seed.html) offers first into an empty room (its offer waits in the
//      room's mailbox); a demo-page tab answers through the relay (with two nodes: the seed on
//      node 2, the demo tab on node 1).
// Prints one PASS/FAIL line per scenario; exits non-zero if any failed.
// E2E_SCREENSHOT (default /tmp/relay-demo.png) is where scenario a's screenshot goes.

import {
  RUN,
  baseUrl,
  finish,
  hardStop,
  launchChromium,
  note,
  openPage,
  refuseNetwork,
  runScenarios,
  serveSeed,
  sleep,
  waitForFrames,
  waitForHttp,
} from './harness.mjs';

const BASE = baseUrl('RELAY_URL', 'node e2e.mjs http://127.0.0.1:PORT [http://127.0.0.1:PORT2]   (or RELAY_URL=...)');
// The second node, when two run; otherwise the same relay.
const BASE2 = (process.argv[3] || BASE).replace(/\/+$/, '');
const SCREENSHOT = process.env.E2E_SCREENSHOT || '/tmp/relay-demo.png';
refuseNetwork();

const demoURL = (room, base = BASE) => `${base}/?room=${encodeURIComponent(room)}`;
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
  await b.goto(demoURL(room, BASE2));
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
  await c.goto(demoURL(room, BASE2));
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
  const wsURL = `${BASE2.replace(/^http/, 'ws')}/ws?room=${encodeURIComponent(room)}`;
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

async function main() {
  console.log(`browser end-to-end tests against ${BASE === BASE2 ? BASE : `two nodes: ${BASE} and ${BASE2}`}`);
  hardStop(2);
  await Promise.all([waitForHttp(`${BASE}/`), waitForHttp(`${BASE2}/`)]);
  const browser = await launchChromium();
  const seed = await serveSeed();
  const failed = await runScenarios(browser, [
    ['a: two demo tabs in one room get a video call; a third tab is refused', scenarioCall],
    ['b: the seed client, unchanged, calls a demo tab through the relay', (br, logs, left) => scenarioSeed(br, logs, left, seed.base)],
  ]);
  seed.server.close();
  await finish(browser, failed);
}

main().catch((e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
