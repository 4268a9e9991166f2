// The chat as two people use it: emoji and multi-line messages, delivery marks, history that
// survives a reload (or not, by choice), clearing one side, hostile input shown as text, and a
// message lost to a dropped channel delivered once when the channel is back.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CONNECTED, connectedPair, expectMessage, expectStatus, newPerson } from './harness.mjs';
import { onTopology } from './topology.mjs';

// The server on a host of its own, the people behind a NAT (topology.mjs).
const shared = onTopology();

/** @param {import('playwright-core').Page} page */
const log = (page) => page.getByRole('log', { name: 'Messages' });
/** @param {import('playwright-core').Page} page */
const composer = (page) => page.getByRole('textbox', { name: 'Message' });

/** Types into the composer like a person and presses Enter. @param {import('playwright-core').Page} page @param {string} text */
async function typeAndEnter(page, text) {
  const lines = text.split('\n');
  await composer(page).click();
  for (const [index, line] of lines.entries()) {
    if (index > 0) await page.keyboard.press('Shift+Enter');
    await page.keyboard.insertText(line);
  }
  await page.keyboard.press('Enter');
}

/** The own message with this text shows "Delivered". @param {import('playwright-core').Page} page @param {string} text */
async function expectDelivered(page, text) {
  await log(page)
    .getByRole('listitem')
    .filter({ hasText: text })
    .getByText('Delivered', { exact: true })
    .waitFor({ timeout: 10_000 });
}

