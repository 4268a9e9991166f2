// @ts-check
// The binary alone with HTTPS built in (README: `--acme-domain`): natter on a server of its own
// with a public address, listening on 443, getting its certificate over ACME (TLS-ALPN-01) from a
// real ACME CA, Debian's pebble, on another public host, and redirecting plain HTTP on 80. People
// sit behind NAT routers of their own (topology.mjs) and open https://chat.example.org/, which
// their browsers find at the server's address; the browsers trust pebble's issuing CA (a new one
// at each pebble start) as browsers trust Let's Encrypt's.
//
//   internet 203.0.113.0/24: stun .3 (coturn for STUN; pebble :14000, pebble-challtestsrv DNS),
//   server .10 (natter :443, :80), NAT routers .21 and .22 with Ann and Cara on LAN A, Bob on LAN B

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, test } from 'node:test';
import { FAKE_MEDIA } from './harness.mjs';
import { buildTopology, startStunOnHost } from './topology.mjs';
import {
  DOMAIN,
  assertDirectThroughNats,
  browserFollowsRedirect,
  groupRoomCall,
  httpsGet,
  launchTrustingBrowser,
  pairRoomChat,
  plainGet,
  presentedCertificate,
  spkiHash,
  startNatter,
  startPebble,
} from './deployments.mjs';

const ORIGIN = `https://${DOMAIN}`;

/** @type {import('./topology.mjs').Topology} */
let topology;
/** @type {Awaited<ReturnType<typeof startStunOnHost>>} */
let stun;
/** @type {Awaited<ReturnType<typeof startPebble>>} */
let pebble;
/** @type {Awaited<ReturnType<typeof startNatter>>} */
let natter;
/** pebble's root and intermediate for this run. */
let issuers = { root: '', intermediate: '' };
/** How long natter took from its start to serving pebble's certificate. */
let certifiedAfter = 0;
/** @type {import('playwright-core').Browser} */
let browserA;
/** @type {import('playwright-core').Browser} */
let browserB;

before(async () => {
  topology = await buildTopology();
  stun = await startStunOnHost(topology);
  pebble = await startPebble(topology.stun, topology.server.address);
  const started = Date.now();
  natter = await startNatter(topology.server, [
    '--listen', '0.0.0.0:443',
    '--acme-domain', DOMAIN,
    '--acme-contact', 'admin@example.org',
    '--acme-directory', pebble.directory,
    '--acme-directory-ca', pebble.testCa,
    '--redirect-listen', '0.0.0.0:80',
    // People behind different NATs need STUN (README): coturn on the STUN host.
    '--ice-server', stun.stunUrl,
  ]);
  issuers = await pebble.issuers();
  // natter answers at once (with no certificate yet); wait for the one pebble issues.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const answer = await httpsGet(topology.server.address, 443, DOMAIN, '/healthz', issuers.root).catch((error) => error);
    if (answer.status === 200) break;
    if (Date.now() > deadline) {
      throw new Error(`natter served no certificate from pebble within 30 s (last: ${answer}):\n${natter.log()}\npebble:\n${pebble.log()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  certifiedAfter = Date.now() - started;
  const trust = {
    spki: [spkiHash(issuers.intermediate), spkiHash(issuers.root)],
    names: { [DOMAIN]: topology.server.address },
    args: FAKE_MEDIA,
  };
  [browserA, browserB] = await Promise.all([launchTrustingBrowser(topology.a, trust), launchTrustingBrowser(topology.b, trust)]);
});
after(async () => {
  await browserA?.close();
  await browserB?.close();
  await natter?.stop();
  await pebble?.stop();
  await stun?.stop();
  await topology?.stop();
});

test('natter gets a certificate for its domain from the ACME CA, and redirects plain HTTP to HTTPS', async (t) => {
  t.diagnostic(`certificate served ${certifiedAfter} ms after natter started`);
  assert.equal(natter.printedUrl, `${ORIGIN}/`);
  const presented = await presentedCertificate(topology.server.address, 443, DOMAIN);
  const leaf = new X509Certificate(presented.chain[0]);
  assert.equal(leaf.subjectAltName, `DNS:${DOMAIN}`);
  assert.ok(leaf.checkIssued(new X509Certificate(issuers.intermediate)), `issued by pebble's intermediate: ${leaf.issuer}`);
  assert.equal(leaf.ca, false);

  // Plain HTTP on port 80: the same path on HTTPS (308 keeps the method).
  assert.deepEqual(await plainGet(topology.server.address, 80, DOMAIN, '/r/abc?x=1'), { status: 308, location: `${ORIGIN}/r/abc?x=1` });
  // A person's browser typing the plain address ends on the secure page.
  await browserFollowsRedirect(browserB, `http://${DOMAIN}/`, ORIGIN);
});

test('a pair room across two NATs connects directly and chat goes both ways (Bob on a phone)', async () => {
  const paths = await pairRoomChat({ ann: browserA, bob: browserB, origin: ORIGIN, status: /^Connected$/ });
  assertDirectThroughNats(paths, topology);
});

test('a group room of three on two LANs: everyone hears and sees the other two, and chat reaches everyone', async () => {
  await groupRoomCall({ first: browserA, second: browserB, origin: ORIGIN, relayAddress: topology.server.address });
});
