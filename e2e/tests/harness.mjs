// Shared test harness: starts the natter binary on a free port and drives Debian's Chromium.
// Run inside ../shared/netns-run (see scripts/test): Chromium then has a private network.

import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { open, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

const repo = fileURLToPath(new URL('../../', import.meta.url));
/** The server binary under test; scripts/test builds it. */
export const NATTER_BIN = process.env.NATTER_BIN ?? `${repo}target/debug/natter`;

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--allow-loopback-in-peer-connection',
];

/**
 * Every browser in these tests connects from 127.0.0.1, so the per-address limits meant for one
 * person would count a whole test file's people as one: raised here (the Rust tests check the
 * limits themselves, and the moderation tests run with the defaults).
 */
export const ONE_ADDRESS_FOR_EVERYONE = [
  '--http-per-minute', '60000', '--http-burst', '5000',
  '--ws-per-minute', '6000', '--ws-burst', '500',
  '--rooms-per-minute', '6000', '--rooms-burst', '500',
  '--max-connections-per-ip', '1000',
];

/**
 * Starts natter and resolves once it prints its URL. Room names go to `dataDir` (a fresh
 * temporary directory unless given, so a test can restart a server on the same one).
 * @param {{ listen?: string, args?: string[], dataDir?: string, limits?: string[], env?: Record<string, string>, wrap?: string[], urlHost?: string }} [options]
 *   `limits` replaces ONE_ADDRESS_FOR_EVERYONE (`[]`: the server's defaults); `env` adds variables;
 *   `wrap` is a command the binary runs under (e.g. `nsenter --net=… --`, which must exec it, so the
 *   child is natter itself); `urlHost` replaces the host of the printed URL (a server listening on
 *   0.0.0.0 prints `localhost`, which is not where browsers on other hosts find it)
 */
export async function startServer(options = {}) {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'natter-e2e-'));
  // The media relay's port too is picked by the system, so test files can run side by side.
  const args = [
    '--listen', options.listen ?? '127.0.0.1:0',
    '--rtc-port', '0',
    '--data-dir', dataDir,
    ...(options.limits ?? ONE_ADDRESS_FOR_EVERYONE),
    ...(options.args ?? []),
  ];
  const [command, ...prefix] = [...(options.wrap ?? []), NATTER_BIN];
  const child = spawn(command, [...prefix, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn', ...(options.env ?? {}) },
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  // NATTER_SERVER_LOG=1 shows the server's log while debugging a test.
  if (process.env.NATTER_SERVER_LOG) child.stderr.pipe(process.stderr);
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`natter did not start: ${stderr}`)), 10_000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = /Open (http:\/\/\S+?)\/? in a browser/.exec(out);
      if (match) {
        clearTimeout(timer);
        const printed = new URL(match[1]);
        if (options.urlHost) printed.hostname = options.urlHost;
        resolve(options.urlHost ? printed.origin : match[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`natter exited with ${code}: ${stderr}`)));
  });
  return {
    url: /** @type {string} */ (url),
    child,
    dataDir,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Waits until the test network namespace has settled. Its veth addresses stay "tentative" for
 * a second or two (IPv6 duplicate address detection); when they turn final, Chromium sees a
 * network change and aborts whatever it is loading (net::ERR_NETWORK_CHANGED), which broke
 * whichever page a test file opened first.
 */
export async function settleNetwork() {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    let tentative;
    try {
      tentative = execFileSync('ip', ['-6', 'addr', 'show', 'tentative'], { encoding: 'utf8' }).trim();
    } catch {
      return; // no iproute2: nothing to wait for
    }
    if (!tentative) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** @param {string[]} [extraArgs] */
export async function launchBrowser(extraArgs = []) {
  await settleNetwork();
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

/**
 * One person: a fresh browser context (own storage, own identity) with one page.
 * @param {import('playwright-core').Browser} browser
 * @param {string} baseUrl
 */
export async function newPerson(browser, baseUrl) {
  const context = await browser.newContext({ baseURL: baseUrl });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseUrl });
  const page = await context.newPage();
  /** @type {string[]} */
  const problems = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  return { context, page, problems };
}

/** @param {import('playwright-core').Page} page */
export const statusOf = (page) => page.getByRole('status', { name: 'Connection', exact: true });

/**
 * Registers before/after hooks that start one server and one browser for a test file, both in this
 * namespace (the room, call and file suites use topology.mjs's onTopology() instead: the server on
 * a host of its own, the browser behind a NAT).
 * @returns {{ server: Awaited<ReturnType<typeof startServer>>, browser: import('playwright-core').Browser }}
 *   filled in once the hooks have run (read its fields inside tests, not at module level)
 */
export function serverAndBrowser() {
  const shared = /** @type {any} */ ({});
  before(async () => {
    shared.server = await startServer();
    shared.browser = await launchBrowser();
  });
  after(async () => {
    await shared.browser?.close();
    await shared.server?.stop();
  });
  return shared;
}

/** The median of measurements (benchmarks report medians: this machine is noisy). @param {number[]} values */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Prints a benchmark's figures both as test diagnostics and on stdout (scripts/bench greps them).
 * @param {import('node:test').TestContext} t
 * @param {string[]} lines
 */
export function report(t, lines) {
  for (const line of lines) t.diagnostic(line);
  console.log(lines.join('\n'));
}

export const CONNECTED = /^Connected$/;

/** @param {import('playwright-core').Page} page @param {RegExp | string} text */
export async function expectStatus(page, text, timeout = 10_000) {
  const pattern = typeof text === 'string' ? new RegExp(`^${text}$`) : text;
  try {
    await statusOf(page).filter({ hasText: pattern }).waitFor({ timeout });
  } catch (error) {
    // Say what the page showed instead: a timeout alone does not tell a stuck page from a slow one.
    const shown = await statusOf(page).textContent({ timeout: 1_000 }).catch(() => '(no status)');
    throw new Error(`${page.url()} showed "${shown}", not ${pattern}`, { cause: error });
  }
}

/** @param {import('playwright-core').Page} page @param {string} text */
export async function send(page, text) {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('button', { name: 'Send' }).click();
}

/** @param {import('playwright-core').Page} page @param {string} text */
export async function expectMessage(page, text) {
  await page.getByRole('log', { name: 'Messages' }).getByText(text, { exact: true }).waitFor({ timeout: 10_000 });
}

/**
 * Resolves when the page opens a new signaling WebSocket and is welcomed into the room on it.
 * @param {import('playwright-core').Page} page
 */
export function rejoinedSignaling(page) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no new signaling connection was welcomed')), 20_000);
    page.on('websocket', (socket) => {
      // Attempts made while the server is down fail; only a welcomed one counts.
      socket.on('framereceived', (frame) => {
        if (typeof frame.payload === 'string' && frame.payload.includes('"type":"welcome"')) {
          clearTimeout(timer);
          resolve(undefined);
        }
      });
    });
  });
}

