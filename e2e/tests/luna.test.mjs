// Luna in the page: a room allows @luna, a question streams its answer to both people, a room
// that has not allowed it sends nothing, and a failing model gets a short sentence from Luna.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connectedPair, launchBrowser, startServer } from './harness.mjs';
import { startFakeModel } from './fake-model.mjs';

/** @typedef {import('playwright-core').Page} Page */

const API_KEY = 'sk-e2e-luna-test-key-0000';

/** @param {Page} page @param {string} text */
async function say(page, text) {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
}

/** Luna's replies in a page's message log. @param {Page} page */
const lunaReplies = (page) => page.getByRole('log', { name: 'Messages' }).locator('li.message.luna');

/** @param {Page} page */
const lunaSetting = (page) => page.getByRole('status', { name: 'Luna' });

describe('Luna', () => {
  /** @type {Awaited<ReturnType<typeof startFakeModel>>} */
  let model;
  /** @type {Awaited<ReturnType<typeof startServer>>} */
  let server;
  /** @type {import('playwright-core').Browser} */
  let browser;

  before(async () => {
    model = await startFakeModel({ kind: 'reply', pieces: ['Hello', ' from', ' Luna'], delayMs: 400 });
    server = await startServer({ args: ['--luna-url', model.url, '--luna-model', 'test-model'], env: { NATTER_LUNA_API_KEY: API_KEY } });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    await model?.close();
  });

  /** Ann and Bob connected in a new pair room. */
  const pair = () => connectedPair({ server, browser });

  test('a room that allows @luna gets the answer streamed to both people', async () => {
    const { ann, bob } = await pair();
    // Off in a new room, with what it would send where.
    await lunaSetting(ann.page).filter({ hasText: '@luna is off in this room.' }).waitFor();
    await lunaSetting(ann.page).filter({ hasText: `the model test-model at ${model.host}` }).waitFor();
    // In a pair room either person may allow it; both see it on.
    await bob.page.getByRole('checkbox', { name: 'Allow @luna' }).check();
    await lunaSetting(ann.page).filter({ hasText: '@luna is on in this room.' }).waitFor();
    await say(bob.page, 'We meet at 9, Lisbon time.');
    await ann.page.getByRole('log', { name: 'Messages' }).getByText('We meet at 9, Lisbon time.').waitFor();
    // Ann sees exactly which messages her question will carry.
    await ann.page.getByRole('textbox', { name: 'Message' }).fill('@luna which time zone is that?');
    await ann.page.getByText('Luna will see this message and the message before it').click();
    await ann.page.getByRole('list', { name: 'What Luna will see' }).getByText(/We meet at 9/).waitFor();
    await ann.page.getByRole('textbox', { name: 'Message' }).press('Enter');
    // Streamed: the first words show before the rest is written.
    for (const page of [ann.page, bob.page]) {
      await lunaReplies(page).filter({ hasText: /^Luna\s*Hello/ }).waitFor();
    }
    assert.equal(await lunaReplies(bob.page).filter({ hasText: 'Hello from Luna' }).count(), 0, 'not all at once');
    for (const page of [ann.page, bob.page]) {
      await lunaReplies(page).filter({ hasText: 'Hello from Luna' }).waitFor();
    }
    const request = model.requests.at(-1);
    assert.equal(request?.authorization, `Bearer ${API_KEY}`);
    const contents = request?.body.messages.map((/** @type {{ content: string }} */ m) => m.content);
    // People's words reach the model as "Name: text", the question last.
    assert.ok(contents.at(-1).endsWith(': @luna which time zone is that?'), JSON.stringify(contents));
    assert.equal(request?.body.messages.at(-1).role, 'user');
    assert.ok(contents.some((/** @type {string} */ c) => c.endsWith('We meet at 9, Lisbon time.')), JSON.stringify(contents));
    assert.deepEqual([...ann.problems, ...bob.problems], []);
    await ann.context.close();
    await bob.context.close();
  });

  test('a room that has not allowed @luna sends nothing, and a failing model gets a short sentence', async () => {
    const { ann, bob } = await pair();
    const asked = model.requests.length;
    await say(ann.page, '@luna are you there?');
    await bob.page.getByRole('log', { name: 'Messages' }).getByText('@luna are you there?').waitFor();
    await new Promise((resolve) => setTimeout(resolve, 800));
    assert.equal(await lunaReplies(ann.page).count(), 0);
    assert.equal(model.requests.length, asked, 'nothing went to the model');

    await ann.page.getByRole('checkbox', { name: 'Allow @luna' }).check();
    await lunaSetting(bob.page).filter({ hasText: '@luna is on in this room.' }).waitFor();
    model.setMode({ kind: 'fail', status: 500 });
    await say(ann.page, '@luna now?');
    for (const page of [ann.page, bob.page]) {
      await lunaReplies(page).filter({ hasText: 'My model answered with an error. Try again later.' }).waitFor();
    }
    // The room goes on.
    await say(bob.page, 'still chatting');
    await ann.page.getByRole('log', { name: 'Messages' }).getByText('still chatting').waitFor();
    model.setMode({ kind: 'reply', pieces: ['Hello', ' from', ' Luna'], delayMs: 400 });
    await ann.context.close();
    await bob.context.close();
  });
});
