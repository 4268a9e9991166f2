// @ts-check
// Helpers for the deployment suites (deploy-*.test.mjs): the three ways the README runs Natter,
// each on hosts of its own (network namespaces, see topology.mjs), with real TLS that the
// browsers trust the way a person's browser would trust a real certificate.
//
// - Certificates: a test CA and leaves made with the `openssl` CLI. Chromium is told to accept
//   a chain that contains a certificate with a given public key
//   (`--ignore-certificate-errors-spki-list`), so its pages are real secure contexts (https, a
//   microphone and a camera) without any flag that makes plain http count as secure.
// - Programs on hosts (natter, pebble, nginx) start through the host's `wrap` (nsenter + setpriv
//   with a parent-death signal) and are killed when this process exits, however it ends.
// - A LAN of its own (`buildLan`) for the self-signed deployment: a bridge in this process's
//   namespace with hosts plugged into it, no router, no NAT.
// - The scenarios every deployment runs: a pair room across two hosts, and a group room of three
//   with microphones and cameras.

import { execFileSync, spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isIP, connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, NATTER_BIN, ONE_ADDRESS_FOR_EVERYONE, button, callTestPage, expectStatus } from './harness.mjs';
import { PHONE, gotoOnHost, hearsAndSeesEach, newHost, personOnHost, runHere, selectedPair } from './topology.mjs';

/** @typedef {import('./topology.mjs').Host} Host */
/** @typedef {import('playwright-core').Page} Page */
/** @typedef {import('playwright-core').Browser} Browser */
/** @typedef {Awaited<ReturnType<typeof personOnHost>>} Person */

/** The name the README's examples give the server (deploy/nginx.conf's too). */
export const DOMAIN = 'chat.example.org';

export const THROUGH_SERVER = 'Connected through the server';

// --- temporary files and processes ------------------------------------------------------------

/** A temporary directory removed when this process exits (or by the returned remove()). */
export function tempDir(prefix = 'natter-deploy-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const remove = () => {
    process.off('exit', remove);
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', remove);
  return { dir, remove };
}

/** The pids of a process's descendants (each before its own), read from /proc. @param {number} pid */
function descendants(pid) {
  /** @type {number[]} */
  const found = [];
  /** @param {number} parent */
  const walk = (parent) => {
    let children = '';
    try {
      children = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8');
    } catch {
      return;
    }
    for (const child of children.trim().split(/\s+/).filter(Boolean).map(Number)) {
      found.push(child);
      walk(child);
    }
  };
  walk(pid);
  return found;
}

/**
 * A long-running program on a host: started through the host's wrap (which execs it, so the
 * child is the program itself), its output kept, and it and its descendants killed when this
 * process exits. `ready` is polled until it resolves true.
 *
 * A program that starts processes of its own (nginx's workers) gets `ownPids`: it runs as the
 * first process of a PID namespace of its own (`unshare --pid --fork --kill-child`), so when it
 * dies, however this process ends (the wrap's parent-death signal kills unshare, which kills it),
 * the kernel kills everything it started too.
 * @param {string} name what to call it in errors
 * @param {string[]} wrap @param {string} command @param {string[]} args
 * @param {{ env?: Record<string, string>, ready: (log: () => string) => Promise<boolean>, timeout?: number, ownPids?: boolean }} options
 */
