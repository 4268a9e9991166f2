// Two people in a pair room, as a person would use it: create, share, connect, chat, reload,
// survive a server restart; a third person finds the room full.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CONNECTED,
  rejoinedSignaling,
  connectedPair,
  createRoom,
  expectMessage,
  expectStatus,
  newPerson,
  send,
} from './harness.mjs';
import { onTopology } from './topology.mjs';


// The server on a host of its own, the people behind a NAT (topology.mjs).
const shared = onTopology();

describe('pair room', () => {
  test('two people connect through a shared link and chat both ways', async () => {
    const { ann, bob } = await connectedPair(shared);
    await send(ann.page, 'Hello from Ann <b>not bold</b>');
    await expectMessage(bob.page, 'Hello from Ann <b>not bold</b>');
    assert.equal(await bob.page.locator('.messages b').count(), 0, 'message text is never parsed as HTML');
    await send(bob.page, 'Hi Ann 👋');
    await expectMessage(ann.page, 'Hi Ann 👋');
    assert.deepEqual([...ann.problems, ...bob.problems], []);
    await ann.context.close();
    await bob.context.close();
  });

  test('each sees the other by name, and a rename shows up on the other side', async () => {
    const { ann, bob } = await connectedPair(shared);
    const bobName = await bob.page.getByRole('textbox', { name: 'Your name' }).inputValue();
    await ann.page.getByText(`With ${bobName}`).waitFor();
    await bob.page.getByRole('textbox', { name: 'Your name' }).fill('  Robert  ');
    await bob.page.getByRole('button', { name: 'Save name' }).click();
    await ann.page.getByText('With Robert', { exact: true }).waitFor();
    // An empty name is refused in the page, and the old one stays.
    await bob.page.getByRole('textbox', { name: 'Your name' }).fill('   ');
    await bob.page.getByRole('button', { name: 'Save name' }).click();
    await bob.page.getByRole('alert').filter({ hasText: /A name is 1 to 48 characters/ }).waitFor();
    await ann.page.getByText('With Robert', { exact: true }).waitFor();
    // The new name is remembered across a reload.
    await bob.page.reload();
    assert.equal(await bob.page.getByRole('textbox', { name: 'Your name' }).inputValue(), 'Robert');
    await ann.context.close();
    await bob.context.close();
  });

  test('a third person sees "This room is full" and the pair stays connected', async () => {
    const { ann, bob, link } = await connectedPair(shared);
    const eve = await newPerson(shared.browser, shared.server.url);
    await eve.page.goto(link);
    await expectStatus(eve.page, 'This room is full');
    assert.equal(await eve.page.getByRole('button', { name: 'Send' }).isDisabled(), true);
    await send(ann.page, 'still here');
    await expectMessage(bob.page, 'still here');
    await expectStatus(ann.page, CONNECTED);
    await Promise.all([ann, bob, eve].map((p) => p.context.close()));
  });

  test('reloading one side reconnects on its own', async () => {
    const { ann, bob } = await connectedPair(shared);
    await bob.page.reload();
    await expectStatus(bob.page, CONNECTED);
    await expectStatus(ann.page, CONNECTED);
    await send(bob.page, 'after reload');
    await expectMessage(ann.page, 'after reload');
    await send(ann.page, 'welcome back');
    await expectMessage(bob.page, 'welcome back');
    await ann.context.close();
    await bob.context.close();
  });

  test('when the other person closes the page, the status says they left', async () => {
    const { ann, bob } = await connectedPair(shared);
    await bob.page.close();
    await expectStatus(ann.page, 'The other person left');
    assert.equal(await ann.page.getByRole('button', { name: 'Send' }).isDisabled(), true);
    await ann.context.close();
    await bob.context.close();
  });

  test('opening the room in a second tab moves you there and the first tab says so', async () => {
    const { ann, bob, link } = await connectedPair(shared);
    const secondTab = await bob.context.newPage();
    await secondTab.goto(link);
    await expectStatus(secondTab, CONNECTED);
    await expectStatus(bob.page, 'This room is open in another tab or window');
    await expectStatus(ann.page, CONNECTED);
    await send(ann.page, 'which tab?');
    await expectMessage(secondTab, 'which tab?');
    await ann.context.close();
    await bob.context.close();
  });

  test('a restarted server reconnects both people without a reload', async () => {
    const own = await shared.startServer();
    const ann = await newPerson(shared.browser, own.url);
    const bob = await newPerson(shared.browser, own.url);
    await ann.page.goto('/');
    await ann.page.getByRole('button', { name: 'Create room' }).click();
    await ann.page.waitForURL(/\/r\//);
    const link = ann.page.url();
    await bob.page.goto(link);
    await expectStatus(bob.page, CONNECTED);
    const address = new URL(own.url).host;
    const rejoined = [ann, bob].map(({ page }) => rejoinedSignaling(page));
    await own.stop();
    // The peers stay connected to each other while the server is away.
    await send(ann.page, 'server is down');
    await expectMessage(bob.page, 'server is down');
    const restarted = await shared.startServer({ listen: address });
    const carol = await newPerson(shared.browser, restarted.url);
    try {
      // Both rejoin on their own, with no reload anywhere: then the room is full for a newcomer.
      await Promise.all(rejoined);
      await carol.page.goto(link);
      await expectStatus(carol.page, 'This room is full');
      await expectStatus(ann.page, CONNECTED);
      await expectStatus(bob.page, CONNECTED);
      await send(bob.page, 'server is back');
      await expectMessage(ann.page, 'server is back');
    } finally {
      await Promise.all([ann, bob, carol].map((p) => p.context.close()));
      await restarted.stop();
    }
  });

  test('while the server is unreachable a newcomer sees it retrying, then connects', async () => {
    const own = await shared.startServer();
    const address = new URL(own.url).host;
    const ann = await newPerson(shared.browser, own.url);
    await ann.page.goto('/');
    await ann.page.getByRole('button', { name: 'Create room' }).click();
    await ann.page.waitForURL(/\/r\//);
    const link = ann.page.url();
    await expectStatus(ann.page, 'Waiting for the other person…');
    await own.stop();
    await expectStatus(ann.page, 'Server unreachable — retrying…');
    const restarted = await shared.startServer({ listen: address });
    try {
      await expectStatus(ann.page, 'Waiting for the other person…', 15_000);
      const bob = await newPerson(shared.browser, restarted.url);
      await bob.page.goto(link);
      await expectStatus(bob.page, CONNECTED);
      await expectStatus(ann.page, CONNECTED);
      await bob.context.close();
    } finally {
      await ann.context.close();
      await restarted.stop();
    }
  });
});

describe('home page', () => {
  test('a pasted room link or id opens the room; anything else is explained', async () => {
    const person = await newPerson(shared.browser, shared.server.url);
    await person.page.goto('/');
    const field = person.page.getByRole('textbox', { name: 'Room link or id' });
    await field.fill('https://example.org/not-a-room');
    await person.page.getByRole('button', { name: 'Open room' }).click();
    await person.page.getByRole('alert').filter({ hasText: 'That is not a Natter room link' }).waitFor();
    assert.match(person.page.url(), /\/$/);
    await field.fill(`${shared.server.url}/r/AAAAAAAAAAAAAAAAAAAAAA`);
    await person.page.getByRole('button', { name: 'Open room' }).click();
    await person.page.waitForURL(/\/r\/AAAAAAAAAAAAAAAAAAAAAA$/);
    await expectStatus(person.page, 'Waiting for the other person…');
    assert.deepEqual(person.problems, []);
    await person.context.close();
  });

  test('the page runs under the strict Content-Security-Policy without violations', async () => {
    const person = await newPerson(shared.browser, shared.server.url);
    /** @type {string[]} */
    const violations = [];
    await person.page.exposeFunction('reportViolation', (/** @type {string} */ v) => violations.push(v));
    await person.page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (event) =>
        // @ts-ignore exposed by the test
        window.reportViolation(`${event.violatedDirective} ${event.blockedURI}`),
      );
    });
    const response = await person.page.goto('/');
    const csp = response?.headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    await person.page.getByRole('button', { name: 'Create room' }).click();
    await expectStatus(person.page, 'Waiting for the other person…');
    // An inline script injected into the page is refused by the policy.
    await person.page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.injected = true';
      document.body.append(script);
    });
    assert.equal(await person.page.evaluate(() => /** @type {any} */ (window).injected), undefined);
    await person.page.waitForTimeout(100);
    assert.equal(violations.length, 1, `only the injected script is blocked: ${violations}`);
    await person.context.close();
  });
});
