// A dedicated worker for file bytes, so the page never holds a whole file and never stalls on
// one. Two jobs, each in its own worker instance (file-store.js starts them):
// - "hash": the SHA-256 of a File the person is about to send, read slice by slice;
// - storage of received files in the origin private file system (OPFS) under
//   natter-files/<room>/<transfer id>, written chunk by chunk through a synchronous access handle
//   (only workers get those) and hashed as the chunks arrive. A page that is not a secure context
//   (plain http on a LAN address) has no OPFS: there received files are kept in this worker's
//   memory instead (see MemoryFile).
// Requests are handled one at a time, in order, except "abort", which is handled at once.

import { Sha256 } from './sha256.js';
import { FILE_CHUNK_BYTES, chunkCount } from './protocol.js';

const ROOT = 'natter-files';
const HASH_SLICE_BYTES = 4 * 1024 * 1024;
/** The worker tells the page how far it got after every this many chunks. */
const REPORT_EVERY_CHUNKS = 64;

/**
 * The synchronous access handle of an OPFS file (TypeScript's DOM library, which type-checks this
 * project, does not describe worker-only APIs).
 * @typedef {{
 *   read: (buffer: Uint8Array, options: { at: number }) => number,
 *   write: (buffer: Uint8Array, options: { at: number }) => number,
 *   getSize: () => number,
 *   truncate: (size: number) => void,
 *   close: () => void,
 * }} SyncAccessHandle
 */

/**
 * @typedef {{
 *   handle: SyncAccessHandle,
 *   room: string,
 *   size: number,
 *   sha256: string,
 *   total: number,
 *   chunks: number,
 *   hash: Sha256,
 * }} OpenFile
 */

/** Files being received, by transfer id. @type {Map<string, OpenFile>} */
const open = new Map();

/** No origin private file system here (only secure contexts have one): files stay in memory. */
const inMemory = !navigator.storage?.getDirectory;

/**
 * A received file kept in memory, with the parts of a SyncAccessHandle that receiving uses. Its
 * bytes are blobs, which the browser may keep on disk; they last as long as the page. Written in
 * order only, and reopened empty: a transfer cut short starts again from its first chunk.
 */
class MemoryFile {
  /** @type {Blob[]} */
  parts = [];
  size = 0;

  /** @param {Uint8Array} bytes @param {{ at: number }} options */
  write(bytes, { at }) {
    if (at !== this.size) throw new Error('a file in memory is written in order');
    // write() below fills an ordinary (not shared) ArrayBuffer.
    this.parts.push(new Blob([/** @type {Uint8Array<ArrayBuffer>} */ (bytes)]));
    this.size += bytes.length;
    return bytes.length;
  }

  getSize() {
    return this.size;
  }

  /** Never needed: a file in memory is only ever opened empty. */
  read() {
    return 0;
  }

  truncate() {}

  /** Done writing: one blob instead of one per write. */
  close() {
    this.parts = [new Blob(this.parts)];
  }
}

/** Received files kept in memory, by room and transfer id. @type {Map<string, MemoryFile>} */
const memoryFiles = new Map();
/** @param {string} room @param {string} id */
const memoryKey = (room, id) => `${room}/${id}`;
/** Hash jobs the page no longer wants. @type {Set<number>} */
const aborted = new Set();

const scope = /** @type {{ postMessage: (message: unknown) => void, onmessage: ((event: MessageEvent) => void) | null }} */ (
  /** @type {unknown} */ (self)
);

/** @param {Record<string, unknown>} message */
const post = (message) => scope.postMessage(message);

/** @param {string} room @param {boolean} create */
async function roomDirectory(room, create) {
  const root = await navigator.storage.getDirectory();
  const files = await root.getDirectoryHandle(ROOT, { create: true });
  return files.getDirectoryHandle(room, { create });
}

/** @param {number} job @param {File} file */
async function hash(job, file) {
  const sha = new Sha256();
  for (let offset = 0; offset < file.size; offset += HASH_SLICE_BYTES) {
    if (aborted.has(job)) return;
    sha.update(new Uint8Array(await file.slice(offset, offset + HASH_SLICE_BYTES).arrayBuffer()));
    post({ op: 'hash-progress', job, done: Math.min(file.size, offset + HASH_SLICE_BYTES) });
  }
  post({ op: 'hashed', job, sha256: sha.hex() });
}

/**
 * The file's exclusive access handle. Right after a reload the previous page's worker may still
 * hold it for a moment, so a refusal is retried for a few seconds.
 * @param {FileSystemFileHandle} fileHandle
 * @returns {Promise<SyncAccessHandle>}
 */
