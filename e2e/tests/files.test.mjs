// File transfer, as two people do it: attach, accept, watch progress, download; cancel from
// either side; a dropped connection and a reload in the middle; images inline; hostile files.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CONNECTED, connectedPair, expectMessage, expectStatus, send, serverAndBrowser } from './harness.mjs';

const shared = serverAndBrowser();
/** @type {string} */
let dir;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'natter-files-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Writes `megabytes` MiB of random bytes to `name` in the test directory.
 * @param {string} name @param {number} megabytes
 * @returns {Promise<{ path: string, sha256: string, size: number }>}
 */
async function randomFile(name, megabytes) {
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
async function sha256Of(path) {
  const hash = createHash('sha256');
  for await (const block of createReadStream(path)) hash.update(block);
  return hash.digest('hex');
}

/** @param {import('playwright-core').Page} page @param {string | string[]} paths */
async function attach(page, paths) {
  const chooser = page.waitForEvent('filechooser');
  await page.getByRole('button', { name: 'Attach file' }).click();
  await (await chooser).setFiles(paths);
}

/** @param {import('playwright-core').Page} page @param {string} name */
const card = (page, name) => page.getByRole('group', { name: `File ${name}` });

/** @param {import('playwright-core').Page} page @param {string} name @param {string | RegExp} text */
async function expectCardText(page, name, text, timeout = 30_000) {
  await card(page, name).locator('.file-status').filter({ hasText: text }).waitFor({ timeout });
}

/** The percentage a card's progress bar shows. @param {import('playwright-core').Page} page @param {string} name */
const percentOf = (page, name) =>
  card(page, name).getByRole('progressbar').evaluate((bar) => /** @type {HTMLProgressElement} */ (bar).value);

/** Waits until a card's progress bar shows at least `percent`. */
async function waitForPercent(/** @type {import('playwright-core').Page} */ page, /** @type {string} */ name, /** @type {number} */ percent) {
  await card(page, name)
    .getByRole('progressbar')
    .and(page.locator(`progress`))
    .evaluate(
      (bar, min) =>
        new Promise((resolve) => {
          const check = () => ((/** @type {HTMLProgressElement} */ (bar)).value >= min ? resolve(undefined) : setTimeout(check, 20));
          check();
        }),
      percent,
    );
}

const RECEIVED = 'Received: checked, complete and intact.';
const SENT = 'Sent: the other person has it, checked.';

describe('files', () => {
  test('a 200 MB file arrives intact, with progress, while chat keeps flowing, and downloads by its name', async () => {
    const big = await randomFile('random-200MB.bin', 200);
    const { ann, bob } = await connectedPair(shared);
    await attach(ann.page, big.path);
    const name = 'random-200MB.bin';
    await expectCardText(bob.page, name, 'Wants to send you this file');
    await expectCardText(ann.page, name, 'Waiting for the other person to accept');
    await card(bob.page, name).getByRole('button', { name: 'Accept' }).click();
    // Both sides show percentage, speed and time left while it flows.
    const live = /^\d+% · .+ of 210 MB · .+\/s · .+ left$/;
    await Promise.all([expectCardText(ann.page, name, live), expectCardText(bob.page, name, live)]);
    // Chat messages do not wait behind the file.
    await send(bob.page, 'chatting during the transfer');
    await expectMessage(ann.page, 'chatting during the transfer');
    assert.ok((await percentOf(bob.page, name)) < 100, 'the chat message overtook the file');
    await expectCardText(bob.page, name, RECEIVED, 120_000);
    await expectCardText(ann.page, name, SENT);
    await bob.page.getByRole('status', { name: 'Files' }).filter({ hasText: `Received ${name}` }).waitFor();

    const download = bob.page.waitForEvent('download');
    await card(bob.page, name).getByRole('button', { name: 'Download' }).click();
    const saved = await download;
    assert.equal(saved.suggestedFilename(), name);
    assert.equal(await sha256Of(await saved.path()), big.sha256, 'the downloaded file is the sent file');
    await rm(big.path);
    assert.deepEqual([...ann.problems, ...bob.problems], []);
    await Promise.all([ann.context.close(), bob.context.close()]);
  });
});
