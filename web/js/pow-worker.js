// Solves one proof-of-work challenge per message, off the page's thread (pow.js does the work),
// and reports its tries as it goes so the page can show progress.

import { solve } from './pow.js';

const scope = /** @type {{ postMessage: (message: unknown) => void, onmessage: ((event: MessageEvent) => void) | null }} */ (
  /** @type {unknown} */ (self)
);

scope.onmessage = (/** @type {MessageEvent} */ { data }) => {
  const { job, token, difficulty } = data;
  const started = performance.now();
  try {
    const nonce = solve(token, difficulty, (tries) => scope.postMessage({ job, op: 'progress', tries }));
    scope.postMessage({ job, op: 'solved', nonce, ms: performance.now() - started });
  } catch (error) {
    scope.postMessage({ job, op: 'error', message: String(error) });
  }
};
