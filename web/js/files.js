// File transfers of one pair room (docs/protocol.md, "Data channel `files`"): offers, the sender's
// pump with flow control, the receiver's checks, acknowledgements, cancel, resume and the SHA-256
// check. No DOM here: the page renders what `onChange` and `onProgress` report, and the storage
// and hashing live behind the interfaces below (file-store.js in the page, fakes in tests).

import * as protocol from './protocol.js';
import { nextSeq } from './history.js';

/** Pause sending while the channel's queue holds more than this (Chromium closes it at 16 MiB). */
export const SEND_HIGH_WATER = 4 * 1024 * 1024;
/** Resume once the queue drained below this (`bufferedAmountLowThreshold`). */
export const SEND_LOW_WATER = 1024 * 1024;
/** Chunks the sender may be ahead of the receiver's last acknowledgement: bounds what the
 * receiver holds in memory on its way to disk. */
export const WINDOW_CHUNKS = 512;
/** Bytes the sender reads from the File at once. */
const READ_SLICE_BYTES = 4 * 1024 * 1024;
/** Incoming files up to this size are accepted without asking. */
export const AUTO_ACCEPT_BYTES = 32 * 1024 * 1024;
/** Offers from the other person not yet finished, at most; more are declined as "busy". */
export const MAX_OPEN_INCOMING = 64;
/** New offers from the other person, at most, per OFFER_WINDOW_MS; more are declined as "busy". */
export const MAX_OFFERS_PER_WINDOW = 32;
const OFFER_WINDOW_MS = 10_000;
/** Received chunks go to storage in batches of this many (fewer messages to the worker, fewer
 * writes); a batch also goes when the file is complete or after BATCH_WAIT_MS. */
const BATCH_CHUNKS = 64;
const BATCH_WAIT_MS = 20;
/** Progress is reported at most this often per transfer. */
const PROGRESS_EVERY_MS = 250;
/** Speed is averaged over this much recent time. */
const SPEED_WINDOW_MS = 3_000;

/**
 * A transfer's state, as both sides show it.
 * - hashing: the sender computes the file's SHA-256 before offering it
 * - waiting: offered, not yet accepted (on the receiver: "offered", awaiting a decision)
 * - sending / receiving: chunks flow
 * - paused: the connection dropped; continues when both are back
 * - needs-file: the sender's page was reloaded; the person must select the file again
 * - complete, declined, cancelled, failed: final
 * @typedef {'hashing' | 'waiting' | 'offered' | 'sending' | 'receiving' | 'paused' | 'needs-file'
 *   | 'complete' | 'declined' | 'cancelled' | 'failed'} FileState
 */

/**
 * What history keeps of a file (StoredMessage.file).
 * @typedef {{
 *   name: string,
 *   size: number,
 *   mime: string,
 *   sha256: string,
 *   state: FileState,
 *   reason?: string,
 *   byYou?: boolean,
 * }} FileInfo
 */

/** @typedef {import('./history.js').StoredMessage} StoredMessage */
/** @typedef {import('./file-store.js').StorageEvent} StorageEvent */

/**
 * The parts of RTCDataChannel the transfers use.
 * @typedef {Pick<RTCDataChannel, 'send' | 'bufferedAmount' | 'bufferedAmountLowThreshold' | 'addEventListener' | 'removeEventListener'>} FileChannel
 */

/**
 * @typedef {{
 *   open: (id: string, size: number, sha256: string) => void,
 *   write: (id: string, seq: number, buffers: ArrayBuffer[], offset: number) => void,
 *   close: (id: string) => void,
 *   remove: (id: string) => void,
 *   prune: (keep: string[]) => void,
 * }} Storage
 */

/**
 * @typedef {{
 *   put: (message: StoredMessage) => void,
 *   onProgress: (transfer: Transfer) => void,
 *   notify: (text: string) => void,
 *   hash: (file: File, progress: (done: number) => void, signal: AbortSignal) => Promise<string | null>,
 *   hasSpaceFor: (bytes: number) => Promise<boolean>,
 *   idInUse: (id: string) => boolean,
 *   storage: Storage,
 * }} FileHandlers
 */