export async function startProgram(name, wrap, command, args, options) {
  const own = options.ownPids ? ['unshare', '--pid', '--fork', '--kill-child', '--'] : [];
  const [program, ...prefix] = [...wrap, ...own, command];
  const child = spawn(program, [...prefix, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(options.env ?? {}) },
  });
  let log = '';
  child.stdout.on('data', (chunk) => (log += chunk));
  child.stderr.on('data', (chunk) => (log += chunk));
  if (process.env.NATTER_SERVER_LOG) {
    child.stdout.pipe(process.stderr);
    child.stderr.pipe(process.stderr);
  }
  const running = () => child.exitCode === null && child.signalCode === null;
  const killOnExit = () => {
    for (const pid of [child.pid ?? 0, ...descendants(child.pid ?? 0)]) {
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', killOnExit);
  const stop = async () => {
    process.off('exit', killOnExit);
    if (running()) {
      const exited = once(child, 'exit');
      // unshare ignores SIGTERM: the program itself is its only child.
      const pid = options.ownPids ? descendants(child.pid ?? 0)[0] : child.pid;
      try {
        if (pid) process.kill(pid, 'SIGTERM');
      } catch {
        // gone already
      }
      const timer = setTimeout(killOnExit, 5_000);
      await exited;
      clearTimeout(timer);
    }
  };
  try {
    await new Promise((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  } catch (error) {
    process.off('exit', killOnExit);
    throw new Error(`cannot run ${command}`, { cause: error });
  }
  // Later errors (a signal that could not be sent) only go to the log.
  child.on('error', (error) => (log += `\n${error}`));
  const deadline = Date.now() + (options.timeout ?? 10_000);
  for (;;) {
    if (!running()) {
      await stop();
      throw new Error(`${name} exited with ${child.exitCode ?? child.signalCode}:\n${log}`);
    }
    if (await options.ready(() => log).catch(() => false)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} was not ready within ${options.timeout ?? 10_000} ms:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, log: () => log, stop };
}

/**
 * natter on a host, with ONE_ADDRESS_FOR_EVERYONE (people behind one NAT share its address) and
 * a data directory of its own. Resolves once it has printed where it is, with what it printed:
 * the URL and, with --tls-self-signed, its certificate's fingerprint.
 * @param {Host} host @param {string[]} args @param {{ env?: Record<string, string> }} [options]
 */
export async function startNatter(host, args, options = {}) {
  const data = tempDir('natter-deploy-data-');
  const selfSigned = args.includes('--tls-self-signed');
  const program = await startProgram('natter', host.wrap, NATTER_BIN, ['--data-dir', data.dir, ...ONE_ADDRESS_FOR_EVERYONE, ...args], {
    env: { RUST_LOG: process.env.RUST_LOG ?? 'warn', ...(options.env ?? {}) },
    ready: async (log) => /Open \S+ in a browser/.test(log()) && (!selfSigned || / fingerprint is /.test(log())),
  });
  const printed = program.log();
  return {
    ...program,
    dataDir: data.dir,
    /** The URL natter printed ("Open … in a browser."). */
    printedUrl: /** @type {RegExpExecArray} */ (/Open (\S+) in a browser/.exec(printed))[1],
    /** The fingerprint natter printed for its self-signed certificate, if it made one. */
    fingerprint: / fingerprint is ([0-9A-F]{2}(?::[0-9A-F]{2})+)/.exec(printed)?.[1],
    async stop() {
      await program.stop();
      data.remove();
    },
  };
}

// --- certificates -----------------------------------------------------------------------------

/** @param {string[]} args */
function openssl(args) {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const failed = /** @type {{ stderr?: Buffer }} */ (error);
    throw new Error(`openssl ${args.join(' ')} failed: ${failed.stderr ?? error}`, { cause: error });
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/**
 * A test certificate authority (a self-signed CA certificate and its key) in `dir`.
 * @param {string} dir @param {string} name
 */
export function makeCa(dir, name) {
  const cert = join(dir, `${name}-ca.pem`);
  const key = join(dir, `${name}-ca-key.pem`);
  openssl(['req', '-x509', ...EC_KEY, '-keyout', key, '-out', cert, '-days', '30', '-subj', `/CN=Natter test CA (${name})`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { cert, key, pem: readFileSync(cert, 'utf8') };
}

/**
 * A server certificate signed by `ca` for these DNS names and IP addresses (an end entity:
 * rustls refuses a CA certificate used as a server's). `fullchain` is the leaf then the CA, as
 * a CA's "fullchain.pem" is.
 * @param {string} dir @param {string} name @param {{ cert: string, key: string }} ca
 * @param {{ dns?: string[], ips?: string[] }} names
 */
export function makeLeaf(dir, name, ca, { dns = [], ips = [] }) {
  const cert = join(dir, `${name}-cert.pem`);
  const key = join(dir, `${name}-key.pem`);
  const csr = join(dir, `${name}.csr`);
  const extensions = join(dir, `${name}.ext`);
  const altNames = [...dns.map((each) => `DNS:${each}`), ...ips.map((each) => `IP:${each}`)].join(',');
  writeFileSync(extensions, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=${altNames}`,
    '',
  ].join('\n'));
  openssl(['req', ...EC_KEY, '-keyout', key, '-out', csr, '-subj', `/CN=${dns[0] ?? ips[0]}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '30', '-extfile', extensions]);
  const fullchain = join(dir, `${name}-fullchain.pem`);
  writeFileSync(fullchain, readFileSync(cert, 'utf8') + readFileSync(ca.cert, 'utf8'));
  return { cert, key, fullchain, pem: readFileSync(cert, 'utf8') };
}

/**
 * What Chromium's --ignore-certificate-errors-spki-list takes for a certificate: base64 of the
 * SHA-256 of its DER SubjectPublicKeyInfo.
 * @param {string} pem
 */
export function spkiHash(pem) {
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/**
 * The certificate a TLS server presents for `servername` at address:port, unverified (tests
 * compare it with what they expect), with its chain as presented.
 * @param {string} address @param {number} port @param {string} [servername]
 * @returns {Promise<{ fingerprint256: string, chain: string[], subjectaltname: string }>}
 */
export function presentedCertificate(address, port, servername) {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: address, port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const leaf = socket.getPeerCertificate(true);
      /** @type {string[]} */
      const chain = [];
      /** @type {import('node:tls').DetailedPeerCertificate | undefined} */
      let each = leaf;
      while (each?.raw && !chain.includes(each.raw.toString('base64'))) {
        chain.push(each.raw.toString('base64'));
        each = each.issuerCertificate;
      }
      socket.end();
      const pem = (/** @type {string} */ der) => `-----BEGIN CERTIFICATE-----\n${der.match(/.{1,64}/g)?.join('\n')}\n-----END CERTIFICATE-----\n`;
      resolve({ fingerprint256: leaf.fingerprint256, chain: chain.map(pem), subjectaltname: leaf.subjectaltname ?? '' });
    });
    socket.setTimeout(5_000, () => socket.destroy(new Error(`no TLS handshake with ${address}:${port} within 5 s`)));
    socket.on('error', reject);
  });
}

/**
 * GET over HTTPS from this process to `address` (no DNS), as `host`, trusting only `ca`.
 * @param {string} address @param {number} port @param {string} host @param {string} path @param {string | string[]} ca
 * @returns {Promise<{ status: number, body: string }>}
 */
export function httpsGet(address, port, host, path, ca) {
  return new Promise((resolve, reject) => {
    // No server name indication for an address (TLS has none for addresses: RFC 6066).
    const servername = isIP(host) ? '' : host;
    const request = httpsRequest({ host: address, port, path, servername, headers: { host }, ca, timeout: 5_000, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from https://${address}:${port}${path} within 5 s`)));
    request.on('error', reject);
    request.end();
  });
}

/**
 * A plain-HTTP GET from this process to `address` (no DNS), with `host` as the Host header.
 * @param {string} address @param {number} port @param {string} host @param {string} path
 * @returns {Promise<{ status: number, location: string | undefined }>}
 */
export function plainGet(address, port, host, path) {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: address, port, path, headers: { host }, timeout: 5_000, agent: false }, (response) => {
      response.resume();
      resolve({ status: response.statusCode ?? 0, location: response.headers.location });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from http://${address}:${port}${path} within 5 s`)));
    request.on('error', reject);
    request.end();
  });
}

// --- browsers ---------------------------------------------------------------------------------

/**
 * Chromium on a host of a topology (as topology.mjs's launchBrowserOnHost, which enters the
 * host's namespace and execs /usr/bin/chromium), trusting chains that contain a certificate with
 * one of these public keys, and finding `names` at the given addresses (no DNS on these hosts).
 * No origin is treated as secure by flag: pages are secure only if their TLS is trusted.
 * @param {Host} host @param {{ spki: string[], names?: Record<string, string>, args?: string[] }} options
 */
export async function launchTrustingBrowser(host, { spki, names = {}, args = [] }) {
  const dir = mkdtempSync(join(tmpdir(), `natter-chromium-${host.name}-`));
  const script = join(dir, 'chromium');
  const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
  writeFileSync(script, `#!/bin/sh\nexec ${host.wrap.join(' ')} ${chromiumPath} "$@"\n`);
  chmodSync(script, 0o755);
  const rules = Object.entries(names).map(([name, address]) => `MAP ${name} ${address}`);
  const browser = await chromium.launch({
    executablePath: script,
    args: [
      ...CHROMIUM_ARGS,
      `--ignore-certificate-errors-spki-list=${spki.join(',')}`,
      ...(rules.length ? [`--host-resolver-rules=${rules.join(',')}`] : []),
      ...args,
    ],
  });
  browser.on('disconnected', () => rmSync(dir, { recursive: true, force: true }));
  return browser;
}

// --- a LAN of its own ------------------------------------------------------------------------

/** The LAN's addresses (a home network's usual private range). */
export const LAN = '192.168.50';

/**
 * A home LAN: a switch (a bridge in this process's namespace, which has `${LAN}.1` on it, like
 * the home router, but forwards nothing anywhere) with the server and two people's computers
 * plugged in. No NAT between them: everyone reaches everyone's private address.
 *
 *   LAN 192.168.50.0/24: this process .1 ── server .10, a .21, b .22
 *
 * Call stop() when done (also done on exit).
 */
export async function buildLan() {
  if (runHere(['ip', '-4', 'addr', 'show']).includes(`${LAN}.1/`)) {
    throw new Error(`${LAN}.1 is already in use in this namespace: another LAN is running (run test files one at a time)`);
  }
  const bridge = `nl${process.pid}-lan`;
  /** @type {(Host & { holder: import('node:child_process').ChildProcess })[]} */
  const hosts = [];
  /** @type {string[]} */
  const ports = [];
  let stopped = false;
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    process.off('exit', stopNow);
    for (const link of [...ports, bridge]) {
      try {
        execFileSync('ip', ['link', 'del', link], { stdio: 'ignore' });
      } catch {
        // already gone with its namespace
      }
    }
    for (const host of hosts) host.holder.kill('SIGKILL');
  };
  process.once('exit', stopNow);
  try {
    runHere(['ip', 'link', 'add', bridge, 'type', 'bridge']);
    runHere(['sh', '-c', `echo 0 > /proc/sys/net/ipv6/conf/${bridge}/accept_dad`]);
    runHere(['ip', 'addr', 'add', `${LAN}.1/24`, 'dev', bridge]);
    runHere(['ip', 'link', 'set', bridge, 'up']);
    /** @param {string} name @param {number} last */
    const plugIn = async (name, last) => {
      const address = `${LAN}.${last}`;
      const host = await newHost(name, address);
      hosts.push(host);
      const port = `nl${process.pid}-${ports.length}`;
      runHere(['ip', 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(host.pid)]);
      ports.push(port);
      runHere(['sh', '-c', `echo 1 > /proc/sys/net/ipv6/conf/${port}/disable_ipv6`]);
      runHere(['ip', 'link', 'set', port, 'master', bridge, 'up']);
      host.run(['sh', '-c', [
        'echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad',
        `ip addr add ${address}/24 dev eth0`,
        'ip link set eth0 up',
        `ip route add default via ${LAN}.1`,
      ].join(' && ')]);
      return host;
    };
    const server = await plugIn('server', 10);
    const a = await plugIn('a', 21);
    const b = await plugIn('b', 22);
    return {
      /** @type {Host} */ server,
      /** @type {Host} */ a,
      /** @type {Host} */ b,
      /** Tears everything down (idempotent). */
      async stop() {
        stopNow();
        await Promise.all(hosts.map((host) => (host.holder.exitCode === null && host.holder.signalCode === null ? once(host.holder, 'exit') : null)));
      },
    };
  } catch (error) {
    stopNow();
    throw error;
  }
}

// --- the scenarios ------------------------------------------------------------------------------

/** @param {Page} page @param {string} text */
export async function say(page, text) {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
}

/** @param {Page} page @param {string} text */
export const heard = (page, text) =>
  page.getByRole('log', { name: 'Messages' }).getByText(text, { exact: true }).waitFor({ timeout: 10_000 });

/** A phone shows no sideways scrolling, and the composer is on screen. @param {Page} page */
export async function fitsPhone(page) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling on a phone (${overflow} px too wide)`);
  const box = await page.getByRole('textbox', { name: 'Message' }).boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width && box.y + box.height <= PHONE.height,
    `the message box is on the phone's screen: ${JSON.stringify(box)}`);
}