describe('chat', () => {
  test('emoji and multi-line messages go both ways and are marked delivered', async () => {
    const { ann, bob } = await connectedPair(shared);
    await typeAndEnter(ann.page, 'first line\nsecond line 🎉');
    await expectDelivered(ann.page, 'first line');
    const received = log(bob.page).getByRole('listitem').filter({ hasText: 'second line 🎉' });
    assert.equal(await received.locator('.text').innerText(), 'first line\nsecond line 🎉');
    assert.equal(await composer(ann.page).inputValue(), '', 'the composer is emptied after sending');
    await typeAndEnter(bob.page, '👍');
    await expectDelivered(bob.page, '👍');
    const big = log(ann.page).getByRole('listitem').filter({ hasText: '👍' }).locator('.text');
    const size = await big.evaluate((el) => parseFloat(getComputedStyle(el).fontSize));
    assert.ok(size >= 32, `an emoji-only message is shown large (${size}px)`);
    await Promise.all([ann, bob].map((p) => p.context.close()));
  });

  test('history survives a reload, and turning it off means a reload shows none', async () => {
    const { ann, bob } = await connectedPair(shared);
    await typeAndEnter(ann.page, 'remember me');
    await expectDelivered(ann.page, 'remember me');
    await typeAndEnter(bob.page, 'me too');
    await expectMessage(ann.page, 'me too');
    await ann.page.reload();
    await expectMessage(ann.page, 'remember me');
    await expectMessage(ann.page, 'me too');
    await expectDelivered(ann.page, 'remember me');
    // Bob turns history off: his stored copy is deleted and nothing new is kept.
    const keep = bob.page.getByRole('checkbox', { name: 'Keep history in this browser' });
    assert.equal(await keep.isChecked(), true, 'history is on by default');
    await keep.uncheck();
    await expectStatus(ann.page, CONNECTED);
    await typeAndEnter(ann.page, 'not kept by Bob');
    await expectMessage(bob.page, 'not kept by Bob');
    await bob.page.reload();
    await expectStatus(bob.page, CONNECTED);
    assert.equal(await bob.page.getByRole('checkbox', { name: 'Keep history in this browser' }).isChecked(), false);
    assert.equal(await log(bob.page).getByRole('listitem').count(), 0);
    await Promise.all([ann, bob].map((p) => p.context.close()));
  });

  test('clear messages empties this side only, after a confirmation', async () => {
    const { ann, bob } = await connectedPair(shared);
    await typeAndEnter(ann.page, 'to be cleared');
    await expectMessage(bob.page, 'to be cleared');
    /** @type {string[]} */
    const asked = [];
    bob.page.once('dialog', (dialog) => {
      asked.push(dialog.message());
      dialog.dismiss();
    });
    await bob.page.getByRole('button', { name: 'Clear messages' }).click();
    await expectMessage(bob.page, 'to be cleared');
    assert.match(asked[0] ?? '', /other person keeps theirs/);
    bob.page.once('dialog', (dialog) => dialog.accept());
    await bob.page.getByRole('button', { name: 'Clear messages' }).click();
    await log(bob.page).getByRole('listitem').first().waitFor({ state: 'detached' });
    await bob.page.reload();
    await expectStatus(bob.page, CONNECTED);
    assert.equal(await log(bob.page).getByRole('listitem').count(), 0, 'cleared for good');
    await expectMessage(ann.page, 'to be cleared');
    await Promise.all([ann, bob].map((p) => p.context.close()));
  });

  test('hostile messages are shown as text and run nothing', async () => {
    const { ann, bob } = await connectedPair(shared);
    const hostile = [
      '<img src=x onerror="window.pwned=1">',
      'javascript:window.pwned=2',
      '<a href="javascript:window.pwned=3">click</a>',
      'name\u202Egnp.exe spoof',
      'see https://example.org/page. and http://a.test/x?y=1',
    ];
    for (const text of hostile) {
      await typeAndEnter(ann.page, text);
      await expectMessage(bob.page, text);
    }
    const list = log(bob.page);
    assert.equal(await list.locator('img, script, iframe').count(), 0);
    const links = await list.locator('a').evaluateAll((as) => as.map((a) => [a.getAttribute('href'), a.getAttribute('rel'), a.textContent]));
    assert.deepEqual(links, [
      ['https://example.org/page', 'noopener noreferrer', 'https://example.org/page'],
      ['http://a.test/x?y=1', 'noopener noreferrer', 'http://a.test/x?y=1'],
    ]);
    // The right-to-left override stays inside its own isolated text.
    const spoof = list.getByRole('listitem').filter({ hasText: 'spoof' }).locator('.text');
    assert.equal(await spoof.getAttribute('dir'), 'auto');
    assert.equal(await bob.page.evaluate(() => /** @type {any} */ (window).pwned), undefined);
    // 10,000 characters is the limit: it goes through whole; one more is refused with a notice.
    const longest = 'x'.repeat(9_999) + '!';
    await composer(ann.page).fill(longest);
    await ann.page.getByRole('button', { name: 'Send' }).click();
    await expectDelivered(ann.page, 'x'.repeat(50));
    const got = await list.getByRole('listitem').filter({ hasText: 'x'.repeat(50) }).locator('.text').textContent();
    assert.equal(got, longest);
    await composer(ann.page).fill('y'.repeat(10_001));
    await ann.page.getByText('Too long: 1 characters over the limit of 10,000').waitFor();
    assert.equal(await ann.page.getByRole('button', { name: 'Send' }).isDisabled(), true);
    assert.equal((await composer(ann.page).inputValue()).length, 10_001, 'nothing is cut');
    await Promise.all([ann, bob].map((p) => p.context.close()));
  });

  test('when the other person is away the composer says so and sends nothing', async () => {
    const { ann, bob } = await connectedPair(shared);
    await bob.page.close();
    await expectStatus(ann.page, 'The other person left');
    await ann.page.getByText('The other person is not connected, so messages cannot be sent now').waitFor();
    await composer(ann.page).fill('into the void');
    await composer(ann.page).press('Enter');
    assert.equal(await log(ann.page).getByRole('listitem').count(), 0, 'nothing pretends to be sent');
    assert.equal(await composer(ann.page).inputValue(), 'into the void', 'the text is kept');
    await Promise.all([ann, bob].map((p) => p.context.close()));
  });

  test('a message lost when the channel drops arrives once after reconnecting', async () => {
    const { ann, link } = await connectedPair(shared).then(async ({ ann, bob, link }) => {
      await bob.context.close();
      return { ann, link };
    });
    // Bob's first page loses one incoming message and one outgoing acknowledgement, as a channel
    // that dies mid-flight would; after his reload everything works normally.
    const bob = await newPerson(shared.browser, shared.server.url);
    await bob.context.addInitScript(() => {
      if (sessionStorage.getItem('blip')) return;
      sessionStorage.setItem('blip', 'done');
      const send = RTCDataChannel.prototype.send;
      let ackDropped = false;
      RTCDataChannel.prototype.send = function (/** @type {any} */ data) {
        if (!ackDropped && typeof data === 'string' && data.includes('"type":"ack"')) {
          ackDropped = true;
          return;
        }
        return send.call(this, data);
      };
      const onmessage = /** @type {PropertyDescriptor} */ (Object.getOwnPropertyDescriptor(RTCDataChannel.prototype, 'onmessage'));
      Object.defineProperty(RTCDataChannel.prototype, 'onmessage', {
        get() {
          return onmessage.get?.call(this);
        },
        set(handler) {
          onmessage.set?.call(this, (/** @type {MessageEvent} */ event) => {
            if (String(event.data).includes('[lost in flight]')) return;
            handler(event);
          });
        },
      });
    });
    await bob.page.goto(link);
    await expectStatus(bob.page, CONNECTED);
    await expectStatus(ann.page, CONNECTED);
    await typeAndEnter(ann.page, 'ack lost');
    await expectMessage(bob.page, 'ack lost');
    await typeAndEnter(ann.page, 'message [lost in flight]');
    await ann.page.getByRole('listitem').filter({ hasText: 'ack lost' }).getByText('Sent', { exact: true }).waitFor();
    await ann.page.getByRole('listitem').filter({ hasText: 'lost in flight' }).getByText('Sent', { exact: true }).waitFor();
    await bob.page.reload();
    await expectDelivered(ann.page, 'ack lost');
    await expectDelivered(ann.page, 'lost in flight');
    await expectMessage(bob.page, 'message [lost in flight]');
    const texts = await log(bob.page).locator('.text').allTextContents();
    assert.deepEqual(texts, ['ack lost', 'message [lost in flight]'], 'each message exactly once, in order');
    await Promise.all([ann, bob].map((p) => p.context.close()));
  });
});

