// Benchmark: file transfer throughput against a raw data channel, and renderer memory for a small
// and a big file. Two browsers with on-disk profiles (incognito contexts keep OPFS in memory,
// which would hide what a real browser does), each one person in a room.
//
// Sizes: NATTER_BENCH_SMALL_MB (default 200) and NATTER_BENCH_BIG_MB (default 400; scripts/bench
// uses 2048); NATTER_BENCH_ROUNDS (default 1; scripts/bench uses 5) rounds of raw-then-Natter.
// Figures are printed as a table; the test fails only if memory clearly grows with the file size
// or a transfer is not intact, not when a goal is missed (timings here are noisy).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { median, meetInNewRoom, personWithProfile, renderers, report, startServer } from './harness.mjs';

const SMALL_MB = Number(process.env.NATTER_BENCH_SMALL_MB ?? 200);
const BIG_MB = Number(process.env.NATTER_BENCH_BIG_MB ?? 400);
/** Rounds of raw-then-Natter at the small size; figures are medians over them. */
const ROUNDS = Number(process.env.NATTER_BENCH_ROUNDS ?? 1);
const MiB = 1024 * 1024;

/** @type {string} */
let dir;
/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'natter-bench-'));
  server = await startServer({ args: ['--max-file-size', `${Math.max(SMALL_MB, BIG_MB) + 1}MiB`] });
});
after(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** @param {string} name @param {number} megabytes */
async function randomFile(name, megabytes) {
  const path = join(dir, name);
  const file = await open(path, 'w');
  const hash = createHash('sha256');
  // Random blocks, repeated: incompressible for the transport, cheap to make.
  const blocks = Array.from({ length: 16 }, () => randomBytes(MiB));
  for (let i = 0; i < megabytes; i += 1) {
    const block = blocks[i % blocks.length];
    hash.update(block);
    await file.write(block);
  }
  await file.close();
  return { path, name, sha256: hash.digest('hex') };
}

// --- renderer memory, from /proc ------------------------------------------------------------

/** Resets the peak resident set size of the processes (Linux: clear_refs 5). @param {string[]} pids */
async function resetPeaks(pids) {
  for (const pid of pids) await writeFile(`/proc/${pid}/clear_refs`, '5').catch(() => undefined);
}

/** Sum of the processes' peak resident set sizes since the last reset, in MiB. @param {string[]} pids */
async function peakMiB(pids) {
  let kib = 0;
  for (const pid of pids) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    kib += Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  }
  return kib / 1024;
}

// --- the two people -------------------------------------------------------------------------

/** @param {string} label */
const person = (label) => personWithProfile(join(dir, `profile-${label}`), server.url);

/**
 * Raw data-channel throughput between the two pages: 16 KiB messages with the same
 * bufferedAmount thresholds Natter uses, no application logic. Signaling goes through node.
 * @param {import('playwright-core').Page} from @param {import('playwright-core').Page} to @param {number} bytes
 */