/**
 * The page is a secure context served over https from `origin` (so the browser trusted the
 * server's certificate: an untrusted one would have stopped the navigation).
 * @param {Page} page @param {string} origin
 */
export async function isSecurePage(page, origin) {
  const seen = await page.evaluate(() => ({ origin: location.origin, secure: window.isSecureContext, media: Boolean(navigator.mediaDevices?.getUserMedia) }));
  assert.deepEqual(seen, { origin, secure: true, media: true }, `${page.url()} is a secure page of ${origin}`);
}

/** The addresses of the candidate pair in use, waiting for the connection to report one. @param {Page} page */
export async function pairInUse(page) {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const pair = await selectedPair(page);
    if (pair || Date.now() > deadline) return pair;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * The selected candidate pair of the page's live connection in full (protocols, ports, round
 * trip), and what the connection has sent and received: for failure messages.
 * @param {Page} page
 */
export function transportInUse(page) {
  return page.evaluate(async () => {
    const list = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).natterTestConnections);
    const pc = list.findLast((each) => each.connectionState !== 'closed');
    if (!pc) return null;
    const stats = await pc.getStats();
    /** @type {any} */
    let pair = null;
    stats.forEach((each) => {
      if (each.type === 'transport' && each.selectedCandidatePairId) pair = stats.get(each.selectedCandidatePairId);
    });
    if (!pair) return { state: pc.connectionState };
    /** @param {string} id */
    const end = (id) => {
      const { candidateType, protocol, address, port, relayProtocol, tcpType } = stats.get(id) ?? {};
      return { candidateType, protocol, address, port, relayProtocol, tcpType };
    };
    return {
      state: pc.connectionState,
      local: end(pair.localCandidateId),
      remote: end(pair.remoteCandidateId),
      rtt: pair.currentRoundTripTime,
      bytesSent: pair.bytesSent,
      bytesReceived: pair.bytesReceived,
      availableOutgoingBitrate: pair.availableOutgoingBitrate,
    };
  });
}

