// Group rooms: four (then five) people with Chromium's fake camera, microphone and screen, each
// connected only to the server's SFU. What each person hears and sees is checked through WebRTC's
// own counters (getStats) and through the page: the grid, the shared screen, the chat.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { FAKE_MEDIA, button, callTestPage, randomFileIn, sha256Of } from './harness.mjs';
import { launchBrowserOnHost, onTopology } from './topology.mjs';

// The server on a host of its own, the people behind a NAT (topology.mjs).
const shared = onTopology({ browserArgs: FAKE_MEDIA });

/** @typedef {import('playwright-core').Page} Page */

/** @param {Page} page */
const grid = (page) => page.getByRole('list', { name: 'Participants' });

/**
 * Each inbound stream of a kind on the page's connection to the SFU: bytes and decoded frames.
 * @param {Page} page @param {'audio' | 'video'} kind
 * @returns {Promise<{ mid: string, bytes: number, frames: number, width: number }[]>}
 */
function streams(page, kind) {
  return page.evaluate(async (kind) => {
    const list = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).natterTestConnections);
    const pc = list.findLast((each) => each.connectionState !== 'closed');
    /** @type {{ mid: string, bytes: number, frames: number, width: number }[]} */
    const found = [];
    (await pc?.getStats())?.forEach((stats) => {
      if (stats.type !== 'inbound-rtp' || stats.kind !== kind) return;
      found.push({
        mid: String(stats.mid),
        bytes: stats.bytesReceived ?? 0,
        frames: stats.framesDecoded ?? 0,
        width: stats.frameWidth ?? 0,
      });
    });
    return found;
  }, kind);
}

/**
 * Waits until `check` passes, reporting the last failure on timeout.
 * @param {() => Promise<void>} check @param {number} [timeout]
 */
async function eventually(check, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
}

/** How many streams of a kind carry media that grows over a second. @param {Page} page @param {'audio' | 'video'} kind */
async function flowing(page, kind) {
  const before = await streams(page, kind);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const after = await streams(page, kind);
  return after.filter((stream) => {
    const earlier = before.find((each) => each.mid === stream.mid);
    return earlier && (kind === 'audio' ? stream.bytes > earlier.bytes : stream.frames > earlier.frames);
  }).length;
}

/** Waits for the page's connection status. @param {Page} page @param {string} text */
const connected = (page, text = 'Connected through the server') =>
  page.getByRole('status', { name: 'Connection' }).filter({ hasText: text }).waitFor({ timeout: 20_000 });

/**
 * One person in a browser context of their own, named, in a group room: a new one made from the
 * home page when `roomUrl` is empty.
 * @param {import('playwright-core').Browser} browser @param {string} baseURL @param {string} name
 * @param {string} [roomUrl]
 */
