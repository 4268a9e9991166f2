// Time from opening a room link to "Connected" for the second person, over repeated joins, beside
// a baseline from the same browser: two RTCPeerConnections in one page signalled in memory (the
// floor for WebRTC set-up on this machine, without page load or server round trips).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { median, newPerson, report, serverAndBrowser, statusOf } from './harness.mjs';

const JOINS = Number(process.env.NATTER_JOINS ?? 10);

const shared = serverAndBrowser();

/** In-page baseline: ms from creating two connections to their data channel opening. */
async function baselineOnce() {
  const person = await newPerson(shared.browser, shared.server.url);
  await person.page.goto('/healthz');
  const ms = await person.page.evaluate(async () => {
    const start = performance.now();
    const a = new RTCPeerConnection();
    const b = new RTCPeerConnection();
    a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
    b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
    const channel = a.createDataChannel('chat', { negotiated: true, id: 0 });
    b.createDataChannel('chat', { negotiated: true, id: 0 });
    const open = new Promise((resolve) => (channel.onopen = resolve));
    await a.setLocalDescription();
    await b.setRemoteDescription(/** @type {RTCSessionDescription} */ (a.localDescription));
    await b.setLocalDescription();
    await a.setRemoteDescription(/** @type {RTCSessionDescription} */ (b.localDescription));
    await open;
    const elapsed = performance.now() - start;
    a.close();
    b.close();
    return elapsed;
  });
  await person.context.close();
  return ms;
}

test(`time to Connected for the second person, median of ${JOINS} joins`, async (t) => {
  /** @type {number[]} */
  const joins = [];
  /** @type {number[]} */
  const baselines = [];
  /** From the page having loaded (DOMContentLoaded) to Connected: signaling plus WebRTC. */
  /** @type {number[]} */
  const afterLoad = [];
  for (let i = 0; i < JOINS; i += 1) {
    const ann = await newPerson(shared.browser, shared.server.url);
    await ann.page.goto('/');
    await ann.page.getByRole('button', { name: 'Create room' }).click();
    await statusOf(ann.page).filter({ hasText: /^Waiting for the other person…$/ }).waitFor();
    const bob = await newPerson(shared.browser, shared.server.url);
    await bob.page.goto(ann.page.url());
    await statusOf(bob.page).filter({ hasText: /^Connected$/ }).waitFor({ timeout: 10_000 });
    // Milliseconds from the start of navigation to the first "Connected", marked by the page.
    const [connectedAt, loadedAt] = await bob.page.evaluate(() => [
      performance.getEntriesByName('natter:connected')[0]?.startTime,
      /** @type {PerformanceNavigationTiming} */ (performance.getEntriesByType('navigation')[0]).domContentLoadedEventEnd,
    ]);
    assert.equal(typeof connectedAt, 'number');
    joins.push(/** @type {number} */ (connectedAt));
    afterLoad.push(/** @type {number} */ (connectedAt) - loadedAt);
    await ann.context.close();
    await bob.context.close();
    baselines.push(await baselineOnce());
  }
  const joinMedian = median(joins);
  const baselineMedian = median(baselines);
  const lines = [
    `open link → Connected: median ${joinMedian.toFixed(0)} ms over ${JOINS} joins (min ${Math.min(...joins).toFixed(0)}, max ${Math.max(...joins).toFixed(0)})`,
    `  of which after the page had loaded (signaling + WebRTC): median ${median(afterLoad).toFixed(0)} ms`,
    `baseline, two RTCPeerConnections in one page: median ${baselineMedian.toFixed(0)} ms`,
    `ratio: ${(joinMedian / baselineMedian).toFixed(1)}×`,
  ];
  report(t, lines);
  // A loose bound that still catches a broken fast path (e.g. waiting for ICE gathering or a retry).
  assert.ok(joinMedian < 2000, `median ${joinMedian} ms`);
});
