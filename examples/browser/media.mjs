// Real-browser tests of the media_server binary.
//
//   node examples/browser/media.mjs http://127.0.0.1:PORT      (or MEDIA_URL=http://...)
//
// Starts nothing but a headless Chromium (Debian's /usr/bin/chromium, or CHROMIUM=/path) and a
// tiny HTTP server on 127.0.0.1 for seed.html; the media server must already listen at the given
// URL. WebRTC gathers the address of every interface, so run this (and the server) inside a
// loopback-only network namespace; the script refuses to run with any other interface up, unless
// E2E_ALLOW_NETWORK=1. `examples/tests/media_server.rs` does all of that:
//
//   SIGNALING_REQUIRE_BROWSER=1 cargo test -p examples --test media_server -- --nocapture
//
// Scenarios (each bounded by SCENARIO_TIMEOUT_MS, 30 s by default), each asserting decoded video:
//   1. the seed client in camera mode (?media=camera+microphone+video+audio) on
//      /api/ws?src=me-RUN&dst=me-RUN gets its own camera back, audio and video in one stream;
//   2. a demo-page publisher and 3 seed clients (receive only, src=NAME) watching it;
//   3. a seed viewer connects first; then a seed publisher (camera mode, dst=NAME) arrives: the
//      viewer plays without renegotiating; the publisher leaves, the viewer stays connected, and
//      a second publisher of the same name (the demo page) plays in it;
//   4. page JS on one socket: garbage SDP and an SDP the stack refuses each get an `error` frame
//      with go2rtc's "webrtc/offer: " prefix, then a real offer on the same socket gets video;
//      and a v2-dialect client ({"type":"webrtc","value":{"type":"offer",..}}) gets a v2 answer
//      and video;
//   5. a simulcast publisher (demo page, three layers): the viewer gets the first layer listed,
//      and the next one when that layer stops;
//   6. WHIP: medooze's whip.js (npm whip-whep, an independent client) publishes the fake camera
//      into /whip/NAME and a seed client watches ?src=NAME; the server's counters show its
//      trickle PATCHes; whip.js's ICE restart (PATCH with If-Match: "*") is answered 200, the
//      browser's selected candidate pair moves to the new ICE credentials and the viewer keeps
//      decoding; whip.js's DELETE ends the session and the viewer stays connected;
//   7. WHEP: whep.js plays /whep/NAME before anyone publishes NAME (the server answers 201 and
//      the player waits, as a ?src=NAME WebSocket client does); a seed client publishes
//      ?dst=NAME and the player decodes it; an ICE restart by whep.js, and the player keeps
//      decoding.
// Scenarios 6 and 7 load whip.html and the two modules from the test's own static server (another
// origin than the media server's: every WHIP/WHEP request is a CORS request) and read the
// server's counters at /api/stats.
// Each scenario prints the time from WebSocket open to the first decoded frame (scenario 3: from
// the publisher's socket opening). E2E_REPEAT=N runs the list N times and prints each figure's
// median; E2E_ONLY=1,3 runs only those scenarios. In every page the server's first frame must be
// its answer (never a candidate first).

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

const BASE = baseUrl('MEDIA_URL', 'node media.mjs http://127.0.0.1:PORT   (or MEDIA_URL=...)');
const WS = `${BASE.replace(/^http/, 'ws')}/api/ws`;
/** What the static server serves besides the seed client: the WHIP/WHEP page and its modules. */
const WHIP_FILES = {
  '/whip.html': 'whip.html',
  '/whip-whep/whip.js': 'node_modules/whip-whep/whip.js',
  '/whip-whep/whep.js': 'node_modules/whip-whep/whep.js',
};
const REPEAT = Math.max(1, Number(process.env.E2E_REPEAT || 1));
refuseNetwork();

/**
 * Runs in every page before its own scripts: records when each WebSocket opened and what it sent
 * and received (frame types, in order), and when each <video> presented its first frame. Times
 * are wall-clock milliseconds (timeOrigin + now), comparable across pages.
 */