async function rawThroughput(from, to, bytes) {
  const setup = () => {
    const pc = new RTCPeerConnection();
    const channel = pc.createDataChannel('raw', { negotiated: true, id: 7 });
    channel.binaryType = 'arraybuffer';
    Object.assign(window, { rawPc: pc, rawChannel: channel });
  };
  /** @param {RTCSessionDescriptionInit | null} remote */
  const describe = async (remote) => {
    const pc = /** @type {RTCPeerConnection} */ (/** @type {any} */ (window).rawPc);
    if (remote) await pc.setRemoteDescription(remote);
    await pc.setLocalDescription();
    // Without trickle: wait until every candidate is in the description.
    if (pc.iceGatheringState !== 'complete') {
      await new Promise((resolve) => pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve(undefined)));
    }
    return /** @type {RTCSessionDescriptionInit} */ (pc.localDescription?.toJSON());
  };
  await from.evaluate(setup);
  await to.evaluate(setup);
  const offer = await from.evaluate(describe, null);
  const answer = await to.evaluate(describe, offer);
  await from.evaluate((remote) => /** @type {any} */ (window).rawPc.setRemoteDescription(remote), answer);
  const opened = () =>
    new Promise((resolve) => {
      const channel = /** @type {RTCDataChannel} */ (/** @type {any} */ (window).rawChannel);
      if (channel.readyState === 'open') resolve(undefined);
      else channel.addEventListener('open', () => resolve(undefined));
    });
  await Promise.all([from.evaluate(opened), to.evaluate(opened)]);
  const received = to.evaluate(
    (total) =>
      new Promise((resolve) => {
        const channel = /** @type {RTCDataChannel} */ (/** @type {any} */ (window).rawChannel);
        let got = 0;
        channel.onmessage = (event) => {
          got += /** @type {ArrayBuffer} */ (event.data).byteLength;
          if (got >= total) resolve(performance.timeOrigin + performance.now());
        };
      }),
    bytes,
  );
  const started = await from.evaluate(
    async ({ total, high, low }) => {
      const channel = /** @type {RTCDataChannel} */ (/** @type {any} */ (window).rawChannel);
      const message = crypto.getRandomValues(new Uint8Array(16 * 1024));
      channel.bufferedAmountLowThreshold = low;
      const start = performance.timeOrigin + performance.now();
      (async () => {
        for (let sent = 0; sent < total; ) {
          if (channel.bufferedAmount > high) {
            await new Promise((resolve) => (channel.onbufferedamountlow = resolve));
            continue;
          }
          channel.send(message);
          sent += message.length;
        }
      })();
      return start;
    },
    { total: bytes, high: 4 * MiB, low: MiB },
  );
  const ended = /** @type {number} */ (await received);
  await Promise.all([from, to].map((page) => page.evaluate(() => /** @type {any} */ (window).rawPc.close())));
  return { seconds: (ended - started) / 1000 };
}

/**
 * Sends one file through Natter: Ann attaches it, Bob accepts; times come from the pages' clocks.
 * @param {Awaited<ReturnType<typeof person>>} ann
 * @param {Awaited<ReturnType<typeof person>>} bob
 * @param {{ path: string, name: string }} file
 */
async function natterTransfer(ann, bob, file) {
  // The same file may have been sent before: this transfer's card is the next one.
  const cards = bob.page.getByRole('group', { name: `File ${file.name}` });
  const index = await cards.count();
  const card = cards.nth(index);
  const attachedAt = Date.now();
  const chooser = ann.page.waitForEvent('filechooser');
  await ann.page.getByRole('button', { name: 'Attach file' }).click();
  await (await chooser).setFiles(file.path);
  await card.getByRole('button', { name: 'Accept' }).waitFor({ timeout: 120_000 });
  const offeredAt = Date.now();
  // Bob's page notes when the card says the file is in and checked.
  const done = bob.page.evaluate(
    ({ name, index }) =>
      new Promise((resolve) => {
        const check = () => {
          const group = document.querySelectorAll(`[role="group"][aria-label="File ${CSS.escape(name)}"]`)[index];
          const text = group?.querySelector('.file-status')?.textContent ?? '';
          if (text.startsWith('Received')) resolve(performance.timeOrigin + performance.now());
          else if (text.startsWith('Failed')) resolve(-1);
          else setTimeout(check, 5);
        };
        check();
      }),
    { name: file.name, index },
  );
  const acceptedAt = await card.getByRole('button', { name: 'Accept' }).evaluate((button) => {
    const at = performance.timeOrigin + performance.now();
    /** @type {HTMLButtonElement} */ (button).click();
    return at;
  });
  const finishedAt = /** @type {number} */ (await done);
  assert.notEqual(finishedAt, -1, `${file.name} failed its checksum`);
  return {
    transferSeconds: (finishedAt - acceptedAt) / 1000,
    prepareSeconds: (offeredAt - attachedAt) / 1000,
  };
}

