// The page's side of pow-worker.js: solves the server's challenges one at a time in a worker, so
// the page stays responsive, and reports progress as a fraction of the expected work.

const WORKER_URL = '/js/pow-worker.js';

/**
 * @typedef {{ challenge: string, nonce: number }} Proof
 * @typedef {(fraction: number | null) => void} ProgressListener
 *   the expected share of the work done (0 to 1, capped below 1 until solved); null when done
 */

export class ProofSolver {
  /** @type {Worker | null} */
  #worker = null;
  #job = 0;
  /** @type {((value: { nonce: number, ms: number } | null) => void) | null} */
  #pending = null;
  /** The time the last solution took, in milliseconds (for tests and benchmarks). */
  lastMs = 0;

  /** @param {ProgressListener} onProgress */
  constructor(onProgress) {
    this.onProgress = onProgress;
    // Started now, so loading the worker's modules overlaps the connection to the server
    // instead of delaying the join.
    this.#worker = this.#start();
  }

  #start() {
    const worker = new Worker(WORKER_URL, { type: 'module' });
    worker.onmessage = ({ data }) => {
      if (data.job !== this.#job) return;
      if (data.op === 'progress') {
        // A solution takes `difficulty` tries on average; never show 100 % before it is found.
        this.onProgress(Math.min(0.95, data.tries / Math.max(1, this.difficulty)));
        return;
      }
      const settle = this.#pending;
      this.#pending = null;
      this.onProgress(null);
      settle?.(data.op === 'solved' ? { nonce: data.nonce, ms: data.ms } : null);
    };
    return worker;
  }

  /** The difficulty of the challenge being solved. */
  difficulty = 1;

  /**
   * Solves `token`; a newer call supersedes an unfinished one, which then resolves to null.
   * @param {string} token @param {number} difficulty
   * @returns {Promise<Proof | null>}
   */
  solve(token, difficulty) {
    const stale = this.#pending;
    this.#pending = null;
    if (stale) {
      stale(null);
      // The worker is busy with the stale job and cannot be interrupted: replace it.
      this.#worker?.terminate();
      this.#worker = null;
    }
    this.#job += 1;
    const job = this.#job;
    if (difficulty <= 1) return Promise.resolve({ challenge: token, nonce: 0 });
    this.#worker ??= this.#start();
    this.difficulty = difficulty;
    this.onProgress(0);
    return new Promise((resolve) => {
      this.#pending = (result) => {
        if (result) this.lastMs = result.ms;
        resolve(result ? { challenge: token, nonce: result.nonce } : null);
      };
      this.#worker?.postMessage({ job, token, difficulty });
    });
  }

  stop() {
    this.#pending?.(null);
    this.#pending = null;
    this.#worker?.terminate();
    this.#worker = null;
  }
}