const INSTRUMENT = () => {
  const wall = () => performance.timeOrigin + performance.now();
  window.__media = { opened: [], sent: [], received: [], firstFrame: {} };
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('open', () => window.__media.opened.push(wall()));
      this.addEventListener('message', (ev) => {
        try {
          window.__media.received.push(JSON.parse(ev.data).type);
        } catch {
          window.__media.received.push('(not JSON)');
        }
      });
    }
    send(data) {
      try {
        const msg = JSON.parse(data);
        const value = msg.value && typeof msg.value === 'object' ? `/${msg.value.type}` : '';
        window.__media.sent.push(`${msg.type}${value}`);
      } catch {
        window.__media.sent.push('(not JSON)');
      }
      return super.send(data);
    }
  };
  window.__watchFirstFrame = (video) => {
    video.requestVideoFrameCallback(() => {
      window.__media.firstFrame[video.id] ??= wall();
    });
  };
  document.addEventListener('DOMContentLoaded', () => {
    document.querySelectorAll('video').forEach((v) => window.__watchFirstFrame(v));
  });
};

/**
 * The seed client asks `setCodecPreferences([{mimeType:'video/VP8',clockRate:90000},
 * {mimeType:'video/H264',clockRate:90000}])`. Chromium now refuses entries that are not exactly
 * one of `RTCRtpReceiver.getCapabilities()`' codecs ("Missing codec from codec capabilities"),
 * and the throw aborts the seed's camera mode before it opens its socket. This shim, installed
 * in the page before the seed runs (the seed itself is unchanged), expands each partial entry to
 * the capabilities' codecs it names: what the seed means (VP8 first, then H264).
 */
const CODEC_PREFERENCES_SHIM = () => {
  const native = RTCRtpTransceiver.prototype.setCodecPreferences;
  RTCRtpTransceiver.prototype.setCodecPreferences = function setCodecPreferences(codecs) {
    const kind = this.receiver.track.kind;
    const caps = RTCRtpReceiver.getCapabilities(kind)?.codecs ?? [];
    const expanded = codecs.flatMap((c) =>
      c.sdpFmtpLine !== undefined
        ? [c]
        : caps.filter(
            (k) => k.mimeType.toLowerCase() === c.mimeType.toLowerCase() && k.clockRate === c.clockRate,
          ),
    );
    return native.call(this, expanded);
  };
};

async function instrumentedPage(browser, name, logs) {
  const page = await openPage(browser, name, logs);
  await page.addInitScript(INSTRUMENT);
  await page.addInitScript(CODEC_PREFERENCES_SHIM);
  return page;
}

const timings = new Map();
function record(label, ms) {
  if (!timings.has(label)) timings.set(label, []);
  timings.get(label).push(ms);
  note(`${label}: ${ms.toFixed(0)} ms from WebSocket open to the first decoded frame`);
}

/** The page's wall-clock time of its WebSocket's opening (the `index`-th one it opened). */
const openedAt = (page, index = 0) => page.evaluate((i) => window.__media.opened[i], index);
/** The wall-clock time `videoId` presented its first frame (waits for it). */
const firstFrameAt = (page, videoId) =>
  page
    .waitForFunction((id) => window.__media.firstFrame[id], videoId, { polling: 20 })
    .then((h) => h.jsonValue());

/** Throws unless the server's first frame to this page was its answer. */
async function answerCameFirst(page, what) {
  const { received, sent } = await page.evaluate(() => window.__media);
  const first = received[0];
  if (first !== 'webrtc/answer' && first !== 'webrtc') {
    throw new Error(`${what}: the server's first frame was ${first} (received: ${received.join(', ')})`);
  }
  const early = sent.indexOf('webrtc/offer');
  const before = sent.slice(0, Math.max(0, early)).filter((t) => t === 'webrtc/candidate').length;
  return `${what}: sent ${sent.length} frames (${before} candidate(s) before the offer), received ${received.join(', ')}`;
}

