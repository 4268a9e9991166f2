// The connection check (/check): may this page use a microphone and camera at all (only secure
// pages may), can this browser reach the server, its STUN and TURN servers and
// its media relay, over UDP or only TCP, and which kinds of ICE candidates does it gather? Each
// result is a plain sentence and, where something fails, what to do about it. No DOM here: the
// page (check.js) shows the results.
//
// It joins a fresh group room of its own, alone, to get what a room's people get: the ICE servers
// with a TURN credential, and a connection to the media relay.

import * as protocol from './protocol.js';
import { Signaling } from './signaling.js';
import { SfuLink } from './sfu-link.js';
import { iceUrls, isTurnUrl, selectedCandidates } from './peer.js';

/** @typedef {'running' | 'ok' | 'warn' | 'fail' | 'skipped'} Outcome */
/** @typedef {{ id: string, label: string, outcome: Outcome, text: string, fix: string }} CheckResult */

/** How long one gathering or connection attempt may take. */
const GATHER_MS = 5_000;
const CONNECT_MS = 10_000;

/**
 * The transport a TURN URL uses to reach the TURN server, as people name it.
 * @param {string} url
 */
function turnTransport(url) {
  if (url.startsWith('turns:')) return 'TLS';
  return /[?&]transport=tcp/i.test(url) ? 'TCP' : 'UDP';
}

/**
 * Gathers candidates with `config` until gathering completes or `GATHER_MS` pass.
 * @param {RTCConfiguration} config
 * @returns {Promise<{ types: Set<string>, errors: number[] }>} candidate types seen, and the error
 *   codes of failed STUN/TURN requests (401: credentials refused)
 */
export async function gather(config) {
  const pc = new RTCPeerConnection(config);
  /** @type {Set<string>} */
  const types = new Set();
  /** @type {number[]} */
  const errors = [];
  try {
    pc.createDataChannel('check');
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, GATHER_MS);
      pc.onicecandidate = ({ candidate }) => {
        if (!candidate) {
          clearTimeout(timer);
          resolve(undefined);
        } else if (candidate.type) types.add(candidate.type);
      };
      pc.onicecandidateerror = (event) => {
        errors.push(/** @type {RTCPeerConnectionIceErrorEvent} */ (event).errorCode);
      };
      pc.setLocalDescription().catch(() => resolve(undefined));
    });
  } finally {
    pc.close();
  }
  return { types, errors };
}

/** Plain names of candidate types. */
const CANDIDATE_NAMES = Object.freeze({
  host: 'this device’s own addresses',
  srflx: 'its public address (found through STUN)',
  prflx: 'an address seen by the other side',
  relay: 'a relay address (TURN)',
});

/**
 * The result for calls on this page: browsers give a microphone, camera or screen only to secure
 * pages (https, or this computer's own address), whatever the network allows.
 * @param {boolean} secure the page's `isSecureContext`
 * @returns {CheckResult}
 */
export function callsResult(secure) {
  const label = 'Calls (microphone, camera, screen)';
  return secure
    ? { id: 'secure', label, outcome: 'ok', text: 'This page is secure, so the browser allows calls on it.', fix: '' }
    : {
        id: 'secure', label, outcome: 'fail',
        text: 'Calls need a secure (HTTPS) page, and this one is plain HTTP. Chat and files still work.',
        fix: 'Whoever runs this server can turn on HTTPS: natter --tls-self-signed on a LAN, --tls-cert/--tls-key with a certificate, or --acme-domain for a public name.',
      };
}

/**
 * Runs every check, reporting each result as soon as it is known (first as `running`).
 * @param {{ url: string, secure: boolean, report: (result: CheckResult) => void }} options `url`:
 *   the WebSocket URL; `secure`: the page's `isSecureContext`
 * @returns {Promise<CheckResult[]>} the final results
 */
