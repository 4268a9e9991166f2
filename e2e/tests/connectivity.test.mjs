// @ts-check
// Connecting from any network, as people on hostile networks do, on a network like the real one
// (topology.mjs): natter on a server host of its own (203.0.113.10, listening on all interfaces,
// its media relay on RTC_PORT over UDP and ICE-TCP), coturn on the STUN host (203.0.113.3: STUN,
// and TURN over UDP and TCP with credentials natter mints from the secret they share), Ann's
// browser on host a (10.1.0.2) behind NAT router a (203.0.113.21), Bob's on host b (10.2.0.2)
// behind NAT router b (203.0.113.22).
//
// A restrictive network is a firewall on the people's routers (topology.mjs's firewallRouters),
// the way a corporate or hotel network filters what passes its gateway; packets it drops vanish
// silently, and removing it opens the router again:
//   - direct path blocked (both routers): UDP passes only to and from the server's media relay
//     port and coturn (STUN, TURN, and the relay addresses it allocates). STUN still tells each
//     browser its public address, but no packet goes between the two routers;
//   - TURN unreachable too (both routers): UDP passes only to and from the media relay port, and
//     nothing at all to or from coturn, over UDP or TCP;
//   - all UDP blocked (router a, for the check page): only TCP gets out.
//
// Shown here: relay-only browsers chatting through coturn (allocations at coturn's address, with
// user names natter minted, never a peer id; forged and expired credentials refused); a pair
// whose direct path is blocked falling back to TURN, or without TURN to the server's relay, with
// chat, a file and a call, and coming back through it after a server restart; a server that does
// not relay pair rooms saying why nobody connects; how long the fallback takes beside the open
// path (where the pair goes straight between the two routers); and the connection check page
// naming what is blocked. Runs inside ../shared/netns-run, as root: the topology is built there.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CONNECTED,
  FAKE_MEDIA,
  button,
  callTestPage,
  expectMessage,
  expectStatus,
  grows,
  inbound,
  median,
  randomFileIn,
  report,
  send,
  sha256Of,
  videoWidth,
} from './harness.mjs';
import { turnCredential } from './network.mjs';
import {
  SERVER_PORT,
  buildTopology,
  firewallRouters,
  gotoOnHost,
  launchBrowserOnHost,
  originOn,
  personOnHost,
  selectedPair,
  startServerOnHost,
  startStunOnHost,
} from './topology.mjs';

/** @typedef {Awaited<ReturnType<typeof personOnHost>>} Person */
/** @typedef {Awaited<ReturnType<typeof startServerOnHost>>} Server */
/** @typedef {import('playwright-core').Page} Page */

const SECRET = randomBytes(24).toString('base64url');
/** The media relay's port (UDP and ICE-TCP), fixed so the firewall can let it through. */
const RTC_PORT = 8081;
/** Each test's natter gets a port of its own from SERVER_PORT on; browsers treat all as secure. */
const PORTS = 16;
const THROUGH_TURN = 'Connected through a TURN relay';
const THROUGH_SERVER = 'Connected through the server';

/** @type {import('./topology.mjs').Topology} */
let topology;
/** @type {Awaited<ReturnType<typeof startStunOnHost>>} */
let coturn;
/** Ann's browser, on host a. @type {import('playwright-core').Browser} */
let browserA;
/** Bob's browser, on host b. @type {import('playwright-core').Browser} */
let browserB;
/** @type {string} */
let dir;
let nextPort = SERVER_PORT;

before(async () => {
  topology = await buildTopology();
  // coturn answers STUN and TURN on the STUN host; its relay addresses are that host's too.
  coturn = await startStunOnHost(topology, SECRET);
  const origins = Array.from({ length: PORTS }, (_, i) => originOn(topology.server, SERVER_PORT + i));
  // Fake camera and microphone: a call goes through the server's relay too.
  [browserA, browserB] = await Promise.all([
    launchBrowserOnHost(topology.a, origins, FAKE_MEDIA),
    launchBrowserOnHost(topology.b, origins, FAKE_MEDIA),
  ]);
  dir = await mkdtemp(join(tmpdir(), 'natter-connectivity-'));
});
after(async () => {
  await browserA?.close();
  await browserB?.close();
  await coturn?.stop();
  await topology?.stop();
  await rm(dir, { recursive: true, force: true });
});