/** The tracks of the MediaStream shown in `selector`. */
const shownTracks = (page, selector) =>
  page.evaluate((sel) => {
    const s = document.querySelector(sel).srcObject;
    return s ? s.getTracks().map((t) => t.kind).sort() : [];
  }, selector);

const seedPage = (seedBase, ws, media) =>
  `${seedBase}/seed.html?ws=${encodeURIComponent(ws)}${media ? `&media=${media}` : ''}`;

/** 1: the seed client in camera mode gets its own camera back. */
async function scenarioSelfView(browser, logs, left, seedBase, run) {
  const name = `me-${RUN}-${run}`;
  const seed = await instrumentedPage(browser, 'seed self-view', logs);
  await seed.goto(seedPage(seedBase, `${WS}?src=${name}&dst=${name}`, 'camera+microphone+video+audio'));
  const frames = await waitForFrames(seed, '#video', left());
  record('1 self-view (seed, camera mode)', (await firstFrameAt(seed, 'video')) - (await openedAt(seed)));
  note(`the seed plays its own camera back: ${JSON.stringify(frames)}`);
  const tracks = await shownTracks(seed, '#video');
  if (tracks.join() !== 'audio,video') {
    throw new Error(`the seed shows a stream with [${tracks}], not its audio and video together`);
  }
  note(await answerCameFirst(seed, 'seed'));
  await seed.context().close();
}

/** 2: a demo-page publisher and three seed viewers. */
async function scenarioFanOut(browser, logs, left, seedBase, run) {
  const name = `cam-${RUN}-${run}`;
  const publisher = await instrumentedPage(browser, 'demo publisher', logs);
  await publisher.goto(`${BASE}/?name=${name}`);
  await publisher.click('#publish');
  await publisher.waitForFunction(() => window.demo && window.demo.connected, null, {
    timeout: left(),
    polling: 50,
  });
  note(`demo page publishes ${name}: ${await publisher.evaluate(() => window.demoStatus)}`);
  const viewers = [];
  for (let i = 0; i < 3; i += 1) {
    const v = await instrumentedPage(browser, `seed viewer ${i + 1}`, logs);
    await v.goto(seedPage(seedBase, `${WS}?src=${name}`));
    viewers.push(v);
  }
  const seen = await Promise.all(viewers.map((v) => waitForFrames(v, '#video', left())));
  for (const [i, v] of viewers.entries()) {
    record('2 fan-out (3 seed viewers of a demo publisher)', (await firstFrameAt(v, 'video')) - (await openedAt(v)));
    note(`viewer ${i + 1} plays: ${JSON.stringify(seen[i])}; ${await answerCameFirst(v, `viewer ${i + 1}`)}`);
  }
  for (const p of [publisher, ...viewers]) await p.context().close();
}

/** 3: the viewer is there first; the publisher arrives later. */
async function scenarioViewerFirst(browser, logs, left, seedBase, run) {
  const name = `late-${RUN}-${run}`;
  const viewer = await instrumentedPage(browser, 'early viewer', logs);
  await viewer.goto(seedPage(seedBase, `${WS}?src=${name}`));
  await viewer.waitForFunction(() => window.seed && window.seed.pc.connectionState === 'connected', null, {
    timeout: left(),
    polling: 50,
  });
  const before = await viewer.evaluate(() => document.getElementById('video').videoWidth);
  note(`the viewer is connected to an empty stream (video width ${before})`);
  const publisher = await instrumentedPage(browser, 'late publisher', logs);
  await publisher.goto(seedPage(seedBase, `${WS}?dst=${name}`, 'camera+microphone'));
  const frames = await waitForFrames(viewer, '#video', left());
  record('3 viewer first, then publisher', (await firstFrameAt(viewer, 'video')) - (await openedAt(publisher)));
  note(`the early viewer plays the late publisher: ${JSON.stringify(frames)}`);
  note(await answerCameFirst(viewer, 'viewer'));
  // The publisher leaves: the viewer stays connected, and the next publisher of the name feeds it.
  await publisher.context().close();
  await viewer.waitForTimeout(500);
  const after = await viewer.evaluate(() => ({
    connection: window.seed.pc.connectionState,
    socket: window.seed.ws.readyState,
  }));
  if (after.connection !== 'connected' || after.socket !== 1) {
    throw new Error(`the viewer lost its connection with the publisher: ${JSON.stringify(after)}`);
  }
  const next = await instrumentedPage(browser, 'next publisher', logs);
  await next.goto(`${BASE}/?name=${name}`);
  await next.click('#publish');
  const again = await waitForFrames(viewer, '#video', left());
  note(`publisher left (viewer ${after.connection}); a demo-page publisher of the same name plays: ${JSON.stringify(again)}`);
  const answers = await viewer.evaluate(() => window.__media.received.filter((t) => t.includes('answer')).length);
  if (answers !== 1) throw new Error(`the viewer saw ${answers} answers: it was renegotiated`);
  for (const p of [viewer, next]) await p.context().close();
}

