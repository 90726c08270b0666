// A demo-page tab in Chromium and a Rust peer (str0m 0.25, `rust_peers join`) in one relay room.
//
//   RUST_PEERS=target/debug/rust_peers node examples/browser/rust_peer.mjs http://127.0.0.1:PORT
//
// The relay must already listen at the given URL; this script starts Chromium and the Rust peer
// (as a child process whose stdout reports what its stack and the library saw, one line each).
// Run it inside a loopback-only network namespace (it refuses otherwise, unless
// E2E_ALLOW_NETWORK=1); `examples/tests/rust_peers.rs` does that.
//
// The scenario (bounded by SCENARIO_TIMEOUT_MS, 30 s by default):
//   1. the tab joins the empty room: its offer (camera and microphone, sendonly; video and audio,
//      recvonly) waits in the room's mailbox;
//   2. the Rust peer joins and offers at once on the relay's welcome (a data channel), holding
//      what follows the welcome until its offer is out: the two offers cross. The tab (first in
//      the room, impolite) must ignore the Rust offer; the Rust peer (polite) must roll back and
//      answer the tab's offer, then offer its data channel again once that exchange is over;
//   3. the call comes up: the tab reports connectionState "connected", the Rust peer receives the
//      tab's camera (media packets on its m-section) and its data channel opens;
//   4. the tab adds a second camera track mid-call (`demo.pc.addTransceiver(track)`, which fires
//      negotiationneeded in the demo's perfect-negotiation code); the Rust peer answers: the tab
//      must be back in "stable" with the new transceiver's currentDirection "sendonly", and the
//      Rust peer must receive packets on that new m-section.
// Prints the times from the WebSocket opening to connected / data channel open, one PASS/FAIL
// line, and exits non-zero on failure.

import { spawn } from 'node:child_process';
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
  waitForHttp,
} from './harness.mjs';

const BASE = baseUrl('RELAY_URL', 'RUST_PEERS=... node rust_peer.mjs http://127.0.0.1:PORT');
const RUST_PEERS = process.env.RUST_PEERS;
if (!RUST_PEERS) {
  console.error('RUST_PEERS must name the rust_peers binary');
  process.exit(2);
}
refuseNetwork();

/** The Rust peer as a child process; its stdout lines, and a way to wait for one. */
function startRustPeer(room, logs) {
  const child = spawn(
    RUST_PEERS,
    ['join', '--relay', new URL(BASE).host, '--room', room, '--glare'],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const lines = [];
  const waiters = [];
  let buffered = '';
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    let at;
    while ((at = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      lines.push(line);
      logs.push(`rust peer: ${line}`);
      for (const w of [...waiters]) w();
    }
  });
  child.stderr.on('data', (chunk) => logs.push(`rust peer stderr: ${String(chunk).trimEnd()}`));
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  /** The first line (since line `from`) that `re` matches, as its match. */
  const waitLine = (re, timeout, from = 0) =>
    new Promise((resolve, reject) => {
      const check = () => {
        for (let i = from; i < lines.length; i += 1) {
          const m = re.exec(lines[i]);
          if (m) {
            cleanup();
            resolve(m);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`the Rust peer printed no line like ${re} within ${timeout} ms`));
      }, timeout);
      const cleanup = () => {
        clearTimeout(timer);
        const i = waiters.indexOf(check);
        if (i >= 0) waiters.splice(i, 1);
      };
      waiters.push(check);
      check();
    });
  const stop = async () => {
    child.stdin.end(); // The peer leaves when its stdin closes.
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 5000))]);
    if (code === 'timeout') child.kill('SIGKILL');
    return code;
  };
  return { lines, waitLine, stop };
}

