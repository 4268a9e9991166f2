// @ts-check
// A network like the real one, built from network namespaces: the server on a host of its own with
// a public address, and people on private LANs behind NAT routers of their own, as on the
// internet. Browser tests that run server and browsers on one loopback-ish network never see
// what this shows (a media relay bound to the wrong address, candidates that match nothing).
//
// The namespace the tests run in (../shared/netns-run's) plays the internet: a bridge with
// 203.0.113.1/24 (TEST-NET-3) that every public host is plugged into. It does not forward, so
// private addresses lead nowhere and nothing leaves the machine.
//
//   internet (this process's namespace): bridge 203.0.113.1/24, no forwarding
//   ├── stun    203.0.113.3    coturn, answering STUN
//   ├── server  203.0.113.10   natter (--listen 0.0.0.0:PORT)
//   ├── router-a 203.0.113.21  masquerade ── LAN 10.1.0.0/24: router .1, host a 10.1.0.2
//   └── router-b 203.0.113.22  masquerade ── LAN 10.2.0.0/24: router .1, host b 10.2.0.2
//
// The routers behave like home routers: outgoing traffic is masqueraded to their public address
// (Linux keeps the source port where it can, so a mapping does not depend on the destination),
// and from outside only replies to what went out get in; everything else is dropped silently.
//
// Each host is a namespace held by a process of its own (`unshare --net`), reading its stdin: when
// this process ends, however it ends, the pipe closes, the holder exits and the namespace goes, so
// nothing is left behind (nothing is ever written to /run/netns). Programs run on a host through
// `nsenter --net=/proc/<holder>/ns/net` and `setpriv --pdeathsig KILL`, which exec them, so they
// too end with this process. The topology needs root and its own internet: build at most one at a
// time per namespace (scripts/test runs test files one at a time).

import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, startServer } from './harness.mjs';
import { startCoturn } from './network.mjs';

/** The internet's addresses (TEST-NET-3: documentation only, never routed anywhere real). */
export const INTERNET = '203.0.113.1';
export const PREFIX = 24;
/** The port natter listens on (any: the server host has nothing else). */
export const SERVER_PORT = 8000;

/**
 * @typedef {object} Host
 * @property {string} name       e.g. "server", "a"
 * @property {string} address    the address it is reached at from its own network
 * @property {string} publicAddress  the address the internet sees it as (a NAT router's for a LAN host)
 * @property {number} pid        the process holding its namespace
 * @property {string[]} wrap     the command prefix that runs a program on this host
 * @property {(command: string[], input?: string) => string} run  runs a command there, synchronously
 */

