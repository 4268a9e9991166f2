// A name saved while the page is still joining (its join sent, the welcome not yet back) reaches
// the others: the rename cannot be sent before the welcome, so it must be sent after it.

import { test } from 'node:test';
import { createRoom, expectStatus, CONNECTED, newPerson, serverAndBrowser } from './harness.mjs';

const shared = serverAndBrowser();

test('a name saved between join and welcome reaches the other person', async () => {
  const { ann, link } = await createRoom(shared);
  const bob = await newPerson(shared.browser, shared.server.url);
  /** @type {() => void} */
  let release = () => {};
  const welcomeHeld = new Promise((resolve) => (release = () => resolve(undefined)));
  /** @type {() => void} */
  let joinSent = () => {};
  const joined = new Promise((resolve) => (joinSent = () => resolve(undefined)));
  // Hold the server's welcome back (and everything after it, in order) until Bob has saved a name.
  await bob.page.routeWebSocket(/\/ws$/, (page) => {
    const server = page.connectToServer();
    let queue = Promise.resolve();
    let held = false;
    server.onMessage((message) => {
      if (typeof message === 'string' && message.includes('"type":"welcome"') && !held) {
        held = true;
        queue = queue.then(() => welcomeHeld);
      }
      queue = queue.then(() => page.send(message));
    });
    page.onMessage((message) => {
      if (typeof message === 'string' && message.includes('"type":"join"')) joinSent();
      server.send(message);
    });
  });
  await bob.page.goto(link);
  await joined;
  await bob.page.getByRole('textbox', { name: 'Your name' }).fill('Robert');
  await bob.page.getByRole('button', { name: 'Save name' }).click();
  release();
  await expectStatus(bob.page, CONNECTED);
  await ann.page.getByText('With Robert', { exact: true }).waitFor({ timeout: 10_000 });
  await ann.context.close();
  await bob.context.close();
});
