// What the browser end-to-end scripts share: refusing to run next to a real network, launching
// Debian's Chromium with the project's flags, pages that keep their console for a failure report,
// waiting for decoded video, serving the seed client, and running scenarios with time limits.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SCENARIO_TIMEOUT_MS = Number(process.env.SCENARIO_TIMEOUT_MS || 30_000);
/** A short random tag, so that room and stream names of one run never meet another's. */
export const RUN = Math.random().toString(36).slice(2, 8);

const t0 = Date.now();
export const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
export const note = (...args) => console.log(`  [${elapsed()}]`, ...args);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The base URL from argv[2] or `$envName`, without a trailing slash; exits with usage if absent. */
export function baseUrl(envName, usage) {
  const base = (process.argv[2] || process.env[envName] || '').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(base)) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  return base;
}

/** Exits unless every network interface is loopback (or E2E_ALLOW_NETWORK=1). */
export function refuseNetwork() {
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
}

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Headless Chromium with fake camera and microphone, no background networking. */
export async function launchChromium() {
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
  return browser;
}

/** A new page in a new context, with its console and errors kept for the failure report. */
export async function openPage(browser, name, logs) {
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
export async function waitForFrames(page, selector, timeout, min = 5) {
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

/**
 * Serves `examples/browser/seed.html` (the seed client) on a free 127.0.0.1 port, and the
 * files of `extra` (URL path -> path relative to `examples/browser`, e.g. an npm module from
 * `node_modules`): pages and scripts come from this machine, never from the internet. HTML and
 * JavaScript are typed by extension.
 */
export async function serveSeed(extra = {}) {
  const files = { '/seed.html': 'seed.html', ...extra };
  const bodies = new Map();
  for (const [path, file] of Object.entries(files)) bodies.set(path, await readFile(join(HERE, file)));
  const type = (path) =>
    path.endsWith('.js') || path.endsWith('.mjs') ? 'text/javascript; charset=utf-8' : 'text/html; charset=utf-8';
  const server = createServer((req, res) => {
    const path = req.url.split('?')[0];
    const body = bodies.get(path);
    if (body) {
      res.writeHead(200, { 'content-type': type(path), 'cache-control': 'no-store' });
      res.end(body);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { server, base: `http://127.0.0.1:${server.address().port}` };
}

/** Waits (10 s at most) until `url` answers 200: the server may still be starting. */
export async function waitForHttp(url) {
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
      throw new Error(`GET ${url} answered ${res.status}`);
    } catch (e) {
      if (Date.now() > until) throw new Error(`${url} does not answer: ${e.message}`);
      await sleep(100);
    }
  }
}

/**
 * Runs `[name, run]` scenarios one after another, each bounded by SCENARIO_TIMEOUT_MS; `run` gets
 * `(browser, logs, left)`, where `left()` is what is left of the scenario's time less a margin (so
 * that a failure names the step that did not happen). Prints one PASS/FAIL line per scenario, with
 * the pages' logs on failure, and returns how many failed.
 */
export async function runScenarios(browser, scenarios) {
  let failed = 0;
  for (const [name, run] of scenarios) {
    const logs = [];
    const start = Date.now();
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
  return failed;
}

/** Closes the browser, prints the summary line and exits (non-zero if any scenario failed). */
export async function finish(browser, failed) {
  await withTimeout(browser.close(), 10_000, 'closing chromium').catch((e) => console.error(e.message));
  console.log(failed ? `${failed} scenario(s) FAILED (${elapsed()})` : `all scenarios passed (${elapsed()})`);
  process.exit(failed ? 1 : 0);
}

/** Last resort: whatever happens, never hang (`scenarios` at most, plus a margin). */
export function hardStop(scenarios) {
  const timer = setTimeout(() => {
    console.error(`FAIL: overall time limit reached after ${elapsed()}`);
    process.exit(1);
  }, scenarios * SCENARIO_TIMEOUT_MS + 30_000);
  timer.unref();
}