/** Runs a command in this process's namespace (the internet), synchronously. @param {string[]} command @param {string} [input] */
export function runHere(command, input) {
  try {
    return execFileSync(command[0], command.slice(1), { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (error) {
    const failed = /** @type {{ stderr?: string }} */ (error);
    throw new Error(`${command.join(' ')} failed: ${failed.stderr ?? error}`, { cause: error });
  }
}

/**
 * A new namespace held by a process of its own. Resolves once the process is inside it.
 * @param {string} name @param {string} address @param {string} publicAddress
 * @returns {Promise<Host & { holder: import('node:child_process').ChildProcess }>}
 */
export async function newHost(name, address, publicAddress = address) {
  // `read` returns when this process's end of the pipe closes: the namespace lives exactly as long
  // as we do, unless stop() kills the holder first.
  const holder = spawn('unshare', ['--net', '--', 'sh', '-c', 'echo ready; read line'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const ready = once(/** @type {import('node:stream').Readable} */ (holder.stdout), 'data');
  const failed = once(holder, 'exit').then(([code]) => {
    throw new Error(`unshare --net exited with ${code} (the topology needs root)`);
  });
  await Promise.race([ready, failed]);
  failed.catch(() => {}); // the holder exits when the topology is stopped
  const pid = /** @type {number} */ (holder.pid);
  // Programs on the host die with this process (parent-death signal), however it ends, so none
  // keeps a namespace alive after a crash.
  const wrap = ['nsenter', `--net=/proc/${pid}/ns/net`, '--', 'setpriv', '--pdeathsig', 'KILL', '--'];
  /** @type {Host['run']} */
  const run = (command, input) => runHere([...wrap, ...command], input);
  // No duplicate address detection: addresses are final at once, so Chromium does not see them
  // change under its first page load (ERR_NETWORK_CHANGED). And no IPv6 forwarding anywhere.
  run(['sh', '-c', [
    'echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad',
    'echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad',
    'echo 0 > /proc/sys/net/ipv6/conf/all/forwarding',
    'echo 0 > /proc/sys/net/ipv4/ip_forward',
    'ip link set lo up',
  ].join(' && ')]);
  return { name, address, publicAddress, pid, wrap, run, holder };
}

/**
 * Builds the topology above in this process's network namespace. Call `stop()` when done (also
 * done on exit).
 */
export async function buildTopology() {
  const here = runHere;
  if (here(['ip', '-4', 'addr', 'show']).includes(`${INTERNET}/`)) {
    throw new Error(`${INTERNET} is already in use in this namespace: another topology is running (run test files one at a time)`);
  }
  const tag = String(process.pid);
  const bridge = `nt${tag}-net`;
  /** @type {(Host & { holder: import('node:child_process').ChildProcess })[]} */
  const hosts = [];
  /** The veth ends plugged into the internet's bridge; deleting one deletes its pair. */
  /** @type {string[]} */
  const ports = [];
  const forwarding = here(['cat', '/proc/sys/net/ipv4/ip_forward']).trim();

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
    try {
      writeFileSync('/proc/sys/net/ipv4/ip_forward', `${forwarding}\n`);
    } catch {
      // not ours to restore any more
    }
  };
  process.once('exit', stopNow);

  try {
    // The internet: a switch with an address for this process (tests and coturn's readiness
    // check reach the public hosts from here), forwarding nothing anywhere.
    writeFileSync('/proc/sys/net/ipv4/ip_forward', '0\n');
    here(['ip', 'link', 'add', bridge, 'type', 'bridge']);
    here(['sh', '-c', `echo 0 > /proc/sys/net/ipv6/conf/${bridge}/accept_dad`]);
    here(['ip', 'addr', 'add', `${INTERNET}/${PREFIX}`, 'dev', bridge]);
    here(['ip', 'link', 'set', bridge, 'up']);

    /** Plugs a host into the internet with a public address. @param {Host} host @param {string} ip @param {string} link */
    const plugIn = (host, ip, link) => {
      const port = `nt${tag}-${ports.length}`;
      here(['ip', 'link', 'add', port, 'type', 'veth', 'peer', 'name', link, 'netns', String(host.pid)]);
      ports.push(port);
      // A switch port needs no address of its own (and so none that is tentative for a while).
      here(['sh', '-c', `echo 1 > /proc/sys/net/ipv6/conf/${port}/disable_ipv6`]);
      here(['ip', 'link', 'set', port, 'master', bridge, 'up']);
      host.run(['sh', '-c', [
        `echo 0 > /proc/sys/net/ipv6/conf/${link}/accept_dad`,
        `ip addr add ${ip}/${PREFIX} dev ${link}`,
        `ip link set ${link} up`,
        `ip route add default via ${INTERNET}`,
      ].join(' && ')]);
    };

    /** @param {string} name @param {string} ip */
    const publicHost = async (name, ip) => {
      const host = await newHost(name, ip, ip);
      hosts.push(host);
      plugIn(host, ip, 'eth0');
      return host;
    };

    /**
     * A person's host on a private LAN behind a NAT router of its own.
     * @param {string} name @param {string} publicIp @param {string} lan e.g. "10.1.0"
     */
    const homeHost = async (name, publicIp, lan) => {
      const router = await newHost(`router-${name}`, publicIp, publicIp);
      hosts.push(router);
      plugIn(router, publicIp, 'wan');
      const host = await newHost(name, `${lan}.2`, publicIp);
      hosts.push(host);
      router.run(['ip', 'link', 'add', 'lan', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(host.pid)]);
      router.run(['sh', '-c', [
        'echo 0 > /proc/sys/net/ipv6/conf/lan/accept_dad',
        `ip addr add ${lan}.1/24 dev lan`,
        'ip link set lan up',
        'echo 1 > /proc/sys/net/ipv4/ip_forward',
      ].join(' && ')]);
      router.run(['nft', '-f', '-'], [
        'table inet natter_router {',
        // Only replies get in from outside; a packet for no mapping is dropped, not answered (a
        // port-unreachable reply would also pin a conntrack entry that spoils the hole punch).
        '  chain input {',
        '    type filter hook input priority 0; policy accept;',
        '    iifname "wan" ct state established,related accept',
        '    iifname "wan" drop',
        '  }',
        '  chain forward {',
        '    type filter hook forward priority 0; policy accept;',
        '    iifname "wan" ct state established,related accept',
        '    iifname "wan" drop',
        '  }',
        '  chain postrouting {',
        '    type nat hook postrouting priority srcnat; policy accept;',
        '    oifname "wan" masquerade',
        '  }',
        '}',
        '',
      ].join('\n'));
      host.run(['sh', '-c', [
        'echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad',
        `ip addr add ${lan}.2/24 dev eth0`,
        'ip link set eth0 up',
        `ip route add default via ${lan}.1`,
      ].join(' && ')]);
      return { host, router };
    };

    const stun = await publicHost('stun', '203.0.113.3');
    const server = await publicHost('server', '203.0.113.10');
    const a = await homeHost('a', '203.0.113.21', '10.1.0');
    const b = await homeHost('b', '203.0.113.22', '10.2.0');
    return {
      /** @type {Host} */ stun,
      /** @type {Host} */ server,
      /** @type {Host} */ a: a.host,
      /** @type {Host} */ b: b.host,
      /** @type {Host} */ routerA: a.router,
      /** @type {Host} */ routerB: b.router,
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

/** @typedef {Awaited<ReturnType<typeof buildTopology>>} Topology */

/**
 * coturn on the topology's STUN host, answering STUN (and TURN, with `secret`) on port 3478.
 * @param {Topology} topology @param {string} [secret]
 */
export async function startStunOnHost(topology, secret = 'not-used-for-stun') {
  const coturn = await startCoturn({ secret, listenIp: topology.stun.address, wrap: topology.stun.wrap });
  return { ...coturn, stunUrl: `stun:${topology.stun.address}:3478` };
}

/**
 * natter on a host of the topology, listening on all interfaces, with the URL browsers on other
 * hosts use. Options as startServer's (harness.mjs), plus the port.
 * @param {Host} host
 * @param {{ port?: number, args?: string[], env?: Record<string, string>, limits?: string[] }} [options]
 */
export async function startServerOnHost(host, options = {}) {
  const port = options.port ?? SERVER_PORT;
  const server = await startServer({ ...options, listen: `0.0.0.0:${port}`, wrap: host.wrap, urlHost: host.address });
  // A test that throws before its after hook would leave natter running in the host's namespace.
  const killOnExit = () => server.child.kill('SIGKILL');
  process.once('exit', killOnExit);
  return {
    ...server,
    async stop() {
      process.off('exit', killOnExit);
      await server.stop();
    },
  };
}

/** The origin of a natter on the server host, as browsers see it. @param {Host} host */
export const originOn = (host, port = SERVER_PORT) => `http://${host.address}:${port}`;

/**
 * Chromium running on a host of the topology: Playwright starts a small script that enters the
 * host's namespace and execs /usr/bin/chromium. Pages come over plain http from a non-loopback
 * address, which is no secure context (no camera, no Web Crypto's subtle): `secureOrigins` are
 * treated as secure (TLS is not what these tests are about).
 * @param {Host} host @param {string[]} secureOrigins @param {string[]} [extraArgs]
 */
export async function launchBrowserOnHost(host, secureOrigins, extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), `natter-chromium-${host.name}-`));
  const script = join(dir, 'chromium');
  const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
  writeFileSync(script, `#!/bin/sh\nexec ${host.wrap.join(' ')} ${chromiumPath} "$@"\n`);
  chmodSync(script, 0o755);
  const removeScript = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeScript);
  const browser = await chromium.launch({
    executablePath: script,
    args: [...CHROMIUM_ARGS, `--unsafely-treat-insecure-origin-as-secure=${secureOrigins.join(',')}`, ...extraArgs],
  });
  browser.on('disconnected', () => {
    process.off('exit', removeScript);
    removeScript();
  });
  return browser;
}

/**
 * page.goto that tries again once if the host's network "changed" under the first navigation
 * (ERR_NETWORK_CHANGED: Chromium saw an address appear as it started).
 * @param {import('playwright-core').Page} page @param {string} url
 */
export async function gotoOnHost(page, url) {
  try {
    return await page.goto(url);
  } catch (error) {
    if (!String(error).includes('ERR_NETWORK_CHANGED')) throw error;
    return page.goto(url);
  }
}

// --- people on hosts ------------------------------------------------------------------------

/** A phone's viewport (the size UI changes are tested at besides a desktop's). */
export const PHONE = { width: 390, height: 844 };

/**
 * One person: a browser context of their own (own storage, own identity) on a browser of some
 * host, with callTestPage's hooks (their connections' getStats; sound only after a click) and the
 * page's errors collected.
 * @param {import('playwright-core').Browser} browser @param {string} baseURL
 * @param {{ viewport?: { width: number, height: number }, initScript?: () => void }} [options]
 */
export async function personOnHost(browser, baseURL, options = {}) {
  const context = await browser.newContext({ baseURL, ...(options.viewport ? { viewport: options.viewport } : {}) });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseURL });
  if (options.initScript) await context.addInitScript(options.initScript);
  const page = await context.newPage();
  /** @type {string[]} */
  const problems = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  return { context, page, problems };
}

/**
 * The local and remote ends of the candidate pair the page's live connection uses (callTestPage
 * keeps the connections): which addresses its packets really go between.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<{ local: { type: string, address: string }, remote: { type: string, address: string } } | null>}
 */
export function selectedPair(page) {
  return page.evaluate(async () => {
    const list = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).natterTestConnections);
    const pc = list.findLast((each) => each.connectionState === 'connected');
    if (!pc) return null;
    const stats = await pc.getStats();
    /** @type {any} */
    let pair = null;
    stats.forEach((each) => {
      if (each.type === 'transport' && each.selectedCandidatePairId) pair = stats.get(each.selectedCandidatePairId);
    });
    if (!pair) return null;
    /** @param {string} id */
    const end = (id) => {
      const candidate = stats.get(id);
      return { type: String(candidate?.candidateType), address: String(candidate?.address ?? candidate?.ip) };
    };
    return { local: end(pair.localCandidateId), remote: end(pair.remoteCandidateId) };
  });
}

