// The browser's proof-of-work solver (web/js/pow.js) must hash exactly what the server checks
// (crates/proto/src/pow.rs): SHA-256 of `token ":" nonce`, first 8 bytes against 2^64 / difficulty.
// Checked here against node's own SHA-256, for tokens whose tail falls in one block or spills into two.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { meetsDifficulty, solve } from '../../web/js/pow.js';

/** The reference: the first 8 digest bytes as a BigInt. @param {string} token @param {number} nonce */
const prefix = (token, nonce) => createHash('sha256').update(`${token}:${nonce}`).digest().readBigUInt64BE(0);
const target = (/** @type {number} */ difficulty) => (2n ** 64n - 1n) / BigInt(difficulty);

test('solutions agree with node crypto for tokens of every length that matters', () => {
  for (const length of [0, 10, 54, 55, 56, 62, 63, 64, 65, 90, 118, 119, 127, 128, 160]) {
    const token = 'x'.repeat(length);
    const nonce = solve(token, 300);
    assert.ok(prefix(token, nonce) <= target(300), `length ${length}`);
    // It is the smallest: every smaller number fails the reference check.
    for (let smaller = 0; smaller < nonce; smaller += 1) {
      assert.ok(prefix(token, smaller) > target(300), `length ${length}, ${smaller}`);
    }
  }
});

test('meetsDifficulty matches the reference on random numbers, large ones included', () => {
  const token = '1795000060.50000.c2FsdHNhbHRzYWx0c2FsdA.pTz8mVb1Qx7Lr3Nd5Kc2Wy9Hs4Fg6Jt0Ae8Uo1Ri2Yw';
  for (let i = 0; i < 2000; i += 1) {
    const nonce = i < 1000 ? i : Math.floor(Math.random() * Number.MAX_SAFE_INTEGER);
    for (const difficulty of [1, 2, 7, 1000]) {
      assert.equal(meetsDifficulty(token, nonce, difficulty), prefix(token, nonce) <= target(difficulty), `${nonce} at ${difficulty}`);
    }
  }
});

test('progress is reported while solving, and difficulty 0 needs no work', () => {
  const reports = [];
  const nonce = solve('progress-token', 50_000, (tries) => reports.push(tries), 1000);
  assert.equal(reports.length, Math.floor((nonce + 1) / 1000));
  assert.ok(reports.every((tries, i) => tries === (i + 1) * 1000));
  assert.equal(solve('anything', 0), 0);
});
