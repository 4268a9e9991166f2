// Named rooms, room owners and the bot check, as people meet them in the page. The server runs
// with its default limits and proof-of-work difficulty here.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, newPerson, startServer, statusOf } from './harness.mjs';

/** @typedef {import('playwright-core').Page} Page */

const THROUGH_SERVER = 'Connected through the server';

/** @param {Page} page @param {string | RegExp} text */
async function expectConnection(page, text, timeout = 20_000) {
  const pattern = typeof text === 'string' ? new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : text;
  try {
    await statusOf(page).filter({ hasText: pattern }).waitFor({ timeout });
  } catch (error) {
    const shown = await statusOf(page).textContent({ timeout: 1_000 }).catch(() => '(no status)');
    throw new Error(`${page.url()} showed "${shown}", not ${pattern}`, { cause: error });
  }
}

/** @param {Page} page */
const people = (page) => page.getByRole('list', { name: 'People' });
/** @param {Page} page @param {string} name */
const personRow = (page, name) => people(page).getByRole('listitem').filter({ hasText: name });

/** Sets the person's name (their identity's default is random). @param {Page} page @param {string} name */
async function setName(page, name) {
  // The group page folds the name form away; the pair page shows it on wide screens.
  if (!page.url().includes('/r/')) await page.getByText('Change your name', { exact: true }).click();
  await page.getByLabel('Your name', { exact: true }).fill(name);
  await page.getByRole('button', { name: 'Save name', exact: true }).click();
}

/** @param {Page} page @param {string} text */
async function say(page, text) {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByLabel('Message', { exact: true }).press('Enter');
}

/** @param {Page} page @param {string} text */
const heard = (page, text) => page.getByRole('log', { name: 'Messages' }).getByText(text).waitFor({ timeout: 15_000 });

/**
 * A named person in a new group room made from the home page, and the room's address.
 * @param {import('playwright-core').Browser} browser @param {string} url @param {string} name
 */