async function scenario(browser, logs, left) {
  const room = `rust-${RUN}`;
  const tab = await openPage(browser, 'demo tab', logs);
  // WebSocket open, as the page sees it (the demo sets its status when its socket opens).
  await tab.goto(`${BASE}/?room=${encodeURIComponent(room)}`);
  await tab.waitForFunction(
    () => window.demo && window.demo.pc && window.demo.pc.signalingState === 'have-local-offer',
    null,
    { timeout: left(), polling: 20 },
  );
  note('the tab is alone in the room; its offer waits in the mailbox');
  const wsOpenAt = Date.now();

  const rust = startRustPeer(room, logs);
  try {
    const welcome = await rust.waitLine(/^welcome polite=(\w+) peers=(\d+)/, left());
    if (welcome[1] !== 'true' || welcome[2] !== '1') {
      throw new Error(`the Rust peer's welcome: ${welcome[0]} (expected polite, one peer)`);
    }
    await rust.waitLine(/^collision rolled-back/, left());
    note('Rust peer: its offer collided with the tab\'s; it rolled back (polite)');
    await tab.waitForFunction(() => window.demo.connected === true, null, { timeout: left(), polling: 50 });
    const connectedAfter = Date.now() - wsOpenAt;
    const tabSide = await tab.evaluate(() => ({
      polite: window.demo.polite,
      glare: window.demo.glare,
      signalingState: window.demo.pc.signalingState,
      connectionState: window.demo.pc.connectionState,
    }));
    note(`tab: ${JSON.stringify(tabSide)}`);
    if (tabSide.polite) throw new Error('the tab, first in the room, was told to be polite');
    if (tabSide.glare < 1) throw new Error('the tab saw no colliding offer');
    note(`the tab ignored the Rust peer's colliding offer (impolite): glare ${tabSide.glare}`);

    const rustConnected = await rust.waitLine(/^connected ([\d.]+) ms after ws-open/, left());
    const channel = await rust.waitLine(/^channel-open rust-peer ([\d.]+) ms after ws-open/, left());
    const firstMedia = await rust.waitLine(/^media mid=(\S+) kind=video packets=[1-9]/, left());
    note(`Rust peer: connected ${rustConnected[1]} ms, data channel open ${channel[1]} ms after its WebSocket opened`);
    note(`tab: connected ${connectedAfter} ms after the Rust peer was started`);
    note(`Rust peer receives the tab's camera on m-section ${firstMedia[1]}`);

    // Mid-call: the tab adds a second camera track; the demo's negotiationneeded handler offers.
    const from = rust.lines.length;
    await tab.evaluate(async () => {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true });
      window.added = window.demo.pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly' });
    });
    await tab.waitForFunction(
      () =>
        window.added.mid !== null &&
        window.demo.pc.signalingState === 'stable' &&
        window.added.currentDirection === 'sendonly',
      null,
      { timeout: left(), polling: 50 },
    );
    const added = await tab.evaluate(() => ({
      mid: window.added.mid,
      currentDirection: window.added.currentDirection,
      signalingState: window.demo.pc.signalingState,
      transceivers: window.demo.pc.getTransceivers().length,
    }));
    note(`tab after the renegotiation: ${JSON.stringify(added)}`);
    if (added.mid === firstMedia[1]) throw new Error('the new transceiver reused the first m-section');
    const escaped = added.mid.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const media = await rust.waitLine(new RegExp(`^media mid=${escaped} kind=video packets=([1-9]\\d*)`), left(), from);
    note(`Rust peer receives the new track on m-section ${added.mid} (${media[1]} packet(s) so far)`);
  } finally {
    const code = await rust.stop();
    note(`Rust peer exited (${code})`);
    await tab.context().close();
  }
}

async function main() {
  console.log(`a demo tab and a Rust peer (str0m) through the relay at ${BASE}`);
  hardStop(1);
  await waitForHttp(`${BASE}/`);
  const browser = await launchChromium();
  const failed = await runScenarios(browser, [
    ['rust peer: glare, call, the tab adds a track mid-call', scenario],
  ]);
  await finish(browser, failed);
}

main().catch((e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
