// @ts-check
// Benchmark: on a network like the real one (topology.mjs: the server on a host of its own, people
// on LANs behind NAT routers, coturn for STUN), the time from opening a room's link to hearing and
// seeing everyone else. Everyone opens the same new link at once and, as soon as the page lets
// them, turns on microphone and camera; each person's time runs from their navigation to the
// moment their page has received sound (audio energy) and decoded video from every other person.
// A group room of three (two on LAN A, one on LAN B, through the server's media relay) and a pair
// room (one on each LAN, directly through both NATs). The baseline is the same rounds with server
// and browsers in one namespace (loopback), measured in the same run: the ratio is what the
// network of separate hosts and NATs costs.
//
// NATTER_MULTI_HOST_ROUNDS (default 1; scripts/bench uses 5) rounds of each. The figures are
// printed as a table; the test fails only if someone never hears or sees someone.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FAKE_MEDIA, button, launchBrowser, median, report, startServer } from './harness.mjs';
import {
  buildTopology,
  gotoOnHost,
  launchBrowserOnHost,
  originOn,
  personOnHost,
  startServerOnHost,
  startStunOnHost,
} from './topology.mjs';

const ROUNDS = Number(process.env.NATTER_MULTI_HOST_ROUNDS ?? 1);
/** How long a person may wait for everyone's sound and video before the round fails. */
const PATIENCE_MS = 60_000;

/** @typedef {import('playwright-core').Browser} Browser */

/** @type {string} */
let dir;
/** @type {import('./topology.mjs').Topology} */
let topology;
/** @type {Awaited<ReturnType<typeof startStunOnHost>>} */
let stun;
/** @type {Awaited<ReturnType<typeof startServerOnHost>>} */
let server;
/** @type {Awaited<ReturnType<typeof startServer>>} */
let localServer;
/** Browsers on LAN A and LAN B; and two in the one namespace, for the baseline. */
/** @type {Browser[]} */
let browsers = [];
/** @type {Browser[]} */
let localBrowsers = [];

/**
 * A continuous tone for the fake microphone: the default fake device beeps once a second, which
 * would add up to a second of silence to every measurement.
 * @param {string} path
 */
