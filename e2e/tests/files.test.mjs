// File transfer, as two people do it: attach, accept, watch progress, download; cancel from
// either side; a dropped connection and a reload in the middle; images inline; hostile files.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CONNECTED,
  connectedPair,
  expectMessage,
  expectStatus,
  randomFileIn,
  send,
  sha256Of,
} from './harness.mjs';
import { onTopology } from './topology.mjs';

// The server on a host of its own, the people behind a NAT (topology.mjs).
const shared = onTopology();
/** @type {string} */
let dir;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'natter-files-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** @param {string} name @param {number} megabytes */
const randomFile = (name, megabytes) => randomFileIn(dir, name, megabytes);

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
    .evaluate(
      (bar, min) =>
        new Promise((resolve) => {
          const check = () => ((/** @type {HTMLProgressElement} */ (bar)).value >= min ? resolve(undefined) : setTimeout(check, 20));
          check();
        }),
      percent,
    );
}

/** Downloads a received file and returns its SHA-256. @param {import('playwright-core').Page} page @param {string} name */
async function downloadedHash(page, name) {
  const download = page.waitForEvent('download');
  await card(page, name).getByRole('button', { name: 'Download' }).click();
  const saved = await download;
  assert.equal(saved.suggestedFilename(), name);
  return sha256Of(await saved.path());
}

/** Waits until the page's browser keeps no received file of its room (OPFS). @param {import('playwright-core').Page} page */
async function waitForNoStoredFiles(page) {
  await page.waitForFunction(async () => {
    const room = location.pathname.split('/')[2];
    try {
      const root = await navigator.storage.getDirectory();
      const files = await (await root.getDirectoryHandle('natter-files')).getDirectoryHandle(room);
      // @ts-ignore: keys() is not in TypeScript's DOM library yet
      for await (const _ of files.keys()) return false;
    } catch {
      // no directory: nothing stored
    }
    return true;
  });
}

