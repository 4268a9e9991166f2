// SHA-256 (FIPS 180-4) that can be fed a file piece by piece. Web Crypto's digest() wants the
// whole input in one buffer, which for a 2 GB file would mean holding 2 GB in memory; this one
// keeps 64 bytes of state. Runs in workers, so hashing never blocks the page.

import { compress } from './sha256-compress.js';

const INITIAL = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

export class Sha256 {
  #state = new Int32Array(INITIAL);
  /** Bytes of an incomplete 64-byte block carried over to the next update. */
  #block = new Uint8Array(64);
  #blockLength = 0;
  /** Total bytes hashed (a double: exact up to 2^53). */
  #length = 0;
  #finished = false;

  /** @param {Uint8Array} data */
  update(data) {
    if (this.#finished) throw new Error('sha256: update after digest');
    this.#length += data.length;
    let offset = 0;
    if (this.#blockLength > 0) {
      const take = Math.min(64 - this.#blockLength, data.length);
      this.#block.set(data.subarray(0, take), this.#blockLength);
      this.#blockLength += take;
      offset = take;
      if (this.#blockLength < 64) return this;
      this.#compress(this.#block, 0, 64);
      this.#blockLength = 0;
    }
    const whole = offset + Math.floor((data.length - offset) / 64) * 64;
    if (whole > offset) this.#compress(data, offset, whole);
    if (whole < data.length) {
      this.#block.set(data.subarray(whole), 0);
      this.#blockLength = data.length - whole;
    }
    return this;
  }

  /** The digest as 64 lowercase hex digits; the hash cannot be updated afterwards. */
  hex() {
    return [...this.digest()].map((byte) => byte.toString(16).padStart(2, '0')).join('');
  }

  /** @returns {Uint8Array} the 32-byte digest */
  digest() {
    if (!this.#finished) {
      const bits = this.#length * 8;
      const padding = new Uint8Array(this.#blockLength < 56 ? 64 - this.#blockLength : 128 - this.#blockLength);
      padding[0] = 0x80;
      const view = new DataView(padding.buffer);
      // The message length in bits, big-endian, in the last 8 bytes.
      view.setUint32(padding.length - 8, Math.floor(bits / 2 ** 32));
      view.setUint32(padding.length - 4, bits >>> 0);
      this.update(padding);
      this.#finished = true;
    }
    const out = new Uint8Array(32);
    const view = new DataView(out.buffer);
    for (let i = 0; i < 8; i += 1) view.setInt32(i * 4, this.#state[i]);
    return out;
  }

  /** @param {Uint8Array} data @param {number} from @param {number} to */
  #compress(data, from, to) {
    compress(this.#state, data, from, to);
  }
}
