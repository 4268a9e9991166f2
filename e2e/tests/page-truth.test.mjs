// @ts-check
// The page tells the truth about what cannot work, and why. On a plain-http page of a LAN address
// (not a secure context, so the browser offers no microphone, camera or screen), the call buttons
// are disabled and described by a visible sentence on HTTPS, while chat and files still work (the
// page has no origin private file system there, so received files are kept in memory); on
// http://127.0.0.1 (a secure context) the same buttons work. A page whose connection to the
// server's media relay does not come up within 10 s says so in its connection status, with a link
// to the connection check, instead of "Connecting…" for ever, and goes back to normal once the
// relay answers. Each at a phone's size and a desktop's. Runs inside ../shared/netns-run: the
// server listens on the namespace's 198.18.0.1, and the packet filter is the namespace's own.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  FAKE_MEDIA,
  button,
  expectMessage,
  expectStatus,
  launchBrowser,
  randomFileIn,
  send,
  sha256Of,
  startServer,
  statusOf,
} from './harness.mjs';
import { PacketFilter } from './network.mjs';

/** @typedef {import('playwright-core').Page} Page */
/** @typedef {import('playwright-core').Browser} Browser */
/** @typedef {{ name: string, width: number, height: number }} Size */

/** @type {Size[]} */
const SIZES = [
  { name: 'phone', width: 390, height: 844 },
  { name: 'desktop', width: 1280, height: 800 },
];

/** The buttons that need a microphone, camera or screen. */
const DEVICE_BUTTONS = ['Microphone', 'Camera', 'Share screen'];
/** What they are described by on a plain-http page (its start, then what the operator can do). */
const NEEDS_HTTPS = 'Calls need a secure (HTTPS) page, and this one is plain HTTP.';
const HTTPS_REMEDIES = ['natter --tls-self-signed', '--tls-cert/--tls-key', '--acme-domain'];
const RELAY_UNREACHABLE =
  "Cannot reach the server's media relay. Its UDP/TCP port may be blocked between you and the server.";
const THROUGH_SERVER = 'Connected through the server';

/**
 * Chromium's console error for the server's Cross-Origin-Opener-Policy header on a plain-http page
 * of a LAN address, where the browser ignores that header: the browser's notice, not the page's error.
 */
const COOP_IGNORED = /^The Cross-Origin-Opener-Policy header has been ignored, because the URL's origin was untrustworthy\./;

/**
 * One person: a browser context of their own at a size, with the page's errors collected.
 * @param {Browser} browser @param {string} baseURL @param {Size} size
 */
async function person(browser, baseURL, size) {
  const context = await browser.newContext({
    baseURL,
    viewport: { width: size.width, height: size.height },
    acceptDownloads: true,
  });
  const page = await context.newPage();
  /** @type {string[]} */
  const problems = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !COOP_IGNORED.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  return { context, page, problems };
}

/** @typedef {Awaited<ReturnType<typeof person>>} Person */

/**
 * Ann opens a new room of a kind from the home page; Bob opens its link. Resolves once both are
 * connected.
 * @param {Browser} browser @param {string} baseURL @param {Size} size @param {'pair' | 'group'} kind
 */
async function twoInARoom(browser, baseURL, size, kind) {
  const ann = await person(browser, baseURL, size);
  await ann.page.goto('/');
  if (kind === 'group') await ann.page.getByRole('radio', { name: 'Group room (up to 32)' }).check();
  await button(ann.page, 'Create room').click();
  await ann.page.waitForURL(kind === 'group' ? /\/g\/[A-Za-z0-9_-]{22}$/ : /\/r\/[A-Za-z0-9_-]{22}$/);
  const bob = await person(browser, baseURL, size);
  await bob.page.goto(ann.page.url());
  const connected = kind === 'group' ? THROUGH_SERVER : /^Connected/;
  await expectStatus(ann.page, connected, 20_000);
  await expectStatus(bob.page, connected, 20_000);
  return { ann, bob };
}

/**
 * What Chromium's own accessibility tree says about the button of this name: the browser's
 * computed description and disabled state, which is what a screen reader is told.
 * @param {Page} page @param {string} name
 * @returns {Promise<{ disabled: boolean, description: string }>}
 */