/**
 * In a group room's page: for each other person in the grid (by name), the audio energy and the
 * video frames received so far on the tracks their tile plays (matched to the connection's inbound
 * streams by track id), so a test can tell whom it hears and sees, not only that something
 * arrives. A paused video (too little bandwidth) has no track in its tile while paused.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<Record<string, { audio: string, energy: number, video: string, frames: number, width: number }>>}
 */
export function mediaFromEach(page) {
  return page.evaluate(async () => {
    const list = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).natterTestConnections);
    const pc = list.findLast((each) => each.connectionState !== 'closed');
    /** @type {Map<string, any>} */
    const byTrack = new Map();
    (await pc?.getStats())?.forEach((each) => {
      if (each.type === 'inbound-rtp') byTrack.set(each.trackIdentifier, each);
    });
    /** @type {Record<string, { audio: string, energy: number, video: string, frames: number, width: number }>} */
    const found = {};
    for (const item of document.querySelectorAll('#grid li:not(.own)')) {
      const name = (item.querySelector('.caption')?.textContent ?? '').split(' · ')[0];
      const audio = /** @type {HTMLAudioElement | null} */ (item.querySelector('audio'));
      const video = /** @type {HTMLVideoElement | null} */ (item.querySelector('video'));
      /** @param {HTMLMediaElement | null} element */
      const track = (element) => /** @type {MediaStream | null} */ (element?.srcObject ?? null)?.getTracks()[0]?.id ?? '';
      found[name] = {
        audio: track(audio),
        energy: byTrack.get(track(audio))?.totalAudioEnergy ?? 0,
        video: track(video),
        frames: byTrack.get(track(video))?.framesDecoded ?? 0,
        width: video?.videoWidth ?? 0,
      };
    }
    return found;
  });
}