/**
 * natter on the server host, listening on all interfaces on a port of its own (or on `port`, to
 * restart one), its media relay on RTC_PORT.
 * @param {string[]} args @param {number} [port]
 * @returns {Promise<Server>}
 */
function startNatter(args, port) {
  if (port === undefined) {
    port = nextPort;
    nextPort += 1;
    assert.ok(port < SERVER_PORT + PORTS, 'a port the browsers treat as secure');
  }
  return startServerOnHost(topology.server, { port, args: ['--rtc-port', String(RTC_PORT), ...args] });
}

/** coturn as the STUN server: browsers learn their public (router's) addresses. */
const withStun = () => ['--ice-server', coturn.stunUrl];
/** coturn as STUN and TURN (UDP and TCP), sharing `secret` with natter. @param {string} [secret] */
const withTurn = (secret = SECRET) => [
  ...withStun(),
  '--turn-url', coturn.urls.udp,
  '--turn-url', coturn.urls.tcp,
  '--turn-secret', secret,
];

/** `address:port` of the media relay, as the firewall names it. */
const mediaRelay = () => `${topology.server.address}:${RTC_PORT}`;
/** Both routers pass UDP only to the media relay and coturn: nothing goes between the two. */
const blockDirectPath = () =>
  firewallRouters([topology.routerA, topology.routerB], { udpAllowed: [mediaRelay(), topology.stun.address] });
/** Both routers pass UDP only to the media relay, and nothing to coturn, over UDP or TCP. */
const blockDirectAndTurn = () =>
  firewallRouters([topology.routerA, topology.routerB], { udpAllowed: [mediaRelay()], blockedHosts: [topology.stun.address] });
/** Router a passes no UDP at all. */
const blockAllUdpAtA = () => firewallRouters([topology.routerA], {});

/** @param {Page} page */
const pathLine = (page) => page.getByRole('status', { name: 'Connection path' });

/** A person on host a (Ann, or whoever checks a connection there). @param {Server} server */
const onHostA = (server) => personOnHost(browserA, server.url, { initScript: callTestPage });
/** A person on host b (Bob). @param {Server} server */
const onHostB = (server) => personOnHost(browserB, server.url, { initScript: callTestPage });

/** Ann creates a pair room and copies its link with "Share link". @param {Person} ann */
async function createsRoom(ann) {
  await gotoOnHost(ann.page, '/');
  await button(ann.page, 'Create room').click();
  await ann.page.waitForURL(/\/r\/[A-Za-z0-9_-]{22}$/);
  await expectStatus(ann.page, 'Waiting for the other person…');
  await button(ann.page, 'Share link').click();
  await ann.page.getByText('Link copied').waitFor();
  const link = await ann.page.evaluate(() => navigator.clipboard.readText());
  assert.equal(link, ann.page.url());
  return link;
}

/**
 * Bob opens Ann's link; resolves with the milliseconds from his navigation to his Connected.
 * @param {Person} bob @param {string} link @param {RegExp | string} status
 */
async function joins(bob, link, status) {
  await gotoOnHost(bob.page, link);
  await expectStatus(bob.page, status, 15_000);
  return bob.page.evaluate(() => performance.getEntriesByName('natter:connected')[0]?.startTime ?? NaN);
}

/** @typedef {{ type: string, address: string }} End */
/** @typedef {{ local: End, remote: End }} Pair */

/**
 * Waits until the selected pair of a page's connection (as `read` finds it) `holds`, and returns
 * it; fails with the last pair seen after 10 s. A pair settles over a moment: the other side's
 * end can first be known as peer reflexive, with no address shown, until its candidate is
 * signalled.
 * @template {Pair} P
 * @param {Page} page @param {string} who @param {string} what what the path should be, for the failure
 * @param {(page: Page) => Promise<P | null>} read @param {(pair: P) => boolean} holds
 */