async function accessibleButton(page, name) {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { root } = await cdp.send('DOM.getDocument', { depth: 0 });
    const { nodes } = await cdp.send('Accessibility.queryAXTree', { nodeId: root.nodeId, accessibleName: name, role: 'button' });
    const shown = nodes.filter((node) => !node.ignored);
    assert.equal(shown.length, 1, `one button named "${name}" in the accessibility tree`);
    const [node] = shown;
    const disabled = node.properties?.find((property) => property.name === 'disabled')?.value.value === true;
    return { disabled, description: String(node.description?.value ?? '') };
  } finally {
    await cdp.detach();
  }
}

/** @param {Page} page */
const isSecure = (page) => page.evaluate(() => window.isSecureContext);

/**
 * Whether an element lies within the page's width (a phone shows no sideways scrolling), and the
 * page itself is no wider than its viewport.
 * @param {import('playwright-core').Locator} locator @param {Size} size @param {string} what
 */
async function fitsWidth(locator, size, what) {
  const box = await locator.boundingBox();
  assert.ok(box, `${what} is rendered`);
  assert.ok(box.x >= 0 && box.x + box.width <= size.width + 0.5, `${what} fits the ${size.name}'s width: ${JSON.stringify(box)}`);
  const overflow = await locator.page().evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling on a ${size.name} (${overflow} px too wide)`);
}

/**
 * The device buttons of a plain-http room page: named as ever, disabled, described by the visible
 * sentence on HTTPS; pressing one starts nothing and raises no error.
 * @param {Page} page @param {Size} size
 */
async function expectCallsExplained(page, size) {
  assert.equal(await isSecure(page), false, `${page.url()} is not a secure context`);
  const reason = page.getByText(NEEDS_HTTPS);
  await reason.waitFor({ state: 'visible' });
  const sentence = (await reason.textContent()) ?? '';
  for (const remedy of HTTPS_REMEDIES) assert.ok(sentence.includes(remedy), `the sentence names ${remedy}: ${sentence}`);
  await fitsWidth(reason, size, 'the sentence on HTTPS');
  // Static text: it must not be announced on its own, as a live region would be.
  assert.equal(
    await reason.evaluate((element) => element.closest('[aria-live], [role="status"], [role="alert"], [role="log"]') === null),
    true,
    'the sentence on HTTPS is not in a live region',
  );
  for (const name of DEVICE_BUTTONS) {
    const control = button(page, name);
    await control.waitFor({ state: 'visible' });
    assert.equal(await control.isDisabled(), true, `${name} is disabled`);
    const accessible = await accessibleButton(page, name);
    assert.equal(accessible.disabled, true, `${name} is disabled in the accessibility tree`);
    assert.ok(accessible.description.startsWith(NEEDS_HTTPS), `${name} is described by the sentence: "${accessible.description}"`);
    assert.ok(accessible.description.includes('--acme-domain'), `${name}'s description says what the operator can do`);
    await fitsWidth(control, size, name);
  }
  // A keyboard user reaches the button and presses it: nothing starts, no error appears.
  const microphone = button(page, 'Microphone');
  await microphone.focus();
  await page.keyboard.press('Enter');
  await page.waitForTimeout(500);
  assert.equal(await microphone.getAttribute('aria-pressed'), 'false', 'the microphone did not start');
  assert.equal(await page.getByRole('alert').filter({ hasText: /\S/ }).count(), 0, 'no error is shown');
  assert.equal(await page.getByRole('status', { name: 'Call', exact: true }).textContent(), '', 'the call status says nothing');
}

/**
 * `from` attaches a file of random bytes; `to` downloads it, and it is the same file.
 * @param {Page} from @param {Page} to @param {string} dir @param {string} name
 */
async function fileArrivesIntact(from, to, dir, name) {
  const file = await randomFileIn(dir, name, 1);
  const chooser = from.waitForEvent('filechooser');
  await button(from, 'Attach file').click();
  await (await chooser).setFiles(file.path);
  const card = to.getByRole('group', { name: `File ${name}` });
  // Small files are accepted without a click.
  const download = to.waitForEvent('download');
  await card.getByRole('button', { name: 'Download' }).click({ timeout: 30_000 });
  const saved = await (await download).path();
  assert.equal(await sha256Of(saved), file.sha256, `${name} arrived intact`);
}