async function writeTone(path, seconds = 2, rate = 48_000) {
  const samples = seconds * rate;
  const wav = Buffer.alloc(44 + samples * 2);
  wav.write('RIFF', 0);
  wav.writeUInt32LE(36 + samples * 2, 4);
  wav.write('WAVEfmt ', 8);
  wav.writeUInt32LE(16, 16); // PCM header size
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(rate, 24);
  wav.writeUInt32LE(rate * 2, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36);
  wav.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i += 1) wav.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2);
  await writeFile(path, wav);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'natter-multi-host-bench-'));
  const tone = join(dir, 'tone.wav');
  await writeTone(tone);
  const media = [...FAKE_MEDIA, `--use-file-for-fake-audio-capture=${tone}`];
  topology = await buildTopology();
  stun = await startStunOnHost(topology);
  server = await startServerOnHost(topology.server, { args: ['--ice-server', stun.stunUrl] });
  localServer = await startServer();
  const origins = [originOn(topology.server)];
  browsers = await Promise.all([launchBrowserOnHost(topology.a, origins, media), launchBrowserOnHost(topology.b, origins, media)]);
  localBrowsers = await Promise.all([launchBrowser(media), launchBrowser(media)]);
});
after(async () => {
  for (const browser of [...browsers, ...localBrowsers]) await browser.close();
  await server?.stop();
  await localServer?.stop();
  await stun?.stop();
  await topology?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Keeps every RTCPeerConnection the page makes, for getStats (no autoplay rule: people click anyway). */
function keepConnections() {
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
}

/**
 * In the page: resolves with the performance.now() (ms since this page's navigation began) at which
 * sound had arrived from each of `others` people, and at which decoded video had; NaN for what
 * did not come within `patience` ms. In a group room each person's tile plays their tracks; in a
 * pair room there is one other person.
 * @param {{ kind: 'pair' | 'group', others: number, patience: number }} what
 */
async function heardAndSeenAt({ kind, others, patience }) {
  const list = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).natterTestConnections);
  let heard = NaN;
  let seen = NaN;
  while (performance.now() < patience && (Number.isNaN(heard) || Number.isNaN(seen))) {
    const pc = list.findLast((each) => each.connectionState === 'connected');
    if (pc) {
      const stats = await pc.getStats();
      /** @type {Map<string, any>} */
      const byTrack = new Map();
      /** Who is heard and seen: one entry per other person. @type {{ energy: number, frames: number }[]} */
      let from = [];
      stats.forEach((each) => {
        if (each.type === 'inbound-rtp') byTrack.set(each.trackIdentifier, each);
      });
      if (kind === 'pair') {
        const total = { energy: 0, frames: 0 };
        for (const each of byTrack.values()) {
          total.energy += each.totalAudioEnergy ?? 0;
          total.frames += each.framesDecoded ?? 0;
        }
        from = [total];
      } else {
        /** @param {Element} tile @param {string} selector */
        const stream = (tile, selector) => {
          const element = /** @type {HTMLMediaElement | null} */ (tile.querySelector(selector));
          const id = /** @type {MediaStream | null} */ (element?.srcObject ?? null)?.getTracks()[0]?.id;
          return id ? byTrack.get(id) : undefined;
        };
        from = [...document.querySelectorAll('#grid li:not(.own)')].map((tile) => ({
          energy: stream(tile, 'audio')?.totalAudioEnergy ?? 0,
          frames: stream(tile, 'video')?.framesDecoded ?? 0,
        }));
      }
      const now = performance.now();
      if (Number.isNaN(heard) && from.filter((each) => each.energy > 0).length >= others) heard = now;
      if (Number.isNaN(seen) && from.filter((each) => each.frames > 0).length >= others) seen = now;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { heard, seen };
}

/**
 * One round: a person per browser in `seats` opens a new room's link at the same moment, turns on
 * microphone and camera, and waits to hear and see the others. Resolves with each person's times
 * (ms from navigation): devices turned on, everyone heard, everyone seen, both.
 * @param {'pair' | 'group'} kind @param {string} baseURL @param {Browser[]} seats
 */
async function round(kind, baseURL, seats) {
  const link = `${baseURL}/${kind === 'group' ? 'g' : 'r'}/${randomBytes(17).toString('base64url').slice(0, 22)}`;
  const people = await Promise.all(seats.map((browser) => personOnHost(browser, baseURL, { initScript: keepConnections })));
  try {
    return await Promise.all(
      people.map(async ({ page }) => {
        await gotoOnHost(page, link);
        // The buttons are enabled once the page may use the devices: clicks wait for that.
        await button(page, 'Microphone').click({ timeout: PATIENCE_MS });
        await button(page, 'Camera').click({ timeout: PATIENCE_MS });
        const devices = await page.evaluate(() => performance.now());
        const { heard, seen } = await page.evaluate(heardAndSeenAt, { kind, others: seats.length - 1, patience: PATIENCE_MS });
        if (!Number.isFinite(heard) || !Number.isFinite(seen)) {
          const grid = await page.locator('#grid li').evaluateAll((items) => items.map((item) => item.getAttribute('aria-label')));
          const status = await page.getByRole('status', { name: 'Connection', exact: true }).textContent();
          assert.fail(`${page.url()}: everyone heard at ${heard} ms, seen at ${seen} ms (waited ${PATIENCE_MS} ms); status "${status}"; grid: ${grid.join(' | ')}`);
        }
        if (kind === 'pair') {
          const status = await page.getByRole('status', { name: 'Connection', exact: true }).textContent();
          assert.equal(status, 'Connected', 'the pair is connected directly');
        }
        return { devices, heard, seen, both: Math.max(heard, seen) };
      }),
    );
  } finally {
    for (const { context } of people) await context.close();
  }
}

/** @param {number[]} values */
const ms = (values) => median(values).toFixed(0);

/** @typedef {Awaited<ReturnType<typeof round>>} Round */

/** A table row: the medians over every person of every round. @param {string} what @param {Round[]} rounds */
function row(what, rounds) {
  const people = rounds.flat();
  const both = people.map((each) => each.both);
  return `| ${what} | ${ms(both)} | ${Math.min(...both).toFixed(0)}–${Math.max(...both).toFixed(0)} | ${ms(people.map((each) => each.devices))} | ${ms(people.map((each) => each.heard))} | ${ms(people.map((each) => each.seen))} | ${people.length} |`;
}

test(`open link → hearing and seeing everyone, group of 3 and pair, ${ROUNDS} rounds each`, async (t) => {
  const [a, b] = browsers;
  const [one, two] = localBrowsers;
  /** @type {Record<string, Round[]>} */
  const rounds = { groupHosts: [], groupLocal: [], pairHosts: [], pairLocal: [] };
  // Interleaved, so a noisy moment on this shared machine does not land on one kind only.
  for (let i = 0; i < ROUNDS; i += 1) {
    rounds.groupHosts.push(await round('group', server.url, [a, b, a]));
    rounds.groupLocal.push(await round('group', localServer.url, [one, two, one]));
    rounds.pairHosts.push(await round('pair', server.url, [a, b]));
    rounds.pairLocal.push(await round('pair', localServer.url, [one, two]));
  }
  /** @param {Round[]} list */
  const both = (list) => median(list.flat().map((each) => each.both));
  report(t, [
    '| room, network | median ms to hear and see everyone | range | devices on | all heard | all seen | people × rounds |',
    '|---|---|---|---|---|---|---|',
    row('group of 3, two LANs behind NATs, server on its own host', rounds.groupHosts),
    row('group of 3, one namespace (baseline)', rounds.groupLocal),
    row('pair, direct through two NATs (STUN)', rounds.pairHosts),
    row('pair, one namespace (baseline)', rounds.pairLocal),
    `| ratio to baseline: group ${(both(rounds.groupHosts) / both(rounds.groupLocal)).toFixed(2)}×, pair ${(both(rounds.pairHosts) / both(rounds.pairLocal)).toFixed(2)}× | | | | | | |`,
  ]);
});