/**
 * A pair room across two hosts: Ann (desktop, browser `ann`) makes it at `origin` and shares
 * its link; Bob (a phone, browser `bob`) opens it; both reach `status`; chat goes both ways;
 * Bob's page fits his phone. Returns the candidate pair each page uses, for the caller to check.
 * @param {{ ann: Browser, bob: Browser, origin: string, status: RegExp | string }} options
 */
export async function pairRoomChat({ ann: annBrowser, bob: bobBrowser, origin, status }) {
  const ann = await personOnHost(annBrowser, origin, { initScript: callTestPage });
  /** @type {Person | undefined} */
  let bob;
  try {
    await gotoOnHost(ann.page, '/');
    await isSecurePage(ann.page, origin);
    await button(ann.page, 'Create room').click();
    await ann.page.waitForURL(/\/r\/[A-Za-z0-9_-]{22}$/);
    await expectStatus(ann.page, 'Waiting for the other person…');
    await button(ann.page, 'Share link').click();
    const link = await ann.page.evaluate(() => navigator.clipboard.readText());
    assert.ok(link.startsWith(`${origin}/r/`), `the shared link leads to ${origin}: ${link}`);
    bob = await personOnHost(bobBrowser, origin, { viewport: PHONE, initScript: callTestPage });
    await gotoOnHost(bob.page, link);
    await isSecurePage(bob.page, origin);
    await expectStatus(bob.page, status, 20_000);
    await expectStatus(ann.page, status, 20_000);
    await say(ann.page, 'hello from Ann');
    await heard(bob.page, 'hello from Ann');
    await say(bob.page, 'and hello from Bob');
    await heard(ann.page, 'and hello from Bob');
    await fitsPhone(bob.page);
    const paths = { ann: await pairInUse(ann.page), bob: await pairInUse(bob.page) };
    assert.deepEqual([...ann.problems, ...bob.problems], []);
    return paths;
  } finally {
    await ann.context.close();
    await bob?.context.close();
  }
}