/**
 * 5: a simulcast publisher (the demo page, three layers of a 1280x720 camera): a viewer gets the
 * first layer listed (`high`, full size); when that layer stops, the next one (`medium`, half
 * size) without renegotiation.
 */
async function scenarioSimulcast(browser, logs, left, seedBase, run) {
  const name = `sim-${RUN}-${run}`;
  const publisher = await instrumentedPage(browser, 'simulcast publisher', logs);
  await publisher.goto(`${BASE}/?name=${name}&simulcast=1`);
  await publisher.click('#publish');
  await publisher.waitForFunction(() => window.demo && window.demo.connected, null, { timeout: left(), polling: 50 });
  const viewer = await instrumentedPage(browser, 'simulcast viewer', logs);
  await viewer.goto(seedPage(seedBase, `${WS}?src=${name}`));
  await waitForFrames(viewer, '#video', left());
  record('5 simulcast viewer', (await firstFrameAt(viewer, 'video')) - (await openedAt(viewer)));
  // Until the high layer's first frames arrive, a lower one that arrived first is forwarded.
  await viewer.waitForFunction(() => document.getElementById('video').videoWidth === 1280, null, {
    timeout: left(),
    polling: 100,
  });
  const full = await waitForFrames(viewer, '#video', left());
  const layers = await publisher.evaluate(async () => {
    const stats = await window.demo.pc.getStats();
    return [...stats.values()]
      .filter((s) => s.type === 'outbound-rtp' && s.kind === 'video')
      .map((s) => `${s.rid}:${s.frameWidth}x${s.frameHeight}`);
  });
  note(`the publisher sends ${layers.join(', ')}; the viewer plays ${full.width}x${full.height}`);
  // The high layer stops: the server moves to the medium one.
  await publisher.evaluate(async () => {
    const sender = window.demo.sender;
    const p = sender.getParameters();
    p.encodings[0].active = false;
    await sender.setParameters(p);
  });
  await viewer.waitForFunction(() => document.getElementById('video').videoWidth === 640, null, {
    timeout: left(),
    polling: 100,
  });
  const half = await waitForFrames(viewer, '#video', left());
  note(`high layer stopped: the viewer plays ${half.width}x${half.height}`);
  for (const p of [viewer, publisher]) await p.context().close();
}

/**
 * Page JS for scenario 4: one socket; the offers in `bad` (each must get an `error` frame
 * starting with `prefix`), then a real offer (camera sent, video and audio received back) in
 * dialect v1 or v2. Resolves with what it saw once the answer is applied; the received stream
 * plays in <video id="probe">.
 */
