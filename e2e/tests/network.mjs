// @ts-check
// Network helpers for the TURN and firewall tests: a real coturn, TURN REST credentials, a bare
// STUN ping and an nftables packet filter. Everything here changes the machine's network, so
// use it only inside ../shared/netns-run (a private network namespace), as scripts/test does.

import { execFile, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Peers a relay must never reach: coturn would otherwise forward to the machine's own services. */
const DENIED_V4 = [
  '0.0.0.0-0.255.255.255',
  '10.0.0.0-10.255.255.255',
  '127.0.0.0-127.255.255.255',
  '169.254.0.0-169.254.255.255',
  '172.16.0.0-172.31.255.255',
  '192.168.0.0-192.168.255.255',
];
const DENIED_PEERS = [
  ...DENIED_V4,
  // The same ranges written as IPv4-mapped IPv6, which a dual-stack socket would reach as IPv4.
  ...DENIED_V4.map((range) => range.split('-').map((ip) => `::ffff:${ip}`).join('-')),
  '::1',
  'fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', // unique local
  'fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff', // link local
  // 198.18.0.0/15 stays allowed: the tests' browsers live there.
  // So does 203.0.113.0/24, topology.mjs's internet: relays reach the people's NAT routers there.
];

/**
 * Starts coturn with TURN REST authentication (`use-auth-secret`) and resolves once it answers
 * STUN over UDP and accepts TCP (asked from this process: `listenIp` must be reachable from here).
 * @param {{ secret: string, listenIp?: string, port?: number, minPort?: number, maxPort?: number, wrap?: string[] }} options
 *   `wrap`: a command coturn runs under, which must exec it (e.g. `nsenter --net=… --` to run it
 *   on another host of a test topology)
 */
export async function startCoturn({ secret, listenIp = '198.18.0.1', port = 3478, minPort = 40000, maxPort = 40999, wrap = [] }) {
  const dir = mkdtempSync(join(tmpdir(), 'natter-coturn-'));
  const config = join(dir, 'turnserver.conf');
  writeFileSync(config, [
    'use-auth-secret',
    `static-auth-secret=${secret}`,
    'realm=natter.test',
    `listening-ip=${listenIp}`,
    `relay-ip=${listenIp}`,
    `listening-port=${port}`,
    `min-port=${minPort}`,
    `max-port=${maxPort}`,
    'no-tls',
    'no-dtls',
    'no-cli',
    'fingerprint',
    'no-multicast-peers',
    ...DENIED_PEERS.map((range) => `denied-peer-ip=${range}`),
    `pidfile=${join(dir, 'turnserver.pid')}`,
    // coturn opens an SQLite user database even when only the shared secret is used: keep it
    // out of /var/lib/turn.
    `userdb=${join(dir, 'turndb')}`,
    'log-file=stdout', // one copy of every line, on the pipe below
    'simple-log',
    'verbose', // one line per allocation and refusal, with the user name: tests read them
    '',
  ].join('\n'));
  const [command, ...prefix] = [...wrap, 'turnserver'];
  const child = spawn(command, [...prefix, '-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (chunk) => (log += chunk));
  child.stderr.on('data', (chunk) => (log += chunk));
  if (process.env.NATTER_SERVER_LOG) child.stdout.pipe(process.stderr);
  // A test file that crashes would otherwise leave coturn holding the port for the next one.
  const killOnExit = () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', killOnExit);
  const stop = async () => {
    process.off('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await once(child, 'spawn'); // rejects with ENOENT when coturn is not installed
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error('cannot run turnserver (apt-get install coturn)', { cause: error });
  }
  // Ask the listeners themselves rather than wait for log lines, which depend on the log level.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`turnserver exited with ${child.exitCode ?? child.signalCode}:\n${log}`);
    }
    if ((await stunBinding(listenIp, port, 200)) && (await tcpAccepts(listenIp, port))) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`turnserver did not answer on ${listenIp}:${port} within 10 s:\n${log}`);
    }
  }
  const base = `turn:${listenIp}:${port}`;
  return { urls: { udp: `${base}?transport=udp`, tcp: `${base}?transport=tcp` }, stop, log: () => log };
}

/** @param {string} host @param {number} port */
function tcpAccepts(host, port) {
  return new Promise((resolve) => {
    const socket = connect(port, host, () => resolve(socket.destroy() && true));
    socket.on('error', () => resolve(false));
  });
}

/**
 * A TURN REST API credential (what a server hands out for coturn's `use-auth-secret`): the
 * username is "<expiry in Unix seconds>:<peer>" and the password base64(HMAC-SHA1(secret, username)).
 * A negative ttl gives an expired credential, a wrong secret a forged one.
 * @param {string} secret @param {number} ttlSeconds
 */
