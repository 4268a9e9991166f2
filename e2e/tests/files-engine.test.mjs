// Unit tests of web/js/files.js and the file parts of protocol.js, in node: two transfer engines
// wired through fake channels and an in-memory store, and a misbehaving peer that sends what a
// real client never would.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import * as protocol from '../../web/js/protocol.js';
import { FileTransfers, MAX_OFFERS_PER_WINDOW } from '../../web/js/files.js';
import { Sha256 } from '../../web/js/sha256.js';

const ROOM = 'q0P8d4LrT2m1xY7zK9bW3a';
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** An in-memory stand-in for file-store.js that behaves like the worker. */
class MemoryStore {
  /** @type {Map<string, { bytes: Uint8Array[], size: number, sha256: string, open: boolean }>} */
  files = new Map();
  /** @type {(event: any) => void} */
  emit = () => {};
  /** @param {string} id @param {number} size @param {string} sha256 */
  open(id, size, sha256) {
    const file = this.files.get(id) ?? { bytes: [], size, sha256, open: true };
    file.open = true;
    this.files.set(id, file);
    setTimeout(() => {
      this.emit({ op: 'opened', id, chunks: file.bytes.length });
      if (file.bytes.length === protocol.chunkCount(size)) this.#finish(id);
    });
  }
  /** @param {string} id @param {number} seq @param {ArrayBuffer[]} buffers @param {number} offset */
  write(id, seq, buffers, offset) {
    const file = this.files.get(id);
    if (!file?.open || seq !== file.bytes.length) return;
    for (const buffer of buffers) file.bytes.push(new Uint8Array(buffer, offset));
    setTimeout(() => {
      this.emit({ op: 'stored', id, chunks: file.bytes.length });
      if (file.bytes.length === protocol.chunkCount(file.size)) this.#finish(id);
    });
  }
  /** @param {string} id */
  #finish(id) {
    const file = /** @type {NonNullable<ReturnType<typeof this.files.get>>} */ (this.files.get(id));
    const hash = new Sha256();
    for (const bytes of file.bytes) hash.update(bytes);
    if (hash.hex() === file.sha256) this.emit({ op: 'verified', id });
    else {
      this.files.delete(id);
      this.emit({ op: 'corrupt', id });
    }
  }
  /** @param {string} id */
  close(id) {
    const file = this.files.get(id);
    if (file) file.open = false;
  }
  /** @param {string} id */
  remove(id) {
    this.files.delete(id);
  }
  prune() {}
}

/** A channel that delivers to `deliver` on a later task, and records what was sent. */
class FakeChannel {
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  /** @type {(string | ArrayBuffer)[]} */
  sent = [];
  /** @param {(data: string | ArrayBuffer) => void} deliver */
  constructor(deliver) {
    this.deliver = deliver;
  }
  /** @param {string | Uint8Array} data */
  send(data) {
    const copy = typeof data === 'string' ? data : data.slice().buffer;
    this.sent.push(copy);
    setTimeout(() => this.deliver(copy));
  }
  addEventListener() {}
  removeEventListener() {}
}

/** @param {string} name @param {Partial<ConstructorParameters<typeof FileTransfers>[1]>} [overrides] */
function engine(name, overrides = {}) {
  const store = new MemoryStore();
  /** @type {any[]} */
  const notes = [];
  const files = new FileTransfers(
    { room: ROOM, self: { peerId: `${name}-peer-id-0123`, name }, maxFileBytes: 200 * 1024 * 1024 },
    {
      put: () => {},
      onProgress: () => {},
      notify: (text) => notes.push(text),
      hash: async (file) => {
        const hash = new Sha256();
        hash.update(new Uint8Array(await file.arrayBuffer()));
        return hash.hex();
      },
      hasSpaceFor: async () => true,
      idInUse: () => false,
      storage: store,
      ...overrides,
    },
  );
  store.emit = (event) => files.storageEvent(event);
  return { files, store, notes };
}

/** Two engines connected both ways. */
function pair() {
  const ann = engine('Ann');
  const bob = engine('Bob');
  const toBob = new FakeChannel((data) => bob.files.receive(data));
  const toAnn = new FakeChannel((data) => ann.files.receive(data));
  ann.files.channelOpened(/** @type {any} */ (toBob));
  bob.files.channelOpened(/** @type {any} */ (toAnn));
  return { ann, bob, toBob, toAnn };
}

