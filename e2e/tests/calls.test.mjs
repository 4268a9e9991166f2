// Calls in a pair room, with Chromium's fake camera, microphone and screen: what each person sees
// and hears, checked through the page (buttons, status, videos) and through WebRTC's own counters.
// Pages may play sound only after a click, as browsers require for sites people have not used
// before, so the person who did not click sees "Click to enable sound".

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CONNECTED,
  FAKE_MEDIA,
  button,
  callTestPage,
  connectedPair,
  expectMessage,
  expectStatus,
  grows,
  inbound,
  send,
  videoWidth,
} from './harness.mjs';
import { launchBrowserOnHost, onTopology } from './topology.mjs';

// The server on a host of its own, the people behind a NAT (topology.mjs).
const shared = onTopology({ browserArgs: FAKE_MEDIA });

/** How much a counter grows over a while. @param {() => Promise<number>} read */
async function growth(read, ms = 2_000) {
  const start = await read();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return (await read()) - start;
}

/** @param {import('playwright-core').Page} page */
const callStatus = (page) => page.getByRole('status', { name: 'Call' });

/** @param {import('playwright-core').Page} page @param {RegExp} text */
async function expectCall(page, text, timeout = 10_000) {
  await callStatus(page).filter({ hasText: text }).waitFor({ timeout });
}

/** @param {import('playwright-core').Page} page @param {string} name @param {'true' | 'false'} pressed */
async function expectPressed(page, name, pressed) {
  await page.waitForFunction(
    ([name, pressed]) =>
      [...document.querySelectorAll('button')].some(
        (each) => each.textContent === name && each.getAttribute('aria-pressed') === pressed,
      ),
    [name, pressed],
  );
}