async function syncHandle(fileHandle) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const file = /** @type {{ createSyncAccessHandle: () => Promise<SyncAccessHandle> }} */ (/** @type {unknown} */ (fileHandle));
      return await file.createSyncAccessHandle();
    } catch (error) {
      if (attempt >= 30 || !(error instanceof DOMException && error.name === 'NoModificationAllowedError')) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/**
 * Opens (creating if needed) the file of an incoming transfer and reports how many whole chunks
 * it already holds, re-hashing them: the hash state does not survive a reload, the bytes do.
 * @param {{ room: string, id: string, size: number, sha256: string }} request
 */
async function openFile({ room, id, size, sha256 }) {
  close(id);
  /** @type {SyncAccessHandle} */
  let handle;
  if (inMemory) {
    const file = new MemoryFile();
    memoryFiles.set(memoryKey(room, id), file);
    handle = file;
  } else {
    const directory = await roomDirectory(room, true);
    handle = await syncHandle(await directory.getFileHandle(id, { create: true }));
  }
  const total = chunkCount(size);
  const length = handle.getSize();
  // A partial last chunk (a write cut short) is dropped and asked for again.
  const chunks = length >= size ? total : Math.floor(length / FILE_CHUNK_BYTES);
  const kept = Math.min(size, chunks * FILE_CHUNK_BYTES);
  if (length !== kept) handle.truncate(kept);
  const sha = new Sha256();
  const buffer = new Uint8Array(HASH_SLICE_BYTES);
  for (let at = 0; at < kept; at += buffer.length) {
    const read = handle.read(buffer.subarray(0, Math.min(buffer.length, kept - at)), { at });
    sha.update(buffer.subarray(0, read));
  }
  const file = { handle, room, size, sha256, total, chunks, hash: sha };
  open.set(id, file);
  post({ op: 'opened', id, chunks });
  if (chunks === total) finish(id, file);
}

/**
 * Writes consecutive chunks, starting with chunk `seq`, in one go.
 * @param {{ id: string, seq: number, buffers: ArrayBuffer[], offset: number }} request
 */
function write({ id, seq, buffers, offset }) {
  const file = open.get(id);
  // Closed meanwhile (cancelled, or the connection dropped): the chunks will be asked for again.
  if (!file || seq !== file.chunks) return;
  let length = 0;
  for (const buffer of buffers) length += buffer.byteLength - offset;
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const buffer of buffers) {
    bytes.set(new Uint8Array(buffer, offset), at);
    at += buffer.byteLength - offset;
  }
  const written = file.handle.write(bytes, { at: seq * FILE_CHUNK_BYTES });
  if (written !== bytes.length) throw new Error('the disk took only part of a write');
  file.hash.update(bytes);
  const before = file.chunks;
  file.chunks += buffers.length;
  if (file.chunks === file.total) finish(id, file);
  else if (Math.floor(before / REPORT_EVERY_CHUNKS) !== Math.floor(file.chunks / REPORT_EVERY_CHUNKS)) {
    post({ op: 'stored', id, chunks: file.chunks });
  }
}

/** All chunks are in: check the whole file's SHA-256 before anyone may open it. @param {string} id @param {OpenFile} file */
function finish(id, file) {
  post({ op: 'stored', id, chunks: file.chunks });
  const ok = file.hash.hex() === file.sha256;
  // No flush (fsync): the bytes are safe in the page cache across reloads, and forcing a large
  // file to disk would keep the person waiting for seconds.
  file.handle.close();
  open.delete(id);
  if (ok) post({ op: 'verified', id });
  else removeFile(file.room, id).then(() => post({ op: 'corrupt', id }));
}

/** @param {string} id */
function close(id) {
  const file = open.get(id);
  if (!file) return;
  file.handle.close();
  open.delete(id);
}

/** @param {string} room @param {string} id */
async function removeFile(room, id) {
  close(id);
  if (inMemory) {
    memoryFiles.delete(memoryKey(room, id));
    return;
  }
  try {
    await (await roomDirectory(room, false)).removeEntry(id);
  } catch {
    // Never stored, or already gone.
  }
}

/** Deletes the room's files except `keep` (files still in history or still arriving). @param {string} room @param {string[]} keep */
async function prune(room, keep) {
  if (inMemory) {
    const wanted = new Set(keep);
    for (const key of memoryFiles.keys()) {
      const [inRoom, id] = key.split('/');
      if (inRoom === room && !wanted.has(id) && !open.has(id)) memoryFiles.delete(key);
    }
    return;
  }
  let directory;
  try {
    directory = await roomDirectory(room, false);
  } catch {
    return;
  }
  const wanted = new Set(keep);
  /** @type {string[]} */
  const doomed = [];
  // @ts-ignore: keys() on directory handles is not in TypeScript's DOM library yet.
  for await (const name of directory.keys()) if (!wanted.has(name) && !open.has(name)) doomed.push(name);
  for (const name of doomed) await removeFile(room, name);
}

/** @param {any} request */
async function handle(request) {
  switch (request.op) {
    case 'hash':
      return hash(request.job, request.file);
    case 'open':
      return openFile(request);
    case 'write':
      return write(request);
    case 'close':
      return close(request.id);
    case 'remove':
      return removeFile(request.room, request.id);
    case 'prune':
      return prune(request.room, request.keep);
    case 'read': {
      // Only asked where files are kept in memory: the page reads OPFS itself.
      const file = memoryFiles.get(memoryKey(request.room, request.id));
      return post({ op: 'read', request: request.request, blob: file && !open.has(request.id) ? new Blob(file.parts) : null });
    }
  }
}

let queue = Promise.resolve();
scope.onmessage = (/** @type {MessageEvent} */ { data }) => {
  if (data.op === 'abort') {
    aborted.add(data.job);
    return;
  }
  queue = queue.then(async () => {
    try {
      await handle(data);
    } catch (error) {
      const room = data.room ?? open.get(data.id)?.room;
      // A file that failed half-way is not trusted to match its hash state: it is deleted.
      if (data.id && room) await removeFile(room, data.id).catch(() => undefined);
      post({ op: 'error', id: data.id, job: data.job, message: error instanceof Error ? error.message : String(error) });
    }
  });
};