/**
 * Waits until the page has heard (audio energy grew) and seen (frames decoded and shown, at a
 * width) each of these people, on the tracks their tiles play; fails naming whoever is missing.
 * Growth counts from when a track is first seen, so a video that the server pauses for a while
 * and resumes still counts once it has shown frames.
 * @param {import('playwright-core').Page} page @param {string[]} names @param {number} [timeout]
 */
export async function hearsAndSeesEach(page, names, timeout = 45_000) {
  /** The first reading of each track, by track id. @type {Map<string, number>} */
  const first = new Map();
  /** @type {Set<string>} */
  const heard = new Set();
  /** @type {Set<string>} */
  const seen = new Set();
  const deadline = Date.now() + timeout;
  /** @type {Record<string, { audio: string, energy: number, video: string, frames: number, width: number }>} */
  let last = {};
  for (;;) {
    last = await mediaFromEach(page);
    for (const name of names) {
      const media = last[name];
      if (!media) continue;
      if (media.audio && !first.has(media.audio)) first.set(media.audio, media.energy);
      if (media.video && !first.has(media.video)) first.set(media.video, media.frames);
      if (media.audio && media.energy - (first.get(media.audio) ?? 0) > 0.0001) heard.add(name);
      if (media.video && media.width > 0 && media.frames - (first.get(media.video) ?? 0) >= 10) seen.add(name);
    }
    const missing = names.flatMap((name) => [
      ...(heard.has(name) ? [] : [`${name}'s sound`]),
      ...(seen.has(name) ? [] : [`${name}'s video`]),
    ]);
    if (!missing.length) return;
    if (Date.now() > deadline) throw new Error(`${page.url()} did not get ${missing.join(', ')}; last reading ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

// --- the room suites' default: server and browsers on hosts of their own ---------------------

/** How many servers a test file may start on the server host (SERVER_PORT and the next ones). */
const SPARE_PORTS = 10;

/**
 * Registers before/after hooks like harness.mjs's serverAndBrowser(), on the topology: natter on
 * the server host listening on all interfaces, and one shared browser on person host a (another
 * on host b with `secondBrowser`), with the server's public origins treated as secure (pages are
 * plain http on 203.0.113.10: TLS is not what the room suites test). `shared.server.url` is the
 * server's public URL, so test bodies read as before; `shared.startServer(options)` starts another
 * natter on the server host (on the next free port, or on `listen`'s port to restart one).
 * @param {{ browserArgs?: string[], serverArgs?: string[], secondBrowser?: boolean }} [options]
 */
export function onTopology(options = {}) {
  const shared = /** @type {any} */ ({});
  /** @type {Set<number>} */
  const used = new Set();
  /** @type {{ stop(): Promise<void> }[]} */
  const started = [];
  before(async () => {
    shared.topology = await buildTopology();
    const topology = shared.topology;
    /** @param {{ listen?: string, args?: string[], dataDir?: string, limits?: string[], env?: Record<string, string> }} [serverOptions] */
    shared.startServer = async (serverOptions = {}) => {
      let port;
      if (serverOptions.listen) port = Number(serverOptions.listen.split(':').pop());
      else {
        port = SERVER_PORT;
        while (used.has(port)) port += 1;
        if (port >= SERVER_PORT + SPARE_PORTS) throw new Error('no spare port left on the server host');
      }
      used.add(port);
      const { listen: _listen, ...rest } = serverOptions;
      const server = await startServerOnHost(topology.server, { ...rest, args: [...(options.serverArgs ?? []), ...(rest.args ?? [])], port });
      /** @type {Promise<void> | null} */
      let stopping = null;
      const stoppable = { ...server, stop: () => (stopping ??= server.stop()) };
      started.push(stoppable);
      return stoppable;
    };
    shared.server = await shared.startServer();
    const origins = Array.from({ length: SPARE_PORTS }, (_, i) => originOn(topology.server, SERVER_PORT + i));
    const launches = [launchBrowserOnHost(topology.a, origins, options.browserArgs ?? [])];
    if (options.secondBrowser) launches.push(launchBrowserOnHost(topology.b, origins, options.browserArgs ?? []));
    [shared.browser, shared.browserB] = await Promise.all(launches);
  });
  after(async () => {
    await shared.browser?.close();
    await shared.browserB?.close();
    // Servers the tests stopped themselves are already gone (their stop() runs once).
    for (const server of started) await server.stop();
    await shared.topology?.stop();
  });
  return shared;
}

// --- restrictive networks: a firewall on the people's routers ---------------------------------

/**
 * A firewall on NAT routers of the topology, as a corporate or hotel network has one: UDP passes
 * the router (either way) only to and from `udpAllowed` — "address" for every port of a host,
 * "address:port" for one — and nothing at all passes to or from `blockedHosts`. TCP to every
 * other host is left alone (the web and ICE-TCP still work). Packets are dropped silently, as
 * such firewalls do, in a table of its own beside the router's NAT; `remove()` deletes that table
 * and the router is open again. Dropped packets never make a connection-tracking entry, so
 * nothing of the blocked time is left behind.
 * @param {Host[]} routers e.g. `[topology.routerA, topology.routerB]`
 * @param {{ udpAllowed?: string[], blockedHosts?: string[] }} rules
 */
export function firewallRouters(routers, { udpAllowed = [], blockedHosts = [] }) {
  const table = 'natter_firewall';
  /** @param {string} destination "address" or "address:port" */
  const udpPasses = (destination) => {
    const [address, port] = destination.split(':');
    return port
      ? [`ip daddr ${address} udp dport ${port} accept`, `ip saddr ${address} udp sport ${port} accept`]
      : [`ip daddr ${address} meta l4proto udp accept`, `ip saddr ${address} meta l4proto udp accept`];
  };
  const rules = [
    ...blockedHosts.flatMap((address) => [`ip daddr ${address} drop`, `ip saddr ${address} drop`]),
    ...udpAllowed.flatMap(udpPasses),
    'meta l4proto udp drop',
  ];
  // "add table" then "delete table" makes the delete safe when there is none yet; nft applies
  // the whole script at once.
  const script = [
    `add table inet ${table}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    '  chain forward {',
    // Before the router's own forward chain; a drop in either chain is final.
    '    type filter hook forward priority -10; policy accept;',
    ...rules.map((rule) => `    ${rule}`),
    '  }',
    '}',
    '',
  ].join('\n');
  for (const router of routers) router.run(['nft', '-f', '-'], script);
  return {
    /** Opens the routers again (idempotent). */
    remove() {
      for (const router of routers) router.run(['nft', '-f', '-'], `add table inet ${table}\ndelete table inet ${table}\n`);
    },
  };
}