async function pathSettles(page, who, what, read, holds) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pair = await read(page);
    if (pair && holds(pair)) return pair;
    if (Date.now() > deadline) assert.fail(`${who}'s path is not ${what}: ${JSON.stringify(pair)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Each person's live connection goes to the server's media relay at its public address, from
 * their own side (through their router), not through coturn.
 * @param {Record<string, Page>} pages by name
 */
async function assertThroughServer(pages) {
  for (const [who, page] of Object.entries(pages)) {
    await pathSettles(page, who, "the server's relay", selectedPair, (pair) =>
      pair.remote.address === topology.server.address && pair.local.type !== 'relay');
  }
}

/**
 * Each person's live connection goes through coturn: an end of its selected pair is a relay
 * address coturn allocated (their own or the other person's).
 * @param {Record<string, Page>} pages by name
 */
async function assertThroughCoturn(pages) {
  for (const [who, page] of Object.entries(pages)) {
    await pathSettles(page, who, 'through coturn', selectedPair, (pair) =>
      pair.local.address === topology.stun.address || pair.remote.address === topology.stun.address);
  }
}

/**
 * Each person's live connection goes straight to the other's router: a hole punched through both
 * NATs with STUN, no relay on either end, never to a private address.
 * @param {{ ann: Page, bob: Page }} pages
 */
async function assertDirectBetweenRouters({ ann, bob }) {
  for (const [who, page, own, other] of /** @type {const} */ ([
    ['Ann', ann, topology.a, topology.b],
    ['Bob', bob, topology.b, topology.a],
  ])) {
    await pathSettles(page, who, "straight to the other's router", selectedPair, (pair) =>
      pair.remote.address === other.publicAddress &&
      [own.address, own.publicAddress].includes(pair.local.address) &&
      pair.local.type !== 'relay' && pair.remote.type !== 'relay');
  }
}

describe('TURN with credentials from Natter', () => {
  test('two browsers forced to relay-only connect and chat through coturn', async () => {
    const server = await startNatter(withTurn());
    const ann = await onHostA(server);
    const bob = await onHostB(server);
    try {
      const link = await createsRoom(ann);
      await ann.page.getByRole('checkbox', { name: /Always connect through the relay/ }).check();
      await joins(bob, link, THROUGH_TURN);
      await bob.page.getByRole('checkbox', { name: /Always connect through the relay/ }).check();
      // Bob's new connection, relay-only on both sides now, replaces the first.
      await expectStatus(bob.page, THROUGH_TURN, 15_000);
      await expectStatus(ann.page, THROUGH_TURN, 15_000);
      await pathLine(ann.page).filter({ hasText: 'TURN relay' }).waitFor();
      // The connection that replaced the first is relay-only on both sides, and connected: each
      // browser sends only through its own allocation on coturn, to the other's there.
      for (const [who, page] of /** @type {const} */ ([['Ann', ann.page], ['Bob', bob.page]])) {
        await pathSettles(page, who, 'relay-only through coturn', (theirs) => theirs.evaluate(relayOnlyPair), (pair) =>
          pair.local.type === 'relay' && pair.local.address === topology.stun.address && pair.remote.address === topology.stun.address);
      }
      await send(ann.page, 'through coturn');
      await expectMessage(bob.page, 'through coturn');
      await send(bob.page, 'and back');
      await expectMessage(ann.page, 'and back');
      // coturn checked the credentials Natter minted, "<expiry a day ahead>:<tag>", and
      // allocated a relay for each person; the tags are not the people's peer ids.
      const day = Math.floor(Date.now() / 1000) + 86_400;
      const users = new Set(
        [...coturn.log().matchAll(/user <(\d+):([A-Za-z0-9_-]{16})>: incoming packet ALLOCATE processed, success/g)]
          .filter((match) => Math.abs(Number(match[1]) - day) < 120)
          .map((match) => match[2]),
      );
      assert.ok(users.size >= 2, `allocations for both people: ${[...users].join(', ')}`);
      const peerIds = await Promise.all(
        [ann.page, bob.page].map((page) =>
          page.evaluate(async () => {
            // A path the page resolves, not this file: a variable keeps tsc from looking for it.
            const identity = '/js/identity.js';
            return (await import(identity)).loadIdentity().then((/** @type {{ peerId: string }} */ each) => each.peerId);
          }),
        ),
      );
      for (const peerId of peerIds) assert.ok(!coturn.log().includes(peerId), 'no peer id reaches coturn');
      assert.deepEqual([...ann.problems, ...bob.problems], []);
    } finally {
      await ann.context.close();
      await bob.context.close();
      await server.stop();
    }
  });

  test('coturn refuses forged and expired credentials and accepts a fresh one', async () => {
    const server = await startNatter(withTurn());
    const person = await onHostA(server);
    try {
      await gotoOnHost(person.page, '/');
      const urls = coturn.urls.udp;
      const cases = {
        // A user name each, so coturn's log tells them apart.
        valid: turnCredential(SECRET, 600, 'peer-valid-00000001'),
        forged: turnCredential('not-the-secret', 600, 'peer-forged-0000001'),
        expired: turnCredential(SECRET, -60, 'peer-expired-000001'),
      };
      /** @type {Record<string, { relays: string[], errors: number[] }>} */
      const outcomes = {};
      for (const [name, credential] of Object.entries(cases)) {
        outcomes[name] = await person.page.evaluate(allocate, { urls, ...credential });
      }
      // The relay address is coturn's own, reached from behind router a.
      assert.deepEqual(outcomes.valid, { relays: [topology.stun.address], errors: [] });
      assert.deepEqual(outcomes.forged.relays, [], 'a credential made with another secret gets no relay');
      assert.ok(outcomes.forged.errors.includes(401), `forged: ${JSON.stringify(outcomes.forged)}`);
      assert.deepEqual(outcomes.expired.relays, [], 'an expired credential gets no relay');
      assert.ok(outcomes.expired.errors.includes(401), `expired: ${JSON.stringify(outcomes.expired)}`);
      // coturn's side: each refused by name, the valid one allocated.
      const log = coturn.log();
      for (const refused of [cases.forged, cases.expired]) {
        assert.ok(log.includes(`user <${refused.username}>: incoming packet message processed, error 401`), refused.username);
        assert.ok(!log.includes(`user <${refused.username}>: incoming packet ALLOCATE processed, success`));
      }
      assert.ok(log.includes(`user <${cases.valid.username}>: incoming packet ALLOCATE processed, success`));
    } finally {
      await person.context.close();
      await server.stop();
    }
  });
});

/**
 * Ann (host a) and Bob (host b) in a pair room of a natter started with `args`, behind the
 * firewall `block` puts on their routers, both showing `status`; `body` goes on from there.
 * Everything is closed and the firewall removed after, also when the body fails, and neither
 * page may have logged an error.
 * @param {{ args: string[], block: () => { remove(): void }, status: string }} setup
 * @param {(people: { ann: Person, bob: Person, ms: number }) => Promise<void>} body
 */
async function pairBehind({ args, block, status }, body) {
  const server = await startNatter(args);
  const firewall = block();
  const ann = await onHostA(server);
  const bob = await onHostB(server);
  try {
    const link = await createsRoom(ann);
    const ms = await joins(bob, link, status);
    await expectStatus(ann.page, status, 15_000);
    await body({ ann, bob, ms });
    assert.deepEqual([...ann.problems, ...bob.problems], []);
  } finally {
    await ann.context.close();
    await bob.context.close();
    firewall.remove();
    await server.stop();
  }
}

describe('the direct path blocked', () => {
  test('without TURN the pair falls back to the server relay, chats and sends a file', async (t) => {
    const file = await randomFileIn(dir, 'through-the-server.bin', 3);
    await pairBehind({ args: withStun(), block: blockDirectPath, status: THROUGH_SERVER }, async ({ ann, bob, ms }) => {
      await pathLine(bob.page).filter({ hasText: "Through Natter's server" }).waitFor();
      t.diagnostic(`blocked direct path → ${THROUGH_SERVER}: ${ms.toFixed(0)} ms`);
      assert.ok(ms < 5_000, `fell back in ${ms.toFixed(0)} ms (goal: under 5 s)`);
      await assertThroughServer({ Ann: ann.page, Bob: bob.page });
      await send(ann.page, 'via the relay');
      await expectMessage(bob.page, 'via the relay');
      await send(bob.page, 'heard you');
      await expectMessage(ann.page, 'heard you');
      const chooser = ann.page.waitForEvent('filechooser');
      await ann.page.getByRole('button', { name: 'Attach file' }).click();
      await (await chooser).setFiles(file.path);
      const card = bob.page.getByRole('group', { name: 'File through-the-server.bin' });
      // Small files are accepted without a click.
      const download = bob.page.waitForEvent('download');
      await card.getByRole('button', { name: 'Download' }).click({ timeout: 60_000 });
      const saved = await download;
      assert.equal(await sha256Of(await saved.path()), file.sha256, 'the file arrived intact through the relay');
    });
  });

  test('a call goes through the server relay too: video and sound both ways', async () => {
    await pairBehind({ args: withStun(), block: blockDirectPath, status: THROUGH_SERVER }, async ({ ann, bob }) => {
      await button(ann.page, 'Camera').click();
      await button(ann.page, 'Microphone').click();
      await button(bob.page, 'Camera').click();
      await button(bob.page, 'Microphone').click();
      const annName = await ann.page.getByRole('textbox', { name: 'Your name' }).inputValue();
      const bobName = await bob.page.getByRole('textbox', { name: 'Your name' }).inputValue();
      assert.ok((await videoWidth(bob.page, `${annName}'s camera`)) > 0, "Ann's camera shows at Bob's");
      assert.ok((await videoWidth(ann.page, `${bobName}'s camera`)) > 0, "Bob's camera shows at Ann's");
      await grows(async () => (await inbound(bob.page, 'video')).frames, "Bob's decoded frames", 10);
      await grows(async () => (await inbound(ann.page, 'video')).frames, "Ann's decoded frames", 10);
      await grows(async () => (await inbound(ann.page, 'audio')).bytes, "Ann's received sound", 1000);
      await grows(async () => (await inbound(bob.page, 'audio')).bytes, "Bob's received sound", 1000);
      // The media came the way the chat does: through the server, not around the firewall.
      await assertThroughServer({ Ann: ann.page, Bob: bob.page });
    });
  });

  test('with TURN the pair connects through coturn instead', async () => {
    await pairBehind({ args: withTurn(), block: blockDirectPath, status: THROUGH_TURN }, async ({ ann, bob }) => {
      await assertThroughCoturn({ Ann: ann.page, Bob: bob.page });
      await send(bob.page, 'relayed by coturn');
      await expectMessage(ann.page, 'relayed by coturn');
    });
  });

  test('with TURN unreachable too, the pair retries through TURN alone, then uses the server relay', async (t) => {
    await pairBehind({ args: withTurn(), block: blockDirectAndTurn, status: THROUGH_SERVER }, async ({ ann, bob, ms }) => {
      t.diagnostic(`direct and TURN blocked → ${THROUGH_SERVER}: ${ms.toFixed(0)} ms`);
      const retried = await Promise.all(
        [ann.page, bob.page].map((page) =>
          page.evaluate(() =>
            /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).natterTestConnections).some(
              (pc) => pc.getConfiguration().iceTransportPolicy === 'relay',
            ),
          ),
        ),
      );
      // Both tried TURN alone before giving up (one restarted ICE, the other followed it or
      // restarted too).
      assert.deepEqual(retried, [true, true], 'both ended relay-only');
      await assertThroughServer({ Ann: ann.page, Bob: bob.page });
      await send(bob.page, 'neither direct nor TURN');
      await expectMessage(ann.page, 'neither direct nor TURN');
    });
  });

  test('after a server restart the pair comes back through the server relay and chats on', async () => {
    let server = await startNatter(withStun());
    const port = Number(new URL(server.url).port);
    const firewall = blockDirectPath();
    const ann = await onHostA(server);
    const bob = await onHostB(server);
    try {
      const link = await createsRoom(ann);
      await joins(bob, link, THROUGH_SERVER);
      await expectStatus(ann.page, THROUGH_SERVER, 15_000);
      await server.stop();
      // The relay went with the server: nobody is connected until it is back.
      await expectStatus(ann.page, /^(Server unreachable — retrying…|Connecting…)$/, 15_000);
      server = await startNatter(withStun(), port);
      await expectStatus(ann.page, THROUGH_SERVER, 30_000);
      await expectStatus(bob.page, THROUGH_SERVER, 30_000);
      await assertThroughServer({ Ann: ann.page, Bob: bob.page });
      await send(bob.page, 'back after the restart');
      await expectMessage(ann.page, 'back after the restart');
      await send(ann.page, 'me too');
      await expectMessage(bob.page, 'me too');
    } finally {
      await ann.context.close();
      await bob.context.close();
      firewall.remove();
      await server.stop();
    }
  });

  test('a server that forbids the relay for pair rooms says why nobody connects', async () => {
    const server = await startNatter([...withStun(), '--pair-server-relay', 'false']);
    const firewall = blockDirectPath();
    const ann = await onHostA(server);
    const bob = await onHostB(server);
    try {
      const link = await createsRoom(ann);
      await joins(bob, link, /^Cannot connect: your networks block a direct connection/);
      await expectStatus(ann.page, /^Cannot connect: your networks block a direct connection/, 15_000);
    } finally {
      await ann.context.close();
      await bob.context.close();
      firewall.remove();
      await server.stop();
    }
  });
});