describe('recent rooms', () => {
  test('the home page lists rooms with their local name, the other person and last activity', async () => {
    const { ann, bob, link } = await connectedPair(shared);
    const bobName = await bob.page.getByRole('textbox', { name: 'Your name' }).inputValue();
    await ann.page.getByRole('textbox', { name: 'Room name (only you see it)' }).fill('Project <b>chat</b>');
    await ann.page.getByRole('button', { name: 'Rename room' }).click();
    await ann.page.getByText('Room renamed to “Project <b>chat</b>”').waitFor();
    assert.match(await ann.page.title(), /^Project <b>chat<\/b> · Natter$/);
    await typeAndEnter(ann.page, 'hello');
    await expectMessage(bob.page, 'hello');
    // A second room, older activity first: the renamed one must come first.
    await ann.page.goto('/');
    const recent = ann.page.getByRole('region', { name: 'Recent rooms' });
    const rooms = recent.getByRole('listitem');
    await rooms.first().waitFor();
    assert.equal(await rooms.count(), 1);
    const first = rooms.first();
    assert.equal(await first.getByRole('link').textContent(), 'Project <b>chat</b>');
    await first.getByText(`with ${bobName}`).waitFor();
    assert.ok(await first.locator('time').getAttribute('datetime'));
    // Bob did not rename it: he sees it by Ann's name.
    await bob.page.goto('/');
    const annName = await ann.context.pages()[0].evaluate(async () => {
      const db = await new Promise((resolve) => {
        const request = indexedDB.open('natter');
        request.onsuccess = () => resolve(request.result);
      });
      const get = /** @type {IDBDatabase} */ (db).transaction('settings').objectStore('settings').get('identity');
      return new Promise((resolve) => (get.onsuccess = () => resolve(get.result.name)));
    });
    await bob.page.getByRole('region', { name: 'Recent rooms' }).getByRole('link', { name: `Room with ${annName}` }).waitFor();
    // Opening it from the list goes back to the room; removing takes it off the list.
    await first.getByRole('link').click();
    await ann.page.waitForURL(link);
    await expectStatus(ann.page, /^(Waiting for the other person…|The other person left)$/);
    await ann.page.goto('/');
    await recent.getByRole('button', { name: 'Remove Project <b>chat</b> from recent rooms' }).click();
    await recent.getByText('Rooms you open appear here').waitFor();
    assert.equal(await recent.getByRole('listitem').count(), 0);
    await Promise.all([ann, bob].map((p) => p.context.close()));
  });

  test('the typing indicator shows while the other person types', async () => {
    const { ann, bob } = await connectedPair(shared);
    const bobName = await bob.page.getByRole('textbox', { name: 'Your name' }).inputValue();
    await composer(bob.page).pressSequentially('typing…');
    await ann.page.getByText(`${bobName} is typing…`).waitFor();
    await bob.page.keyboard.press('Enter');
    await expectMessage(ann.page, 'typing…');
    await ann.page.getByText(`${bobName} is typing…`).waitFor({ state: 'hidden' });
    await Promise.all([ann, bob].map((p) => p.context.close()));
  });
});