export function turnCredential(secret, ttlSeconds, peer = 'peer-test-0000000001', now = Date.now()) {
  const username = `${Math.floor(now / 1000) + ttlSeconds}:${peer}`;
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') };
}

/**
 * Sends a STUN Binding request over UDP (RFC 8489: 20-byte header, magic cookie, random
 * transaction id) and resolves whether a matching success response came back in time. The
 * request is repeated every 100 ms, as STUN clients do, so one lost packet does not decide.
 * @param {string} host @param {number} port @param {number} timeoutMs
 * @returns {Promise<boolean>}
 */
export function stunBinding(host, port, timeoutMs) {
  const id = randomBytes(12);
  const request = Buffer.alloc(20);
  request.writeUInt16BE(0x0001, 0); // Binding request; message length 0 (no attributes)
  request.writeUInt32BE(0x2112a442, 4);
  id.copy(request, 8);
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  return new Promise((resolve) => {
    /** @param {boolean} answer */
    const finish = (answer) => {
      clearInterval(resend);
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    };
    socket.on('message', (message) => {
      const matches = message.length >= 20 && message.readUInt16BE(0) === 0x0101 &&
        message.readUInt32BE(4) === 0x2112a442 && message.subarray(8, 20).equals(id);
      if (matches) finish(true);
    });
    // A send the kernel refuses counts as no answer (the timeout decides).
    socket.on('error', () => {});
    const send = () => socket.send(request, port, host, () => {});
    const resend = setInterval(send, 100);
    const timer = setTimeout(() => finish(false), timeoutMs);
    send();
  });
}

/**
 * An nftables filter that cuts the direct paths between processes in this namespace while
 * leaving chosen ports (a media server's, coturn's listener and relay range) reachable.
 *
 * It drops in the `input` hook rather than `output`: every packet here is local and passes
 * both, but a drop in `output` makes the sender's sendmsg() fail with EPERM, which no real
 * network does; dropped in `input`, packets vanish silently as behind a firewall or NAT.
 */
export class PacketFilter {
  static TABLE = 'natter_test';

  /**
   * Drops UDP packets whose source and destination ports are both outside `udpExceptPorts`
   * (every UDP packet if `blockAllUdp`), and likewise TCP if `tcpExceptPorts` is given (an
   * empty list leaves TCP alone). Ports are numbers or 'low-high' ranges. Replaces an earlier
   * filter.
   * @param {{ udpExceptPorts?: (number | string)[], tcpExceptPorts?: (number | string)[], blockAllUdp?: boolean }} rules
   */
  static async block({ udpExceptPorts = [], tcpExceptPorts = [], blockAllUdp = false }) {
    // Let the chosen ports pass, then drop the rest. Written as accepts rather than one
    // "sport != X dport != X drop": nft 1.0.6 merges two adjacent port comparisons into one
    // 4-byte compare, which for != means "either differs" and dropped packets to port X too.
    /** @param {'udp' | 'tcp'} protocol @param {(number | string)[]} ports */
    const rules = (protocol, ports) => {
      const set = `{ ${ports.join(', ')} }`;
      const open = ports.length ? [`${protocol} sport ${set} accept`, `${protocol} dport ${set} accept`] : [];
      return [...open, `meta l4proto ${protocol} drop`].map((rule) => `    ${rule}`);
    };
    // "add table" then "delete table" makes the delete safe when no table exists yet; the
    // whole script is applied atomically.
    await nft([
      `add table inet ${PacketFilter.TABLE}`,
      `delete table inet ${PacketFilter.TABLE}`,
      `table inet ${PacketFilter.TABLE} {`,
      '  chain input {',
      '    type filter hook input priority 0; policy accept;',
      ...rules('udp', blockAllUdp ? [] : udpExceptPorts),
      ...(tcpExceptPorts.length ? rules('tcp', tcpExceptPorts) : []),
      '  }',
      '}',
      '',
    ].join('\n'));
    return new PacketFilter();
  }

  /** Removes the filter (again: nothing happens). */
  async remove() {
    await nft(`add table inet ${PacketFilter.TABLE}\ndelete table inet ${PacketFilter.TABLE}\n`);
  }
}

/** @param {string} script */
async function nft(script) {
  const child = execFile('nft', ['-f', '-']);
  const done = new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(undefined) : reject(new Error(`nft failed: ${stderr}\n${script}`))));
  });
  child.stdin?.end(script);
  await done;
}
