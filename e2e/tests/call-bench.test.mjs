// Benchmark: time from clicking "Camera" to the first decoded frame on the other side, against a
// bare RTCPeerConnection doing the same steps (getUserMedia, add the track, renegotiate) between
// the same two pages; and the CPU each person's browser uses during a video call, against the same
// pages idle. Two browsers with their own profiles, so /proc tells their processes apart.
//
// NATTER_CALL_ROUNDS (default 3; scripts/bench uses 10) camera starts of each kind, alternating;
// NATTER_CALL_SECONDS (default 5; scripts/bench uses 60) of call, and as many idle, for the CPU.
// Figures are printed as a table; the test fails only if video does not arrive.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  FAKE_MEDIA,
  browserProcesses,
  callTestPage,
  inbound,
  median,
  meetInNewRoom,
  personWithProfile,
  report,
  startServer,
} from './harness.mjs';

const ROUNDS = Number(process.env.NATTER_CALL_ROUNDS ?? 3);
const SECONDS = Number(process.env.NATTER_CALL_SECONDS ?? 5);
const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** @type {string} */
let dir;
/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'natter-call-bench-'));
  server = await startServer();
});
after(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** @param {string} label */
const person = (label) =>
  personWithProfile(join(dir, `profile-${label}`), server.url, { args: FAKE_MEDIA, initScript: callTestPage });

/** CPU time (user + system) of these processes so far, in seconds. @param {string[]} pids */
async function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // Fields after the command name, which may itself hold spaces: utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return ticks / TICKS_PER_SECOND;
}

/**
 * CPU used over `seconds` by each person's page (renderer) and whole browser, in % of one core.
 * @param {{ profile: string }[]} people
 */
async function cpuOver(people, seconds) {
  const groups = await Promise.all(people.map((each) => browserProcesses(each.profile)));
  const pidsOf = (/** @type {{ pid: string, renderer: boolean }[]} */ group, rendererOnly = false) =>
    group.filter((each) => !rendererOnly || each.renderer).map((each) => each.pid);
  const read = () =>
    Promise.all(groups.flatMap((group) => [cpuSeconds(pidsOf(group, true)), cpuSeconds(pidsOf(group))]));
  const start = await read();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const end = await read();
  const percent = end.map((value, index) => ((value - start[index]) / seconds) * 100);
  return people.map((_, index) => ({ page: percent[index * 2], browser: percent[index * 2 + 1] }));
}

/**
 * The wall-clock time (ms, the page's clock) at which the page had decoded more than `after` frames.
 * @param {import('playwright-core').Page} page @param {string} connections @param {number} after
 */
async function nextDecodedFrame(page, connections, after) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const now = await inbound(page, 'video', connections);
    if (now.frames > after) return now.at;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return assert.fail(`${connections}: no video frame decoded`);
}

/**
 * Natter: Ann clicks "Camera"; the time runs from the click event in her page to the first frame
 * Bob's page decodes. Then she turns the camera off and Bob's page notices.
 * @param {import('playwright-core').Page} ann @param {import('playwright-core').Page} bob
 */
async function natterCameraStart(ann, bob) {
  const { frames } = await inbound(bob, 'video');
  const decoded = nextDecodedFrame(bob, 'natterTestConnections', frames);
  const clickedAt = await ann.evaluate(
    () =>
      new Promise((resolve) => {
        const button = /** @type {HTMLButtonElement} */ (document.getElementById('call-camera'));
        button.addEventListener('click', () => resolve(performance.timeOrigin + performance.now()), { once: true, capture: true });
        button.click();
      }),
  );
  const at = await decoded;
  await ann.getByRole('button', { name: 'Camera', exact: true }).click();
  await bob.waitForFunction(() => /** @type {HTMLVideoElement} */ (document.getElementById('remote-camera')).hidden);
  // Let the stop settle (renegotiation, last frames) so the next start begins from rest.
  await new Promise((resolve) => setTimeout(resolve, 500));
  return at - /** @type {number} */ (clickedAt);
}

/** The bare baseline's two connections, set up once: negotiated through node, no trickle. */
async function connectBare(/** @type {import('playwright-core').Page[]} */ ...pages) {
  for (const page of pages) {
    await page.evaluate(() => {
      const pc = new RTCPeerConnection();
      Object.assign(window, { barePc: pc, bareConnections: [pc] });
      // Not one of the app's connections (callTestPage keeps every one it sees).
      const app = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).natterTestConnections);
      app.splice(app.indexOf(pc), 1);
      // Negotiation needs at least one m-line; a data channel keeps the connection up between rounds.
      pc.createDataChannel('keep', { negotiated: true, id: 9 });
      // One video transceiver, reused by every round, as Natter reuses its camera's.
      Object.assign(window, { bareVideo: pc.addTransceiver('video', { direction: 'inactive' }) });
    });
  }
  await renegotiate(pages[0], pages[1]);
  await Promise.all(
    pages.map((page) =>
      page.waitForFunction(() => /** @type {RTCPeerConnection} */ (/** @type {any} */ (window).barePc).connectionState === 'connected'),
    ),
  );
}