/** @param {() => boolean} condition */
async function until(condition, what = 'condition') {
  for (let i = 0; i < 2000; i += 1) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** A hostile peer's offer, built by hand. @param {Record<string, unknown>} fields */
const offer = (fields) =>
  JSON.stringify({
    type: 'file-offer',
    id: 'AbCdEfGhIjKlMnOp',
    name: 'report.pdf',
    size: 40_000,
    mime: 'application/pdf',
    sha256: 'a'.repeat(64),
    sentAt: 1_795_000_000_000,
    ...fields,
  });

describe('file transfers between two engines', () => {
  test('a file arrives intact and both sides say so', async () => {
    const { ann, bob } = pair();
    const bytes = randomBytes(5 * protocol.FILE_CHUNK_BYTES + 123);
    const result = ann.files.offer(new File([bytes], 'data.bin'));
    assert.ok(result.ok);
    const id = result.id;
    await until(() => bob.files.transfers.get(id)?.info.state === 'complete', 'complete on Bob');
    await until(() => ann.files.transfers.get(id)?.info.state === 'complete', 'complete on Ann');
    const stored = Buffer.concat(/** @type {any} */ (bob.store.files.get(id)).bytes);
    assert.equal(createHash('sha256').update(stored).digest('hex'), createHash('sha256').update(bytes).digest('hex'));
  });

  test('a file whose bytes do not match the offered SHA-256 is reported and deleted', async () => {
    const { ann, bob } = pair();
    // Ann's hasher lies: the offer carries a hash of other bytes.
    ann.files.handlers.hash = async () => 'b'.repeat(64);
    const result = ann.files.offer(new File([randomBytes(1000)], 'tampered.bin'));
    assert.ok(result.ok);
    await until(() => bob.files.transfers.get(result.id)?.info.state === 'failed', 'failed on Bob');
    assert.equal(bob.files.transfers.get(result.id)?.info.reason, 'corrupt');
    assert.equal(bob.store.files.has(result.id), false, 'the damaged file is not kept');
    await until(() => ann.files.transfers.get(result.id)?.info.state === 'failed', 'failed on Ann');
    assert.match(bob.notes.join('\n'), /arrived damaged/);
  });

  test('a cancel from the sender stops the chunks and deletes what the receiver stored', async () => {
    const { ann, bob, toBob } = pair();
    bob.files.handlers.hasSpaceFor = async () => true;
    const result = ann.files.offer(new File([randomBytes(40 * 1024 * 1024)], 'big.bin'));
    assert.ok(result.ok);
    await until(() => bob.files.transfers.get(result.id)?.info.state === 'offered', 'offer on Bob');
    await bob.files.accept(result.id);
    await until(() => (ann.files.transfers.get(result.id)?.stored ?? 0) > 0, 'some chunks acknowledged');
    ann.files.cancel(result.id);
    const sentAtCancel = toBob.sent.length;
    await until(() => bob.files.transfers.get(result.id)?.info.state === 'cancelled', 'cancelled on Bob');
    await tick();
    assert.ok(toBob.sent.length <= sentAtCancel + 1, 'no chunks after the cancel');
    assert.equal(bob.store.files.has(result.id), false);
  });

  test('files over the limit are not offered, and offers over the limit are declined', async () => {
    const { ann, bob } = pair();
    ann.files.maxFileBytes = 10;
    assert.deepEqual(ann.files.offer(new File([randomBytes(11)], 'eleven.bin')), { ok: false, reason: 'too-large' });
    bob.files.maxFileBytes = 1000;
    const result = ann.files.offer(Object.assign(new File([randomBytes(5)], 'small.bin')));
    assert.ok(result.ok);
    bob.files.receive(offer({ id: 'TooLargeOffer123', size: 1001 }));
    await until(() => bob.files.transfers.get('TooLargeOffer123')?.info.state === 'declined', 'declined');
    assert.equal(bob.files.transfers.get('TooLargeOffer123')?.info.reason, 'too-large');
  });
});

describe('a misbehaving peer', () => {
  test('malformed offers are ignored', () => {
    const { files } = engine('Bob');
    const bad = [
      offer({ name: '../../etc/passwd' }),
      offer({ name: 'photo\u202Egpj.exe' }),
      offer({ name: '' }),
      offer({ name: 'x'.repeat(201) }),
      offer({ size: -1 }),
      offer({ size: 1.5 }),
      offer({ size: '100' }),
      offer({ sha256: 'A'.repeat(64) }),
      offer({ sha256: 'a'.repeat(63) }),
      offer({ id: 'short' }),
      offer({ id: 'has spaces in it!' }),
      offer({ mime: 'text/html<script>' }),
      offer({ sentAt: 'now' }),
      '{"type":"file-offer"',
      'null',
      'x'.repeat(70_000),
    ];
    for (const message of bad) files.receive(message);
    assert.equal(files.transfers.size, 0);
  });

  test('chunks for unknown transfers, out of order or of the wrong length are not stored', async () => {
    const { files, store } = engine('Bob');
    const channel = new FakeChannel(() => {});
    files.channelOpened(/** @type {any} */ (channel));
    const payload = randomBytes(protocol.FILE_CHUNK_BYTES);
    const sha256 = createHash('sha256').update(payload).update(payload).digest('hex');
    files.receive(offer({ size: 2 * protocol.FILE_CHUNK_BYTES, sha256 }));
    await until(() => files.transfers.get('AbCdEfGhIjKlMnOp')?.next === 0, 'accepted and opened');
    const chunk = (/** @type {string} */ id, /** @type {number} */ seq, /** @type {Uint8Array} */ bytes) =>
      protocol.encodeChunk(id, seq, bytes).slice().buffer;
    files.receive(chunk('UnknownTransfer1', 0, payload));
    files.receive(chunk('AbCdEfGhIjKlMnOp', 1, payload)); // skips chunk 0
    files.receive(new ArrayBuffer(10)); // shorter than a header
    files.receive(new ArrayBuffer(protocol.FILE_CHUNK_HEADER_BYTES + protocol.FILE_CHUNK_BYTES + 1));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(store.files.get('AbCdEfGhIjKlMnOp')?.bytes.length, 0);
    assert.equal(store.files.has('UnknownTransfer1'), false);
    // A chunk that claims to be the right one but has the wrong length ends the transfer.
    files.receive(chunk('AbCdEfGhIjKlMnOp', 0, payload.subarray(0, 100)));
    assert.equal(files.transfers.get('AbCdEfGhIjKlMnOp')?.info.state, 'failed');
    assert.ok(channel.sent.some((data) => typeof data === 'string' && data.includes('"file-cancel"')));
  });

  test('an offer cannot take over the id of a chat message', () => {
    const { files } = engine('Bob', { idInUse: (id) => id === 'AbCdEfGhIjKlMnOp' });
    files.receive(offer({}));
    assert.equal(files.transfers.size, 0);
  });

  test('a flood of offers is declined as busy after a few', () => {
    const { files } = engine('Bob');
    const channel = new FakeChannel(() => {});
    files.channelOpened(/** @type {any} */ (channel));
    for (let i = 0; i < MAX_OFFERS_PER_WINDOW + 10; i += 1) {
      files.receive(offer({ id: `Flood${String(i).padStart(11, '0')}`, size: 500 * 1024 * 1024 }));
    }
    assert.equal(files.transfers.size, MAX_OFFERS_PER_WINDOW);
    const busy = channel.sent.filter((data) => typeof data === 'string' && data.includes('"busy"'));
    assert.equal(busy.length, 10);
  });

  test('acknowledgements and accepts for unknown or foreign transfers change nothing', () => {
    const { files } = engine('Bob');
    files.receive(JSON.stringify({ type: 'file-accept', id: 'AbCdEfGhIjKlMnOp', from: 0 }));
    files.receive(JSON.stringify({ type: 'file-ack', id: 'AbCdEfGhIjKlMnOp', stored: 5 }));
    files.receive(JSON.stringify({ type: 'file-complete', id: 'AbCdEfGhIjKlMnOp' }));
    files.receive(JSON.stringify({ type: 'file-cancel', id: 'AbCdEfGhIjKlMnOp', reason: 'because' }));
    assert.equal(files.transfers.size, 0);
  });
});

describe('file names and types', () => {
  test('names are made safe to show and to save', () => {
    assert.equal(protocol.sanitizeFileName('../../etc/passwd'), '_.._etc_passwd');
    assert.equal(protocol.sanitizeFileName('photo\u202Egpj.exe'), 'photo_gpj.exe');
    assert.equal(protocol.sanitizeFileName('<img src=x onerror=alert(1)>.svg'), '_img src=x onerror=alert(1)_.svg');
    assert.equal(protocol.sanitizeFileName('...hidden'), 'hidden');
    assert.equal(protocol.sanitizeFileName('CON.txt'), '_CON.txt');
    assert.equal(protocol.sanitizeFileName(' \t '), 'file');
    assert.equal(protocol.sanitizeFileName('résumé.pdf'), 'résumé.pdf');
    const long = protocol.sanitizeFileName(`${'a'.repeat(300)}.jpeg`);
    assert.equal([...long].length, protocol.FILE_NAME_MAX_CHARS);
    assert.ok(long.endsWith('.jpeg'), 'the extension survives shortening');
  });

  test('chunks carry the transfer id and index', () => {
    const chunk = protocol.encodeChunk('AbCdEfGhIjKlMnOp', 70_000, Uint8Array.of(1, 2, 3));
    assert.deepEqual(protocol.parseChunk(chunk.buffer), { id: 'AbCdEfGhIjKlMnOp', seq: 70_000, offset: 20, length: 3 });
    assert.equal(protocol.parseChunk(protocol.encodeChunk('AbCdEfGhIjKlMn p', 0, Uint8Array.of(1)).buffer), null);
  });

  test('the SHA-256 fed piece by piece matches the one-shot digest', () => {
    for (const size of [0, 1, 55, 56, 63, 64, 65, 1000, 100_003]) {
      const data = randomBytes(size);
      const hash = new Sha256();
      for (let at = 0; at < size; at += 7) hash.update(data.subarray(at, at + 7));
      assert.equal(hash.hex(), createHash('sha256').update(data).digest('hex'), `${size} bytes`);
    }
  });
});
