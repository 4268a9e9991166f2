// A small OpenAI-compatible chat-completions server for the browser tests: streams a
// deterministic reply as server-sent events, or fails, and records what it was asked.

import { createServer } from 'node:http';
import { once } from 'node:events';

/**
 * @typedef {{ kind: 'reply', pieces: string[], delayMs: number } | { kind: 'fail', status: number }} ModelMode
 */

/** @param {ModelMode} mode */
export async function startFakeModel(mode) {
  /** @type {{ authorization: string | undefined, body: any }[]} */
  const requests = [];
  const state = { mode };
  const server = createServer(async (request, response) => {
    let raw = '';
    for await (const chunk of request) raw += chunk;
    requests.push({ authorization: request.headers.authorization, body: JSON.parse(raw || '{}') });
    const current = state.mode;
    if (current.kind === 'fail') {
      response.writeHead(current.status, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: 'the model is on fire' } }));
      return;
    }
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const [index, piece] of current.pieces.entries()) {
      if (index > 0 && current.delayMs) await new Promise((resolve) => setTimeout(resolve, current.delayMs));
      response.write(`data: ${JSON.stringify({ choices: [{ delta: { content: piece } }] })}\n\n`);
    }
    response.end('data: [DONE]\n\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${address.port}/v1`,
    host: `127.0.0.1:${address.port}`,
    requests,
    /** @param {ModelMode} next */
    setMode(next) {
      state.mode = next;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