export async function runChecks({ url, secure, report }) {
  /** @type {Map<string, CheckResult>} */
  const results = new Map();
  /** @param {CheckResult} result */
  const set = (result) => {
    results.set(result.id, result);
    report(result);
  };
  /** @param {string} id @param {string} label */
  const running = (id, label) => set({ id, label, outcome: 'running', text: 'Checking…', fix: '' });

  set(callsResult(secure));
  running('server', 'Server connection (WebSocket)');
  const started = performance.now();
  const session = await joinAlone(url);
  if (!session.welcome) {
    set({
      id: 'server',
      label: 'Server connection (WebSocket)',
      outcome: 'fail',
      text: `Could not reach this Natter server over a WebSocket (${session.detail}).`,
      fix: 'A proxy or firewall may block WebSockets. Try another network, or ask its administrator to allow WebSocket connections to this site.',
    });
    return [...results.values()];
  }
  const { welcome, signaling, listen } = session;
  set({
    id: 'server',
    label: 'Server connection (WebSocket)',
    outcome: 'ok',
    text: `Reached the server (${Math.round(performance.now() - started)} ms, the bot check included).`,
    fix: '',
  });
  const iceServers = welcome.iceServers;
  try {
    await checkStun(iceServers, set, running);
    await checkTurn(iceServers, set, running);
    await checkRelay(signaling, listen, set, running);
    await checkCandidates(iceServers, set, running);
  } finally {
    signaling.stop();
  }
  return [...results.values()];
}

/**
 * Joins a new group room alone, as a person would, to get its welcome.
 * @param {string} url
 * @returns {Promise<{ welcome: Extract<protocol.ServerMessage, { type: 'welcome' }>, signaling: Signaling,
 *   listen: (handler: (message: protocol.ServerMessage) => void) => void } | { welcome: null, detail: string }>}
 */
function joinAlone(url) {
  return new Promise((resolve) => {
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    /** @type {((message: protocol.ServerMessage) => void) | null} */
    let onSfu = null;
    // A throwaway identity: the check is nobody in particular.
    const peerSecret = protocol.newPeerSecret();
    const signaling = new Signaling(
      {
        url,
        room: protocol.newRoomId(),
        kind: 'group',
        identity: Promise.resolve({ peerId: protocol.peerIdOf(peerSecret), peerSecret, name: 'Connection check' }),
      },
      {
        onState: (state, detail) => {
          // Before the welcome, a closed socket or a refusal is the answer; after it, the
          // signaling's own reconnecting carries on under the checks.
          if (timer !== undefined && (state === 'retrying' || state === 'stopped')) {
            clearTimeout(timer);
            timer = undefined;
            signaling.stop();
            resolve({ welcome: null, detail: detail?.error ?? (state === 'retrying' ? 'no answer' : 'refused') });
          }
        },
        onMessage: (message) => {
          if (message.type === 'welcome') {
            clearTimeout(timer);
            timer = undefined;
            resolve({ welcome: message, signaling, listen: (handler) => (onSfu = handler) });
          } else onSfu?.(message);
        },
      },
    );
    signaling.start();
    timer = setTimeout(() => {
      signaling.stop();
      resolve({ welcome: null, detail: 'no answer within 30 s' });
    }, 30_000);
  });
}

/**
 * @param {RTCIceServer[]} iceServers
 * @param {(result: CheckResult) => void} set
 * @param {(id: string, label: string) => void} running
 */
async function checkStun(iceServers, set, running) {
  const label = 'STUN (finding your public address)';
  const stun = iceServers.filter((server) => iceUrls(server).some((u) => u.startsWith('stun')));
  if (stun.length === 0) {
    set({
      id: 'stun', label, outcome: 'skipped',
      text: 'This server names no STUN server, so browsers on different networks rarely connect directly.',
      fix: 'The server’s operator can add one with --ice-server.',
    });
    return;
  }
  running('stun', label);
  const { types } = await gather({ iceServers: stun });
  set(
    types.has('srflx')
      ? { id: 'stun', label, outcome: 'ok', text: 'The STUN server answered: your public address is known.', fix: '' }
      : {
          id: 'stun', label, outcome: 'fail',
          text: 'The STUN server did not answer: outgoing UDP is probably blocked on this network.',
          fix: 'Direct connections will fail here. Natter falls back to TURN over TCP or to its own server; to connect directly, allow outgoing UDP.',
        },
  );
}