const PROBE = async ({ url, bad, v2, prefix, timeout }) => {
  const ws = new WebSocket(url);
  const inbox = [];
  let wake = () => {};
  ws.onmessage = (ev) => {
    inbox.push(JSON.parse(ev.data));
    wake();
  };
  const next = (pred, what) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeout} ms; got ${JSON.stringify(inbox)}`)), timeout);
      const look = () => {
        const i = inbox.findIndex(pred);
        if (i >= 0) {
          clearTimeout(timer);
          resolve(inbox.splice(i, 1)[0]);
        }
      };
      wake = look;
      look();
    });
  const offer = (sdp) => (v2 ? { type: 'webrtc', value: { type: 'offer', sdp } } : { type: 'webrtc/offer', value: sdp });
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('socket error'));
  });
  const errors = [];
  for (const sdp of bad) {
    ws.send(JSON.stringify(offer(sdp)));
    const err = await next((m) => m.type === 'error', 'error frame');
    if (typeof err.value !== 'string' || !err.value.startsWith(prefix)) {
      throw new Error(`error frame without the ${prefix} prefix: ${JSON.stringify(err)}`);
    }
    errors.push(err.value);
  }
  const pc = new RTCPeerConnection();
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const video = document.createElement('video');
  video.id = 'probe';
  video.muted = true;
  video.autoplay = true;
  document.body.append(video);
  window.__watchFirstFrame(video);
  pc.ontrack = (ev) => {
    video.srcObject = ev.streams[0];
  };
  pc.onicecandidate = (ev) => ws.send(JSON.stringify({ type: 'webrtc/candidate', value: ev.candidate ? ev.candidate.candidate : '' }));
  window.probe = { pc, ws };
  await pc.setLocalDescription(await pc.createOffer());
  ws.send(JSON.stringify(offer(pc.localDescription.sdp)));
  const answer = await next((m) => m.type === 'webrtc/answer' || m.type === 'webrtc', 'answer');
  const sdp = v2 ? answer.value && answer.value.sdp : answer.value;
  if (v2 && !(answer.type === 'webrtc' && answer.value.type === 'answer')) {
    throw new Error(`not a v2 answer: ${JSON.stringify(answer).slice(0, 120)}`);
  }
  await pc.setRemoteDescription({ type: 'answer', sdp });
  // Candidates the server trickles (it has none beyond the answer's, then '').
  (async () => {
    for (;;) {
      const c = await next((m) => m.type === 'webrtc/candidate', 'candidate').catch(() => null);
      if (!c) return;
      const text = typeof c.value === 'string' ? c.value : c.value && c.value.candidate;
      if (text) await pc.addIceCandidate({ candidate: text, sdpMid: '0' });
    }
  })();
  return { errors, answer: v2 ? `{"type":"webrtc","value":{"type":"${answer.value.type}",..}}` : answer.type };
};

const NO_FINGERPRINT =
  'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\na=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\na=recvonly\r\n';

/** 4: bad offers then a good one on one socket (v1), and a v2 client. */
async function scenarioErrorsAndDialects(browser, logs, left, run) {
  for (const v2 of [false, true]) {
    const name = `probe-${v2 ? 'v2' : 'v1'}-${RUN}-${run}`;
    const page = await instrumentedPage(browser, `probe ${v2 ? 'v2' : 'v1'}`, logs);
    await page.goto(`${BASE}/`);
    const bad = v2 ? [NO_FINGERPRINT] : ['this is not SDP', NO_FINGERPRINT];
    const prefix = v2 ? 'webrtc: ' : 'webrtc/offer: ';
    const seen = await page.evaluate(PROBE, {
      url: `${WS}?src=${name}&dst=${name}`,
      bad,
      v2,
      prefix,
      timeout: Math.min(10_000, left()),
    });
    for (const e of seen.errors) note(`${v2 ? 'v2' : 'v1'} bad offer answered with error: ${JSON.stringify(e)}`);
    note(`${v2 ? 'v2' : 'v1'} good offer on the same socket answered with ${seen.answer}`);
    const frames = await waitForFrames(page, '#probe', left());
    record(
      `4 ${v2 ? 'v2 client' : 'v1 client after bad offers'} (page JS, own camera back)`,
      (await firstFrameAt(page, 'probe')) - (await openedAt(page)),
    );
    note(`${v2 ? 'v2' : 'v1'} client plays its camera back: ${JSON.stringify(frames)}`);
    await page.context().close();
  }
}

/** The media server's counters (`GET /api/stats`). */
async function serverStats() {
  const res = await fetch(`${BASE}/api/stats`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET /api/stats answered ${res.status}`);
  return res.json();
}