describe('fallback time', () => {
  test('time to Connected with the direct path blocked, beside the open path', async (t) => {
    const server = await startNatter(withStun());
    const rounds = Number(process.env.NATTER_FALLBACK_ROUNDS ?? 3);
    /** @type {number[]} */ const open = [];
    /** @type {number[]} */ const blocked = [];
    try {
      for (let round = 0; round < rounds; round += 1) {
        for (const block of [false, true]) {
          const firewall = block ? blockDirectPath() : null;
          const ann = await onHostA(server);
          const bob = await onHostB(server);
          try {
            const link = await createsRoom(ann);
            const ms = await joins(bob, link, block ? THROUGH_SERVER : CONNECTED);
            (block ? blocked : open).push(ms);
            await expectStatus(ann.page, block ? THROUGH_SERVER : CONNECTED, 15_000);
            // Open: a hole punched straight between the two routers. Blocked: the server's relay.
            if (block) await assertThroughServer({ Ann: ann.page, Bob: bob.page });
            else await assertDirectBetweenRouters({ ann: ann.page, bob: bob.page });
          } finally {
            await ann.context.close();
            await bob.context.close();
            firewall?.remove();
          }
        }
      }
    } finally {
      await server.stop();
    }
    report(t, [
      `open link → Connected, direct path open: median ${median(open).toFixed(0)} ms (${open.map((v) => v.toFixed(0)).join(', ')})`,
      `open link → ${THROUGH_SERVER}, direct path blocked: median ${median(blocked).toFixed(0)} ms (${blocked.map((v) => v.toFixed(0)).join(', ')})`,
    ]);
    assert.ok(median(blocked) < 5_000, 'the fallback connects within 5 s');
  });
});

