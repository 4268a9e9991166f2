// @ts-check
// The LAN deployment (README: `--tls-self-signed` on a LAN): natter on a computer of a home LAN,
// serving HTTPS with the self-signed certificate it makes at first start, and people on other
// computers of the same LAN. natter prints the certificate's fingerprint so people can check what
// their browser shows before they accept it; here the browsers accept exactly that certificate
// (its public key), as a person who checked the fingerprint would.
//
//   LAN 192.168.50.0/24 (deployments.mjs buildLan): server .10, a .21 (Ann, Cara), b .22 (Bob)

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FAKE_MEDIA, launchBrowser } from './harness.mjs';
import {
  browserFollowsRedirect,
  buildLan,
  groupRoomCall,
  launchTrustingBrowser,
  pairRoomChat,
  plainGet,
  presentedCertificate,
  spkiHash,
  startNatter,
} from './deployments.mjs';

const HTTPS_PORT = 8443;
const REDIRECT_PORT = 8080;

/** @type {Awaited<ReturnType<typeof buildLan>>} */
let lan;
/** @type {Awaited<ReturnType<typeof startNatter>>} */
let natter;
/** The self-signed certificate natter made, as kept in its data directory. */
let certificate = '';
/** @type {import('playwright-core').Browser} */
let browserA;
/** @type {import('playwright-core').Browser} */
let browserB;
/** Where people on the LAN open Natter: the server's LAN address. */
let origin = '';

before(async () => {
  lan = await buildLan();
  // As the README says for a LAN, with plain HTTP on 8080 redirected.
  natter = await startNatter(lan.server, [
    '--listen', `0.0.0.0:${HTTPS_PORT}`,
    '--tls-self-signed',
    '--redirect-listen', `0.0.0.0:${REDIRECT_PORT}`,
  ]);
  certificate = readFileSync(join(natter.dataDir, 'tls', 'self-signed-cert.pem'), 'utf8');
  origin = `https://${lan.server.address}:${HTTPS_PORT}`;
  const trust = { spki: [spkiHash(certificate)], args: FAKE_MEDIA };
  [browserA, browserB] = await Promise.all([launchTrustingBrowser(lan.a, trust), launchTrustingBrowser(lan.b, trust)]);
});
after(async () => {
  await browserA?.close();
  await browserB?.close();
  await natter?.stop();
  await lan?.stop();
});

test('natter prints the fingerprint of the certificate browsers get, made for its LAN address; plain HTTP redirects to HTTPS', async () => {
  assert.equal(natter.printedUrl, `https://localhost:${HTTPS_PORT}/`);
  assert.match(natter.log(), /Its self-signed certificate's SHA-256 fingerprint is [0-9A-F:]{95}: check that/);
  // What a browser on the LAN is shown is what natter printed, and what it keeps on disk.
  const presented = await presentedCertificate(lan.server.address, HTTPS_PORT);
  assert.equal(presented.fingerprint256, natter.fingerprint, 'the printed fingerprint is the served certificate\'s');
  const kept = new X509Certificate(certificate);
  assert.equal(kept.fingerprint256, natter.fingerprint, 'the printed fingerprint is the kept certificate\'s');
  // It names the LAN address people open, and localhost, the printed URL's host.
  const names = kept.subjectAltName?.split(', ') ?? [];
  for (const name of [`IP Address:${lan.server.address}`, 'DNS:localhost']) {
    assert.ok(names.includes(name), `the certificate names ${name}: ${kept.subjectAltName}`);
  }
  assert.equal(kept.ca, false, 'a server certificate, not a CA');

  const redirect = await plainGet(lan.server.address, REDIRECT_PORT, `${lan.server.address}:${REDIRECT_PORT}`, '/g/somewhere?x=1');
  assert.deepEqual(redirect, { status: 308, location: `${origin}/g/somewhere?x=1` });
  // A person's browser typing the plain address ends on the secure page.
  await browserFollowsRedirect(browserB, `http://${lan.server.address}:${REDIRECT_PORT}/`, origin);
  // A browser that has not accepted this certificate refuses the page: it is the acceptance
  // (--ignore-certificate-errors-spki-list with the certificate's key) that makes pages load.
  const untrusting = await launchBrowser();
  try {
    const page = await untrusting.newPage();
    await assert.rejects(page.goto(`${origin}/`), /ERR_CERT_AUTHORITY_INVALID/);
  } finally {
    await untrusting.close();
  }
});

test('a pair room on the LAN connects and chat goes both ways (Bob on a phone)', async () => {
  const paths = await pairRoomChat({ ann: browserA, bob: browserB, origin, status: /^Connected$/ });
  // Computer to computer on the LAN: a host candidate at each end (Chromium hides LAN addresses
  // behind mDNS names, so the stats show no address), nothing through the server or a relay.
  for (const [who, pair] of Object.entries(paths)) {
    assert.equal(pair?.local.type, 'host', `${who}'s path: ${JSON.stringify(pair)}`);
    assert.ok(['host', 'prflx'].includes(String(pair?.remote.type)), `${who}'s path: ${JSON.stringify(pair)}`);
  }
});

test('a group room of three on the LAN: everyone hears and sees the other two, and chat reaches everyone', async () => {
  await groupRoomCall({ first: browserA, second: browserB, origin, relayAddress: lan.server.address });
});
