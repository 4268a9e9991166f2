// Luna's own overhead: the time from pressing Enter on "@luna …" to the first words of the reply
// shown in the page, with a model that answers at once; beside, as the baseline, a signaling
// round trip (ping → pong) between the same page and the same server. Medians.
//
// scripts/bench runs it with NATTER_LUNA_ROUNDS=30; the test run uses 8 and fails above 100 ms.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectedPair, launchBrowser, median, report, startServer } from './harness.mjs';
import { startFakeModel } from './fake-model.mjs';

const ROUNDS = Number(process.env.NATTER_LUNA_ROUNDS ?? 8);

test('Luna: Enter to first streamed words shown, against a signaling round trip', async (t) => {
  const model = await startFakeModel({ kind: 'reply', pieces: ['Pong', ' back'], delayMs: 0 });
  const server = await startServer({
    args: ['--luna-url', model.url, '--luna-model', 'instant', '--luna-replies-per-hour', '1000'],
  });
  const browser = await launchBrowser();
  try {
    const { ann, bob } = await connectedPair({ server, browser });
    await ann.page.getByRole('checkbox', { name: 'Allow @luna' }).check();
    await ann.page.getByRole('status', { name: 'Luna' }).filter({ hasText: '@luna is on' }).waitFor();
    // Timed in the page: from the Enter key to the first text in a new Luna reply.
    await ann.page.evaluate(() => {
      const page = /** @type {any} */ (window);
      page.lunaTimes = [];
      document.getElementById('message-input')?.addEventListener(
        'keydown',
        (event) => {
          if (event.key === 'Enter') page.lunaStart = performance.now();
        },
        { capture: true },
      );
      const log = /** @type {HTMLElement} */ (document.getElementById('messages'));
      new MutationObserver(() => {
        for (const item of log.querySelectorAll('li.message.luna:not([data-timed])')) {
          if (!item.querySelector('.text')?.textContent) continue;
          /** @type {HTMLElement} */ (item).dataset.timed = '1';
          page.lunaTimes.push(performance.now() - page.lunaStart);
        }
      }).observe(log, { childList: true, subtree: true, characterData: true });
    });
    const input = ann.page.getByRole('textbox', { name: 'Message' });
    for (let round = 0; round < ROUNDS; round += 1) {
      await input.fill(`@luna ping ${round}`);
      await input.press('Enter');
      await ann.page.waitForFunction((count) => /** @type {any} */ (window).lunaTimes.length === count, round + 1);
      await ann.page.locator('li.message.luna.done').nth(round).waitFor();
    }
    const firstWords = await ann.page.evaluate(() => /** @type {number[]} */ (/** @type {any} */ (window).lunaTimes));
    // Baseline: ping → pong on a signaling socket of the same page to the same server.
    const pings = await ann.page.evaluate(async (rounds) => {
      const socket = new WebSocket(new URL('/ws', location.href).href.replace('http', 'ws'));
      await new Promise((resolve) => (socket.onopen = resolve));
      socket.send(JSON.stringify({ type: 'hello', version: 1 }));
      /** @type {number[]} */
      const times = [];
      for (let i = 0; i < rounds; i += 1) {
        const started = performance.now();
        const pong = new Promise((resolve) => {
          socket.onmessage = (event) => {
            if (JSON.parse(event.data).type === 'pong') resolve(undefined);
          };
        });
        socket.send(JSON.stringify({ type: 'ping' }));
        await pong;
        times.push(performance.now() - started);
      }
      socket.close();
      return times;
    }, ROUNDS);
    const lunaMedian = median(firstWords);
    const pingMedian = median(pings);
    report(t, [
      `| Luna, Enter to first words shown (${ROUNDS} questions, instant model) | median ${lunaMedian.toFixed(1)} ms | max ${Math.max(...firstWords).toFixed(1)} ms | baseline signaling ping → pong | median ${pingMedian.toFixed(1)} ms | ratio ${(lunaMedian / pingMedian).toFixed(1)}× |`,
    ]);
    assert.ok(lunaMedian < 100, `median ${lunaMedian.toFixed(1)} ms`);
    assert.deepEqual([...ann.problems, ...bob.problems], []);
  } finally {
    await browser.close();
    await server.stop();
    await model.close();
  }
});
