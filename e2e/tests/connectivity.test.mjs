// Connecting from any network, as people on hostile networks do: TURN credentials from Natter
// against a real coturn (relay-only browsers chat through it; forged and expired credentials are
// refused), two browsers whose direct path a packet filter blocks falling back to the server's
// relay and still chatting and sending a file, and the connection check page naming what is
// blocked. Runs inside ../shared/netns-run: the packet filter is the namespace's own.

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
  createRoom,
  expectMessage,
  expectStatus,
  grows,
  inbound,
  launchBrowser,
  median,
  newPerson,
  randomFileIn,
  report,
  send,
  sha256Of,
  startServer,
  videoWidth,
} from './harness.mjs';
import { PacketFilter, setEphemeralPorts, startCoturn, turnCredential } from './network.mjs';

const SECRET = randomBytes(24).toString('base64url');
/** The media relay's fixed port, so the packet filter can let it through. */
const RTC_PORT = 47_100;
const TURN_PORT = 3478;
const RELAY_PORTS = '40000-40999';
const THROUGH_TURN = 'Connected through a TURN relay';
const THROUGH_SERVER = 'Connected through the server';

/** @type {Awaited<ReturnType<typeof startCoturn>>} */
let coturn;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {string} */
let dir;

before(async () => {
  // Browsers' own ports stay clear of the media relay's and coturn's, which the filter lets pass.
  await setEphemeralPorts(50_000, 60_999);
  coturn = await startCoturn({ secret: SECRET, port: TURN_PORT, minPort: 40_000, maxPort: 40_999 });
  // Fake camera and microphone: a call goes through the server's relay too.
  browser = await launchBrowser(FAKE_MEDIA);
  dir = await mkdtemp(join(tmpdir(), 'natter-connectivity-'));
});
after(async () => {
  await browser?.close();
  await coturn?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Server options with coturn as STUN and TURN, sharing `secret` with it. @param {string} [secret] */
const withTurn = (secret = SECRET) => [
  '--rtc-port', String(RTC_PORT),
  '--ice-server', `stun:198.18.0.1:${TURN_PORT}`,
  '--turn-url', coturn.urls.udp,
  '--turn-url', coturn.urls.tcp,
  '--turn-secret', secret,
];

/** Blocks UDP between the browsers, leaving the media relay and coturn reachable. */
const blockDirectPath = () => PacketFilter.block({ udpExceptPorts: [RTC_PORT, TURN_PORT, RELAY_PORTS] });

/** @param {import('playwright-core').Page} page */
const pathLine = (page) => page.getByRole('status', { name: 'Connection path' });

/**
 * Bob opens Ann's link; resolves with the milliseconds from his navigation to his Connected.
 * @param {{ url: string }} server @param {string} link @param {RegExp | string} status
 */
async function bobJoins(server, link, status) {
  const bob = await newPerson(browser, server.url);
  await bob.context.addInitScript(callTestPage);
  await bob.page.goto(link);
  await expectStatus(bob.page, status, 15_000);
  const ms = await bob.page.evaluate(() => performance.getEntriesByName('natter:connected')[0]?.startTime ?? NaN);
  return { bob, ms };
}

describe('TURN with credentials from Natter', () => {
  test('two browsers forced to relay-only connect and chat through coturn', async () => {
    const server = await startServer({ args: withTurn() });
    try {
      const { ann, link } = await createRoom({ server, browser }, { initScript: callTestPage });
      const relayOnly = ann.page.getByRole('checkbox', { name: /Always connect through the relay/ });
      await relayOnly.check();
      const { bob } = await bobJoins(server, link, THROUGH_TURN);
      await bob.page.getByRole('checkbox', { name: /Always connect through the relay/ }).check();
      // Bob's new connection, relay-only on both sides now, replaces the first.
      await expectStatus(bob.page, THROUGH_TURN, 15_000);
      await expectStatus(ann.page, THROUGH_TURN, 15_000);
      await pathLine(ann.page).filter({ hasText: 'TURN relay' }).waitFor();
      // The connection that replaced the first is relay-only on both sides, and connected: each
      // browser sends only through its own TURN allocation.
      for (const page of [ann.page, bob.page]) {
        const deadline = Date.now() + 15_000;
        let types = await page.evaluate(relayOnlyCandidateTypes);
        while (types.local !== 'relay' && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          types = await page.evaluate(relayOnlyCandidateTypes);
        }
        assert.equal(types.local, 'relay', 'a relay-only connection with a relay candidate of its own');
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
          page.evaluate(async () => (await import('/js/identity.js')).loadIdentity().then((identity) => identity.peerId)),
        ),
      );
      for (const peerId of peerIds) assert.ok(!coturn.log().includes(peerId), 'no peer id reaches coturn');
      assert.deepEqual([...ann.problems, ...bob.problems], []);
      await ann.context.close();
      await bob.context.close();
    } finally {
      await server.stop();
    }
  });

  test('coturn refuses forged and expired credentials and accepts a fresh one', async () => {
    const server = await startServer({ args: withTurn() });
    try {
      const person = await newPerson(browser, server.url);
      await person.page.goto('/');
      const urls = coturn.urls.udp;
      const cases = {
        // A user name each, so coturn's log tells them apart.
        valid: turnCredential(SECRET, 600, 'peer-valid-00000001'),
        forged: turnCredential('not-the-secret', 600, 'peer-forged-0000001'),
        expired: turnCredential(SECRET, -60, 'peer-expired-000001'),
      };
      /** @type {Record<string, { relay: boolean, errors: number[] }>} */
      const outcomes = {};
      for (const [name, credential] of Object.entries(cases)) {
        outcomes[name] = await person.page.evaluate(allocate, { urls, ...credential });
      }
      assert.deepEqual(outcomes.valid, { relay: true, errors: [] });
      assert.equal(outcomes.forged.relay, false, 'a credential made with another secret gets no relay');
      assert.ok(outcomes.forged.errors.includes(401), `forged: ${JSON.stringify(outcomes.forged)}`);
      assert.equal(outcomes.expired.relay, false, 'an expired credential gets no relay');
      assert.ok(outcomes.expired.errors.includes(401), `expired: ${JSON.stringify(outcomes.expired)}`);
      // coturn's side: each refused by name, the valid one allocated.
      const log = coturn.log();
      for (const refused of [cases.forged, cases.expired]) {
        assert.ok(log.includes(`user <${refused.username}>: incoming packet message processed, error 401`), refused.username);
        assert.ok(!log.includes(`user <${refused.username}>: incoming packet ALLOCATE processed, success`));
      }
      assert.ok(log.includes(`user <${cases.valid.username}>: incoming packet ALLOCATE processed, success`));
      await person.context.close();
    } finally {
      await server.stop();
    }
  });
});

/**
 * Ann and Bob in a pair room of a server started with `server`, behind the packet filter
 * `block` makes, both showing `status`; `body` goes on from there. Everything is closed after,
 * also when the body fails, and neither page may have logged an error.
 * @param {{ server: Parameters<typeof startServer>[0], block: () => Promise<PacketFilter>, status: string }} setup
 * @param {(people: { ann: Person, bob: Person, ms: number }) => Promise<void>} body
 */
async function pairBehind({ server: options, block, status }, body) {
  const server = await startServer(options);
  const filter = await block();
  try {
    const { ann, link } = await createRoom({ server, browser }, { initScript: callTestPage });
    const { bob, ms } = await bobJoins(server, link, status);
    await expectStatus(ann.page, status, 15_000);
    await body({ ann, bob, ms });
    assert.deepEqual([...ann.problems, ...bob.problems], []);
    await ann.context.close();
    await bob.context.close();
  } finally {
    await filter.remove();
    await server.stop();
  }
}

/** @typedef {Awaited<ReturnType<typeof newPerson>>} Person */

describe('the direct path blocked', () => {
  const noTurn = { args: ['--rtc-port', String(RTC_PORT)] };

  test('without TURN the pair falls back to the server relay, chats and sends a file', async (t) => {
    const file = await randomFileIn(dir, 'through-the-server.bin', 3);
    await pairBehind({ server: noTurn, block: blockDirectPath, status: THROUGH_SERVER }, async ({ ann, bob, ms }) => {
      await pathLine(bob.page).filter({ hasText: "Through Natter's server" }).waitFor();
      t.diagnostic(`blocked direct path → ${THROUGH_SERVER}: ${ms.toFixed(0)} ms`);
      assert.ok(ms < 5_000, `fell back in ${ms.toFixed(0)} ms (goal: under 5 s)`);
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
    await pairBehind({ server: noTurn, block: blockDirectPath, status: THROUGH_SERVER }, async ({ ann, bob }) => {
      await button(ann.page, 'Camera').click();
      await button(ann.page, 'Microphone').click();
      await button(bob.page, 'Microphone').click();
      const label = `${await ann.page.getByRole('textbox', { name: 'Your name' }).inputValue()}'s camera`;
      assert.ok((await videoWidth(bob.page, label)) > 0, "Ann's camera shows at Bob's");
      await grows(async () => (await inbound(bob.page, 'video')).frames, "Bob's decoded frames", 10);
      await grows(async () => (await inbound(ann.page, 'audio')).bytes, "Ann's received sound", 1000);
      await grows(async () => (await inbound(bob.page, 'audio')).bytes, "Bob's received sound", 1000);
    });
  });

  test('with TURN the pair connects through coturn instead', async () => {
    await pairBehind({ server: { args: withTurn() }, block: blockDirectPath, status: THROUGH_TURN }, async ({ ann, bob }) => {
      await send(bob.page, 'relayed by coturn');
      await expectMessage(ann.page, 'relayed by coturn');
    });
  });

  test('with TURN unreachable too, the pair retries through TURN alone, then uses the server relay', async (t) => {
    const httpPort = 47_180;
    // Only the web server and the media relay get through: coturn, over UDP and TCP, is as
    // blocked as the direct path.
    const block = () => PacketFilter.block({ udpExceptPorts: [RTC_PORT], tcpExceptPorts: [httpPort, RTC_PORT] });
    const server = { listen: `127.0.0.1:${httpPort}`, args: withTurn() };
    await pairBehind({ server, block, status: THROUGH_SERVER }, async ({ ann, bob, ms }) => {
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
      await send(bob.page, 'neither direct nor TURN');
      await expectMessage(ann.page, 'neither direct nor TURN');
    });
  });

  test('after a server restart the pair comes back through the server relay and chats on', async () => {
    const listen = '127.0.0.1:47181';
    let server = await startServer({ listen, args: ['--rtc-port', String(RTC_PORT)] });
    const filter = await blockDirectPath();
    try {
      const { ann, link } = await createRoom({ server, browser });
      const { bob } = await bobJoins(server, link, THROUGH_SERVER);
      await expectStatus(ann.page, THROUGH_SERVER, 15_000);
      await server.stop();
      // The relay went with the server: nobody is connected until it is back.
      await expectStatus(ann.page, /^(Server unreachable — retrying…|Connecting…)$/, 15_000);
      server = await startServer({ listen, args: ['--rtc-port', String(RTC_PORT)] });
      await expectStatus(ann.page, THROUGH_SERVER, 30_000);
      await expectStatus(bob.page, THROUGH_SERVER, 30_000);
      await send(bob.page, 'back after the restart');
      await expectMessage(ann.page, 'back after the restart');
      await send(ann.page, 'me too');
      await expectMessage(bob.page, 'me too');
      await ann.context.close();
      await bob.context.close();
    } finally {
      await filter.remove();
      await server.stop();
    }
  });

  test('a server that forbids the relay for pair rooms says why nobody connects', async () => {
    const server = await startServer({ args: ['--rtc-port', String(RTC_PORT), '--pair-server-relay', 'false'] });
    const filter = await blockDirectPath();
    try {
      const { ann, link } = await createRoom({ server, browser });
      const bob = await newPerson(browser, server.url);
      await bob.page.goto(link);
      await expectStatus(bob.page, /^Cannot connect: your networks block a direct connection/, 15_000);
      await ann.context.close();
      await bob.context.close();
    } finally {
      await filter.remove();
      await server.stop();
    }
  });
});

describe('fallback time', () => {
  test('time to Connected with the direct path blocked, beside the open path', async (t) => {
    const server = await startServer({ args: ['--rtc-port', String(RTC_PORT)] });
    const rounds = Number(process.env.NATTER_FALLBACK_ROUNDS ?? 3);
    /** @type {number[]} */ const open = [];
    /** @type {number[]} */ const blocked = [];
    try {
      for (let round = 0; round < rounds; round += 1) {
        for (const block of [false, true]) {
          const filter = block ? await blockDirectPath() : null;
          try {
            const { ann, link } = await createRoom({ server, browser });
            const { bob, ms } = await bobJoins(server, link, block ? THROUGH_SERVER : CONNECTED);
            (block ? blocked : open).push(ms);
            await ann.context.close();
            await bob.context.close();
          } finally {
            await filter?.remove();
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
    const server = await startServer({ args: withTurn() });
    try {
      const person = await newPerson(browser, server.url);
      await person.page.goto('/');
      await person.page.getByRole('link', { name: 'Check your connection' }).click();
      const summary = person.page.getByRole('status', { name: 'Check result' });
      await summary.filter({ hasText: 'Everything works' }).waitFor({ timeout: 60_000 });
      for (const line of ['Server connection (WebSocket): Works', 'STUN (finding your public address): Works',
        'TURN relay over UDP: Works', 'TURN relay over TCP: Works']) {
        await person.page.getByText(line).waitFor();
      }
      await person.page.getByText(/media relay.*: Works$/).waitFor();

      const filter = await PacketFilter.block({ blockAllUdp: true });
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
        await filter.remove();
      }
      assert.deepEqual(person.problems, []);
      await person.context.close();
    } finally {
      await server.stop();
    }
  });

  test('says so when the TURN server refuses the credentials', async () => {
    const server = await startServer({ args: withTurn('a-secret-coturn-does-not-share') });
    try {
      const person = await newPerson(browser, server.url);
      await person.page.goto('/check');
      await person.page.getByText('TURN relay over UDP: Fails').waitFor({ timeout: 60_000 });
      await person.page.getByText('The TURN server refused this browser’s credentials.').first().waitFor();
      // Not "Everything works": the summary counts the refused TURN.
      await person.page
        .getByRole('status', { name: 'Check result' })
        .filter({ hasText: 'Natter will work, though a direct connection may not' })
        .waitFor({ timeout: 60_000 });
      await person.context.close();
    } finally {
      await server.stop();
    }
  });
});

/** In the page: the candidate types of the selected pair of the page's connected relay-only connection. */
async function relayOnlyCandidateTypes() {
  // The page keeps no handle on its connection; the test looks through the stats of all of them.
  const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).natterTestConnections ?? []);
  for (const pc of pcs) {
    if (pc.connectionState !== 'connected' || pc.getConfiguration().iceTransportPolicy !== 'relay') continue;
    const stats = await pc.getStats();
    for (const report of stats.values()) {
      if (report.type !== 'transport' || !report.selectedCandidatePairId) continue;
      const pair = stats.get(report.selectedCandidatePairId);
      return { local: stats.get(pair.localCandidateId)?.candidateType, remote: stats.get(pair.remoteCandidateId)?.candidateType };
    }
  }
  return { local: undefined, remote: undefined };
}

/**
 * In the page: asks coturn for an allocation with a credential; reports whether a relay
 * candidate came and which STUN/TURN errors did.
 * @param {{ urls: string, username: string, credential: string }} server
 */
async function allocate(server) {
  const pc = new RTCPeerConnection({ iceServers: [server], iceTransportPolicy: 'relay' });
  /** @type {number[]} */
  const errors = [];
  let relay = false;
  pc.createDataChannel('probe');
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 5_000);
    pc.onicecandidate = ({ candidate }) => {
      if (candidate?.type === 'relay') relay = true;
      if (!candidate) {
        clearTimeout(timer);
        resolve(undefined);
      }
    };
    pc.onicecandidateerror = (event) => errors.push(/** @type {RTCPeerConnectionIceErrorEvent} */ (event).errorCode);
    pc.setLocalDescription();
  });
  pc.close();
  return { relay, errors: [...new Set(errors)] };
}