/**
 * One line per TURN transport (UDP, TCP, TLS): does it allocate a relay?
 * @param {RTCIceServer[]} iceServers
 * @param {(result: CheckResult) => void} set
 * @param {(id: string, label: string) => void} running
 */
async function checkTurn(iceServers, set, running) {
  const turn = iceServers.find((server) => iceUrls(server).some(isTurnUrl));
  if (!turn) {
    set({
      id: 'turn', label: 'TURN relay', outcome: 'skipped',
      text: 'This server has no TURN relay. When a direct connection is impossible, pair rooms go through Natter’s own server instead.',
      fix: '',
    });
    return;
  }
  const urls = iceUrls(turn).filter(isTurnUrl);
  for (const [index, url] of urls.entries()) {
    const transport = turnTransport(url);
    const id = `turn-${index}`;
    // Two URLs of one transport (TLS on 5349 and on 443) are told apart by their address.
    const twin = urls.some((other) => other !== url && turnTransport(other) === transport);
    const label = `TURN relay over ${transport}${twin ? ` (${url.replace(/^turns?:/, '').replace(/\?.*$/, '')})` : ''}`;
    running(id, label);
    const { types, errors } = await gather({
      iceServers: [{ urls: url, username: turn.username, credential: turn.credential }],
      iceTransportPolicy: 'relay',
    });
    if (types.has('relay')) {
      set({ id, label, outcome: 'ok', text: `The TURN server gave this browser a relay over ${transport}.`, fix: '' });
    } else if (errors.includes(401)) {
      set({
        id, label, outcome: 'fail',
        text: 'The TURN server refused this browser’s credentials.',
        fix: 'The operator’s TURN secret does not match the TURN server’s (--turn-secret and coturn’s static-auth-secret), or the clocks of the two servers differ.',
      });
    } else {
      set({
        id, label, outcome: 'fail',
        text: `The TURN server did not answer over ${transport}.`,
        fix: transport === 'UDP'
          ? 'UDP is probably blocked on this network; TURN over TCP or TLS, where offered, still works.'
          : 'A firewall may block this port; try another network, or ask the operator for TURN over TLS on port 443.',
      });
    }
  }
}

/**
 * Connects to the server's media relay as a group room would and reports UDP or TCP. Without
 * STUN or TURN: reaching the relay through TURN would hide whether UDP to it is blocked.
 * @param {Signaling} signaling
 * @param {(handler: (message: protocol.ServerMessage) => void) => void} listen the server's messages
 * @param {(result: CheckResult) => void} set
 * @param {(id: string, label: string) => void} running
 */