/** Ann creates a room from the home page and copies its link with "Share link". */
/**
 * @param {{ server: { url: string }, browser: import('playwright-core').Browser }} shared
 * @param {{ initScript?: () => void }} [options] a script run in every page before the app's own
 */
export async function createRoom(shared, options = {}) {
  const ann = await newPerson(shared.browser, shared.server.url);
  if (options.initScript) await ann.context.addInitScript(options.initScript);
  await ann.page.goto('/');
  await ann.page.getByRole('button', { name: 'Create room' }).click();
  await ann.page.waitForURL(/\/r\/[A-Za-z0-9_-]{22}$/);
  await expectStatus(ann.page, 'Waiting for the other person…');
  await ann.page.getByRole('button', { name: 'Share link' }).click();
  await ann.page.getByText('Link copied').waitFor();
  const link = await ann.page.evaluate(() => navigator.clipboard.readText());
  assert.equal(link, ann.page.url());
  return { ann, link };
}

/**
 * @param {{ server: { url: string }, browser: import('playwright-core').Browser }} shared
 * @param {{ initScript?: () => void }} [options] a script run in every page before the app's own
 */
export async function connectedPair(shared, options = {}) {
  const { ann, link } = await createRoom(shared, options);
  const bob = await newPerson(shared.browser, shared.server.url);
  if (options.initScript) await bob.context.addInitScript(options.initScript);
  await bob.page.goto(link);
  await expectStatus(bob.page, CONNECTED);
  await expectStatus(ann.page, CONNECTED);
  return { ann, bob, link };
}


// --- browser processes, from /proc (benchmarks) ---------------------------------------------

/**
 * The processes of the browser started with this profile directory: the browser itself and its
 * children (renderers, GPU, network, audio and other utilities).
 * @param {string} profile
 * @returns {Promise<{ pid: string, renderer: boolean }[]>}
 */
export async function browserProcesses(profile) {
  const found = [];
  for (const pid of (await readdir('/proc')).filter((name) => /^\d+$/.test(name))) {
    // Chromium rewrites its children's command lines into one space-separated string.
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    const args = raw.split('\0').join(' ').split(' ');
    if (!args.includes(`--user-data-dir=${profile}`)) continue;
    // The browser's own UI renderer is not the page's; any spare renderer counts (it is small).
    found.push({ pid, renderer: args.includes('--type=renderer') && !args.includes('--top-chrome-webui') });
  }
  return found;
}

/** The renderer processes of the browser started with this profile directory. @param {string} profile */
export async function renderers(profile) {
  const found = (await browserProcesses(profile)).filter((each) => each.renderer).map((each) => each.pid);
  assert.ok(found.length > 0, `no renderer process for ${profile}`);
  return found;
}

// --- calls ----------------------------------------------------------------------------------

/** Chromium's fake camera, microphone and screen, with every permission prompt accepted. */
export const FAKE_MEDIA = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

/**
 * An init script for call tests: keeps every RTCPeerConnection the page makes, so a test can read
 * its getStats(); and applies the autoplay rule of a desktop browser (sound only after the person
 * clicked or typed in the page), which headless Chromium does not enforce even with --autoplay-policy.
 */