async function owner(browser, url, name) {
  const person = await newPerson(browser, url);
  await person.page.goto('/');
  await person.page.getByRole('radio', { name: 'Group room (up to 32)' }).check();
  await person.page.getByRole('button', { name: 'Create room', exact: true }).click();
  await person.page.waitForURL(/\/g\//);
  await setName(person.page, name);
  await expectConnection(person.page, THROUGH_SERVER);
  return person;
}

/** A named person joining `roomUrl`. @param {import('playwright-core').Browser} browser @param {string} url @param {string} roomUrl @param {string} name */
async function guest(browser, url, roomUrl, name) {
  const person = await newPerson(browser, url);
  await person.page.goto(roomUrl);
  await setName(person.page, name);
  await expectConnection(person.page, THROUGH_SERVER);
  return person;
}

describe('named rooms', () => {
  test('two people reach the same room by its name, and after a restart the name still leads there', async () => {
    // Both servers use one data directory, as a restarted server would.
    const dataDir = await mkdtemp(join(tmpdir(), 'natter-names-'));
    const first = await startServer({ limits: [], dataDir });
    const browser = await launchBrowser();
    /** @type {Awaited<ReturnType<typeof startServer>> | null} */
    let second = null;
    try {
      const ann = await newPerson(browser, first.url);
      await ann.page.goto('/');
      // A bad name is explained before anything is sent.
      await ann.page.getByLabel('Room name', { exact: true }).fill('no/slashes');
      await ann.page.getByRole('button', { name: 'Open named room' }).click();
      await ann.page.getByRole('alert').filter({ hasText: "only letters, digits, spaces, '-', '_' and '.'" }).waitFor();
      await ann.page.getByLabel('Room name', { exact: true }).fill('  Book Club ');
      await ann.page.getByRole('button', { name: 'Open named room' }).click();
      await ann.page.waitForURL(/\/n\/book-club$/);
      await setName(ann.page, 'Ann');
      await expectConnection(ann.page, THROUGH_SERVER);

      // Bob writes the name his own way: the server sends him to its one form.
      const bob = await newPerson(browser, first.url);
      await bob.page.goto('/n/BOOK%20club');
      await bob.page.waitForURL(/\/n\/book-club$/);
      await setName(bob.page, 'Bob');
      await expectConnection(bob.page, THROUGH_SERVER);
      await personRow(bob.page, 'Ann').waitFor();
      await personRow(ann.page, 'Bob').waitFor();
      await say(ann.page, 'hello from before the restart');
      await heard(bob.page, 'hello from before the restart');

      // The server restarts on the same address and data directory.
      const address = new URL(first.url).host;
      await first.stop();
      second = await startServer({ listen: address, dataDir, limits: [] });
      await expectConnection(bob.page, THROUGH_SERVER);
      // Ann reloads: her history is kept by room id, so seeing it again means the same room.
      await ann.page.reload();
      await expectConnection(ann.page, THROUGH_SERVER);
      await heard(ann.page, 'hello from before the restart');
      await personRow(ann.page, 'Bob').waitFor();
      await say(bob.page, 'and after it');
      await heard(ann.page, 'and after it');
      assert.deepEqual([...ann.problems, ...bob.problems], []);
    } finally {
      await browser.close();
      await second?.stop();
      await first.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('room owners', () => {
  /** @type {Awaited<ReturnType<typeof startServer>>} */
  let server;
  /** @type {import('playwright-core').Browser} */
  let browser;
  before(async () => {
    server = await startServer({ limits: [] });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the owner removes, then bans, the other person, who sees why and cannot return', async () => {
    const ann = await owner(browser, server.url, 'Ann');
    const roomUrl = ann.page.url();
    await people(ann.page).getByText('(you, owner)').waitFor();
    const bob = await guest(browser, server.url, roomUrl, 'Bob');
    await personRow(bob.page, 'Ann').filter({ hasText: '(owner)' }).waitFor();
    // Only the owner has the controls.
    assert.equal(await bob.page.getByRole('button', { name: 'Remove Ann' }).count(), 0);
    assert.equal(await bob.page.getByRole('checkbox', { name: 'Lock room' }).isVisible(), false);

    await ann.page.getByRole('button', { name: 'Remove Bob' }).click();
    await expectConnection(bob.page, "The room's owner removed you from this room.");
    await personRow(ann.page, 'Bob').waitFor({ state: 'detached' });
    // A removal is not a ban: a reload brings Bob back.
    await bob.page.reload();
    await expectConnection(bob.page, THROUGH_SERVER);
    await personRow(ann.page, 'Bob').waitFor();

    await ann.page.getByRole('button', { name: 'Ban Bob' }).click();
    await expectConnection(bob.page, "The room's owner banned you from this room.");
    await personRow(ann.page, 'Bob').waitFor({ state: 'detached' });
    await bob.page.reload();
    await expectConnection(bob.page, "The room's owner banned you from this room.");
    // A fresh identity (another browser profile) from the same address is banned too.
    const fresh = await newPerson(browser, server.url);
    await fresh.page.goto(roomUrl);
    await expectConnection(fresh.page, "The room's owner banned you from this room.");
    // The owner shares that address, and her secret lets her back in as owner.
    await ann.page.reload();
    await expectConnection(ann.page, THROUGH_SERVER);
    await people(ann.page).getByText('(you, owner)').waitFor();
    assert.deepEqual([...ann.problems, ...bob.problems, ...fresh.problems], []);
    for (const person of [ann, bob, fresh]) await person.context.close();
  });

  test('a locked room refuses a newcomer with a clear message until it is unlocked', async () => {
    const ann = await owner(browser, server.url, 'Ann');
    const roomUrl = ann.page.url();
    const bob = await guest(browser, server.url, roomUrl, 'Bob');
    await ann.page.getByRole('checkbox', { name: 'Lock room' }).check();
    // Everyone is told, through the room's status line.
    await bob.page.getByRole('status', { name: 'Room rules' }).filter({ hasText: 'Room locked: nobody new may join.' }).waitFor();
    const cara = await newPerson(browser, server.url);
    await cara.page.goto(roomUrl);
    await expectConnection(cara.page, 'This room is locked: nobody new may join.');
    // People already in may come back.
    await bob.page.reload();
    await expectConnection(bob.page, THROUGH_SERVER);
    await ann.page.getByRole('checkbox', { name: 'Lock room' }).uncheck();
    await cara.page.reload();
    await expectConnection(cara.page, THROUGH_SERVER);
    await personRow(ann.page, 'Bob').waitFor();
    // The capacity: a bad value is explained, a good one reaches everyone.
    await ann.page.getByLabel('Room capacity').fill('1');
    await ann.page.getByRole('button', { name: 'Set capacity' }).click();
    await ann.page.getByRole('alert').filter({ hasText: 'A room holds at least 2 people' }).waitFor();
    await ann.page.getByLabel('Room capacity').fill('3');
    await ann.page.getByRole('button', { name: 'Set capacity' }).click();
    await bob.page.getByRole('status', { name: 'Room rules' }).filter({ hasText: 'Holds up to 3 people.' }).waitFor();
    // The owner hands the room to Bob: the controls move with it.
    await ann.page.getByRole('button', { name: 'Make Bob the owner' }).click();
    await bob.page.getByRole('checkbox', { name: 'Lock room' }).waitFor();
    await personRow(ann.page, 'Bob').filter({ hasText: '(owner)' }).waitFor();
    assert.equal(await ann.page.getByRole('checkbox', { name: 'Lock room' }).isVisible(), false);
    for (const person of [ann, bob, cara]) await person.context.close();
  });

  test('in a pair room too, the owner may remove the other person', async () => {
    const ann = await newPerson(browser, server.url);
    await ann.page.goto('/');
    await ann.page.getByRole('button', { name: 'Create room', exact: true }).click();
    await ann.page.waitForURL(/\/r\//);
    await setName(ann.page, 'Ann');
    const bob = await newPerson(browser, server.url);
    await bob.page.goto(ann.page.url());
    await setName(bob.page, 'Bob');
    await expectConnection(bob.page, 'Connected');
    await personRow(bob.page, 'Ann').filter({ hasText: '(owner)' }).waitFor();
    // A pair room has no capacity to set.
    assert.equal(await ann.page.getByLabel('Room capacity').isVisible(), false);
    await ann.page.getByRole('button', { name: 'Remove Bob' }).click();
    await expectConnection(bob.page, "The room's owner removed you from this room.");
    await expectConnection(ann.page, 'The other person left');
    assert.deepEqual([...ann.problems, ...bob.problems], []);
    for (const person of [ann, bob]) await person.context.close();
  });

  test('the bot check is solved on its own when joining, and the server insists on it', async () => {
    const ann = await owner(browser, server.url, 'Ann');
    const solved = await ann.page.evaluate(() =>
      performance.getEntriesByName('natter:proof-solved').map((entry) => /** @type {PerformanceMark} */ (entry).detail),
    );
    assert.ok(solved.length >= 1, 'the page solved a challenge');
    assert.ok(solved[0].difficulty >= 100_000, JSON.stringify(solved));
    // A client that skips the check is refused, even with an identity of its own.
    const reply = await ann.page.evaluate(
      async () => {
        const { newPeerSecret, peerIdOf } = await import('/js/protocol.js');
        const peerSecret = newPeerSecret();
        return new Promise((resolve) => {
          const socket = new WebSocket(new URL('/ws', location.href).href.replace('http', 'ws'));
          socket.onopen = () => {
            socket.send(JSON.stringify({ type: 'hello', version: 1 }));
            const join = { type: 'join', room: 'AAAAAAAAAAAAAAAAAAAAAA', peer: peerIdOf(peerSecret), peerSecret, name: 'Bot' };
            socket.send(JSON.stringify(join));
          };
          socket.onmessage = (event) => {
            const message = JSON.parse(event.data);
            if (message.type === 'error') resolve(message.code);
          };
        });
      },
    );
    assert.equal(reply, 'proof-required');
    await ann.context.close();
  });
});

describe('a hard bot check', () => {
  test('shows its progress while it works, then joins', async () => {
    // About two seconds of work here, so the progress bar has time to show.
    const server = await startServer({ limits: [], args: ['--pow-difficulty', '3000000'] });
    const browser = await launchBrowser();
    try {
      const ann = await newPerson(browser, server.url);
      const progress = ann.page.getByRole('progressbar', { name: 'Checking this browser is not a bot' });
      // A solve's length is chance: about one in eight ends before the bar's quarter-second delay.
      // Each reload is a new challenge; six quick ones in a row would be a one-in-300,000 event.
      let shown = false;
      for (let attempt = 0; attempt < 6 && !shown; attempt += 1) {
        if (attempt === 0) await ann.page.goto('/g/AAAAAAAAAAAAAAAAAAAAAB');
        else await ann.page.reload();
        // The loser of the race is left waiting; its later failure means nothing.
        shown = await Promise.race([
          progress.waitFor({ timeout: 60_000 }).then(() => true, () => false),
          statusOf(ann.page)
            .filter({ hasText: THROUGH_SERVER })
            .waitFor({ timeout: 60_000 })
            .then(() => false, () => false),
        ]);
      }
      assert.ok(shown, 'the progress bar showed during a slow check');
      await expectConnection(ann.page, THROUGH_SERVER, 60_000);
      await progress.waitFor({ state: 'hidden' });
      assert.deepEqual(ann.problems, []);
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});