/**
 * A group room of three: Ann (browser `first`, desktop) makes it at `origin`, Bob (browser
 * `second`, a phone) and Cara (browser `first`, desktop) open its link. Everyone turns on their
 * microphone and camera; each hears and sees the other two through the media relay at
 * `relayAddress`; chat from each reaches the other two; Bob's page fits his phone.
 * @param {{ first: Browser, second: Browser, origin: string, relayAddress: string }} options
 */
export async function groupRoomCall({ first, second, origin, relayAddress }) {
  /** @type {Record<string, Person>} */
  const people = {};
  try {
    let link = '';
    for (const [name, browser, viewport] of /** @type {const} */ ([['Ann', first, undefined], ['Bob', second, PHONE], ['Cara', first, undefined]])) {
      const person = await personOnHost(browser, origin, { viewport, initScript: callTestPage });
      people[name] = person;
      const { page } = person;
      if (link) {
        await gotoOnHost(page, link);
      } else {
        await gotoOnHost(page, '/');
        await page.getByRole('radio', { name: 'Group room (up to 32)' }).check();
        await button(page, 'Create room').click();
        await page.waitForURL(/\/g\/[A-Za-z0-9_-]{22}$/);
        link = page.url();
        assert.ok(link.startsWith(`${origin}/g/`), `the room's link leads to ${origin}: ${link}`);
      }
      await isSecurePage(page, origin);
      await expectStatus(page, THROUGH_SERVER, 20_000);
      // Named once in the room (a name saved while the page is still joining can be lost).
      await page.getByText('Change your name', { exact: true }).click();
      await page.getByLabel('Your name', { exact: true }).fill(name);
      await button(page, 'Save name').click();
    }
    const names = Object.keys(people);
    for (const [name, { page }] of Object.entries(people)) {
      for (const other of names.filter((each) => each !== name)) {
        await page.getByRole('list', { name: 'Participants' }).getByRole('listitem', { name: new RegExp(`^${other}( |$)`) }).waitFor();
      }
      // The call buttons work: a secure page may use the microphone and camera.
      assert.equal(await button(page, 'Microphone').isEnabled(), true, `${name}'s Microphone button works`);
      await button(page, 'Microphone').click();
      await button(page, 'Camera').click();
    }
    await Promise.all(Object.entries(people).map(async ([name, { page }]) => {
      // Sound that arrived before this person's first click waits for one more.
      const enable = button(page, 'Click to enable sound');
      if (await enable.isVisible()) await enable.click();
      try {
        // Longer than by default: on a busy machine the relay's bandwidth estimate can pause
        // video for a while before it resumes.
        await hearsAndSeesEach(page, names.filter((other) => other !== name), 45_000);
      } catch (error) {
        // Say what the page showed too (a tile's caption tells a paused video from a missing one).
        const captions = await page.locator('#grid li .caption').allTextContents().catch(() => []);
        const transport = await transportInUse(page).catch((failure) => String(failure));
        throw new Error(`${name}: ${/** @type {Error} */ (error).message}; tiles: ${JSON.stringify(captions)}; transport: ${JSON.stringify(transport)}`, { cause: error });
      }
      const pair = await pairInUse(page);
      assert.equal(pair?.remote.address, relayAddress, `${name} reaches the media relay directly: ${JSON.stringify(pair)}`);
    }));
    for (const [name, { page }] of Object.entries(people)) {
      await say(page, `hello from ${name}`);
      for (const [other, { page: theirs }] of Object.entries(people)) {
        if (other !== name) await heard(theirs, `hello from ${name}`);
      }
    }
    await fitsPhone(people.Bob.page);
    for (const [name, { problems }] of Object.entries(people)) assert.deepEqual(problems, [], name);
  } finally {
    for (const { context } of Object.values(people)) await context.close();
  }
}

