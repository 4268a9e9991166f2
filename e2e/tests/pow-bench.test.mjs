// The bot check's cost to a person: how long headless Chromium takes to solve the server's
// challenge at the default difficulty (in the Web Worker the page uses), against the browser's own
// SHA-256 (Web Crypto, one digest per try) as the baseline for the hashing itself; and the time
// from opening a group room to "Connected through the server" with the check on (default) and
// off (difficulty 0), alternating, from the same browser.
//
// scripts/bench runs it with NATTER_POW_ROUNDS=40; the test run uses 12 and fails if the 95th
// percentile solve time reaches a second.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchBrowser, median, newPerson, report, startServer, statusOf } from './harness.mjs';

const ROUNDS = Number(process.env.NATTER_POW_ROUNDS ?? 12);

/** @param {number[]} values @param {number} fraction */
function percentile(values, fraction) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * fraction))];
}

test('proof of work: solve time in headless Chromium, and its share of joining', async (t) => {
  const checked = await startServer();
  const unchecked = await startServer({ args: ['--pow-difficulty', '0'] });
  const browser = await launchBrowser();
  try {
    const person = await newPerson(browser, checked.url);
    await person.page.goto('/');
    const difficulty = 100_000;
    // Solve fresh random tokens the way the page does: ProofSolver → pow-worker.js.
    const solves = await person.page.evaluate(
      async ({ rounds, difficulty }) => {
        const { ProofSolver } = await import('/js/proof.js');
        const solver = new ProofSolver(() => {});
        const results = [];
        for (let i = 0; i < rounds; i += 1) {
          const token = `${Math.floor(Date.now() / 1000) + 60}.${difficulty}.${crypto.randomUUID()}.${crypto.randomUUID()}`;
          const started = performance.now();
          const proof = await solver.solve(token, difficulty);
          results.push({ ms: performance.now() - started, tries: (proof?.nonce ?? 0) + 1 });
        }
        solver.stop();
        return results;
      },
      { rounds: ROUNDS, difficulty },
    );
    const times = solves.map((each) => each.ms);
    const triesPerSecond = solves.reduce((sum, each) => sum + each.tries, 0) / (times.reduce((a, b) => a + b, 0) / 1000);
    // Baseline: the browser's native SHA-256, one Web Crypto digest per try, same message shape.
    const nativePerSecond = await person.page.evaluate(async () => {
      const encoder = new TextEncoder();
      const token = `1795000060.100000.${crypto.randomUUID()}.${crypto.randomUUID()}`;
      const tries = 20_000;
      const started = performance.now();
      for (let nonce = 0; nonce < tries; nonce += 1) {
        await crypto.subtle.digest('SHA-256', encoder.encode(`${token}:${nonce}`));
      }
      return tries / ((performance.now() - started) / 1000);
    });

    // Joining a group room alone, check on and off, alternating.
    /** @type {{ on: number[], off: number[] }} */
    const joins = { on: [], off: [] };
    for (let round = 0; round < Math.max(3, Math.floor(ROUNDS / 2)); round += 1) {
      for (const [kind, server] of /** @type {const} */ ([['on', checked], ['off', unchecked]])) {
        const joiner = await newPerson(browser, server.url);
        const room = `/g/${`pow-${kind}-${round}-`.padEnd(22, 'x')}`;
        const started = Date.now();
        await joiner.page.goto(room);
        await statusOf(joiner.page).filter({ hasText: 'Connected through the server' }).waitFor({ timeout: 30_000 });
        joins[kind].push(Date.now() - started);
        await joiner.context.close();
      }
    }
    const p50 = median(times);
    const p95 = percentile(times, 0.95);
    report(t, [
      `| proof of work, difficulty ${difficulty.toLocaleString('en')}, ${ROUNDS} solves | median ${p50.toFixed(0)} ms | p95 ${p95.toFixed(0)} ms | max ${Math.max(...times).toFixed(0)} ms |`,
      `| hashing: pow.js in the worker | ${Math.round(triesPerSecond).toLocaleString('en')} tries/s | baseline Web Crypto digest per try | ${Math.round(nativePerSecond).toLocaleString('en')} tries/s | ratio ${(triesPerSecond / nativePerSecond).toFixed(1)}× |`,
      `| group room, open to connected | check on: median ${median(joins.on)} ms | baseline check off: median ${median(joins.off)} ms | difference ${median(joins.on) - median(joins.off)} ms |`,
    ]);
    assert.ok(p95 < 1000, `p95 solve time ${p95.toFixed(0)} ms`);
    assert.deepEqual(person.problems, []);
  } finally {
    await browser.close();
    await checked.stop();
    await unchecked.stop();
  }
});