/** Polls the server's counters until `pred(stats)` holds; the last ones seen. */
async function statsUntil(pred, what, timeout) {
  const until = Date.now() + timeout;
  for (;;) {
    const stats = await serverStats();
    if (pred(stats)) return stats;
    if (Date.now() > until) throw new Error(`server counters: ${what} did not happen: ${JSON.stringify(stats)}`);
    await sleep(100);
  }
}

/**
 * Page JS: the ICE side of `window.pc`: its connection state, the ufrags of its current local
 * and remote descriptions, and the selected candidate pair with the local ufrag Chromium's
 * transport stats give for it.
 */
const ICE_VIEW = async () => {
  const pc = window.pc;
  const ufrag = (d) => (d ? (d.sdp.match(/a=ice-ufrag:(.*)\r\n/) || [])[1] : null);
  const stats = await pc.getStats();
  const transport = [...stats.values()].find((s) => s.type === 'transport');
  const pair = transport && stats.get(transport.selectedCandidatePairId);
  const local = pair && stats.get(pair.localCandidateId);
  const remote = pair && stats.get(pair.remoteCandidateId);
  const rtp = [...stats.values()].filter((s) => s.kind === 'video' && /bound-rtp$/.test(s.type));
  return {
    connection: pc.connectionState,
    localUfrag: ufrag(pc.currentLocalDescription),
    remoteUfrag: ufrag(pc.currentRemoteDescription),
    selectedUfrag: transport ? transport.iceLocalUsernameFragment ?? null : null,
    pair: local && remote ? `${local.address}:${local.port} -> ${remote.address}:${remote.port}` : null,
    videoBytes: rtp.reduce((n, s) => n + (s.bytesSent ?? s.bytesReceived ?? 0), 0),
  };
};

/**
 * Restarts ICE with the page's whip.js/whep.js client (a PATCH with If-Match: "*"; the client
 * throws unless the answer is 2xx, and applies it only on 200) and waits until the browser's
 * connection is up on a candidate pair of the new credentials. Returns the ICE views before
 * and after.
 */
async function restartIce(page, left) {
  const before = await page.evaluate(ICE_VIEW);
  await page.evaluate(() => window.client.restart());
  const until = Date.now() + left();
  for (;;) {
    const now = await page.evaluate(ICE_VIEW);
    const renewed = now.remoteUfrag !== before.remoteUfrag && now.localUfrag !== before.localUfrag;
    const onNewPair = now.selectedUfrag === null || now.selectedUfrag === now.localUfrag;
    if (renewed && now.connection === 'connected' && onNewPair) break;
    if (Date.now() > until) throw new Error(`ICE restart not done: before ${describeIce(before)}; now ${describeIce(now)}`);
    await sleep(100);
  }
  const after = await page.evaluate(ICE_VIEW);
  return { before, after };
}

const describeIce = (v) =>
  `ufrags local ${v.localUfrag} remote ${v.remoteUfrag}, selected pair ${v.pair} (local ufrag ${v.selectedUfrag ?? 'not reported'}), ${v.videoBytes} video bytes`;

/**
 * 6: whip.js publishes, a seed client watches; trickle and ICE restart by PATCH; DELETE.
 */