export function callTestPage() {
  const Original = window.RTCPeerConnection;
  /** @type {RTCPeerConnection[]} */
  const made = [];
  Object.defineProperty(window, 'natterTestConnections', { value: made });
  window.RTCPeerConnection = class extends Original {
    /** @param {RTCConfiguration} [config] */
    constructor(config) {
      super(config);
      made.push(this);
    }
  };
  // navigator.userActivation is already set in pages Playwright opens, so count real input.
  let interacted = false;
  for (const type of ['pointerdown', 'keydown']) {
    addEventListener(type, (event) => (interacted ||= event.isTrusted), { capture: true });
  }
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () {
    if (!this.muted && !interacted) {
      return Promise.reject(new DOMException("play() failed because the user didn't interact with the document first.", 'NotAllowedError'));
    }
    return play.call(this);
  };
}

/**
 * Totals of the inbound RTP streams of one kind on the page's live connection, with the page's
 * wall clock (ms) when they were read.
 * @param {import('playwright-core').Page} page @param {'audio' | 'video'} kind
 * @param {string} [connections] the page's global that lists its connections (callTestPage's by default)
 */
export function inbound(page, kind, connections = 'natterTestConnections') {
  return page.evaluate(
    async ({ kind, connections }) => {
      const list = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window)[connections]);
      const pc = list.findLast((each) => each.connectionState !== 'closed');
      const totals = { bytes: 0, energy: 0, frames: 0, at: 0 };
      (await pc?.getStats())?.forEach((stats) => {
        if (stats.type !== 'inbound-rtp' || stats.kind !== kind) return;
        totals.bytes += stats.bytesReceived ?? 0;
        totals.energy += stats.totalAudioEnergy ?? 0;
        totals.frames += stats.framesDecoded ?? 0;
      });
      totals.at = performance.timeOrigin + performance.now();
      return totals;
    },
    { kind, connections },
  );
}

/** A button by its exact accessible name. @param {import('playwright-core').Page} page @param {string} name */
export const button = (page, name) => page.getByRole('button', { name, exact: true });

/** The width of the video the page shows under this accessible name (0 until a frame is decoded). */
/** @param {import('playwright-core').Page} page @param {string} label */
export async function videoWidth(page, label) {
  const video = page.getByLabel(label, { exact: true });
  await video.waitFor({ state: 'visible', timeout: 15_000 });
  await page.waitForFunction(
    (label) => {
      const element = document.querySelector(`video[aria-label="${label}"]:not([hidden])`);
      return element instanceof HTMLVideoElement && element.videoWidth > 0;
    },
    label,
    { timeout: 15_000 },
  );
  return video.evaluate((element) => /** @type {HTMLVideoElement} */ (element).videoWidth);
}

/**
 * Waits until a counter grows by more than `by` within the timeout.
 * @param {() => Promise<number>} read @param {string} what
 */
export async function grows(read, what, by = 1000, timeout = 15_000) {
  const start = await read();
  const deadline = Date.now() + timeout;
  let now = start;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    now = await read();
    if (now - start > by) return;
  }
  assert.fail(`${what} did not grow (from ${start} to ${now})`);
}

// --- benchmarks: two people, each in a browser of their own ---------------------------------

/**
 * One person in a browser with an on-disk profile of its own (incognito contexts keep storage in
 * memory, and /proc tells the browsers apart by profile).
 * @param {string} profile @param {string} baseURL
 * @param {{ args?: string[], initScript?: () => void }} [options]
 */
export async function personWithProfile(profile, baseURL, options = {}) {
  await settleNetwork();
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
    baseURL,
    acceptDownloads: false,
  });
  if (options.initScript) await context.addInitScript(options.initScript);
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page, profile };
}

/**
 * Ann creates a room and Bob opens its link; resolves once both are connected.
 * @param {import('playwright-core').Page} ann @param {import('playwright-core').Page} bob
 */
export async function meetInNewRoom(ann, bob) {
  await ann.goto('/');
  await ann.getByRole('button', { name: 'Create room' }).click();
  await ann.waitForURL(/\/r\/[A-Za-z0-9_-]{22}$/);
  await bob.goto(ann.url());
  await expectStatus(bob, CONNECTED);
  await expectStatus(ann, CONNECTED);
}

// --- files ----------------------------------------------------------------------------------

/**
 * Writes `megabytes` MiB of random bytes to `name` in `dir`.
 * @param {string} dir @param {string} name @param {number} megabytes
 * @returns {Promise<{ path: string, sha256: string, size: number }>}
 */
export async function randomFileIn(dir, name, megabytes) {
  const path = join(dir, name);
  const file = await open(path, 'w');
  const hash = createHash('sha256');
  for (let i = 0; i < megabytes; i += 1) {
    const block = randomBytes(1024 * 1024);
    hash.update(block);
    await file.write(block);
  }
  await file.close();
  return { path, sha256: hash.digest('hex'), size: megabytes * 1024 * 1024 };
}

/** @param {string} path */
export async function sha256Of(path) {
  const hash = createHash('sha256');
  for await (const block of createReadStream(path)) hash.update(block);
  return hash.digest('hex');
}