describe('unread messages', () => {
  test('the tab title counts messages that arrive while the tab is hidden', async () => {
    const { ann, bob } = await connectedPair(shared);
    // Headless tabs are always visible; let the test hide Ann's tab the way the browser would.
    await ann.page.evaluate(() => {
      let hidden = false;
      Object.defineProperty(document, 'visibilityState', { get: () => (hidden ? 'hidden' : 'visible') });
      Object.defineProperty(document, 'hidden', { get: () => hidden });
      /** @type {any} */ (window).setHidden = (/** @type {boolean} */ value) => {
        hidden = value;
        document.dispatchEvent(new Event('visibilitychange'));
      };
    });
    const sound = ann.page.getByRole('checkbox', { name: 'Sound for new messages' });
    assert.equal(await sound.isChecked(), false, 'sound is off unless chosen');
    await sound.check();
    await ann.page.evaluate(() => /** @type {any} */ (window).setHidden(true));
    await typeAndEnter(bob.page, 'one');
    await typeAndEnter(bob.page, 'two');
    await expectDelivered(bob.page, 'two');
    await ann.page.waitForFunction(() => document.title.startsWith('(2) '));
    await ann.page.evaluate(() => /** @type {any} */ (window).setHidden(false));
    await ann.page.waitForFunction(() => !document.title.startsWith('('));
    // The sound choice is remembered.
    await ann.page.reload();
    await ann.page.waitForFunction(() => /** @type {HTMLInputElement} */ (document.getElementById('sound')).checked);
    await Promise.all([ann, bob].map((p) => p.context.close()));
  });
});

describe('emoji picker', () => {
  test('search, pick into the composer, send, and find it again under recently used', async () => {
    const { ann, bob } = await connectedPair(shared);
    await composer(ann.page).fill('Great ');
    const emojiButton = ann.page.getByRole('button', { name: 'Emoji', exact: true });
    await emojiButton.click();
    const picker = ann.page.getByRole('dialog', { name: 'Emoji picker' });
    await picker.getByRole('searchbox', { name: 'Search emoji' }).fill('thumbs up');
    assert.equal(await picker.getByRole('button', { name: 'thumbs down sign' }).isVisible(), false, 'search filters');
    await picker.getByRole('button', { name: 'thumbs up sign' }).click();
    assert.equal(await picker.isVisible(), false, 'picking closes the picker');
    assert.equal(await composer(ann.page).inputValue(), 'Great 👍');
    await ann.page.keyboard.press('Enter');
    await expectMessage(bob.page, 'Great 👍');
    // Words people use find emoji too, and what was picked comes back first.
    await emojiButton.click();
    await picker.getByRole('group', { name: 'Recently used' }).getByRole('button', { name: 'thumbs up sign' }).waitFor();
    await picker.getByRole('searchbox', { name: 'Search emoji' }).fill('lol');
    await picker.getByRole('button', { name: 'face with tears of joy' }).waitFor();
    // Escape closes it and gives the focus back to the button.
    await ann.page.keyboard.press('Escape');
    assert.equal(await picker.isVisible(), false);
    assert.equal(await emojiButton.evaluate((button) => button === document.activeElement), true);
    await Promise.all([ann, bob].map((p) => p.context.close()));
  });
});

/** Is `locator` the focused element? @param {import('playwright-core').Locator} locator */
const isFocused = (locator) => locator.evaluate((el) => el === document.activeElement);

/** The accessible name of whatever has the focus. @param {import('playwright-core').Page} page */
const focusedName = (page) => page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? document.activeElement?.textContent ?? '');

