// Shared test harness: starts the natter binary on a free port and drives Debian's Chromium.
// Run inside ../shared/netns-run (see scripts/test): Chromium then has a private network.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
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
 * Starts natter and resolves once it prints its URL.
 * @param {{ listen?: string, args?: string[] }} [options]
 */
export async function startServer(options = {}) {
  const child = spawn(NATTER_BIN, ['--listen', options.listen ?? '127.0.0.1:0', ...(options.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`natter did not start: ${stderr}`)), 10_000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = /Open (http:\/\/\S+?)\/? in a browser/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`natter exited with ${code}: ${stderr}`)));
  });
  return {
    url: /** @type {string} */ (url),
    child,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** @param {string[]} [extraArgs] */
export function launchBrowser(extraArgs = []) {
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
export const statusOf = (page) => page.getByRole('status', { name: 'Connection' });

/**
 * Registers before/after hooks that start one server and one browser for a test file.
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
  await statusOf(page).filter({ hasText: pattern }).waitFor({ timeout });
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