/**
 * A person's browser opens the plain-HTTP address and ends on the HTTPS page, a secure one.
 * @param {Browser} browser @param {string} plainUrl @param {string} origin where it should end
 */
export async function browserFollowsRedirect(browser, plainUrl, origin) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const response = await gotoOnHost(page, plainUrl);
    assert.equal(page.url(), `${origin}/`, `${plainUrl} leads to ${origin}/`);
    assert.equal(response?.status(), 200);
    assert.equal(response?.request().redirectedFrom()?.url(), plainUrl, 'by a redirect');
    await isSecurePage(page, origin);
    await page.getByRole('button', { name: 'Create room' }).waitFor();
  } finally {
    await context.close();
  }
}

/**
 * A pair room's path went straight between the two people's NAT routers (a hole punched through
 * both NATs with STUN), with no relay at either end.
 * @param {Awaited<ReturnType<typeof pairRoomChat>>} paths
 * @param {{ a: Host, b: Host }} hosts Ann's and Bob's
 */
export function assertDirectThroughNats(paths, { a, b }) {
  for (const [who, pair, own, other] of /** @type {const} */ ([['Ann', paths.ann, a, b], ['Bob', paths.bob, b, a]])) {
    const shown = `${who}'s path: ${JSON.stringify(pair)}`;
    assert.equal(pair?.remote.address, other.publicAddress, shown);
    assert.ok([own.address, own.publicAddress].includes(String(pair?.local.address)), shown);
    assert.ok(pair?.local.type !== 'relay' && pair?.remote.type !== 'relay', shown);
  }
}