describe('the connection check page', () => {
  test('reports every path working on an open network, and UDP blocked on a closed one', async () => {
    const server = await startNatter(withTurn());
    const person = await onHostA(server);
    try {
      await gotoOnHost(person.page, '/');
      await person.page.getByRole('link', { name: 'Check your connection' }).click();
      const summary = person.page.getByRole('status', { name: 'Check result' });
      await summary.filter({ hasText: 'Everything works' }).waitFor({ timeout: 60_000 });
      for (const line of ['Server connection (WebSocket): Works', 'STUN (finding your public address): Works',
        'TURN relay over UDP: Works', 'TURN relay over TCP: Works']) {
        await person.page.getByText(line).waitFor();
      }
      await person.page.getByText(/media relay.*: Works$/).waitFor();
      await person.page.getByText('Reached over UDP, the fastest way.').waitFor();

      const firewall = blockAllUdpAtA();
      try {
        await person.page.getByRole('button', { name: 'Check again' }).click();
        await summary.filter({ hasText: 'Natter will work' }).waitFor({ timeout: 90_000 });
        await person.page.getByText('STUN (finding your public address): Fails').waitFor();
        await person.page.getByText('outgoing UDP is probably blocked').waitFor();
        await person.page.getByText('TURN relay over UDP: Fails').waitFor();
        await person.page.getByText('TURN relay over TCP: Works').waitFor();
        await person.page.getByText(/media relay.*: Works, with a limit$/).waitFor();
        await person.page.getByText('Reached only over TCP').waitFor();
      } finally {
        firewall.remove();
      }
      assert.deepEqual(person.problems, []);
    } finally {
      await person.context.close();
      await server.stop();
    }
  });

  test('says so when the TURN server refuses the credentials', async () => {
    const server = await startNatter(withTurn('a-secret-coturn-does-not-share'));
    const person = await onHostA(server);
    try {
      await gotoOnHost(person.page, '/check');
      await person.page.getByText('TURN relay over UDP: Fails').waitFor({ timeout: 60_000 });
      await person.page.getByText('The TURN server refused this browser’s credentials.').first().waitFor();
      // Not "Everything works": the summary counts the refused TURN.
      await person.page
        .getByRole('status', { name: 'Check result' })
        .filter({ hasText: 'Natter will work, though a direct connection may not' })
        .waitFor({ timeout: 60_000 });
    } finally {
      await person.context.close();
      await server.stop();
    }
  });
});

