// Runs sequences of signaling operations on Chromium's RTCPeerConnection with the W3C perfect
// negotiation pattern (WebRTC 1.0 §10.7), and records what each one did, for
// `examples/tests/w3c.rs` to replay on the crate's state machine and compare.
//
//   W3C_CASES=cases.json W3C_RESULTS=results.json node examples/browser/w3c.mjs
//
// A case is {"polite": bool, "ops": [op, ...]}, op one of startOffer, cancelOffer, localOffer,
// localAnswer, localPranswer, remoteOffer, remoteAnswer, remotePranswer, rollback, close. For
// each op the result is {"result": "ok" | "refused" | "ignored", "state": signalingState,
// "makingOffer": bool, "sdp": the description used (null when none was made)}.
// Remote descriptions come from two more RTCPeerConnections (see runAll).

import { readFile, writeFile } from 'node:fs/promises';
import { launchChromium, note, refuseNetwork } from './harness.mjs';

refuseNetwork();
const BATCH = 20;
const CASES = process.env.W3C_CASES;
const RESULTS = process.env.W3C_RESULTS;
if (!CASES || !RESULTS) {
  console.error('usage: W3C_CASES=cases.json W3C_RESULTS=results.json node w3c.mjs');
  process.exit(2);
}

/**
 * Runs in the page: every case on a fresh subject RTCPeerConnection. Remote descriptions come
 * from two helpers of the case (one certificate each, so renegotiations keep their DTLS
 * identity): an offerer whose offers carry the mid the subject already knows, and an answerer
 * that answers the subject's current local offer and then forgets it.
 */
async function runAll(cases) {
  const out = [];
  for (const { polite, ops } of cases) {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('audio');
    const offerer = new RTCPeerConnection();
    offerer.addTransceiver('audio');
    const answerer = new RTCPeerConnection();
    let lastAnswer = null;
    const remoteOffer = async () => {
      // A later offer must list the m-sections the subject already has, in order, with their
      // mids; Chromium also numbers mids anew at every createOffer until an offer is applied.
      const known = pc.currentRemoteDescription ?? pc.currentLocalDescription ?? pc.pendingRemoteDescription;
      const mids = known ? [...known.sdp.matchAll(/^a=mid:(\S+)\r?$/gm)].map((m) => m[1]) : [];
      while (offerer.getTransceivers().length < Math.max(1, mids.length)) offerer.addTransceiver('audio');
      const { sdp } = await offerer.createOffer();
      let i = 0;
      const renamed = sdp.replace(/^a=mid:\S+$/gm, () => `a=mid:${mids[i++] ?? `x${i}`}`);
      const all = [...renamed.matchAll(/^a=mid:(\S+)$/gm)].map((m) => m[1]);
      return renamed.replace(/^a=group:BUNDLE .*$/m, `a=group:BUNDLE ${all.join(' ')}`);
    };
    const remoteAnswer = async () => {
      const offer = pc.pendingLocalDescription ?? (pc.localDescription?.type === 'offer' ? pc.localDescription : null);
      if (!offer) return lastAnswer;
      await answerer.setRemoteDescription(offer);
      const { sdp } = await answerer.createAnswer();
      await answerer.setLocalDescription({ type: 'rollback' });
      lastAnswer = sdp;
      return sdp;
    };
    let makingOffer = false;
    let pending = null;
    const steps = [];
    for (const op of ops) {
      let result = 'ok';
      let sdp = null;
      try {
        switch (op) {
          case 'startOffer':
            // negotiationneeded: makingOffer = true, then the offer is created.
            pending = await pc.createOffer();
            makingOffer = true;
            break;
          case 'cancelOffer':
            // The pattern's `finally`.
            makingOffer = false;
            pending = null;
            break;
          case 'localOffer': {
            const offer = pending ?? (await pc.createOffer());
            sdp = offer.sdp;
            await pc.setLocalDescription(offer);
            pending = null;
            makingOffer = false;
            break;
          }
          case 'localAnswer':
          case 'localPranswer': {
            const answer = await pc.createAnswer();
            sdp = answer.sdp;
            const type = op === 'localAnswer' ? 'answer' : 'pranswer';
            await pc.setLocalDescription({ type, sdp });
            break;
          }
          case 'remoteOffer': {
            sdp = await remoteOffer();
            const collision = makingOffer || pc.signalingState !== 'stable';
            if (!polite && collision) {
              result = 'ignored';
              break;
            }
            await pc.setRemoteDescription({ type: 'offer', sdp });
            makingOffer = false;
            pending = null;
            break;
          }
          case 'remoteAnswer':
          case 'remotePranswer': {
            sdp = await remoteAnswer();
            const type = op === 'remoteAnswer' ? 'answer' : 'pranswer';
            if (sdp === null) {
              // No offer was ever made, so no answer exists: the state refuses one anyway.
              result = 'refused';
              break;
            }
            await pc.setRemoteDescription({ type, sdp });
            break;
          }
          case 'rollback':
            await pc.setLocalDescription({ type: 'rollback' });
            makingOffer = false;
            pending = null;
            break;
          case 'close':
            pc.close();
            makingOffer = false;
            break;
          default:
            throw new Error(`unknown op ${op}`);
        }
      } catch (e) {
        result = e.name === 'InvalidStateError' ? 'refused' : `error: ${e.name}: ${e.message}`;
      }
      steps.push({ result, state: pc.signalingState, makingOffer, sdp });
    }
    for (const c of [pc, offerer, answerer]) c.close();
    out.push(steps);
  }
  return out;
}

async function main() {
  const cases = JSON.parse(await readFile(CASES, 'utf8'));
  const browser = await launchChromium();
  const started = Date.now();
  // Chromium limits the peer connections of a page (closed ones are freed lazily): a fresh
  // page for every batch of cases.
  const results = [];
  for (let i = 0; i < cases.length; i += BATCH) {
    const context = await browser.newContext();
    const page = await context.newPage();
    results.push(...(await page.evaluate(runAll, cases.slice(i, i + BATCH))));
    await context.close();
  }
  const ops = cases.reduce((n, c) => n + c.ops.length, 0);
  note(`${cases.length} cases, ${ops} operations run in Chromium ${browser.version()} in ${Date.now() - started} ms`);
  await writeFile(RESULTS, JSON.stringify(results));
  await browser.close();
}

main().catch((e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
