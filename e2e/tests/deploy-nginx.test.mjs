// @ts-check
// Behind a TLS reverse proxy (README, deploy/nginx.conf): Debian's nginx on the server's public
// address terminates HTTPS with the repo's own configuration file, changed only where its
// comment says (the certificate paths; the name chat.example.org stays), and passes pages and
// the signaling WebSocket to natter on 127.0.0.1:8080, run exactly as that comment says. The
// media relay is reached directly on the server's public address, not through nginx. People sit
// behind NAT routers of their own (topology.mjs) and open https://chat.example.org/; their
// browsers trust the test CA that signed nginx's certificate.
//
//   internet 203.0.113.0/24: stun .3 (coturn for STUN), server .10 (nginx :80 :443, natter
//   127.0.0.1:8080, media relay :8081), NAT routers .21 and .22 with Ann and Cara on LAN A, Bob
//   on LAN B

import assert from 'node:assert/strict';
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
  makeCa,
  makeLeaf,
  pairRoomChat,
  plainGet,
  spkiHash,
  startNatter,
  startNginx,
  tcpAccepts,
  tempDir,
} from './deployments.mjs';

const ORIGIN = `https://${DOMAIN}`;

/** @type {import('./topology.mjs').Topology} */
let topology;
/** @type {Awaited<ReturnType<typeof startStunOnHost>>} */
let stun;
/** The test CA that signed nginx's certificate. */
let ca = { cert: '', key: '', pem: '' };
/** @type {Awaited<ReturnType<typeof startNatter>>} */
let natter;
/** @type {Awaited<ReturnType<typeof startNginx>>} */
let nginx;
/** @type {import('playwright-core').Browser} */
let browserA;
/** @type {import('playwright-core').Browser} */
let browserB;

before(async () => {
  topology = await buildTopology();
  stun = await startStunOnHost(topology);
  const certificates = tempDir('natter-nginx-certificates-');
  ca = makeCa(certificates.dir, 'nginx');
  const leaf = makeLeaf(certificates.dir, 'chat', ca, { dns: [DOMAIN] });
  // As deploy/nginx.conf's comment says, and STUN for people behind different NATs (README).
  natter = await startNatter(topology.server, [
    '--listen', '127.0.0.1:8080',
    '--client-ip-header', 'X-Real-IP',
    '--ice-server', stun.stunUrl,
  ]);
  nginx = await startNginx(topology.server, { fullchain: leaf.fullchain, key: leaf.key });
  const trust = { spki: [spkiHash(ca.pem)], names: { [DOMAIN]: topology.server.address }, args: FAKE_MEDIA };
  [browserA, browserB] = await Promise.all([launchTrustingBrowser(topology.a, trust), launchTrustingBrowser(topology.b, trust)]);
});
after(async () => {
  await browserA?.close();
  await browserB?.close();
  await nginx?.stop();
  await natter?.stop();
  await stun?.stop();
  await topology?.stop();
});

test('nginx serves Natter over HTTPS with the shipped configuration and redirects plain HTTP; natter itself is not reachable from outside', async () => {
  assert.match(nginx.shipped, /natter --listen 127\.0\.0\.1:8080 --client-ip-header X-Real-IP/, 'the file says how to run natter');
  assert.equal(natter.printedUrl, 'http://127.0.0.1:8080/');
  // HTTPS through nginx, verified against the test CA under the public name.
  const health = await httpsGet(topology.server.address, 443, DOMAIN, '/healthz', ca.pem);
  assert.deepEqual(health, { status: 200, body: 'ok' });
  // nginx's 308 on port 80.
  assert.deepEqual(await plainGet(topology.server.address, 80, DOMAIN, '/r/abc?x=1'), { status: 308, location: `${ORIGIN}/r/abc?x=1` });
  // natter's own listener is on the server's loopback only, and refuses a request that did not
  // come through the proxy (no X-Real-IP).
  assert.equal(await tcpAccepts(topology.server.address, 8080), false, 'nothing listens on the public address:8080');
  const get = [
    "require('node:http').get('http://127.0.0.1:8080/', (response) => { console.log(response.statusCode); process.exit(0); })",
    "  .on('error', (error) => { console.log(error.code); process.exit(0); });",
    'setTimeout(() => process.exit(1), 5000);',
  ].join('\n');
  const direct = topology.server.run(['timeout', '10', process.execPath, '-e', get]).trim();
  assert.equal(direct, '400', 'natter refuses a request on the server itself that did not come through nginx (no X-Real-IP)');
  // A person's browser typing the plain address ends on the secure page.
  await browserFollowsRedirect(browserB, `http://${DOMAIN}/`, ORIGIN);
});

test('a pair room across two NATs connects directly and chat goes both ways (Bob on a phone)', async () => {
  const paths = await pairRoomChat({ ann: browserA, bob: browserB, origin: ORIGIN, status: /^Connected$/ });
  assertDirectThroughNats(paths, topology);
  // nginx saw each person at their NAT router's public address, which it passes on in X-Real-IP.
  const clients = new Set(nginx.accessLog().split('\n').filter(Boolean).map((line) => line.split(' ')[0]));
  for (const router of [topology.a.publicAddress, topology.b.publicAddress]) {
    assert.ok(clients.has(router), `nginx served ${router}: ${[...clients].join(', ')}`);
  }
});

test('a group room of three on two LANs: everyone hears and sees the other two through the relay on the public address, and chat reaches everyone', async () => {
  await groupRoomCall({ first: browserA, second: browserB, origin: ORIGIN, relayAddress: topology.server.address });
});

test('a pair room whose network blocks STUN falls back to the server relay, beside nginx, and chat goes both ways', async () => {
  // Bob's router drops STUN: his browser learns no public address, the two NATs cannot be
  // punched through, there is no TURN, so both pages move to the server's media relay.
  topology.routerB.run(['nft', 'add rule inet natter_router forward ip daddr', topology.stun.address, 'udp dport 3478 drop'].join(' ').split(' '));
  try {
    const paths = await pairRoomChat({ ann: browserA, bob: browserB, origin: ORIGIN, status: /^Connected through the server$/ });
    for (const [who, path] of Object.entries(paths)) {
      assert.equal(path?.remote.address, topology.server.address, `${who} relays through the server's own address: ${JSON.stringify(path)}`);
    }
  } finally {
    topology.routerB.run(['nft', 'flush', 'chain', 'inet', 'natter_router', 'forward']);
    topology.routerB.run(['nft', 'add', 'rule', 'inet', 'natter_router', 'forward', 'iifname', 'wan', 'ct', 'state', 'established,related', 'accept']);
    topology.routerB.run(['nft', 'add', 'rule', 'inet', 'natter_router', 'forward', 'iifname', 'wan', 'drop']);
  }
});