/** One transfer as this page tracks it. */
export class Transfer {
  /** @param {StoredMessage & { file: FileInfo }} message */
  constructor(message) {
    this.message = message;
    this.id = message.id;
    this.own = message.own;
    /** The File being sent (sender only; gone after a reload). @type {File | null} */
    this.file = null;
    /** Sender: next chunk to send. Receiver: next chunk expected. */
    this.next = 0;
    /** Chunks the receiver has stored (its acknowledgements, on the sender). */
    this.stored = 0;
    /** Bytes hashed so far while preparing an offer. */
    this.hashed = 0;
    /** @type {AbortController | null} */
    this.hashing = null;
    /** @type {SliceReader | null} */
    this.reader = null;
    /** Recent [time, bytes stored] samples for the speed. @type {[number, number][]} */
    this.samples = [];
    this.lastProgress = 0;
    /** A final state the other side has not been told yet (it was decided while offline). */
    this.untold = false;
    /** Received chunks not yet handed to storage (receiver only). @type {ArrayBuffer[]} */
    this.batch = [];
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.batchTimer = undefined;
  }

  get info() {
    return this.message.file;
  }

  get total() {
    return protocol.chunkCount(this.info.size);
  }

  /** Bytes the receiver has stored. */
  get bytesDone() {
    return Math.min(this.info.size, this.stored * protocol.FILE_CHUNK_BYTES);
  }

  /** Bytes per second over the last few seconds, or 0 before there is enough to tell. */
  get speed() {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last[0] - first[0] < 200) return 0;
    return ((last[1] - first[1]) * 1000) / (last[0] - first[0]);
  }

  get active() {
    return ['hashing', 'waiting', 'offered', 'sending', 'receiving', 'paused', 'needs-file'].includes(this.info.state);
  }
}

/** Reads a File in slices, one slice ahead of the chunk being sent. */
class SliceReader {
  /** @type {{ start: number, bytes: Uint8Array } | null} */
  #current = null;
  /** @type {{ start: number, bytes: Promise<Uint8Array> } | null} */
  #ahead = null;

  /** @param {File} file */
  constructor(file) {
    this.file = file;
  }

  /** @param {number} start */
  #read(start) {
    return { start, bytes: this.file.slice(start, start + READ_SLICE_BYTES).arrayBuffer().then((b) => new Uint8Array(b)) };
  }

  /**
   * The payload of chunk `seq`: at once while it is in the current slice, else a promise.
   * @param {number} seq
   * @returns {Uint8Array | Promise<Uint8Array>}
   */
  chunk(seq) {
    const offset = seq * protocol.FILE_CHUNK_BYTES;
    const end = Math.min(this.file.size, offset + protocol.FILE_CHUNK_BYTES);
    const current = this.#current;
    if (current && offset >= current.start && end <= current.start + current.bytes.length) {
      return current.bytes.subarray(offset - current.start, end - current.start);
    }
    return this.#advance(offset).then(() => this.chunk(seq));
  }

  /** @param {number} offset */
  async #advance(offset) {
    const start = offset - (offset % READ_SLICE_BYTES);
    const ahead = this.#ahead && this.#ahead.start === start ? this.#ahead : this.#read(start);
    this.#current = { start, bytes: await ahead.bytes };
    const next = start + READ_SLICE_BYTES;
    this.#ahead = next < this.file.size ? this.#read(next) : null;
  }
}

export class FileTransfers {
  /** Every transfer of the room this page knows, by id. @type {Map<string, Transfer>} */
  transfers = new Map();
  /** @type {FileChannel | null} */
  #channel = null;
  /** Own transfers accepted by the receiver, in the order they go out. @type {Transfer[]} */
  #queue = [];
  #pumping = false;
  /** Wakes the pump: the queue drained, an acknowledgement came, or the state changed. */
  #wake = () => {};
  /** When recent offers from the other person arrived (they are rate-limited). @type {number[]} */
  #offerTimes = [];
  #onLow = () => this.#wake();