describe('calls', () => {
  const pair = () => connectedPair(shared, { initScript: callTestPage });

  test('audio flows both ways; the one who did not click is asked to enable sound', async () => {
    const { ann, bob } = await pair();
    await button(ann.page, 'Microphone').click();
    await expectPressed(ann.page, 'Microphone', 'true');
    // Bob hears Ann without pressing anything: he is in the call as a listener.
    await expectCall(bob.page, /^In call with .+\. .+'s camera is off\.$/);
    await expectCall(ann.page, /^In call with .+\. .+'s microphone is off\. .+'s camera is off\.$/);
    await grows(async () => (await inbound(bob.page, 'audio')).bytes, "Bob's inbound audio");
    // Bob never clicked in the page, and this browser wants a click before sound plays.
    await button(bob.page, 'Click to enable sound').click();
    await button(bob.page, 'Click to enable sound').waitFor({ state: 'hidden' });
    assert.equal(await bob.page.locator('#remote-audio').evaluate((audio) => /** @type {HTMLAudioElement} */ (audio).paused), false);

    await button(bob.page, 'Microphone').click();
    await expectPressed(bob.page, 'Microphone', 'true');
    await grows(async () => (await inbound(ann.page, 'audio')).bytes, "Ann's inbound audio");
    await expectCall(ann.page, /^In call with .+\. .+'s camera is off\.$/);
    // The duration runs once both are in.
    await ann.page.getByRole('timer', { name: 'Call duration' }).filter({ hasText: /^0:0[1-9]$/ }).waitFor();
    // The fake microphone beeps: each side sees the other, and itself, speaking.
    const people = (page) => page.getByRole('list', { name: 'People in the call' });
    await people(bob.page).getByText(`${await nameOf(ann.page)} (speaking)`).waitFor();
    await people(ann.page).getByText('You (speaking)').waitFor();
    await people(ann.page).getByText(`${await nameOf(bob.page)} (speaking)`).waitFor();
    // Ann clicked, so her page played sound by itself.
    assert.equal(await button(ann.page, 'Click to enable sound').isVisible(), false);
    assert.deepEqual([...ann.problems, ...bob.problems], []);
    await ann.context.close();
    await bob.context.close();
  });

  test('devices can be chosen, and the choice is kept', async () => {
    const { ann, bob } = await pair();
    await button(ann.page, 'Microphone').click();
    await ann.page.getByText('Devices').click();
    const mic = ann.page.getByLabel('Microphone device');
    await mic.locator('option', { hasText: 'Fake Audio Input 2' }).waitFor({ state: 'attached' });
    await mic.selectOption({ label: 'Fake Audio Input 2' });
    await ann.page.waitForFunction(async () => {
      const connections = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).natterTestConnections);
      const sender = connections.at(-1)?.getSenders().find((each) => each.track?.kind === 'audio');
      return sender?.track?.label === 'Fake Audio Input 2';
    });
    await expectPressed(ann.page, 'Microphone', 'true');
    await grows(async () => (await inbound(bob.page, 'audio')).bytes, "Bob's inbound audio from the other microphone");
    assert.ok(await ann.page.getByLabel('Camera device').locator('option').count() >= 1);
    assert.ok(await ann.page.getByLabel('Speaker device').locator('option', { hasText: 'Fake Audio Output 1' }).count());
    await ann.page.reload();
    await expectStatus(ann.page, CONNECTED);
    await button(ann.page, 'Microphone').click();
    await ann.page.getByText('Devices').click();
    await ann.page.waitForFunction(() => {
      const select = /** @type {HTMLSelectElement} */ (document.getElementById('mic-device'));
      return select.selectedOptions[0]?.textContent === 'Fake Audio Input 2';
    });
    await ann.context.close();
    await bob.context.close();
  });

  test('video flows both ways with a mirrored own preview, and chat keeps working', async () => {
    const { ann, bob } = await pair();
    await button(ann.page, 'Camera').click();
    await button(bob.page, 'Camera').click();
    await expectPressed(ann.page, 'Camera', 'true');
    assert.ok((await videoWidth(bob.page, `${await nameOf(ann.page)}'s camera`)) > 0);
    assert.ok((await videoWidth(ann.page, `${await nameOf(bob.page)}'s camera`)) > 0);
    assert.ok((await videoWidth(ann.page, 'Your camera')) > 0);
    const transform = await ann.page.getByLabel('Your camera').evaluate((video) => getComputedStyle(video).transform);
    assert.match(transform, /^matrix\(-1, 0, 0, 1, /, 'the own camera preview is mirrored');
    await grows(async () => (await inbound(ann.page, 'video')).frames, "Ann's decoded frames", 10);
    await send(ann.page, 'still chatting during the call');
    await expectMessage(bob.page, 'still chatting during the call');
    // Camera off: the other side is told and the tile goes away.
    await button(ann.page, 'Camera').click();
    await expectCall(bob.page, /camera is off\./);
    await bob.page.getByLabel(`${await nameOf(ann.page)}'s camera`).waitFor({ state: 'hidden' });
    await ann.context.close();
    await bob.context.close();
  });

  test('both turning on microphone and camera at the same moment still hear and see each other', async () => {
    // Regression: both sides offer at once, the polite one rolls its offer back, and Chromium
    // then sent nothing on that side's senders until they were given their tracks again.
    const { ann, bob } = await pair();
    await button(ann.page, 'Camera').click();
    await button(ann.page, 'Camera').click();
    await expectPressed(ann.page, 'Camera', 'false');
    for (const person of [ann, bob]) {
      await button(person.page, 'Microphone').click();
      await button(person.page, 'Camera').click();
    }
    for (const [person, who] of [[ann, 'Ann'], [bob, 'Bob']]) {
      await grows(async () => (await inbound(person.page, 'video')).frames, `${who}'s decoded frames`, 10);
      await grows(async () => (await inbound(person.page, 'audio')).bytes, `${who}'s inbound audio`);
    }
    await ann.context.close();
    await bob.context.close();
  });

  test('on a phone-sized screen the call fits: controls in view, video within the width', async () => {
    const { ann, bob } = await pair();
    await bob.page.setViewportSize({ width: 375, height: 667 });
    await button(ann.page, 'Camera').click();
    await button(bob.page, 'Camera').click();
    const annName = await nameOf(ann.page);
    assert.ok((await videoWidth(bob.page, `${annName}'s camera`)) > 0);
    for (const name of ['Microphone', 'Camera', 'Share screen', 'Leave call']) {
      const box = await button(bob.page, name).boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 375, `${name} is on screen: ${JSON.stringify(box)}`);
    }
    const stage = await bob.page.locator('#call-stage').boundingBox();
    assert.ok(stage && stage.width <= 375 && stage.height <= 667 * 0.4, `the video leaves room for the chat: ${JSON.stringify(stage)}`);
    const own = await bob.page.getByLabel('Your camera').boundingBox();
    assert.ok(own && stage && own.width < stage.width / 2, 'the own preview is a small overlay');
    await bob.page.getByRole('textbox', { name: 'Message' }).waitFor({ state: 'visible' });
    await ann.context.close();
    await bob.context.close();
  });

  test('a shared screen reaches the other side, large, with the camera still shown', async () => {
    const { ann, bob } = await pair();
    const annName = await nameOf(ann.page);
    await button(ann.page, 'Camera').click();
    await button(ann.page, 'Share screen').click();
    await expectPressed(ann.page, 'Share screen', 'true');
    await expectCall(bob.page, /is sharing their screen\./);
    assert.ok((await videoWidth(bob.page, `${annName}'s screen`)) > 0);
    assert.ok((await videoWidth(bob.page, `${annName}'s camera`)) > 0);
    const sizes = await bob.page.evaluate((annName) => {
      const box = (label) => document.querySelector(`video[aria-label="${label}"]`)?.getBoundingClientRect().width ?? 0;
      return { screen: box(`${annName}'s screen`), camera: box(`${annName}'s camera`) };
    }, annName);
    assert.ok(sizes.screen > 2 * sizes.camera, `the screen is the large view: ${JSON.stringify(sizes)}`);
    // Her own screen preview is not mirrored.
    const transform = await ann.page.getByLabel('Your screen').evaluate((video) => getComputedStyle(video).transform);
    assert.equal(transform, 'none');
    await button(ann.page, 'Share screen').click();
    await bob.page.getByLabel(`${annName}'s screen`).waitFor({ state: 'hidden' });
    await expectCall(bob.page, /^In call with [^.]+\. [^.]+'s microphone is off\.$/);
    await ann.context.close();
    await bob.context.close();
  });

  test('mute sends silence and shows muted on the other side', async () => {
    const { ann, bob } = await pair();
    const annName = await nameOf(ann.page);
    await button(ann.page, 'Microphone').click();
    await button(bob.page, 'Click to enable sound').click();
    await grows(async () => (await inbound(bob.page, 'audio')).energy, "Bob's received audio energy", 0.001);
    await button(ann.page, 'Microphone').click();
    await expectPressed(ann.page, 'Microphone', 'false');
    await expectCall(ann.page, /You are muted\.$/);
    await expectCall(bob.page, new RegExp(`${annName} is muted\\.`));
    await bob.page.getByRole('list', { name: 'People in the call' }).getByText(`${annName} (muted)`).waitFor();
    // Let what was on the way arrive, then nothing audible comes.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.ok((await growth(async () => (await inbound(bob.page, 'audio')).energy)) < 1e-6, 'no sound while muted');
    await button(ann.page, 'Microphone').click();
    await grows(async () => (await inbound(bob.page, 'audio')).energy, "Bob's received audio energy after unmute", 0.001);
    await expectCall(bob.page, new RegExp(`^In call with ${annName}\\. ${annName}'s camera is off\\.$`));
    await ann.context.close();
    await bob.context.close();
  });

  test('leave call stops media both ways while the chat stays connected', async () => {
    const { ann, bob } = await pair();
    for (const person of [ann, bob]) {
      await button(person.page, 'Microphone').click();
      await button(person.page, 'Camera').click();
    }
    await grows(async () => (await inbound(ann.page, 'video')).bytes, "Ann's inbound video");
    await grows(async () => (await inbound(bob.page, 'video')).bytes, "Bob's inbound video");
    await button(ann.page, 'Leave call').click();
    await expectPressed(ann.page, 'Leave call', 'true');
    await expectPressed(ann.page, 'Microphone', 'false');
    await expectPressed(ann.page, 'Camera', 'false');
    await expectCall(bob.page, /^Calling .+…$/);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    for (const [person, who] of [[ann, 'Ann'], [bob, 'Bob']]) {
      for (const kind of /** @type {const} */ (['audio', 'video'])) {
        const bytes = await growth(async () => (await inbound(person.page, kind)).bytes);
        assert.ok(bytes < 500, `${who} still receives ${kind} after Ann left: ${bytes} bytes in 2 s`);
      }
    }
    await expectStatus(ann.page, CONNECTED);
    await send(bob.page, 'are you there?');
    await expectMessage(ann.page, 'are you there?');
    // Joining again is one click; Bob's call is still going, so media flows at once.
    await button(ann.page, 'Leave call').click();
    await expectCall(ann.page, /^In call with /);
    await grows(async () => (await inbound(ann.page, 'video')).bytes, "Ann's inbound video after rejoining");
    await ann.context.close();
    await bob.context.close();
  });

  test('a call recovers by itself after the network drops for a few seconds', async () => {
    const { ann, bob } = await pair();
    await button(ann.page, 'Microphone').click();
    await button(bob.page, 'Microphone').click();
    await grows(async () => (await inbound(bob.page, 'audio')).bytes, "Bob's inbound audio");
    // Both people are on host a: with every packet in or out of it dropped (its loopback too),
    // nothing arrives anywhere, as when a laptop's Wi-Fi drops.
    shared.topology.a.run(['nft', '-f', '-'], [
      'table inet natter_offline {',
      '  chain input { type filter hook input priority -10; policy drop; }',
      '  chain output { type filter hook output priority -10; policy drop; }',
      '}',
      '',
    ].join('\n'));
    try {
      await new Promise((resolve) => setTimeout(resolve, 8_000));
    } finally {
      shared.topology.a.run(['nft', 'delete', 'table', 'inet', 'natter_offline']);
    }
    await grows(async () => (await inbound(bob.page, 'audio')).bytes, "Bob's inbound audio after the drop", 1000, 30_000);
    await grows(async () => (await inbound(ann.page, 'audio')).bytes, "Ann's inbound audio after the drop", 1000, 30_000);
    await expectPressed(ann.page, 'Microphone', 'true');
    await expectCall(ann.page, /^In call with /);
    await send(ann.page, 'back again');
    await expectMessage(bob.page, 'back again');
    await ann.context.close();
    await bob.context.close();
  });

  test('when the other person leaves the room, the call waits for them', async () => {
    const { ann, bob } = await pair();
    await button(ann.page, 'Microphone').click();
    await expectCall(ann.page, /^In call with /);
    await bob.context.close();
    await expectCall(ann.page, /^Calling… The other person is not connected\.$/);
    await expectPressed(ann.page, 'Microphone', 'true');
    await ann.context.close();
  });

  test('the call survives the other person reloading: their new page hears it without a click', async () => {
    const { ann, bob } = await pair();
    await button(ann.page, 'Microphone').click();
    await grows(async () => (await inbound(bob.page, 'audio')).bytes, "Bob's inbound audio");
    await bob.page.reload();
    await expectStatus(bob.page, CONNECTED);
    await expectCall(bob.page, /^In call with /);
    await grows(async () => (await inbound(bob.page, 'audio')).bytes, "Bob's inbound audio after his reload");
    await expectPressed(ann.page, 'Microphone', 'true');
    await ann.context.close();
    await bob.context.close();
  });
});

test('a refused permission and a missing device are explained', async () => {
  const server = await shared.startServer();
  // No fake UI: the permission prompt is refused, as when a person clicks "Block".
  const browser = await launchBrowserOnHost(shared.topology.a, [server.url], ['--use-fake-device-for-media-stream', '--deny-permission-prompts']);
  try {
    const { ann, bob } = await connectedPair({ server, browser });
    await button(ann.page, 'Microphone').click();
    await ann.page
      .getByRole('alert')
      .filter({ hasText: /^Natter may not use your microphone: permission was denied\. Allow it in the browser's site settings/ })
      .waitFor();
    await expectPressed(ann.page, 'Microphone', 'false');
    assert.equal(await bob.page.locator('#call-status').textContent(), '', 'nothing started, so no call');
    await ann.context.close();
    await bob.context.close();
    // No camera at all: the page says so, and nothing starts.
    const missing = await connectedPair(
      { server, browser },
      {
        initScript: () => {
          navigator.mediaDevices.getUserMedia = () =>
            Promise.reject(new DOMException('Requested device not found', 'NotFoundError'));
        },
      },
    );
    await button(missing.ann.page, 'Camera').click();
    await missing.ann.page.getByRole('alert').filter({ hasText: /^No camera found\. Connect one/ }).waitFor();
    await expectPressed(missing.ann.page, 'Camera', 'false');
    assert.equal(await missing.bob.page.locator('#call-status').textContent(), '');
    await missing.ann.context.close();
    await missing.bob.context.close();
  } finally {
    await browser.close();
    await server.stop();
  }
});

/** @param {import('playwright-core').Page} page the name the other person sees for this page's person */
async function nameOf(page) {
  return page.getByLabel('Your name').inputValue();
}