/** One offer/answer round between the bare connections. @param {import('playwright-core').Page} from @param {import('playwright-core').Page} to */
async function renegotiate(from, to) {
  const describe = async (/** @type {RTCSessionDescriptionInit | null} */ remote) => {
    const pc = /** @type {RTCPeerConnection} */ (/** @type {any} */ (window).barePc);
    if (remote) await pc.setRemoteDescription(remote);
    await pc.setLocalDescription();
    if (pc.iceGatheringState !== 'complete') {
      await new Promise((resolve) =>
        pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve(undefined)),
      );
    }
    return /** @type {RTCSessionDescriptionInit} */ (pc.localDescription?.toJSON());
  };
  const offer = await from.evaluate(describe, null);
  const answer = await to.evaluate(describe, offer);
  await from.evaluate((remote) => /** @type {any} */ (window).barePc.setRemoteDescription(remote), answer);
}

/**
 * Baseline: the same steps with no application: getUserMedia, the track onto the (reused) video
 * transceiver, offer/answer relayed by node instead of our server, first decoded frame.
 * @param {import('playwright-core').Page} ann @param {import('playwright-core').Page} bob
 */
async function bareCameraStart(ann, bob) {
  const { frames } = await inbound(bob, 'video', 'bareConnections');
  const decoded = nextDecodedFrame(bob, 'bareConnections', frames);
  const startedAt = await ann.evaluate(async () => {
    const at = performance.timeOrigin + performance.now();
    const video = /** @type {RTCRtpTransceiver} */ (/** @type {any} */ (window).bareVideo);
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } } });
    await video.sender.replaceTrack(stream.getVideoTracks()[0]);
    video.direction = 'sendonly';
    return at;
  });
  await renegotiate(ann, bob);
  const at = await decoded;
  await ann.evaluate(async () => {
    const video = /** @type {RTCRtpTransceiver} */ (/** @type {any} */ (window).bareVideo);
    video.sender.track?.stop();
    await video.sender.replaceTrack(null);
    video.direction = 'inactive';
  });
  await renegotiate(ann, bob);
  await new Promise((resolve) => setTimeout(resolve, 500));
  return at - startedAt;
}

test('calls: Camera to first remote frame, and CPU during a video call', { timeout: 15 * 60_000 }, async (t) => {
  const ann = await person('ann');
  const bob = await person('bob');
  try {
    await meetInNewRoom(ann.page, bob.page);

    const idle = await cpuOver([ann, bob], SECONDS);

    await connectBare(ann.page, bob.page);
    // The first start of each kind opens the camera and adds a transceiver; later ones reuse them.
    const natter = [];
    const bare = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      bare.push(await bareCameraStart(ann.page, bob.page));
      natter.push(await natterCameraStart(ann.page, bob.page));
    }
    await Promise.all([ann.page, bob.page].map((page) => page.evaluate(() => /** @type {any} */ (window).barePc.close())));

    // A two-way video call with sound.
    for (const page of [ann.page, bob.page]) {
      await page.getByRole('button', { name: 'Microphone', exact: true }).click();
      await page.getByRole('button', { name: 'Camera', exact: true }).click();
    }
    await Promise.all([ann.page, bob.page].map((page) => nextDecodedFrame(page, 'natterTestConnections', 0)));
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const video = await bob.page.evaluate(async () => {
      const list = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).natterTestConnections);
      /** @type {string} */
      let seen = '';
      (await list.at(-1)?.getStats())?.forEach((stats) => {
        if (stats.type === 'inbound-rtp' && stats.kind === 'video' && stats.frameWidth) {
          seen = `${stats.frameWidth}×${stats.frameHeight} at ${Math.round(stats.framesPerSecond ?? 0)} fps`;
        }
      });
      return seen;
    });
    const inCall = await cpuOver([ann, bob], SECONDS);

    const ms = (/** @type {number[]} */ values) => values.map((value) => value.toFixed(0)).join(', ');
    const pct = (/** @type {number} */ value) => `${value.toFixed(0)} %`;
    report(t, [
      `| measurement (${ROUNDS} camera starts each; medians) | Natter | bare RTCPeerConnection | Natter ÷ bare |`,
      '|---|---|---|---|',
      `| Camera click → first decoded remote frame, ms | ${median(natter).toFixed(0)} (${ms(natter)}) | ${median(bare).toFixed(0)} (${ms(bare)}) | ${(median(natter) / median(bare)).toFixed(2)} |`,
      '',
      `| CPU over ${SECONDS} s, % of one core (video: ${video || 'unknown'}) | in a video call | same pages idle |`,
      '|---|---|---|',
      `| Ann's tab (renderer) | ${pct(inCall[0].page)} | ${pct(idle[0].page)} |`,
      `| Bob's tab (renderer) | ${pct(inCall[1].page)} | ${pct(idle[1].page)} |`,
      `| Ann's whole browser (all processes) | ${pct(inCall[0].browser)} | ${pct(idle[0].browser)} |`,
      `| Bob's whole browser (all processes) | ${pct(inCall[1].browser)} | ${pct(idle[1].browser)} |`,
    ]);
  } finally {
    await ann.context.close();
    await bob.context.close();
  }
});