/** A short WAV file: 0.1 s of a 440 Hz tone, 8 kHz mono 8-bit. */
function beep() {
  const samples = 800;
  const wav = Buffer.alloc(44 + samples);
  wav.write('RIFF', 0);
  wav.writeUInt32LE(36 + samples, 4);
  wav.write('WAVEfmt ', 8);
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(8000, 24);
  wav.writeUInt32LE(8000, 28);
  wav.writeUInt16LE(1, 32);
  wav.writeUInt16LE(8, 34);
  wav.write('data', 36);
  wav.writeUInt32LE(samples, 40);
  for (let i = 0; i < samples; i += 1) wav[44 + i] = 128 + Math.round(100 * Math.sin((2 * Math.PI * 440 * i) / 8000));
  return wav;
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

  test('a transfer cancelled by the sender stops on both sides, and the partial file is deleted', async () => {
    const file = await randomFile('cancel-by-sender.bin', 100);
    const { ann, bob } = await connectedPair(shared);
    await attach(ann.page, file.path);
    await card(bob.page, 'cancel-by-sender.bin').getByRole('button', { name: 'Accept' }).click();
    await waitForPercent(bob.page, 'cancel-by-sender.bin', 5);
    await card(ann.page, 'cancel-by-sender.bin').getByRole('button', { name: 'Cancel' }).click();
    await expectCardText(ann.page, 'cancel-by-sender.bin', 'Cancelled.');
    await expectCardText(bob.page, 'cancel-by-sender.bin', 'Cancelled by the sender.');
    await bob.page.getByRole('status', { name: 'Files' }).filter({ hasText: 'cancelled cancel-by-sender.bin' }).waitFor();
    assert.equal(await card(bob.page, 'cancel-by-sender.bin').getByRole('button').count(), 0, 'nothing to download or cancel');
    await waitForNoStoredFiles(bob.page);
    await Promise.all([ann.context.close(), bob.context.close()]);
  });

  test('a transfer cancelled by the receiver stops on both sides', async () => {
    const file = await randomFile('cancel-by-receiver.bin', 100);
    const { ann, bob } = await connectedPair(shared);
    await attach(ann.page, file.path);
    await card(bob.page, 'cancel-by-receiver.bin').getByRole('button', { name: 'Accept' }).click();
    await waitForPercent(ann.page, 'cancel-by-receiver.bin', 5);
    await card(bob.page, 'cancel-by-receiver.bin').getByRole('button', { name: 'Cancel' }).click();
    await expectCardText(bob.page, 'cancel-by-receiver.bin', 'Cancelled.');
    await expectCardText(ann.page, 'cancel-by-receiver.bin', 'Cancelled by the other person.');
    // It stays cancelled: no late chunk or acknowledgement turns it into a finished transfer.
    await ann.page.waitForTimeout(1_000);
    assert.equal(await card(ann.page, 'cancel-by-receiver.bin').locator('.file-status').textContent(), 'Cancelled by the other person.');
    await waitForNoStoredFiles(bob.page);
    await Promise.all([ann.context.close(), bob.context.close()]);
  });

  test('when the receiver reloads mid-transfer, the file continues from what was stored and arrives intact', async () => {
    const file = await randomFile('resume-receiver.bin', 100);
    const { ann, bob } = await connectedPair(shared);
    await attach(ann.page, file.path);
    await card(bob.page, 'resume-receiver.bin').getByRole('button', { name: 'Accept' }).click();
    await waitForPercent(bob.page, 'resume-receiver.bin', 30);
    const before = await percentOf(bob.page, 'resume-receiver.bin');
    await bob.page.reload();
    await expectCardText(ann.page, 'resume-receiver.bin', /^Paused: the other person left\. It continues when they are back\./);
    await expectStatus(bob.page, CONNECTED);
    // The first progress Bob sees again is where he was, not zero.
    await waitForPercent(bob.page, 'resume-receiver.bin', 1);
    const resumedAt = await percentOf(bob.page, 'resume-receiver.bin');
    assert.ok(resumedAt >= before - 2, `resumed at ${resumedAt}% after stopping at ${before}%`);
    await expectCardText(bob.page, 'resume-receiver.bin', RECEIVED, 60_000);
    await expectCardText(ann.page, 'resume-receiver.bin', SENT);
    assert.equal(await downloadedHash(bob.page, 'resume-receiver.bin'), file.sha256);
    await Promise.all([ann.context.close(), bob.context.close()]);
  });

  test('when the sender reloads mid-transfer, selecting the file again resumes it', async () => {
    const file = await randomFile('resume-sender.bin', 100);
    const other = await randomFile('not-the-same.bin', 100);
    const { ann, bob } = await connectedPair(shared);
    await attach(ann.page, file.path);
    await card(bob.page, 'resume-sender.bin').getByRole('button', { name: 'Accept' }).click();
    await waitForPercent(bob.page, 'resume-sender.bin', 30);
    await ann.page.reload();
    await expectCardText(bob.page, 'resume-sender.bin', /^Paused: /);
    await expectCardText(ann.page, 'resume-sender.bin', 'Paused: this page was reloaded. Select the file again to resume.');
    await expectStatus(ann.page, CONNECTED);
    // A different file of the same size is refused, with a reason.
    let chooser = ann.page.waitForEvent('filechooser');
    await card(ann.page, 'resume-sender.bin').getByRole('button', { name: 'Select file again' }).click();
    await (await chooser).setFiles(other.path);
    await ann.page.getByRole('status', { name: 'Files' }).filter({ hasText: 'That is not the same file' }).waitFor({ timeout: 30_000 });
    chooser = ann.page.waitForEvent('filechooser');
    await card(ann.page, 'resume-sender.bin').getByRole('button', { name: 'Select file again' }).click();
    await (await chooser).setFiles(file.path);
    await expectCardText(bob.page, 'resume-sender.bin', RECEIVED, 60_000);
    await expectCardText(ann.page, 'resume-sender.bin', SENT);
    assert.equal(await downloadedHash(bob.page, 'resume-sender.bin'), file.sha256);
    await Promise.all([ann.context.close(), bob.context.close()]);
  });

  test('images show inline on both sides and open larger on click', async () => {
    const { ann, bob } = await connectedPair(shared);
    const png = await ann.page.evaluate(async () => {
      const canvas = new OffscreenCanvas(40, 30);
      const context = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext('2d'));
      context.fillStyle = '#e4572e';
      context.fillRect(0, 0, 40, 30);
      const blob = await canvas.convertToBlob({ type: 'image/png' });
      return [...new Uint8Array(await blob.arrayBuffer())];
    });
    const path = join(dir, 'sunset.png');
    await writeFile(path, Uint8Array.from(png));
    await attach(ann.page, path);
    // Small files need no click to accept.
    for (const page of [bob.page, ann.page]) {
      const thumb = card(page, 'sunset.png').getByRole('button', { name: 'Enlarge sunset.png' });
      await thumb.waitFor({ timeout: 20_000 });
      const width = await thumb.getByRole('img', { name: 'sunset.png' }).evaluate(async (image) => {
        await /** @type {HTMLImageElement} */ (image).decode();
        return /** @type {HTMLImageElement} */ (image).naturalWidth;
      });
      assert.equal(width, 40);
    }
    await card(bob.page, 'sunset.png').getByRole('button', { name: 'Enlarge sunset.png' }).click();
    const viewer = bob.page.getByRole('dialog', { name: 'sunset.png' });
    await viewer.getByRole('img', { name: 'sunset.png' }).waitFor();
    await viewer.getByRole('button', { name: 'Close' }).click();
    await viewer.waitFor({ state: 'hidden' });
    // Audio gets a player (its declared type is trusted only for a media element).
    const wav = join(dir, 'beep.wav');
    await writeFile(wav, beep());
    await attach(ann.page, wav);
    await card(bob.page, 'beep.wav').locator('audio[controls]').waitFor({ timeout: 20_000 });
    assert.deepEqual([...ann.problems, ...bob.problems], []);
    // The image stays in the room's history after Ann has gone.
    await ann.context.close();
    await expectStatus(bob.page, 'The other person left');
    await bob.page.reload();
    await card(bob.page, 'sunset.png').getByRole('button', { name: 'Enlarge sunset.png' }).waitFor();
    await card(bob.page, 'sunset.png').getByRole('button', { name: 'Download' }).waitFor();
    await bob.context.close();
  });

  test('a hostile file name and a scripted SVG do no harm', async () => {
    const { ann, bob } = await connectedPair(shared);
    /** @type {string[]} */
    const dialogs = [];
    for (const page of [ann.page, bob.page]) {
      page.on('dialog', (dialog) => {
        dialogs.push(dialog.message());
        dialog.dismiss();
      });
    }
    const svg = join(dir, '<img src=x onerror=alert(1)>.svg');
    await writeFile(svg, '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>');
    const spoof = join(dir, 'invoice\u202Efdp.exe');
    await writeFile(spoof, 'MZ not really a program');
    await attach(ann.page, [svg, spoof]);
    const svgName = '_img src=x onerror=alert(1)_.svg';
    await expectCardText(bob.page, svgName, RECEIVED);
    await expectCardText(bob.page, 'invoice_fdp.exe', RECEIVED);
    // The SVG is a download, never a picture or a document; names are shown as text.
    assert.equal(await card(bob.page, svgName).locator('img, iframe, object, embed, svg').count(), 0);
    assert.equal(await bob.page.locator('img[src="x"]').count(), 0);
    const download = bob.page.waitForEvent('download');
    await card(bob.page, svgName).getByRole('button', { name: 'Download' }).click();
    assert.equal((await download).suggestedFilename(), svgName);
    assert.deepEqual(dialogs, [], 'no script ran');
    assert.deepEqual([...ann.problems, ...bob.problems], []);
    await Promise.all([ann.context.close(), bob.context.close()]);
  });
});