  /**
   * @param {{ room: string, self: { peerId: string, name: string }, maxFileBytes: number }} options
   * @param {FileHandlers} handlers
   */
  constructor(options, handlers) {
    this.room = options.room;
    this.self = options.self;
    this.maxFileBytes = options.maxFileBytes;
    this.handlers = handlers;
    /** The other person, for naming them in messages. */
    this.peer = { peerId: '', name: 'The other person' };
  }

  // --- history -------------------------------------------------------------------------------

  /**
   * Takes over the files in loaded history. Unfinished ones wait: a sender's page no longer has
   * the File, a receiver waits for the sender's offer to come again. Stored files that history
   * no longer mentions are deleted.
   * @param {Iterable<StoredMessage>} messages
   */
  load(messages) {
    /** @type {string[]} */
    const keep = [];
    for (const message of messages) {
      if (!message.file) continue;
      const transfer = new Transfer(/** @type {StoredMessage & { file: FileInfo }} */ (message));
      this.transfers.set(message.id, transfer);
      if (transfer.active) {
        if (transfer.own) transfer.info.state = 'needs-file';
        else if (transfer.info.state !== 'offered') transfer.info.state = 'paused';
      }
      if (!transfer.own && (transfer.info.state === 'complete' || transfer.active)) keep.push(message.id);
    }
    this.handlers.storage.prune(keep);
  }

  /** Forgets every transfer (the room's messages were cleared); unfinished ones are cancelled. */
  clear() {
    for (const transfer of this.transfers.values()) {
      if (!transfer.active) continue;
      transfer.hashing?.abort();
      if (!transfer.own) this.handlers.storage.remove(transfer.id);
      // Told, not recorded: the record is being cleared with the rest of the history.
      this.#send({ type: 'file-cancel', id: transfer.id, reason: 'cancelled' });
    }
    this.transfers.clear();
    this.#queue = [];
    this.handlers.storage.prune([]);
  }