async function enterGroup(browser, baseURL, name, roomUrl) {
  const context = await browser.newContext({ baseURL });
  await context.addInitScript(callTestPage);
  const page = await context.newPage();
  /** @type {string[]} */
  const problems = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  await page.goto('/');
  if (!roomUrl) {
    await page.getByRole('radio', { name: 'Group room (up to 32)' }).check();
    await button(page, 'Create room').click();
    await page.waitForURL(/\/g\//);
  } else {
    await page.goto(roomUrl);
  }
  await page.getByText('Change your name', { exact: true }).click();
  await page.getByLabel('Your name', { exact: true }).fill(name);
  await button(page, 'Save name').click();
  await connected(page);
  return { page, problems };
}

describe('group room', () => {
  /** @type {{ url: string }} */
  let server;
  /** @type {import('playwright-core').Browser} */
  let browser;
  /** @type {Record<string, { page: Page, problems: string[] }>} */
  const people = {};
  let roomUrl = '';

  /** One person in a context of their own, named, in the room. @param {string} name */
  async function enter(name) {
    const person = await enterGroup(browser, server.url, name, roomUrl);
    roomUrl = person.page.url();
    people[name] = person;
    return person.page;
  }

  before(() => {
    server = shared.server;
    browser = shared.browser;
  });

  test('four people hear each other, see the cameras and the shared screen', async () => {
    for (const name of ['Ann', 'Bob', 'Cara', 'Dan']) await enter(name);
    const { Ann, Bob, Cara, Dan } = people;
    for (const { page } of Object.values(people)) {
      await eventually(async () => assert.equal(await grid(page).getByRole('listitem').count(), 4));
      await button(page, 'Microphone').click();
    }
    await button(Ann.page, 'Camera').click();
    await button(Bob.page, 'Camera').click();
    await button(Cara.page, 'Share screen').click();

    for (const [name, { page }] of Object.entries(people)) {
      await eventually(async () => assert.equal(await flowing(page, 'audio'), 3, `${name} hears the three others`));
    }
    // Everyone sees at least two videos: Ann and Bob the other camera and the screen, Cara both
    // cameras, Dan three (or two, while his estimated bandwidth holds one camera back).
    for (const [name, { page }] of Object.entries(people)) {
      const expected = 2;
      await eventually(async () => {
        const count = await flowing(page, 'video');
        const captions = await grid(page).getByRole('listitem').allTextContents();
        assert.ok(count >= expected, `${name} sees ${count} of ${expected} videos; the grid: ${captions.join(' | ')}`);
      });
    }
    for (const page of [Ann.page, Bob.page, Dan.page]) {
      const screen = page.getByLabel("Cara's screen");
      await screen.waitFor();
      await eventually(async () => assert.ok(await screen.evaluate((video) => /** @type {HTMLVideoElement} */ (video).videoWidth > 0)));
    }
    // The grid names everyone, with what they are doing.
    await grid(Dan.page).getByRole('listitem', { name: /^Ann/ }).waitFor();
    await button(Bob.page, 'Microphone').click();
    await grid(Dan.page).getByRole('listitem', { name: /^Bob · muted/ }).waitFor();
    await Dan.page.getByRole('status', { name: 'Call' }).filter({ hasText: 'Cara is sharing their screen.' }).waitFor();
    // Someone is found speaking (the fake microphone beeps).
    await Dan.page.locator('#grid li.speaking').first().waitFor({ timeout: 15_000 });
    for (const [name, { problems }] of Object.entries(people)) assert.deepEqual(problems, [], name);
  });

  test('chat goes through the server to everyone', async () => {
    const { Ann, Bob, Cara, Dan } = people;
    await Ann.page.getByLabel('Message', { exact: true }).fill('hello, group <b>not bold</b>');
    await Ann.page.getByLabel('Message', { exact: true }).press('Enter');
    for (const { page } of [Bob, Cara, Dan]) {
      await page.getByRole('log', { name: 'Messages' }).getByText('hello, group <b>not bold</b>').waitFor();
    }
    // Acknowledged by the others: Ann sees it delivered.
    await Ann.page.getByRole('log', { name: 'Messages' }).getByText(/delivered/i).first().waitFor();
    await Bob.page.getByLabel('Message', { exact: true }).fill('hi Ann');
    await Bob.page.getByLabel('Message', { exact: true }).press('Enter');
    await Ann.page.getByRole('log', { name: 'Messages' }).getByText('hi Ann').waitFor();
  });

  test('a fifth person who joins late gets video quickly', async (t) => {
    const started = Date.now();
    const eve = await enter('Eve');
    const joined = Date.now() - started;
    const waitStart = Date.now();
    await eventually(async () => {
      const videos = await streams(eve, 'video');
      assert.ok(videos.filter((video) => video.frames > 0).length >= 3, 'Eve decodes both cameras and the screen');
    }, 10_000);
    const firstFrames = Date.now() - waitStart;
    t.diagnostic(`Eve: joined and connected in ${joined} ms; first frames of all three videos ${firstFrames} ms later`);
    assert.ok(firstFrames < 5_000, `keyframes took ${firstFrames} ms`);
    await eventually(async () => assert.equal(await flowing(eve, 'audio'), 4));
  });

  test("closing a tab removes that person for the others", async () => {
    const { Ann, Dan } = people;
    await Dan.page.close();
    await eventually(async () => {
      assert.equal(await grid(Ann.page).getByRole('listitem', { name: /^Dan/ }).count(), 0);
    }, 5_000);
    // Ann still hears Bob and Cara (Eve never turned her microphone on); Dan's slot is idle.
    await eventually(async () => assert.equal(await flowing(Ann.page, 'audio'), 2), 10_000);
    await eventually(async () => assert.equal(await grid(Ann.page).getByRole('listitem').count(), 4));
  });

  test('a 50 MB file goes through the server to each person who accepts it, intact', async (t) => {
    const { Ann, Bob, Cara, Eve } = people;
    // The call is over: the file has the connection (and this machine's two cores) to itself.
    for (const { page } of [Ann, Bob, Cara, Eve]) {
      if (await button(page, 'Leave call').isEnabled()) await button(page, 'Leave call').click();
    }
    const dir = await mkdtemp(join(tmpdir(), 'natter-group-files-'));
    try {
      const name = 'group-50MB.bin';
      const file = await randomFileIn(dir, name, 50);
      const chooser = Ann.page.waitForEvent('filechooser');
      await button(Ann.page, 'Attach file').click();
      await (await chooser).setFiles(file.path);
      /** @param {Page} page */
      const card = (page) => page.getByRole('group', { name: `File ${name}` });
      for (const { page } of [Bob, Cara, Eve]) {
        await card(page).locator('.file-status').filter({ hasText: 'Wants to send you this file' }).waitFor({ timeout: 30_000 });
      }
      const started = Date.now();
      await card(Bob.page).getByRole('button', { name: 'Accept' }).click();
      await card(Cara.page).getByRole('button', { name: 'Accept' }).click();
      await card(Eve.page).getByRole('button', { name: 'Decline' }).click();
      for (const { page } of [Bob, Cara]) {
        await eventually(async () => {
          const status = await card(page).locator('.file-status').textContent();
          assert.match(String(status), /Received|received/, `the card says: ${status}`);
        }, 120_000);
      }
      const seconds = (Date.now() - started) / 1000;
      t.diagnostic(`50 MiB to two people through the relay: ${seconds.toFixed(1)} s (${((2 * 50) / seconds).toFixed(1)} MiB/s in all)`);
      for (const { page } of [Bob, Cara]) {
        const download = page.waitForEvent('download');
        await card(page).getByRole('button', { name: 'Download' }).click();
        const saved = await download;
        assert.equal(saved.suggestedFilename(), name);
        assert.equal(await sha256Of(await saved.path()), file.sha256, 'the downloaded file is the sent file');
      }
      // Ann's cards say who took it and who did not.
      await Ann.page.getByRole('status', { name: 'Files' }).filter({ hasText: /received|did not take/ }).waitFor();
      assert.equal(await card(Ann.page).count(), 3, 'one card per recipient');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('group room across a server restart', () => {
  test('a restarted server ends the call cleanly and everyone rejoins on their own', async () => {
    const own = await shared.startServer();
    const browser = await launchBrowserOnHost(shared.topology.a, [own.url], FAKE_MEDIA);
    /** @type {{ stop(): Promise<void> } | null} */
    let restarted = null;
    try {
      const ann = await enterGroup(browser, own.url, 'Ann');
      const bob = await enterGroup(browser, own.url, 'Bob', ann.page.url());
      await button(ann.page, 'Microphone').click();
      await eventually(async () => assert.equal(await flowing(bob.page, 'audio'), 1));
      const address = new URL(own.url).host;
      await own.stop();
      await connected(bob.page, 'Server unreachable — retrying…');
      restarted = await shared.startServer({ listen: address });
      // Nobody reloads: both rejoin, Ann's microphone is published again, Bob hears her.
      await connected(ann.page);
      await connected(bob.page);
      await eventually(async () => assert.equal(await flowing(bob.page, 'audio'), 1));
      await grid(bob.page).getByRole('listitem', { name: /^Ann/ }).waitFor();
      await bob.page.getByLabel('Message', { exact: true }).fill('we are back');
      await bob.page.getByLabel('Message', { exact: true }).press('Enter');
      await ann.page.getByRole('log', { name: 'Messages' }).getByText('we are back').waitFor();
      assert.deepEqual([...ann.problems, ...bob.problems], []);
    } finally {
      await browser.close();
      await restarted?.stop();
      await own.stop();
    }
  });
});