/**
 * In the page: the two ends (candidate type and address) of the selected pair of the page's
 * connected relay-only connection, or null while there is none.
 */
async function relayOnlyPair() {
  // The page keeps no handle on its connection; the test looks through the stats of all of them.
  const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).natterTestConnections ?? []);
  for (const pc of pcs) {
    if (pc.connectionState !== 'connected' || pc.getConfiguration().iceTransportPolicy !== 'relay') continue;
    const stats = await pc.getStats();
    for (const report of stats.values()) {
      if (report.type !== 'transport' || !report.selectedCandidatePairId) continue;
      const pair = stats.get(report.selectedCandidatePairId);
      /** @param {string} id */
      const end = (id) => ({ type: String(stats.get(id)?.candidateType), address: String(stats.get(id)?.address) });
      return { local: end(pair.localCandidateId), remote: end(pair.remoteCandidateId) };
    }
  }
  return null;
}

/**
 * In the page: asks coturn for an allocation with a credential; reports the relay addresses
 * that came and which STUN/TURN errors did.
 * @param {{ urls: string, username: string, credential: string }} server
 */
async function allocate(server) {
  const pc = new RTCPeerConnection({ iceServers: [server], iceTransportPolicy: 'relay' });
  /** @type {number[]} */
  const errors = [];
  /** @type {Set<string>} */
  const relays = new Set();
  pc.createDataChannel('probe');
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 5_000);
    pc.onicecandidate = ({ candidate }) => {
      if (candidate?.type === 'relay') relays.add(String(candidate.address));
      if (!candidate) {
        clearTimeout(timer);
        resolve(undefined);
      }
    };
    pc.onicecandidateerror = (event) => errors.push(/** @type {RTCPeerConnectionIceErrorEvent} */ (event).errorCode);
    pc.setLocalDescription();
  });
  pc.close();
  return { relays: [...relays], errors: [...new Set(errors)] };
}
