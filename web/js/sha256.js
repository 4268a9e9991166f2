// SHA-256 (FIPS 180-4) that can be fed a file piece by piece. Web Crypto's digest() wants the
// whole input in one buffer, which for a 2 GB file would mean holding 2 GB in memory; this one
// keeps 64 bytes of state. Runs in workers, so hashing never blocks the page.

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const INITIAL = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

export class Sha256 {
  #state = new Int32Array(INITIAL);
  #words = new Int32Array(16);
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

  /** Hashes the 64-byte blocks of data[from, to). @param {Uint8Array} data @param {number} from @param {number} to */
  #compress(data, from, to) {
    const w = this.#words;
    const s = this.#state;
    let h0 = s[0], h1 = s[1], h2 = s[2], h3 = s[3], h4 = s[4], h5 = s[5], h6 = s[6], h7 = s[7];
    for (let p = from; p < to; p += 64) {
      for (let i = 0; i < 16; i += 1) {
        const j = p + i * 4;
        w[i] = (data[j] << 24) | (data[j + 1] << 16) | (data[j + 2] << 8) | data[j + 3];
      }
      let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
      for (let i = 0; i < 64; i += 1) {
        // The message schedule lives in a 16-word ring: word i replaces word i - 16.
        let wi;
        if (i < 16) wi = w[i];
        else {
          const x = w[(i - 15) & 15];
          const y = w[(i - 2) & 15];
          const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
          const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
          wi = (w[i & 15] + s0 + w[(i - 7) & 15] + s1) | 0;
          w[i & 15] = wi;
        }
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + wi) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g;
        g = f;
        f = e;
        e = (d + t1) | 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0;
      h1 = (h1 + b) | 0;
      h2 = (h2 + c) | 0;
      h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0;
      h5 = (h5 + f) | 0;
      h6 = (h6 + g) | 0;
      h7 = (h7 + h) | 0;
    }
    s[0] = h0; s[1] = h1; s[2] = h2; s[3] = h3; s[4] = h4; s[5] = h5; s[6] = h6; s[7] = h7;
  }
}