describe('more ways to send', () => {
  test('files dropped on the page or pasted are sent like attached ones', async () => {
    const { ann, bob } = await connectedPair(shared);
    const dropped = await ann.page.evaluateHandle(() => {
      const data = new DataTransfer();
      data.items.add(new File(['dropped on the page'], 'dropped.txt', { type: 'text/plain' }));
      return data;
    });
    await ann.page.dispatchEvent('main', 'drop', { dataTransfer: dropped });
    await ann.page.getByRole('textbox', { name: 'Message' }).evaluate((box) => {
      const data = new DataTransfer();
      data.items.add(new File(['pasted'], 'pasted.txt', { type: 'text/plain' }));
      box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
    });
    await expectCardText(bob.page, 'dropped.txt', RECEIVED);
    await expectCardText(bob.page, 'pasted.txt', RECEIVED);
    await expectCardText(ann.page, 'pasted.txt', SENT);
    assert.deepEqual([...ann.problems, ...bob.problems], []);
    await Promise.all([ann.context.close(), bob.context.close()]);
  });
});

describe('file size policy', () => {
  test("files over the server's limit are refused before anything is sent", async () => {
    const small = await shared.startServer({ args: ['--max-file-size', '1MiB'] });
    try {
      const { ann, bob } = await connectedPair({ server: small, browser: shared.browser });
      const file = await randomFile('two-megabytes.bin', 2);
      await attach(ann.page, file.path);
      await ann.page.getByText("two-megabytes.bin is 2.1 MB: larger than this server's limit of 1.0 MB.").waitFor();
      assert.equal(await card(ann.page, 'two-megabytes.bin').count(), 0);
      assert.equal(await card(bob.page, 'two-megabytes.bin').count(), 0);
      await Promise.all([ann.context.close(), bob.context.close()]);
    } finally {
      await small.stop();
    }
  });
});