/** Resolves whether a TCP connection to address:port is accepted. @param {string} address @param {number} port */
export function tcpAccepts(address, port) {
  return new Promise((resolve) => {
    const socket = netConnect(port, address, () => {
      socket.destroy();
      resolve(true);
    });
    socket.setTimeout(2_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(false));
  });
}

// --- an ACME CA: Debian's pebble -------------------------------------------------------------

/**
 * pebble (Let's Encrypt's ACME test server) on `host`, with pebble-challtestsrv as the DNS it
 * asks, which answers every name with `resolvesTo` (the server natter runs on). pebble checks
 * TLS-ALPN-01 on port 443 of that address, as Let's Encrypt does, and waits no random time
 * before it does (PEBBLE_VA_NOSLEEP). Its own HTTPS has a certificate from a test CA made here:
 * `testCa` is that CA's file, what natter's --acme-directory-ca takes.
 * @param {Host} host @param {string} resolvesTo
 */
export async function startPebble(host, resolvesTo) {
  const { dir, remove } = tempDir('natter-pebble-');
  const testCa = makeCa(dir, 'pebble-https');
  const https = makeLeaf(dir, 'pebble', testCa, { ips: [host.address] });
  const dns = `${host.address}:8053`;
  const challtestsrv = await startProgram('pebble-challtestsrv', host.wrap, 'pebble-challtestsrv', [
    '-defaultIPv4', resolvesTo, '-defaultIPv6', '',
    '-dns01', dns, '-http01', '', '-https01', '', '-tlsalpn01', '',
    '-management', `${host.address}:8055`,
  ], { ready: () => tcpAccepts(host.address, 8055) });
  const config = join(dir, 'pebble-config.json');
  writeFileSync(config, JSON.stringify({
    pebble: {
      listenAddress: `${host.address}:14000`,
      managementListenAddress: `${host.address}:15000`,
      certificate: https.cert,
      privateKey: https.key,
      httpPort: 80,
      tlsPort: 443,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
    },
  }, null, 2));
  /** @type {Awaited<ReturnType<typeof startProgram>> | undefined} */
  let pebble;
  try {
    pebble = await startProgram('pebble', host.wrap, 'pebble', ['-config', config, '-dnsserver', dns], {
      env: { PEBBLE_VA_NOSLEEP: '1' },
      ready: async () => (await httpsGet(host.address, 14000, host.address, '/dir', testCa.pem)).status === 200,
    });
  } catch (error) {
    await challtestsrv.stop();
    remove();
    throw error;
  }
  const running = pebble;
  /** GET on pebble's management interface. @param {string} path */
  const manage = async (path) => {
    const { status, body } = await httpsGet(host.address, 15000, host.address, path, testCa.pem);
    assert.equal(status, 200, `pebble's ${path}: ${body}`);
    return body;
  };
  return {
    directory: `https://${host.address}:14000/dir`,
    testCa: testCa.cert,
    /** pebble makes a new root and intermediate at each start: these, as PEM. */
    async issuers() {
      return { root: await manage('/roots/0'), intermediate: await manage('/intermediates/0') };
    },
    log: () => running.log(),
    async stop() {
      await running.stop();
      await challtestsrv.stop();
      remove();
    },
  };
}

