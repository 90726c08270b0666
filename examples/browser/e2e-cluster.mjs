// Real-browser end-to-end tests of two relay binaries run as two nodes of a cluster (one NATS
// server): the two tabs of a call are on different nodes.
//
//   node examples/browser/e2e-cluster.mjs http://127.0.0.1:PORT1 http://127.0.0.1:PORT2
//   (or RELAY_URLS="http://127.0.0.1:PORT1 http://127.0.0.1:PORT2")
//
// Starts nothing but a headless Chromium and a tiny HTTP server for seed.html; NATS and both
// relays (`relay --nats URL --node NAME`) must already run. As e2e.mjs, it refuses to run with a
// network interface other than loopback up, unless E2E_ALLOW_NETWORK=1.
// `examples/tests/browser.rs` starts NATS, both nodes and this script in a loopback-only network
// namespace:
//
//   SIGNALING_REQUIRE_BROWSER=1 SIGNALING_REQUIRE_NATS=1 cargo test -p examples --test browser -- --nocapture
//
// Scenarios (each bounded by SCENARIO_TIMEOUT_MS, 30 s by default):
//   a. a demo tab on node 1 and one on node 2, same room, get a video call both ways; a third
//      tab, on node 2, is refused with 4001;
//   b. the seed client offers on node 2 into an empty room (its offer waits in the room's
//      mailbox); a demo tab on node 1 answers.
// Prints one PASS/FAIL line per scenario; exits non-zero if any failed.
// E2E_SCREENSHOT (default /tmp/relay-cluster-demo.png) is where scenario a's screenshot goes.

import {
  RUN,
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

const USAGE = 'node e2e-cluster.mjs http://127.0.0.1:PORT1 http://127.0.0.1:PORT2   (or RELAY_URLS="URL1 URL2")';
const BASES = (process.argv.length > 3 ? process.argv.slice(2, 4) : (process.env.RELAY_URLS || '').split(/\s+/))
  .filter(Boolean)
  .map((u) => u.replace(/\/+$/, ''));
if (BASES.length !== 2 || !BASES.every((u) => /^https?:\/\//.test(u))) {
  console.error(`usage: ${USAGE}`);
  process.exit(2);
}
const [NODE1, NODE2] = BASES;
const SCREENSHOT = process.env.E2E_SCREENSHOT || '/tmp/relay-cluster-demo.png';
refuseNetwork();

const demoURL = (base, room) => `${base}/?room=${encodeURIComponent(room)}`;

async function waitDemoConnected(page, timeout) {
  await page.waitForFunction(() => window.demo && window.demo.connected === true, null, {
    timeout,
    polling: 100,
  });
}

/** Scenario a: a call between a tab on node 1 and a tab on node 2; a third tab is refused. */
async function scenarioCall(browser, logs, left) {
  const room = `cluster-${RUN}`;
  const a = await openPage(browser, 'tab A (node 1)', logs);
  const b = await openPage(browser, 'tab B (node 2)', logs);
  await a.goto(demoURL(NODE1, room));
  await b.goto(demoURL(NODE2, room));
  await Promise.all([waitDemoConnected(a, left()), waitDemoConnected(b, left())]);
  note('both tabs, on two nodes, report connectionState "connected"');
  const [fa, fb] = await Promise.all([
    waitForFrames(a, '#remote', left()),
    waitForFrames(b, '#remote', left()),
  ]);
  note(`tab A (node 1) plays the peer's video: ${JSON.stringify(fa)}`);
  note(`tab B (node 2) plays the peer's video: ${JSON.stringify(fb)}`);
  const info = async (p) =>
    p.evaluate(() => ({
      polite: window.demo.polite,
      glare: window.demo.glare,
      offersSent: window.demo.offersSent,
      signalingState: window.demo.pc.signalingState,
    }));
  const [ia, ib] = await Promise.all([info(a), info(b)]);
  note(`tab A: ${JSON.stringify(ia)}`);
  note(`tab B: ${JSON.stringify(ib)}`);
  if (ia.polite === ib.polite) throw new Error('both tabs got the same politeness hint');
  await b.screenshot({ path: SCREENSHOT, fullPage: true });
  note(`screenshot: ${SCREENSHOT}`);

  // A third tab on node 2: the room (capacity 2, run on node 1) is full.
  const c = await openPage(browser, 'tab C (node 2)', logs);
  await c.goto(demoURL(NODE2, room));
  await c.waitForFunction(() => /^socket closed \(4001/.test(window.demoStatus || ''), null, {
    timeout: left(),
    polling: 100,
  });
  note(`third tab refused: status "${await c.evaluate(() => window.demoStatus)}"`);
  await sleep(500);
  await Promise.all([waitDemoConnected(a, 2000), waitDemoConnected(b, 2000)]);
  await waitForFrames(a, '#remote', 5000, 3);
  note('the call between A and B is still up');
  for (const p of [a, b, c]) await p.context().close();
}

/** Scenario b: the seed client offers on node 2 into an empty room; a tab on node 1 answers. */
async function scenarioSeed(browser, logs, left, seedBase) {
  const room = `cluster-seed-${RUN}`;
  const wsURL = `${NODE2.replace(/^http/, 'ws')}/ws?room=${encodeURIComponent(room)}`;
  const seed = await openPage(browser, 'seed (node 2)', logs);
  await seed.goto(`${seedBase}/seed.html?ws=${encodeURIComponent(wsURL)}`);
  await seed.waitForFunction(
    () => window.seed && window.seed.ws.readyState === 1 && window.seed.pc.signalingState === 'have-local-offer',
    null,
    { timeout: left(), polling: 50 },
  );
  await sleep(500);
  note('the seed client (node 2) offered into an empty room');
  const demo = await openPage(browser, 'demo (node 1)', logs);
  await demo.goto(demoURL(NODE1, room));
  await seed.waitForFunction(() => window.seed.pc.connectionState === 'connected', null, {
    timeout: left(),
    polling: 100,
  });
  await waitDemoConnected(demo, left());
  note('seed (node 2) and demo tab (node 1) report connectionState "connected"');
  const fs = await waitForFrames(seed, '#video', left());
  note(`the seed plays the demo tab's camera: ${JSON.stringify(fs)}`);
  for (const p of [seed, demo]) await p.context().close();
}

async function main() {
  console.log(`browser end-to-end tests against two cluster nodes: ${NODE1} and ${NODE2}`);
  hardStop(2);
  await Promise.all([waitForHttp(`${NODE1}/`), waitForHttp(`${NODE2}/`)]);
  const browser = await launchChromium();
  const seed = await serveSeed();
  const failed = await runScenarios(browser, [
    ['a: demo tabs on two nodes, one room, get a video call; a third tab is refused', scenarioCall],
    ['b: the seed client on node 2 calls a demo tab on node 1', (br, logs, left) => scenarioSeed(br, logs, left, seed.base)],
  ]);
  seed.server.close();
  await finish(browser, failed);
}

main().catch((e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
