// The page's side of file-worker.js: hashing files before they are offered, and keeping received
// files in the origin private file system. Received files are read back as disk-backed File
// objects, so showing or downloading one never loads it into memory. (A page that is not a
// secure context has no such file system: the worker keeps its received files, and hands them
// over as blobs.)

const WORKER_URL = '/js/file-worker.js';
const ROOT = 'natter-files';

/**
 * What the storage worker reports about one incoming file.
 * @typedef {{ op: 'opened' | 'stored', id: string, chunks: number }
 *   | { op: 'verified' | 'corrupt', id: string }
 *   | { op: 'error', id: string, message: string }} StorageEvent
 */

/** Computes SHA-256 digests of Files in a worker, one file at a time. */
export class FileHasher {
  #worker = new Worker(WORKER_URL, { type: 'module' });
  #nextJob = 1;
  /** @type {Map<number, { resolve: (hex: string | null) => void, reject: (error: Error) => void, progress: (done: number) => void }>} */
  #jobs = new Map();

  constructor() {
    this.#worker.onmessage = ({ data }) => {
      const job = this.#jobs.get(data.job);
      if (!job) return;
      if (data.op === 'hash-progress') job.progress(data.done);
      else {
        this.#jobs.delete(data.job);
        if (data.op === 'hashed') job.resolve(data.sha256);
        else job.reject(new Error(data.message));
      }
    };
  }

  /**
   * @param {File} file
   * @param {(done: number) => void} progress bytes hashed so far
   * @param {AbortSignal} [signal] resolves the hash to null when aborted
   * @returns {Promise<string | null>} 64 hex digits, or null if aborted
   */
  hash(file, progress, signal) {
    const job = this.#nextJob++;
    return new Promise((resolve, reject) => {
      this.#jobs.set(job, { resolve, reject, progress });
      signal?.addEventListener('abort', () => {
        this.#worker.postMessage({ op: 'abort', job });
        this.#jobs.delete(job);
        resolve(null);
      });
      this.#worker.postMessage({ op: 'hash', job, file });
    });
  }
}

/** Received files of one room, on disk. */
export class FileStore {
  #worker = new Worker(WORKER_URL, { type: 'module' });
  #nextRead = 1;
  /** Reads of files the worker keeps in memory, waiting for its answer. @type {Map<number, (blob: Blob | null) => void>} */
  #reads = new Map();

  /** @param {string} room @param {(event: StorageEvent) => void} onEvent */
  constructor(room, onEvent) {
    this.room = room;
    this.#worker.onmessage = ({ data }) => {
      if (data.op !== 'read') return onEvent(data);
      this.#reads.get(data.request)?.(data.blob);
      this.#reads.delete(data.request);
    };
  }

  /** Opens an incoming file; answered by an "opened" event with the chunks already stored.
   * @param {string} id @param {number} size @param {string} sha256 */
  open(id, size, sha256) {
    this.#worker.postMessage({ op: 'open', room: this.room, id, size, sha256 });
  }

  /**
   * Hands received chunks (consecutive, the first being chunk `seq`) to the worker; the buffers
   * move, they are not copied. Each holds one chunk, its payload starting at `offset`.
   * @param {string} id @param {number} seq @param {ArrayBuffer[]} buffers @param {number} offset
   */
  write(id, seq, buffers, offset) {
    this.#worker.postMessage({ op: 'write', id, seq, buffers, offset }, buffers);
  }

  /** Stops writing for now; what is stored stays for a later "open". @param {string} id */
  close(id) {
    this.#worker.postMessage({ op: 'close', id });
  }

  /** @param {string} id */
  remove(id) {
    this.#worker.postMessage({ op: 'remove', room: this.room, id });
  }

  /** Deletes the room's stored files except those listed. @param {string[]} keep */
  prune(keep) {
    this.#worker.postMessage({ op: 'prune', room: this.room, keep });
  }

  /** A received, verified file as a disk-backed File, or null if it is gone. @param {string} id */
  async read(id) {
    if (!navigator.storage?.getDirectory) {
      const request = this.#nextRead++;
      const blob = await new Promise((resolve) => {
        this.#reads.set(request, resolve);
        this.#worker.postMessage({ op: 'read', room: this.room, id, request });
      });
      return blob ? new File([blob], id) : null;
    }
    try {
      const root = await navigator.storage.getDirectory();
      const room = await (await root.getDirectoryHandle(ROOT)).getDirectoryHandle(this.room);
      return await (await room.getFileHandle(id)).getFile();
    } catch {
      return null;
    }
  }
}

/** Whether this browser has room for `bytes` more (true when it cannot tell). @param {number} bytes */
export async function hasSpaceFor(bytes) {
  try {
    const { quota, usage } = await navigator.storage.estimate();
    return quota === undefined || usage === undefined || quota - usage > bytes;
  } catch {
    return true;
  }
}