describe('a plain-http page on a LAN address (not a secure context)', () => {
  /** @type {Awaited<ReturnType<typeof startServer>>} */
  let server;
  /** @type {Browser} */
  let browser;
  /** @type {string} */
  let dir;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natter-page-truth-'));
    server = await startServer({ listen: '198.18.0.1:0' });
    assert.match(server.url, /^http:\/\/198\.18\.0\.1:\d+$/);
    // Fake devices: were getUserMedia offered, the microphone would start. It is the page's
    // context, not a missing device, that stops it.
    browser = await launchBrowser(FAKE_MEDIA);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  for (const size of SIZES) {
    for (const kind of /** @type {const} */ (['pair', 'group'])) {
      test(`${kind} room, ${size.name}: the call buttons say calls need HTTPS; chat and files still work`, async () => {
        const { ann, bob } = await twoInARoom(browser, server.url, size, kind);
        await expectCallsExplained(ann.page, size);
        await expectCallsExplained(bob.page, size);
        await send(ann.page, `over plain http, ${kind}, ${size.name}`);
        await expectMessage(bob.page, `over plain http, ${kind}, ${size.name}`);
        await send(bob.page, 'and back');
        await expectMessage(ann.page, 'and back');
        await fileArrivesIntact(ann.page, bob.page, dir, `plain-http-${kind}-${size.name}.bin`);
        // "Leave call" needs no device: it stays as it was, without the sentence.
        assert.equal((await accessibleButton(ann.page, 'Leave call')).description, '');
        assert.deepEqual([...ann.problems, ...bob.problems], []);
        await ann.context.close();
        await bob.context.close();
      });
    }
  }

  test('the connection check says calls need HTTPS', async () => {
    const checker = await person(browser, server.url, SIZES[1]);
    await checker.page.goto('/check');
    await checker.page.getByText('Calls (microphone, camera, screen): Fails').waitFor({ timeout: 30_000 });
    await checker.page.getByText(NEEDS_HTTPS).waitFor();
    const fix = (await checker.page.getByText(/^What to do: Whoever runs this server can turn on HTTPS/).textContent()) ?? '';
    for (const remedy of HTTPS_REMEDIES) assert.ok(fix.includes(remedy), `the check names ${remedy}: ${fix}`);
    const summary = checker.page.getByRole('status', { name: 'Check result' });
    await summary.filter({ hasText: /Calls cannot work on this page: it is plain HTTP, not HTTPS\.$/ }).waitFor({ timeout: 60_000 });
    assert.doesNotMatch((await summary.textContent()) ?? '', /Everything works/);
    assert.deepEqual(checker.problems, []);
    await checker.context.close();
  });
});

describe('the same pages on http://127.0.0.1 (a secure context)', () => {
  /** @type {Awaited<ReturnType<typeof startServer>>} */
  let server;
  /** @type {Browser} */
  let browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser(FAKE_MEDIA);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  for (const size of SIZES) {
    for (const kind of /** @type {const} */ (['pair', 'group'])) {
      test(`${kind} room, ${size.name}: the call buttons are enabled and work`, async () => {
        const { ann, bob } = await twoInARoom(browser, server.url, size, kind);
        assert.equal(await isSecure(ann.page), true);
        assert.equal(await ann.page.getByText(NEEDS_HTTPS).isVisible(), false, 'no sentence on HTTPS');
        for (const name of DEVICE_BUTTONS) {
          const control = button(ann.page, name);
          if (!(await control.isVisible())) continue; // a browser without screen sharing hides it
          assert.equal(await control.isEnabled(), true, `${name} is enabled`);
          const accessible = await accessibleButton(ann.page, name);
          assert.equal(accessible.disabled, false, `${name} is enabled in the accessibility tree`);
          assert.ok(!accessible.description.includes('HTTPS'), `${name} is not described as needing HTTPS`);
        }
        await button(ann.page, 'Microphone').click();
        await ann.page.getByRole('button', { name: 'Microphone', exact: true, pressed: true }).waitFor({ timeout: 10_000 });
        assert.deepEqual([...ann.problems, ...bob.problems], []);
        await ann.context.close();
        await bob.context.close();
      });
    }
  }

  test('the connection check says calls work on this page', async () => {
    const checker = await person(browser, server.url, SIZES[0]);
    await checker.page.goto('/check');
    await checker.page.getByText('Calls (microphone, camera, screen): Works').waitFor({ timeout: 30_000 });
    const summary = checker.page.getByRole('status', { name: 'Check result' });
    await summary.filter({ hasText: /\.$/ }).waitFor({ timeout: 60_000 });
    assert.doesNotMatch((await summary.textContent()) ?? '', /Calls cannot work/);
    await checker.context.close();
  });
});