async function checkRelay(signaling, listen, set, running) {
  const label = 'Natter’s media relay (group rooms, and pair rooms that cannot connect directly)';
  running('relay', label);
  /** @type {SfuLink | null} */
  let link = null;
  const transport = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), CONNECT_MS);
    link = new SfuLink(
      { iceServers: [] },
      {
        sendOffer: (sdp, tracks) => signaling.sfuOffer(sdp, tracks),
        onChannelState: (open) => {
          if (!open || !link) return;
          clearTimeout(timer);
          selectedProtocol(link.pc).then(resolve);
        },
        onData: () => undefined,
        onFilesChannel: () => undefined,
        onFileData: () => undefined,
        onMedia: () => undefined,
        onConnectionState: (state) => {
          if (state === 'failed') {
            clearTimeout(timer);
            resolve(null);
          }
        },
      },
    );
    listen((message) => {
      if (message.type === 'sfu-answer') link?.handleAnswer(message.sdp);
      else if (message.type === 'sfu-tracks') link?.handleTracks(message.tracks, message.need);
    });
  });
  /** @type {SfuLink | null} */ (link)?.close();
  if (transport === 'udp') {
    set({ id: 'relay', label, outcome: 'ok', text: 'Reached over UDP, the fastest way.', fix: '' });
  } else if (transport === 'tcp') {
    set({
      id: 'relay', label, outcome: 'warn',
      text: 'Reached only over TCP: UDP to the server is blocked on this network.',
      fix: 'Chat and files work; calls may lag. Allowing outgoing UDP to this server fixes that.',
    });
  } else {
    set({
      id: 'relay', label, outcome: 'fail',
      text: 'Could not reach the media relay over UDP or TCP.',
      fix: 'Group rooms, and pair rooms whose direct path fails, will not connect. A firewall blocks the relay’s port, or the server’s --public-ip is wrong.',
    });
  }
}

/**
 * The protocol of the connection's chosen candidate pair ('udp' or 'tcp'), or null.
 * @param {RTCPeerConnection} pc
 * @returns {Promise<string | null>}
 */
async function selectedProtocol(pc) {
  const { local } = selectedCandidates(await pc.getStats());
  return local?.protocol ?? null;
}

/**
 * Which kinds of candidates this browser gathers with every server: what a pair room offers.
 * @param {RTCIceServer[]} iceServers
 * @param {(result: CheckResult) => void} set
 * @param {(id: string, label: string) => void} running
 */
async function checkCandidates(iceServers, set, running) {
  const label = 'Ways this browser can be reached';
  running('candidates', label);
  const { types } = await gather({ iceServers });
  const found = [...types].map((type) => CANDIDATE_NAMES[/** @type {keyof typeof CANDIDATE_NAMES} */ (type)] ?? type);
  const direct = types.has('host') || types.has('srflx');
  set({
    id: 'candidates',
    label,
    outcome: found.length === 0 ? 'fail' : direct ? 'ok' : 'warn',
    text: found.length ? `Found ${found.join(', ')}.` : 'Found no way at all: WebRTC may be turned off in this browser.',
    fix: found.length === 0
      ? 'Check the browser’s settings or extensions that block WebRTC.'
      : direct ? '' : 'Only relayed connections are possible from here.',
  });
}

/**
 * What the results mean for a conversation: one sentence on the network, and one more when
 * this page cannot make calls.
 * @param {CheckResult[]} results
 */
export function summary(results) {
  const insecure = results.some((result) => result.id === 'secure' && result.outcome === 'fail');
  const network = networkSummary(results, insecure);
  return insecure ? `${network} Calls cannot work on this page: it is plain HTTP, not HTTPS.` : network;
}

/** @param {CheckResult[]} results @param {boolean} insecure not "Everything works" then */
function networkSummary(results, insecure) {
  const by = new Map(results.map((result) => [result.id, result.outcome]));
  if (by.get('server') === 'fail') return 'Natter cannot work on this network: the server is unreachable.';
  const turn = [...by].filter(([id]) => id.startsWith('turn-')).map(([, outcome]) => outcome);
  const turnOk = turn.includes('ok');
  const relayOk = by.get('relay') === 'ok' || by.get('relay') === 'warn';
  if (by.get('stun') === 'ok' && by.get('relay') === 'ok' && !turn.includes('fail')) {
    return `${insecure ? 'The network is open' : 'Everything works'}: direct connections should succeed from here.`;
  }
  if (turnOk || relayOk) {
    return 'Natter will work, though a direct connection may not: conversations will go through a relay.';
  }
  return 'Natter is unlikely to connect here: neither a TURN relay nor the server’s media relay could be reached. Try another network.';
}