  /** @param {Transfer} transfer @param {Partial<FileInfo>} change */
  #update(transfer, change) {
    transfer.message = { ...transfer.message, file: { ...transfer.info, ...change } };
    this.handlers.put(transfer.message);
    this.#wake();
  }

  // --- the channel ---------------------------------------------------------------------------

  /** The `files` channel to the other person opened. @param {FileChannel} channel */
  channelOpened(channel) {
    this.#channel = channel;
    channel.bufferedAmountLowThreshold = SEND_LOW_WATER;
    channel.addEventListener('bufferedamountlow', this.#onLow);
    for (const transfer of this.transfers.values()) {
      if (transfer.untold) this.#tellFinal(transfer);
      else if (transfer.own && transfer.file && ['waiting', 'sending', 'paused'].includes(transfer.info.state)) {
        // Offers are idempotent: the receiver answers with where to continue from.
        this.#update(transfer, { state: 'waiting' });
        this.#send(this.#offerOf(transfer));
      } else if (!transfer.own && transfer.info.state === 'paused') {
        // Connected again; it is up to the sender now (whose page may need the file again).
        this.#update(transfer, { reason: 'sender' });
      }
    }
  }

  /**
   * The channel closed: transfers in flight pause until it opens again.
   * @param {'connection' | 'left'} why
   */
  channelClosed(why) {
    this.#channel?.removeEventListener('bufferedamountlow', this.#onLow);
    this.#channel = null;
    this.#queue = [];
    for (const transfer of this.transfers.values()) {
      const { state, reason } = transfer.info;
      if (state === 'sending' || state === 'receiving' || state === 'waiting') {
        if (!transfer.own) {
          this.#store(transfer);
          this.handlers.storage.close(transfer.id);
        }
        this.#update(transfer, { state: 'paused', reason: why });
      } else if (state === 'paused' && reason !== why) this.#update(transfer, { reason: why });
    }
    this.#wake();
  }

  /** @param {protocol.FileMessage} message */
  #send(message) {
    if (!this.#channel) return false;
    this.#channel.send(protocol.fileWire(message));
    return true;
  }

  /** @param {Transfer} transfer @returns {protocol.FileOffer} */
  #offerOf(transfer) {
    const { name, size, mime, sha256 } = transfer.info;
    return { type: 'file-offer', id: transfer.id, name, size, mime, sha256, sentAt: transfer.message.sentAt };
  }

  /** Tells the other side a final state decided while it could not be told. @param {Transfer} transfer */
  #tellFinal(transfer) {
    const { state, reason } = transfer.info;
    let sent = false;
    if (state === 'complete') sent = this.#send({ type: 'file-complete', id: transfer.id });
    else if (state === 'declined') {
      const known = protocol.DECLINE_REASONS.find((r) => r === reason) ?? 'declined';
      sent = this.#send({ type: 'file-decline', id: transfer.id, reason: known });
    } else if (state === 'cancelled' || state === 'failed') {
      const known = protocol.CANCEL_REASONS.find((r) => r === reason) ?? 'cancelled';
      sent = this.#send({ type: 'file-cancel', id: transfer.id, reason: known });
    }
    transfer.untold = !sent;
  }

  // --- sending -------------------------------------------------------------------------------

  /**
   * Offers a file to the other person: hashes it, then sends the offer.
   * @param {File} file
   * @returns {{ ok: true, id: string } | { ok: false, reason: 'offline' | 'too-large' }}
   */
  offer(file) {
    if (!this.#channel) return { ok: false, reason: 'offline' };
    if (file.size > this.maxFileBytes) return { ok: false, reason: 'too-large' };
    const id = protocol.newFileId();
    const transfer = new Transfer({
      room: this.room,
      id,
      seq: nextSeq(),
      own: true,
      authorId: this.self.peerId,
      author: this.self.name,
      text: '',
      sentAt: Date.now(),
      state: 'sent',
      file: {
        name: protocol.sanitizeFileName(file.name),
        size: file.size,
        mime: protocol.sanitizeMimeType(file.type),
        sha256: '',
        state: 'hashing',
      },
    });
    this.transfers.set(id, transfer);
    this.handlers.put(transfer.message);
    this.#prepare(transfer, file);
    return { ok: true, id };
  }

  /**
   * The person selected the file again after a reload: if it is the same file (same size and
   * SHA-256), the transfer continues where the receiver stopped.
   * @param {string} id
   * @param {File} file
   * @returns {Promise<boolean>} whether it was the same file
   */
  async reselect(id, file) {
    const transfer = this.transfers.get(id);
    if (!transfer || transfer.info.state !== 'needs-file') return false;
    if (file.size !== transfer.info.size) return false;
    const expected = transfer.info.sha256;
    this.#update(transfer, { state: 'hashing' });
    const same = await this.#prepare(transfer, file, expected);
    // The state may have moved on meanwhile (cancelled while hashing).
    const now = /** @type {FileState} */ (transfer.info.state);
    if (!same && now === 'hashing') this.#update(transfer, { state: 'needs-file' });
    return same;
  }

  /**
   * @param {Transfer} transfer
   * @param {File} file
   * @param {string} [expected] the hash the file must have (when selected again)
   */
  async #prepare(transfer, file, expected) {
    const abort = new AbortController();
    transfer.hashing = abort;
    transfer.hashed = 0;
    let sha256;
    try {
      sha256 = await this.handlers.hash(
        file,
        (done) => {
          transfer.hashed = done;
          this.#progress(transfer);
        },
        abort.signal,
      );
    } catch {
      if (transfer.info.state === 'hashing') this.#update(transfer, { state: 'failed', reason: 'unreadable', byYou: true });
      return false;
    } finally {
      transfer.hashing = null;
    }
    if (sha256 === null || transfer.info.state !== 'hashing') return false;
    if (expected !== undefined && sha256 !== expected) return false;
    transfer.file = file;
    transfer.reader = new SliceReader(file);
    this.#update(transfer, { sha256, state: this.#channel ? 'waiting' : 'paused', reason: this.#channel ? undefined : 'connection' });
    this.#send(this.#offerOf(transfer));
    return true;
  }

  /** @param {Transfer} transfer @param {number} from */
  #accepted(transfer, from) {
    if (!transfer.file || !['waiting', 'sending', 'paused'].includes(transfer.info.state)) return;
    if (from > transfer.total) {
      this.#fail(transfer, 'failed');
      return;
    }
    transfer.next = from;
    transfer.stored = from;
    transfer.samples = [];
    this.#update(transfer, { state: 'sending', reason: undefined });
    if (!this.#queue.includes(transfer)) this.#queue.push(transfer);
    this.#pump();
  }

  /** Sends chunks of accepted transfers, one transfer after another, as fast as flow control allows. */
  async #pump() {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      for (;;) {
        this.#queue = this.#queue.filter((t) => t.info.state === 'sending');
        const transfer = this.#queue.find((t) => t.next < t.total);
        const channel = this.#channel;
        if (!transfer || !channel) return;
        if (channel.bufferedAmount > SEND_HIGH_WATER || transfer.next - transfer.stored >= WINDOW_CHUNKS) {
          await new Promise((resolve) => (this.#wake = () => resolve(undefined)));
          this.#wake = () => {};
          continue;
        }
        const seq = transfer.next;
        const ready = /** @type {SliceReader} */ (transfer.reader).chunk(seq);
        const payload = ready instanceof Uint8Array ? ready : await ready;
        // Cancelled, paused or restarted elsewhere while the slice was read.
        if (transfer.info.state !== 'sending' || channel !== this.#channel || transfer.next !== seq) continue;
        channel.send(protocol.encodeChunk(transfer.id, seq, payload));
        transfer.next = seq + 1;
      }
    } catch (error) {
      console.warn('natter: sending a file stopped', error);
      for (const transfer of this.#queue) this.#fail(transfer, 'failed');
    } finally {
      this.#pumping = false;
    }
  }

  // --- receiving -----------------------------------------------------------------------------

  /**
   * Accepts an offered file (the person clicked "Accept", or it is small enough to take at once).
   * @param {string} id
   */
  async accept(id) {
    const transfer = this.transfers.get(id);
    if (!transfer || transfer.own || transfer.info.state !== 'offered') return;
    if (!(await this.handlers.hasSpaceFor(transfer.info.size))) {
      this.#decline(transfer, 'no-space');
      this.handlers.notify(`Not enough storage space in this browser for ${transfer.info.name}.`);
      return;
    }
    this.#update(transfer, { state: 'receiving', reason: undefined });
    this.#openStorage(transfer);
  }

  /** @param {string} id */
  decline(id) {
    const transfer = this.transfers.get(id);
    if (transfer && !transfer.own && transfer.info.state === 'offered') this.#decline(transfer, 'declined');
  }

  /** @param {Transfer} transfer @param {typeof protocol.DECLINE_REASONS[number]} reason */
  #decline(transfer, reason) {
    this.#update(transfer, { state: 'declined', reason, byYou: true });
    transfer.untold = !this.#send({ type: 'file-decline', id: transfer.id, reason });
  }

  /** @param {Transfer} transfer */
  #openStorage(transfer) {
    transfer.next = -1; // nothing is taken until storage says where it stands
    transfer.batch = [];
    this.handlers.storage.open(transfer.id, transfer.info.size, transfer.info.sha256);
  }

  /** @param {protocol.FileOffer} offer */
  #offered(offer) {
    const known = this.transfers.get(offer.id);
    // An id that names a chat message must not replace it in history.
    if (!known && this.handlers.idInUse(offer.id)) return;
    if (known) {
      if (known.own) return;
      const { state } = known.info;
      if (state === 'receiving' || state === 'paused') {
        // The sender is back: continue from what is stored.
        this.#update(known, { state: 'receiving', reason: undefined });
        this.#openStorage(known);
      } else if (!known.active) this.#tellFinal(known);
      return;
    }
    const now = performance.now();
    this.#offerTimes = this.#offerTimes.filter((time) => now - time < OFFER_WINDOW_MS);
    const open = [...this.transfers.values()].filter((t) => !t.own && t.active).length;
    if (open >= MAX_OPEN_INCOMING || this.#offerTimes.length >= MAX_OFFERS_PER_WINDOW) {
      this.#send({ type: 'file-decline', id: offer.id, reason: 'busy' });
      return;
    }
    this.#offerTimes.push(now);
    const transfer = new Transfer({
      room: this.room,
      id: offer.id,
      seq: nextSeq(),
      own: false,
      authorId: this.peer.peerId,
      author: this.peer.name,
      text: '',
      sentAt: offer.sentAt,
      state: 'received',
      file: { name: offer.name, size: offer.size, mime: offer.mime, sha256: offer.sha256, state: 'offered' },
    });
    this.transfers.set(offer.id, transfer);
    if (offer.size > this.maxFileBytes) {
      this.#decline(transfer, 'too-large');
      return;
    }
    this.handlers.put(transfer.message);
    if (offer.size <= AUTO_ACCEPT_BYTES) this.accept(offer.id);
  }

  /** @param {ArrayBuffer} buffer */
  #chunk(buffer) {
    const header = protocol.parseChunk(buffer);
    if (!header) return;
    const transfer = this.transfers.get(header.id);
    // Chunks of transfers that are not (or no longer) being received are dropped: late chunks
    // of a cancelled transfer, or a misbehaving peer.
    if (!transfer || transfer.own || transfer.info.state !== 'receiving' || header.seq !== transfer.next) return;
    if (header.length !== protocol.chunkLength(transfer.info.size, header.seq)) {
      this.#fail(transfer, 'failed');
      return;
    }
    transfer.next += 1;
    transfer.batch.push(buffer);
    if (transfer.batch.length >= BATCH_CHUNKS || transfer.next === transfer.total) this.#store(transfer);
    else transfer.batchTimer ??= setTimeout(() => this.#store(transfer), BATCH_WAIT_MS);
  }

  /** Hands the received batch to storage. @param {Transfer} transfer */
  #store(transfer) {
    clearTimeout(transfer.batchTimer);
    transfer.batchTimer = undefined;
    const { batch } = transfer;
    if (batch.length === 0 || transfer.info.state !== 'receiving') return;
    transfer.batch = [];
    const seq = transfer.next - batch.length;
    this.handlers.storage.write(transfer.id, seq, batch, protocol.FILE_CHUNK_HEADER_BYTES);
  }

  /**
   * What storage reports about an incoming file.
   * @param {StorageEvent} event
   */
  storageEvent(event) {
    const transfer = this.transfers.get(event.id);
    if (!transfer || transfer.own || transfer.info.state !== 'receiving') return;
    switch (event.op) {
      case 'opened':
        transfer.next = event.chunks;
        transfer.stored = event.chunks;
        transfer.samples = [];
        this.#send({ type: 'file-accept', id: transfer.id, from: event.chunks });
        this.#progress(transfer, true);
        return;
      case 'stored':
        transfer.stored = event.chunks;
        this.#send({ type: 'file-ack', id: transfer.id, stored: event.chunks });
        this.#progress(transfer);
        return;
      case 'verified':
        this.#update(transfer, { state: 'complete' });
        transfer.untold = !this.#send({ type: 'file-complete', id: transfer.id });
        this.handlers.notify(`Received ${transfer.info.name} (checked: it is complete and intact).`);
        return;
      case 'corrupt':
        this.#fail(transfer, 'corrupt');
        this.handlers.notify(`${transfer.info.name} arrived damaged (its SHA-256 did not match) and was deleted.`);
        return;
      case 'error':
        console.warn('natter: storing a file failed', event.message);
        this.#fail(transfer, 'failed');
        this.handlers.notify(`${transfer.info.name} could not be stored in this browser.`);
    }
  }

  // --- both sides ----------------------------------------------------------------------------

  /** The person cancels a transfer (either side). @param {string} id */
  cancel(id) {
    const transfer = this.transfers.get(id);
    if (!transfer || !transfer.active) return;
    transfer.hashing?.abort();
    if (!transfer.own) this.handlers.storage.remove(id);
    this.#update(transfer, { state: 'cancelled', reason: 'cancelled', byYou: true });
    transfer.untold = !this.#send({ type: 'file-cancel', id, reason: 'cancelled' });
  }

  /** @param {Transfer} transfer @param {'corrupt' | 'failed'} reason */
  #fail(transfer, reason) {
    if (!transfer.active) return;
    if (!transfer.own) this.handlers.storage.remove(transfer.id);
    this.#update(transfer, { state: 'failed', reason, byYou: true });
    transfer.untold = !this.#send({ type: 'file-cancel', id: transfer.id, reason });
  }

  /**
   * A message or chunk from the other person on the `files` channel.
   * @param {string | ArrayBuffer} data
   */
  receive(data) {
    if (data instanceof ArrayBuffer) {
      this.#chunk(data);
      return;
    }
    const message = protocol.parseFileMessage(data);
    if (!message) return;
    if (message.type === 'file-offer') {
      this.#offered(message);
      return;
    }
    const transfer = this.transfers.get(message.id);
    if (!transfer) return;
    const { name } = transfer.info;
    switch (message.type) {
      case 'file-accept':
        if (transfer.own) this.#accepted(transfer, message.from);
        return;
      case 'file-ack':
        if (transfer.own && transfer.info.state === 'sending' && message.stored <= transfer.next) {
          transfer.stored = Math.max(transfer.stored, message.stored);
          this.#progress(transfer);
          this.#wake();
        }
        return;
      case 'file-complete':
        if (transfer.own && transfer.active) {
          transfer.stored = transfer.total;
          this.#update(transfer, { state: 'complete' });
          this.handlers.notify(`${this.peer.name} received ${name}.`);
        }
        return;
      case 'file-decline':
        if (transfer.own && transfer.active) {
          transfer.hashing?.abort();
          this.#update(transfer, { state: 'declined', reason: message.reason, byYou: false });
          this.handlers.notify(`${this.peer.name} did not take ${name}.`);
        }
        return;
      case 'file-cancel':
        if (!transfer.active) return;
        transfer.hashing?.abort();
        if (!transfer.own) this.handlers.storage.remove(transfer.id);
        this.#update(transfer, {
          state: message.reason === 'cancelled' ? 'cancelled' : 'failed',
          reason: message.reason,
          byYou: false,
        });
        this.handlers.notify(
          message.reason === 'cancelled'
            ? `${this.peer.name} cancelled ${name}.`
            : message.reason === 'corrupt'
              ? `${name} arrived damaged on the other side and was not kept.`
              : `${name} failed on the other side.`,
        );
    }
  }

  /** Reports progress, at most every PROGRESS_EVERY_MS unless `now`. @param {Transfer} transfer @param {boolean} [now] */
  #progress(transfer, now = false) {
    const time = performance.now();
    transfer.samples.push([time, transfer.bytesDone]);
    while (transfer.samples.length > 2 && time - transfer.samples[1][0] > SPEED_WINDOW_MS) transfer.samples.shift();
    if (!now && time - transfer.lastProgress < PROGRESS_EVERY_MS) return;
    transfer.lastProgress = time;
    this.handlers.onProgress(transfer);
  }
}