describe('a media relay nobody can reach', () => {
  /** @type {Awaited<ReturnType<typeof startServer>>} */
  let server;
  /** @type {Browser} */
  let browser;
  /** @type {PacketFilter | null} */
  let filter = null;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await filter?.remove();
    await browser?.close();
    await server?.stop();
  });

  /**
   * Drops every UDP packet and every TCP packet but the web server's: the pages load and signal,
   * but the media relay (UDP and ICE-TCP, on any port) is out of reach, as behind a firewall.
   */
  const blockRelay = async () => {
    filter = await PacketFilter.block({ blockAllUdp: true, tcpExceptPorts: [Number(new URL(server.url).port)] });
  };
  const unblock = async () => {
    await filter?.remove();
    filter = null;
  };

  /**
   * The connection status says the relay cannot be reached, with a link to the check, and the
   * link and sentence fit the page.
   * @param {Page} page @param {Size} size @param {number} timeout
   */
  async function expectRelaySentence(page, size, timeout) {
    const status = statusOf(page);
    await expectStatus(page, `${RELAY_UNREACHABLE.replace(/[.?*+^$()[\]\\|{}]/g, '\\$&')} Check your connection`, timeout);
    const link = status.getByRole('link', { name: 'Check your connection', exact: true });
    assert.equal(await link.getAttribute('href'), `${new URL(server.url).origin}/check`);
    assert.equal(await link.getAttribute('rel'), 'noopener');
    await fitsWidth(status, size, 'the connection status');
    await fitsWidth(link, size, 'the link to the check');
  }

  for (const size of SIZES) {
    test(`group room, ${size.name}: after 10 s the status names the unreachable relay, then recovers`, async () => {
      await blockRelay();
      const ann = await person(browser, server.url, size);
      try {
        await ann.page.goto('/');
        await ann.page.getByRole('radio', { name: 'Group room (up to 32)' }).check();
        const started = Date.now();
        await button(ann.page, 'Create room').click();
        await ann.page.waitForURL(/\/g\//);
        await expectStatus(ann.page, 'Connecting…');
        await expectRelaySentence(ann.page, size, 14_000);
        const waited = Date.now() - started;
        assert.ok(waited >= 10_000, `not said before 10 s had passed (${waited} ms)`);
        // Still so a while later: not a flicker.
        await ann.page.waitForTimeout(1_500);
        await expectStatus(ann.page, new RegExp(`^${RELAY_UNREACHABLE.slice(0, 40)}`), 1_000);
        // Chat waits for the relay, and says so.
        assert.equal(await button(ann.page, 'Send').isDisabled(), true);

        await unblock();
        await expectStatus(ann.page, THROUGH_SERVER, 45_000);
        assert.equal(await statusOf(ann.page).getByRole('link').count(), 0, 'the link goes with the sentence');
        assert.deepEqual(ann.problems, []);
      } finally {
        await unblock();
        await ann.context.close();
      }
    });
  }

  test('pair room fallen back to the relay, desktop: the same sentence, then Connected through the server', async () => {
    const size = SIZES[1];
    await blockRelay();
    const ann = await person(browser, server.url, size);
    const bob = await person(browser, server.url, size);
    try {
      await ann.page.goto('/');
      await button(ann.page, 'Create room').click();
      await ann.page.waitForURL(/\/r\//);
      await bob.page.goto(ann.page.url());
      // Direct fails after 2 s (no TURN here), the relay 10 s after that.
      await expectStatus(bob.page, 'Connecting…');
      await expectRelaySentence(bob.page, size, 20_000);
      await expectRelaySentence(ann.page, size, 5_000);
      await unblock();
      await expectStatus(bob.page, THROUGH_SERVER, 45_000);
      await expectStatus(ann.page, THROUGH_SERVER, 45_000);
      await send(bob.page, 'the relay answered');
      await expectMessage(ann.page, 'the relay answered');
      assert.deepEqual([...ann.problems, ...bob.problems], []);
    } finally {
      await unblock();
      await ann.context.close();
      await bob.context.close();
    }
  });
});