/**
 * Presses `key` (Tab or Shift+Tab) until `locator` has the focus, as a keyboard user would, and fails
 * if it is never reached.
 * @param {import('playwright-core').Page} page @param {import('playwright-core').Locator} locator
 */
async function tabTo(page, locator, key = 'Tab') {
  for (let presses = 0; presses < 30; presses += 1) {
    if (await isFocused(locator)) return;
    await page.keyboard.press(key);
  }
  assert.fail(`${key} never reached ${locator}`);
}

describe('keyboard only', () => {
  test('write, pick emoji with the arrow keys, send, and clear history without a mouse', async () => {
    const { ann, bob } = await connectedPair(shared);
    const page = ann.page;
    await tabTo(page, composer(page));
    await page.keyboard.insertText('typed without a mouse ');

    // Back to the Emoji button, open the picker, search, go down into the results and pick.
    const emojiButton = page.getByRole('button', { name: 'Emoji', exact: true });
    await tabTo(page, emojiButton, 'Shift+Tab');
    await page.keyboard.press('Enter');
    const picker = page.getByRole('dialog', { name: 'Emoji picker' });
    const search = picker.getByRole('searchbox', { name: 'Search emoji' });
    await search.waitFor();
    assert.ok(await isFocused(search), 'opening the picker puts the focus in its search box');
    await page.keyboard.type('party popper');
    await page.keyboard.press('ArrowDown');
    assert.equal(await focusedName(page), 'party popper');
    await page.keyboard.press('Enter');
    assert.equal(await picker.isVisible(), false);
    assert.ok(await isFocused(composer(page)), 'the focus goes back to the composer');
    assert.equal(await composer(page).inputValue(), 'typed without a mouse 🎉');
    await page.keyboard.press('Enter');
    await expectMessage(bob.page, 'typed without a mouse 🎉');

    // In the full grid the arrows move by one and by a row, keeping the column; Up from the top
    // row returns to the search box; Search and Enter picks the first match.
    await tabTo(page, emojiButton, 'Shift+Tab');
    await page.keyboard.press('Enter');
    await search.waitFor();
    await page.keyboard.press('ArrowDown');
    const first = await focusedName(page);
    assert.equal(first, 'party popper', 'recently used comes first');
    await page.keyboard.press('ArrowRight');
    const second = await focusedName(page);
    assert.notEqual(second, first);
    const column = () => page.evaluate(() => Math.round(document.activeElement?.getBoundingClientRect().left ?? -1));
    const x = await column();
    await page.keyboard.press('ArrowDown');
    assert.equal(await column(), x, 'Down keeps the column');
    assert.notEqual(await focusedName(page), second);
    await page.keyboard.press('ArrowUp');
    assert.equal(await focusedName(page), second);
    await page.keyboard.press('ArrowUp');
    assert.equal(await focusedName(page), first, 'Up crosses into the section above');
    await page.keyboard.press('ArrowUp');
    assert.ok(await isFocused(search), 'Up from the first row goes back to the search');
    await page.keyboard.type('thumbs up');
    await page.keyboard.press('Enter');
    assert.equal(await composer(page).inputValue(), '👍');
    await page.keyboard.press('Enter');
    await expectMessage(bob.page, '👍');

    // Settings fold and unfold with the keyboard, and Clear messages asks first.
    const settings = page.getByText('Names and history', { exact: true });
    const details = page.locator('details', { has: settings });
    const wasOpen = await details.evaluate((el) => /** @type {HTMLDetailsElement} */ (el).open);
    await tabTo(page, settings, 'Shift+Tab');
    await page.keyboard.press('Enter');
    assert.equal(await details.evaluate((el) => /** @type {HTMLDetailsElement} */ (el).open), !wasOpen);
    if (wasOpen) await page.keyboard.press('Enter');
    const clear = page.getByRole('button', { name: 'Clear messages' });
    await tabTo(page, clear);
    page.once('dialog', (dialog) => dialog.accept());
    await page.keyboard.press('Enter');
    await log(page).getByRole('listitem').first().waitFor({ state: 'detached' });
    await expectMessage(bob.page, '👍');
    await Promise.all([ann, bob].map((p) => p.context.close()));
  });
});