test(`file transfer: raw data channel vs Natter, memory for ${SMALL_MB} MiB and ${BIG_MB} MiB`, { timeout: 20 * 60_000 }, async (t) => {
  const [small, big] = [await randomFile(`bench-${SMALL_MB}.bin`, SMALL_MB), await randomFile(`bench-${BIG_MB}.bin`, BIG_MB)];
  const ann = await person('ann');
  const bob = await person('bob');
  try {
    await meetInNewRoom(ann.page, bob.page);

    const [annRenderers, bobRenderers] = [await renderers(ann.profile), await renderers(bob.profile)];
    const all = [...annRenderers, ...bobRenderers];
    /** @param {{ path: string, name: string }} file */
    const measured = async (file) => {
      await resetPeaks(all);
      const timing = await natterTransfer(ann, bob, file);
      return { ...timing, annPeak: await peakMiB(annRenderers), bobPeak: await peakMiB(bobRenderers) };
    };
    // Raw and Natter alternate, so drift on this noisy machine hits both alike.
    const rawRates = [];
    const natterRates = [];
    const firsts = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      rawRates.push(SMALL_MB / (await rawThroughput(ann.page, bob.page, SMALL_MB * MiB)).seconds);
      const run = await measured(small);
      natterRates.push(SMALL_MB / run.transferSeconds);
      firsts.push(run);
    }
    const first = firsts[0];
    const second = await measured(big);
    const rawRate = median(rawRates);
    const natterRate = median(natterRates);
    const list = (/** @type {number[]} */ values) => values.map((value) => value.toFixed(1)).join(', ');
    const mb = (/** @type {number} */ value) => `${value.toFixed(0)} MiB`;
    report(t, [
      `| measurement (${ROUNDS} round${ROUNDS === 1 ? '' : 's'}; medians) | ${SMALL_MB} MiB | ${BIG_MB} MiB |`,
      '|---|---|---|',
      `| raw data channel (16 KiB messages), MiB/s | ${rawRate.toFixed(1)} (${list(rawRates)}) | |`,
      `| Natter transfer (accept → received and checked), MiB/s | ${natterRate.toFixed(1)} (${list(natterRates)}) | ${(BIG_MB / second.transferSeconds).toFixed(1)} |`,
      `| Natter ÷ raw | ${((natterRate / rawRate) * 100).toFixed(0)} % | ${((BIG_MB / second.transferSeconds / rawRate) * 100).toFixed(0)} % |`,
      `| sender checksum before offering, s | ${median(firsts.map((run) => run.prepareSeconds)).toFixed(1)} | ${second.prepareSeconds.toFixed(1)} |`,
      `| end to end incl. checksum, MiB/s | ${median(firsts.map((run) => SMALL_MB / (run.prepareSeconds + run.transferSeconds))).toFixed(1)} | ${(BIG_MB / (second.prepareSeconds + second.transferSeconds)).toFixed(1)} |`,
      `| peak renderer memory, sender | ${mb(first.annPeak)} | ${mb(second.annPeak)} |`,
      `| peak renderer memory, receiver | ${mb(first.bobPeak)} | ${mb(second.bobPeak)} |`,
      `| growth from ${SMALL_MB} to ${BIG_MB} MiB, sender / receiver | | ${mb(second.annPeak - first.annPeak)} / ${mb(second.bobPeak - first.bobPeak)} |`,
    ]);
    // Memory must not follow the file size: the big file is at least twice the small one.
    const grownBy = (BIG_MB - SMALL_MB) / 2;
    assert.ok(second.annPeak - first.annPeak < grownBy, `the sender's memory grew with the file: ${mb(first.annPeak)} → ${mb(second.annPeak)}`);
    assert.ok(second.bobPeak - first.bobPeak < grownBy, `the receiver's memory grew with the file: ${mb(first.bobPeak)} → ${mb(second.bobPeak)}`);
  } finally {
    await ann.context.close();
    await bob.context.close();
  }
});
