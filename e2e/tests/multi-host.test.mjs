// @ts-check
// Rooms on a network like the real one (topology.mjs): the server on a host of its own with a
// public address, listening on all interfaces; each person on a private LAN behind a NAT router
// of their own; coturn on the public side answering STUN. A pair room connects straight through
// the two NATs, or, on a server that offers no STUN, falls back to the server's relay; a group
// room of three on two LANs hears and sees everyone through the server's media relay.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FAKE_MEDIA, button, callTestPage, expectStatus } from './harness.mjs';
import { fitsPhone, groupRoomCall, heard, pairInUse, say } from './deployments.mjs';
import {
  PHONE,
  SERVER_PORT,
  buildTopology,
  gotoOnHost,
  launchBrowserOnHost,
  originOn,
  personOnHost,
  startServerOnHost,
  startStunOnHost,
} from './topology.mjs';


const THROUGH_SERVER = 'Connected through the server';
/** The second server, which gives browsers no STUN server, listens here (same host). */
const NO_STUN_PORT = SERVER_PORT + 1;

/** @type {import('./topology.mjs').Topology} */
let topology;
/** @type {Awaited<ReturnType<typeof startStunOnHost>>} */
let stun;
/** natter with coturn as its STUN server, as a server on the internet is set up. */
/** @type {Awaited<ReturnType<typeof startServerOnHost>>} */
let server;
/** natter without any ICE server: browsers behind NATs only know their private addresses. */
/** @type {Awaited<ReturnType<typeof startServerOnHost>>} */
let noStun;
/** One browser per person's host. */
/** @type {import('playwright-core').Browser} */
let browserA;
/** @type {import('playwright-core').Browser} */
let browserB;

before(async () => {
  topology = await buildTopology();
  stun = await startStunOnHost(topology);
  server = await startServerOnHost(topology.server, { args: ['--ice-server', stun.stunUrl] });
  noStun = await startServerOnHost(topology.server, { port: NO_STUN_PORT });
  const origins = [originOn(topology.server), originOn(topology.server, NO_STUN_PORT)];
  assert.equal(server.url, origins[0], 'the server is found at its public address');
  [browserA, browserB] = await Promise.all([
    launchBrowserOnHost(topology.a, origins, FAKE_MEDIA),
    launchBrowserOnHost(topology.b, origins, FAKE_MEDIA),
  ]);
});
after(async () => {
  await browserA?.close();
  await browserB?.close();
  await server?.stop();
  await noStun?.stop();
  await stun?.stop();
  await topology?.stop();
});

/**
 * Ann (host A, desktop) makes a pair room on `on` and Bob (host B, phone) opens its link; both
 * reach `status`. Resolves with both, to be closed by the caller.
 * @param {{ url: string }} on @param {RegExp | string} status
 */
async function pairAcrossHosts(on, status) {
  const ann = await personOnHost(browserA, on.url, { initScript: callTestPage });
  await gotoOnHost(ann.page, '/');
  await button(ann.page, 'Create room').click();
  await ann.page.waitForURL(/\/r\/[A-Za-z0-9_-]{22}$/);
  await expectStatus(ann.page, 'Waiting for the other person…');
  await button(ann.page, 'Share link').click();
  const link = await ann.page.evaluate(() => navigator.clipboard.readText());
  assert.ok(link.startsWith(`${on.url}/r/`), `the shared link leads to the server's public address: ${link}`);
  const bob = await personOnHost(browserB, on.url, { viewport: PHONE, initScript: callTestPage });
  await gotoOnHost(bob.page, link);
  await expectStatus(bob.page, status, 20_000);
  await expectStatus(ann.page, status, 20_000);
  return { ann, bob };
}

describe('pair room across two NATs', () => {
  test('connects directly through both NATs with STUN, and chat goes both ways (Bob on a phone)', async () => {
    const { ann, bob } = await pairAcrossHosts(server, /^Connected$/);
    try {
      await ann.page.getByRole('status', { name: 'Connection path' }).filter({ hasText: /^Direct connection/ }).waitFor();
      // Each browser sends straight to the other's NAT router, no relay on either end: a hole
      // punched through both NATs. (Chromium names its own end by its router's address, learnt
      // from STUN.)
      for (const [who, page, own, other] of /** @type {const} */ ([
        ['Ann', ann.page, topology.a, topology.b],
        ['Bob', bob.page, topology.b, topology.a],
      ])) {
        const pair = await pairInUse(page);
        const shown = `${who}'s path: ${JSON.stringify(pair)}`;
        assert.equal(pair?.remote.address, other.publicAddress, shown);
        assert.ok([own.address, own.publicAddress].includes(String(pair?.local.address)), shown);
        assert.ok(pair?.local.type !== 'relay' && pair?.remote.type !== 'relay', shown);
      }
      await say(ann.page, 'hello from LAN A');
      await heard(bob.page, 'hello from LAN A');
      await say(bob.page, 'and from LAN B');
      await heard(ann.page, 'and from LAN B');
      await fitsPhone(bob.page);
      assert.deepEqual([...ann.problems, ...bob.problems], []);
    } finally {
      await ann.context.close();
      await bob.context.close();
    }
  });

  test('without STUN falls back to the server relay, and chat goes both ways', async () => {
    const { ann, bob } = await pairAcrossHosts(noStun, THROUGH_SERVER);
    try {
      // Both talk to the media relay at the server's public address.
      for (const [who, page] of /** @type {const} */ ([['Ann', ann.page], ['Bob', bob.page]])) {
        const pair = await pairInUse(page);
        assert.equal(pair?.remote.address, topology.server.address, `${who}'s path: ${JSON.stringify(pair)}`);
      }
      await say(ann.page, 'relayed from LAN A');
      await heard(bob.page, 'relayed from LAN A');
      await say(bob.page, 'relayed from LAN B');
      await heard(ann.page, 'relayed from LAN B');
      await fitsPhone(bob.page);
      assert.deepEqual([...ann.problems, ...bob.problems], []);
    } finally {
      await ann.context.close();
      await bob.context.close();
    }
  });
});

describe('group room across two NATs', () => {
  test('three people on two LANs hear and see each other, and chat reaches everyone', async () => {
    // Ann and Cara share LAN A (and its public address); Bob is on LAN B, on a phone.
    await groupRoomCall({ first: browserA, second: browserB, origin: server.url, relayAddress: topology.server.address });
  });
});