// --- nginx ----------------------------------------------------------------------------------

/**
 * Debian's nginx on `host` with the repo's deploy/nginx.conf, changed only where its comment says
 * to: the certificate paths (the server name, chat.example.org, stays). It runs from a directory
 * of its own with a minimal main configuration (pid, logs and temporary files there) that
 * includes the changed copy in its http block, as /etc/nginx/nginx.conf includes conf.d/.
 * @param {Host} host @param {{ fullchain: string, key: string }} certificate
 */
export async function startNginx(host, certificate) {
  const { dir, remove } = tempDir('natter-nginx-');
  // Workers run as nobody and must enter the directory (temporary files, nothing secret: the key
  // is read by the master, which runs as root).
  chmodSync(dir, 0o755);
  const shipped = readFileSync(new URL('../../deploy/nginx.conf', import.meta.url), 'utf8');
  const placeholders = {
    '/etc/letsencrypt/live/chat.example.org/fullchain.pem': certificate.fullchain,
    '/etc/letsencrypt/live/chat.example.org/privkey.pem': certificate.key,
  };
  let site = shipped;
  for (const [placeholder, path] of Object.entries(placeholders)) {
    assert.equal(site.split(placeholder).length, 2, `deploy/nginx.conf names ${placeholder} once`);
    site = site.replace(placeholder, path);
  }
  writeFileSync(join(dir, 'natter.conf'), site);
  writeFileSync(join(dir, 'nginx.conf'), [
    `pid ${dir}/nginx.pid;`,
    'error_log stderr warn;',
    'worker_processes 1;',
    'events {}',
    'http {',
    `  access_log ${dir}/access.log;`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${dir}/${kind};`),
    `  include ${dir}/natter.conf;`,
    '}',
    '',
  ].join('\n'));
  /** @type {Awaited<ReturnType<typeof startProgram>>} */
  let nginx;
  try {
    nginx = await startProgram('nginx', host.wrap, 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'], {
      ready: () => tcpAccepts(host.address, 443),
      ownPids: true,
    });
  } catch (error) {
    remove();
    throw error;
  }
  return {
    /** The site configuration nginx runs (deploy/nginx.conf with the certificate paths changed). */
    site,
    shipped,
    /** nginx's access log so far. */
    accessLog: () => readFileSync(join(dir, 'access.log'), 'utf8'),
    log: () => nginx.log(),
    async stop() {
      await nginx.stop();
      remove();
    },
  };
}
