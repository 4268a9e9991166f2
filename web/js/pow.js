// The proof of work a browser solves before joining a room (docs/protocol.md, "Proof of work"):
// find a number whose SHA-256 of `token ":" number` begins with at most 2^64 / difficulty.
// No DOM; runs in pow-worker.js, and in node for the tests.
//
// The token's whole 64-byte blocks are hashed once (the "midstate"); each try then hashes only
// the last block or two, built in place, which makes a try one or two calls of the block function.

import { compress } from './sha256-compress.js';

const INITIAL = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
/** Nonces stay below 2^53, where JavaScript numbers are exact. */
const MAX_NONCE = Number.MAX_SAFE_INTEGER;

/**
 * The target as two 32-bit halves: a try succeeds when its first 8 digest bytes are at most it.
 * @param {number} difficulty
 */
function target(difficulty) {
  const value = (2n ** 64n - 1n) / BigInt(Math.max(1, Math.floor(difficulty)));
  return { high: Number(value >> 32n), low: Number(value & 0xffffffffn) };
}

/**
 * Hashes tries of one token: `prefix(nonce)` is the first 8 digest bytes as [high, low].
 */
class Trier {
  /** @param {string} token */
  constructor(token) {
    const head = new TextEncoder().encode(`${token}:`);
    const whole = Math.floor(head.length / 64) * 64;
    this.midstate = new Int32Array(INITIAL);
    if (whole > 0) compress(this.midstate, head, 0, whole);
    this.tail = head.subarray(whole);
    this.totalBase = head.length;
    // Tail + up to 16 digits + 0x80 + 8 length bytes fits in two blocks.
    this.block = new Uint8Array(128);
    this.state = new Int32Array(8);
  }

  /** @param {number} nonce @returns {[number, number]} */
  prefix(nonce) {
    const digits = String(nonce);
    const block = this.block;
    block.fill(0);
    block.set(this.tail, 0);
    let at = this.tail.length;
    for (let i = 0; i < digits.length; i += 1) block[at + i] = digits.charCodeAt(i);
    at += digits.length;
    block[at] = 0x80;
    const end = at + 1 + 8 <= 64 ? 64 : 128;
    const bits = (this.totalBase + digits.length) * 8;
    const view = new DataView(block.buffer);
    view.setUint32(end - 8, Math.floor(bits / 2 ** 32));
    view.setUint32(end - 4, bits >>> 0);
    this.state.set(this.midstate);
    compress(this.state, block, 0, end);
    return [this.state[0] >>> 0, this.state[1] >>> 0];
  }
}

/**
 * True when `nonce` solves `token` at `difficulty`.
 * @param {string} token @param {number} nonce @param {number} difficulty
 */
export function meetsDifficulty(token, nonce, difficulty) {
  const [high, low] = new Trier(token).prefix(nonce);
  const goal = target(difficulty);
  return high < goal.high || (high === goal.high && low <= goal.low);
}

/**
 * Finds the smallest solution of `token` at `difficulty`, reporting the number of tries so far
 * every `reportEvery` tries. A difficulty of 0 (the server checks nothing) is solved by 0.
 * @param {string} token @param {number} difficulty
 * @param {(tries: number) => void} [onProgress] @param {number} [reportEvery]
 * @returns {number}
 */
export function solve(token, difficulty, onProgress, reportEvery = 20_000) {
  if (difficulty <= 1) return 0;
  const trier = new Trier(token);
  const goal = target(difficulty);
  for (let nonce = 0; nonce <= MAX_NONCE; nonce += 1) {
    const [high, low] = trier.prefix(nonce);
    if (high < goal.high || (high === goal.high && low <= goal.low)) return nonce;
    if (onProgress && nonce % reportEvery === reportEvery - 1) onProgress(nonce + 1);
  }
  throw new Error('no solution below 2^53');
}