async function scenarioWhip(browser, logs, left, seedBase, run) {
  const name = `whip-${RUN}-${run}`;
  const start = await serverStats();
  const publisher = await instrumentedPage(browser, 'whip.js publisher', logs);
  await publisher.goto(`${seedBase}/whip.html`);
  await publisher.waitForFunction(() => window.ready, null, { timeout: left() });
  await publisher.evaluate((url) => window.publish(url), `${BASE}/whip/${encodeURIComponent(name)}`);
  await publisher.waitForFunction(() => window.pc.connectionState === 'connected', null, {
    timeout: left(),
    polling: 50,
  });
  note(`whip.js publishes ${name}: ${describeIce(await publisher.evaluate(ICE_VIEW))}`);
  const viewer = await instrumentedPage(browser, 'seed viewer of a WHIP stream', logs);
  await viewer.goto(seedPage(seedBase, `${WS}?src=${name}`));
  const frames = await waitForFrames(viewer, '#video', left());
  record('6 WHIP publisher (whip.js), seed viewer', (await firstFrameAt(viewer, 'video')) - (await openedAt(viewer)));
  note(`the seed viewer plays the WHIP stream: ${JSON.stringify(frames)}; ${await answerCameFirst(viewer, 'viewer')}`);

  const trickled = await statsUntil(
    (s) => s.whip.trickles > start.whip.trickles && s.whip.candidates > start.whip.candidates,
    'a trickle PATCH with candidates',
    left(),
  );
  note(
    `server: WHIP sessions created ${trickled.whip.created - start.whip.created}, trickle PATCHes ${trickled.whip.trickles - start.whip.trickles} with ${trickled.whip.candidates - start.whip.candidates} candidates`,
  );

  const { before, after } = await restartIce(publisher, left);
  const restarted = await statsUntil(
    (s) => s.whip.restarts === start.whip.restarts + 1 && s.ice_restarts === start.ice_restarts + 1,
    'one ICE restart answered 200',
    left(),
  );
  note(`ICE restart by whip.js answered 200 (server: WHIP restarts ${restarted.whip.restarts - start.whip.restarts}, failed ${restarted.whip.failed_restarts - start.whip.failed_restarts})`);
  note(`  before: ${describeIce(before)}`);
  note(`  after:  ${describeIce(after)}`);
  const again = await waitForFrames(viewer, '#video', left(), 30);
  const sent = await publisher.evaluate(ICE_VIEW);
  if (sent.videoBytes <= after.videoBytes) {
    throw new Error(`the publisher sent no video after the restart (${after.videoBytes} -> ${sent.videoBytes} bytes)`);
  }
  note(`after the restart the viewer keeps decoding: ${JSON.stringify(again)}; the publisher sent ${sent.videoBytes - after.videoBytes} more video bytes`);
  const trickledAfter = await statsUntil(
    (s) => s.whip.trickles > restarted.whip.trickles || s.whip.trickles > trickled.whip.trickles,
    'a trickle PATCH after the restart',
    left(),
  ).catch(() => null);
  if (trickledAfter) {
    note(`server: ${trickledAfter.whip.trickles - trickled.whip.trickles} trickle PATCH(es) after the first ones (the restart's candidates, with the new entity-tag)`);
  }

  await publisher.evaluate(() => window.client.stop());
  const deleted = await statsUntil((s) => s.whip.deleted === start.whip.deleted + 1, 'the DELETE', left());
  await viewer.waitForTimeout(300);
  const still = await viewer.evaluate(() => ({ connection: window.seed.pc.connectionState, socket: window.seed.ws.readyState }));
  if (still.connection !== 'connected' || still.socket !== 1) {
    throw new Error(`the viewer lost its connection when the WHIP publisher left: ${JSON.stringify(still)}`);
  }
  note(`whip.js DELETE: session deleted (server: ${deleted.connections} media connection(s) open); the viewer stays connected`);
  for (const p of [publisher, viewer]) await p.context().close();
}

/**
 * 7: whep.js plays a stream before its publisher (a seed client, ?dst=NAME) arrives; ICE restart.
 */
