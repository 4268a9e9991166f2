// Figures for the chat, each beside a baseline from the same browser and run:
// - message round trip (send → "Delivered" shown) over 100 messages, against a raw data-channel
//   ping-pong between two RTCPeerConnections in one page;
// - time to show a room with 10,000 messages of history, against the same room with none.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectedPair, expectStatus, median, report, serverAndBrowser } from './harness.mjs';

const shared = serverAndBrowser();
const MESSAGES = Number(process.env.NATTER_RTT_MESSAGES ?? 100);
const HISTORY = Number(process.env.NATTER_HISTORY ?? 10_000);

/** Keeps every RTCPeerConnection the page makes, so the baseline can use the app's own connection. */
function keepPeerConnections() {
  const Original = window.RTCPeerConnection;
  /** @type {RTCPeerConnection[]} */
  const made = [];
  /** @type {any} */ (window).peerConnections = made;
  window.RTCPeerConnection = class extends Original {
    /** @param {RTCConfiguration} [config] */
    constructor(config) {
      super(config);
      made.push(this);
    }
  };
}

/** Opens a second negotiated channel (id 9) on the page's live connection; no renegotiation is needed. */
function openBenchChannel() {
  const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).peerConnections);
  const pc = pcs.filter((candidate) => candidate.connectionState === 'connected').at(-1);
  if (!pc) throw new Error('no connected RTCPeerConnection');
  const channel = pc.createDataChannel('bench', { negotiated: true, id: 9 });
  /** @type {any} */ (window).benchChannel = channel;
  return new Promise((resolve) => (channel.onopen = () => resolve(undefined)));
}

test(`message round trip, median of ${MESSAGES}`, async (t) => {
  const { ann, bob } = await connectedPair(shared, { initScript: keepPeerConnections });
  const trips = await ann.page.evaluate(async (count) => {
    const form = /** @type {HTMLFormElement} */ (document.getElementById('message-form'));
    const input = /** @type {HTMLTextAreaElement} */ (document.getElementById('message-input'));
    const list = /** @type {HTMLElement} */ (document.getElementById('messages'));
    /** @type {number[]} */
    const times = [];
    for (let i = 0; i < count; i += 1) {
      const delivered = new Promise((resolve) => {
        const observer = new MutationObserver(() => {
          const last = list.lastElementChild;
          if (last?.querySelector('.state.delivered') && last.textContent?.includes(`round trip ${i}.`)) {
            observer.disconnect();
            resolve(undefined);
          }
        });
        observer.observe(list, { childList: true, subtree: true });
      });
      input.value = `round trip ${i}.`;
      const start = performance.now();
      form.requestSubmit();
      await delivered;
      times.push(performance.now() - start);
    }
    return times;
  }, MESSAGES);
  // Baseline: the same two pages over the same connection, a bare echo on a second channel.
  await Promise.all([ann.page.evaluate(openBenchChannel), bob.page.evaluate(openBenchChannel)]);
  await bob.page.evaluate(() => {
    const channel = /** @type {RTCDataChannel} */ (/** @type {any} */ (window).benchChannel);
    channel.onmessage = (event) => channel.send(event.data);
  });
  const baseline = await ann.page.evaluate(async (count) => {
    const channel = /** @type {RTCDataChannel} */ (/** @type {any} */ (window).benchChannel);
    /** @type {number[]} */
    const times = [];
    for (let i = 0; i < count; i += 1) {
      const back = new Promise((resolve) => (channel.onmessage = resolve));
      const start = performance.now();
      channel.send(JSON.stringify({ type: 'chat', id: `bench${i}xx`, text: `round trip ${i}.`, sentAt: Date.now() }));
      await back;
      times.push(performance.now() - start);
    }
    return times;
  }, MESSAGES);
  report(t, [
    `message round trip (send → Delivered shown): median ${median(trips).toFixed(1)} ms over ${MESSAGES} (max ${Math.max(...trips).toFixed(1)})`,
    `baseline, bare echo between the same two pages on the same connection: median ${median(baseline).toFixed(1)} ms`,
  ]);
  assert.equal(trips.length, MESSAGES);
  assert.ok(median(trips) < 500, `median ${median(trips)} ms`);
  await Promise.all([ann, bob].map((p) => p.context.close()));
});

test(`showing a room with ${HISTORY} messages of history`, async (t) => {
  const { ann, bob } = await connectedPair(shared);
  await bob.context.close();
  const room = new URL(ann.page.url()).pathname.split('/')[2];
  /** Navigation start → history shown, from the mark the page sets. */
  const shownAfterLoad = async () => {
    await ann.page.reload();
    await expectStatus(ann.page, /^(Waiting for the other person…|The other person left)$/);
    await ann.page.waitForFunction(() => performance.getEntriesByName('natter:history-shown').length > 0);
    return ann.page.evaluate(() => performance.getEntriesByName('natter:history-shown')[0].startTime);
  };
  const empty = [];
  for (let i = 0; i < 3; i += 1) empty.push(await shownAfterLoad());
  // Fill this browser's history for the room the way the page stores it.
  await ann.page.evaluate(
    async ({ room, count }) => {
      const db = await new Promise((resolve, reject) => {
        const request = indexedDB.open('natter');
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
      const transaction = /** @type {IDBDatabase} */ (db).transaction('messages', 'readwrite');
      const store = transaction.objectStore('messages');
      const start = Date.now() - count * 1000;
      for (let i = 0; i < count; i += 1) {
        const own = i % 3 === 0;
        store.put({
          room,
          id: `hist${String(i).padStart(8, '0')}`,
          seq: start + i,
          own,
          authorId: own ? 'self-000000000000' : 'peer-000000000000',
          author: own ? 'Ann' : 'Bob',
          text: `message ${i}: some ordinary chat text, with a link https://example.org/${i} now and then`,
          sentAt: start + i * 1000,
          state: own ? 'delivered' : 'received',
        });
      }
      await new Promise((resolve) => (transaction.oncomplete = resolve));
    },
    { room, count: HISTORY },
  );
  const full = [];
  for (let i = 0; i < 3; i += 1) full.push(await shownAfterLoad());
  // The latest page of messages is in the log; earlier ones come when asked for.
  const items = ann.page.getByRole('log', { name: 'Messages' }).getByRole('listitem');
  const page = Math.min(HISTORY, 200);
  assert.equal(await items.count(), page);
  await items.last().getByText(`message ${HISTORY - 1}:`).waitFor();
  if (HISTORY > page) {
    await ann.page.getByRole('button', { name: /^Show earlier messages/ }).click();
    assert.equal(await items.count(), Math.min(HISTORY, 2 * page));
    assert.match((await items.first().textContent()) ?? '', new RegExp(`message ${HISTORY - 2 * page}:`));
  }
  report(t, [
    `room page with ${HISTORY} messages of history shown: median ${median(full).toFixed(0)} ms after navigation start`,
    `baseline, the same room with no history: median ${median(empty).toFixed(0)} ms`,
  ]);
  assert.ok(median(full) < 10_000);
  await ann.context.close();
});