async function scenarioWhep(browser, logs, left, seedBase, run) {
  const name = `whep-${RUN}-${run}`;
  const start = await serverStats();
  const player = await instrumentedPage(browser, 'whep.js player', logs);
  await player.goto(`${seedBase}/whip.html`);
  await player.waitForFunction(() => window.ready, null, { timeout: left() });
  await player.evaluate((url) => window.view(url), `${BASE}/whep/${encodeURIComponent(name)}`);
  await player.waitForFunction(() => window.pc.connectionState === 'connected', null, { timeout: left(), polling: 50 });
  note(`whep.js plays ${name} before it has a publisher: connected (${describeIce(await player.evaluate(ICE_VIEW))})`);
  const publisher = await instrumentedPage(browser, 'seed publisher', logs);
  await publisher.goto(seedPage(seedBase, `${WS}?dst=${name}`, 'camera+microphone'));
  const frames = await waitForFrames(player, '#video', left());
  record('7 seed publisher, WHEP player (whep.js) waiting', (await firstFrameAt(player, 'video')) - (await openedAt(publisher)));
  note(`the WHEP player plays the seed's camera: ${JSON.stringify(frames)}`);

  const { before, after } = await restartIce(player, left);
  const restarted = await statsUntil(
    (s) => s.whep.restarts === start.whep.restarts + 1,
    'one WHEP ICE restart answered 200',
    left(),
  );
  note(`ICE restart by whep.js answered 200 (server: WHEP restarts ${restarted.whep.restarts - start.whep.restarts}, trickle PATCHes ${restarted.whep.trickles - start.whep.trickles})`);
  note(`  before: ${describeIce(before)}`);
  note(`  after:  ${describeIce(after)}`);
  const again = await waitForFrames(player, '#video', left(), 30);
  const received = await player.evaluate(ICE_VIEW);
  if (received.videoBytes <= after.videoBytes) {
    throw new Error(`the player received no video after the restart (${after.videoBytes} -> ${received.videoBytes} bytes)`);
  }
  note(`after the restart the player keeps decoding: ${JSON.stringify(again)}`);
  await player.evaluate(() => window.client.stop());
  await statsUntil((s) => s.whep.deleted === start.whep.deleted + 1, 'the DELETE', left());
  for (const p of [player, publisher]) await p.context().close();
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main() {
  console.log(`media server browser tests against ${BASE}${REPEAT > 1 ? ` (${REPEAT} runs)` : ''}`);
  hardStop(5 * REPEAT);
  await waitForHttp(`${BASE}/`);
  const browser = await launchChromium();
  const seed = await serveSeed(WHIP_FILES);
  const scenarios = [];
  for (let run = 1; run <= REPEAT; run += 1) {
    const tag = REPEAT > 1 ? ` [run ${run}]` : '';
    scenarios.push(
      [`1: the seed client gets its own camera back${tag}`, (b, l, left) => scenarioSelfView(b, l, left, seed.base, run)],
      [`2: a demo publisher and 3 seed viewers${tag}`, (b, l, left) => scenarioFanOut(b, l, left, seed.base, run)],
      [`3: a viewer first, then the publisher${tag}`, (b, l, left) => scenarioViewerFirst(b, l, left, seed.base, run)],
      [`4: bad offers then a good one, and a v2 client${tag}`, (b, l, left) => scenarioErrorsAndDialects(b, l, left, run)],
      [`5: a simulcast publisher: the first layer, then the next when it stops${tag}`, (b, l, left) => scenarioSimulcast(b, l, left, seed.base, run)],
      [`6: a WHIP publisher (whip.js) and a seed viewer; trickle, ICE restart, DELETE${tag}`, (b, l, left) => scenarioWhip(b, l, left, seed.base, run)],
      [`7: a WHEP player (whep.js) waiting, then a seed publisher; ICE restart${tag}`, (b, l, left) => scenarioWhep(b, l, left, seed.base, run)],
    );
  }
  // E2E_ONLY=1,3 runs only those scenarios (by number).
  const only = (process.env.E2E_ONLY || '').split(',').filter(Boolean);
  const chosen = only.length ? scenarios.filter(([name]) => only.includes(name.split(':')[0])) : scenarios;
  const failed = await runScenarios(browser, chosen);
  seed.server.close();
  console.log('time from WebSocket open to the first decoded frame (ms):');
  for (const [label, values] of timings) {
    console.log(`  ${label}: median ${median(values).toFixed(0)} of ${values.length} [${values.map((v) => v.toFixed(0)).join(', ')}]`);
  }
  await finish(browser, failed);
}

main().catch((e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
