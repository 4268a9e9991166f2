// One RTCPeerConnection to the other person in a pair room, negotiated with the perfect
// negotiation pattern (docs/protocol.md, "Peer to peer"), carrying the chat and files data channels
// and, during a call, the media tracks call.js adds (adding or removing one renegotiates here).

import * as protocol from './protocol.js';

/**
 * @typedef {{
 *   send: (payload: protocol.SignalPayload) => void,
 *   onChannelState: (open: boolean) => void,
 *   onData: (message: protocol.DataMessage) => void,
 *   onFilesChannel: (channel: RTCDataChannel | null) => void,
 *   onFileData: (data: string | ArrayBuffer) => void,
 *   onPeerConnection: (pc: RTCPeerConnection) => void,
 *   onPath?: (path: Path) => void,
 *   onUnreachable?: () => void,
 * }} PeerLinkHandlers
 */

/**
 * How a connection reaches the other person: browser to browser, through a TURN server, or
 * through Natter's own server (relay-link.js).
 * @typedef {'direct' | 'turn' | 'server'} Path
 */

/**
 * How long the first attempt (every candidate: direct, and TURN's if there is one) may take to
 * connect before the peers try TURN alone. ICE on its own would wait tens of seconds for blocked
 * candidate pairs to time out; people would give up first.
 */
export const DIRECT_TIMEOUT_MS = 2_000;
/** How long the retry through TURN alone may take before the server's relay is used. */
export const TURN_TIMEOUT_MS = 1_500;

/** An ICE server's URLs, whether given as one or as a list. @param {RTCIceServer} server @returns {string[]} */
export const iceUrls = (server) => [server.urls].flat();
/** @param {string} url */
export const isTurnUrl = (url) => /^turns?:/.test(url);
/** Whether any of these servers is a TURN server. @param {RTCIceServer[]} iceServers */
export const hasTurn = (iceServers) => iceServers.some((server) => iceUrls(server).some(isTurnUrl));

/**
 * A connection still "disconnected" after this long gets an ICE restart instead of waiting about
 * 30 s for "failed": a changed network path (Wi-Fi to mobile) never comes back by itself.
 */
const DISCONNECTED_RESTART_MS = 3_000;

export class PeerLink {
  /** @type {RTCPeerConnection} */
  #pc;
  /** @type {RTCDataChannel} */
  #channel;
  /** @type {RTCDataChannel} */
  #files;
  #makingOffer = false;
  #ignoreOffer = false;
  /** An answer is being applied: an offer arriving meanwhile is no collision (signals are not serialised). */
  #settingRemoteAnswer = false;
  /** The other side's current connection id; payloads from older ones are stale. */
  /** @type {string | null} */
  #remoteConn = null;
  #closed = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #restartTimer;
  /**
   * This side rolled back an offer in a collision. Chromium (156) then sends nothing on the
   * senders concerned, though they keep their tracks and directions; giving each its own track
   * again restarts the media. Senders only negotiated in the re-offer that follows a rollback
   * are affected too, so this holds until an offer of ours has been answered.
   */
  #restartSenders = false;
  /** Escalation: 'all' candidates first, then 'turn' alone, then the link gives up. */
  /** @type {'all' | 'turn' | 'gave-up'} */
  #attempt = 'all';
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #attemptTimer;
  /** Set once a connection was up: a later failure restarts ICE like before instead of escalating at once. */
  #everConnected = false;

  /**
   * @param {{ selfId: string, remoteId: string, iceServers: RTCIceServer[], certificate?: RTCCertificate | null,
   *   relayOnly?: boolean }} options
   *   `relayOnly`: TURN from the start (the person asked that their address stay hidden)
   * @param {PeerLinkHandlers} handlers
   */
  constructor(options, handlers) {
    this.remoteId = options.remoteId;
    this.iceServers = options.iceServers;
    this.hasTurn = hasTurn(options.iceServers);
    this.relayOnly = Boolean(options.relayOnly) && this.hasTurn;
    if (this.relayOnly) this.#attempt = 'turn';
    this.certificate = options.certificate ?? null;
    this.handlers = handlers;
    // Exactly one side is polite: the one whose id sorts first.
    this.polite = options.selfId < options.remoteId;
    this.conn = protocol.newConnId();
    [this.#pc, this.#channel, this.#files] = this.#create();
  }

  /** @returns {[RTCPeerConnection, RTCDataChannel, RTCDataChannel]} */
  #create() {
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers,
      iceTransportPolicy: this.#attempt === 'turn' ? 'relay' : 'all',
      ...(this.certificate ? { certificates: [this.certificate] } : {}),
    });
    // Negotiated on both sides: no ondatachannel race, and either side may offer first.
    const channel = pc.createDataChannel(protocol.CHAT_CHANNEL.label, {
      negotiated: true,
      id: protocol.CHAT_CHANNEL.id,
    });
    pc.onnegotiationneeded = async () => {
      try {
        this.#makingOffer = true;
        await pc.setLocalDescription();
        if (pc.localDescription) this.handlers.send(protocol.descriptionPayload(this.conn, pc.localDescription));
      } catch (error) {
        if (pc === this.#pc) console.warn('natter: could not make an offer', error);
      } finally {
        // An offer of a connection already replaced says nothing about the current one.
        if (pc === this.#pc) this.#makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => {
      this.handlers.send(protocol.candidatePayload(this.conn, candidate ? candidate.toJSON() : null));
    };
    pc.onconnectionstatechange = () => {
      clearTimeout(this.#restartTimer);
      if (pc !== this.#pc || this.#closed) return;
      if (pc.connectionState === 'connected') {
        clearTimeout(this.#attemptTimer);
        this.#everConnected = true;
        this.#reportPath(pc);
      } else if (pc.connectionState === 'failed') {
        if (this.#everConnected) pc.restartIce();
        else this.#escalate(pc);
      } else if (pc.connectionState === 'disconnected') {
        this.#restartTimer = setTimeout(() => {
          if (pc === this.#pc && pc.connectionState === 'disconnected') pc.restartIce();
        }, DISCONNECTED_RESTART_MS);
      }
    };
    channel.onopen = () => this.handlers.onChannelState(true);
    channel.onclose = () => {
      if (pc === this.#pc) this.handlers.onChannelState(false);
    };
    channel.onmessage = (event) => {
      const message = protocol.parseDataMessage(event.data);
      if (message) this.handlers.onData(message);
    };
    // Bulk file data has its own stream, so chat messages never wait behind queued chunks.
    const files = pc.createDataChannel(protocol.FILES_CHANNEL.label, {
      negotiated: true,
      id: protocol.FILES_CHANNEL.id,
    });
    files.binaryType = 'arraybuffer';
    files.onopen = () => {
      if (pc === this.#pc) this.handlers.onFilesChannel(files);
    };
    files.onclose = () => {
      if (pc === this.#pc) this.handlers.onFilesChannel(null);
    };
    files.onmessage = (event) => {
      if (pc === this.#pc) this.handlers.onFileData(event.data);
    };
    // The call puts its tracks on every new connection (the first, and one after a restart).
    this.handlers.onPeerConnection(pc);
    return [pc, channel, files];
  }

  /** Starts the clock of the current attempt, once there is something to connect to. */
  #startAttempt() {
    if (this.#attemptTimer !== undefined || this.#everConnected) return;
    const pc = this.#pc;
    const limit = this.#attempt === 'turn' ? TURN_TIMEOUT_MS : DIRECT_TIMEOUT_MS;
    this.#attemptTimer = setTimeout(() => {
      if (pc === this.#pc && !this.#closed && pc.connectionState !== 'connected') this.#escalate(pc);
    }, limit);
  }

  /**
   * An offer that restarts ICE (new credentials) while this side still tries everything means the
   * other side moved on to TURN alone: follow it without a restart of our own, which would throw
   * away the checks its restart began.
   * @param {RTCPeerConnection} pc @param {RTCSessionDescriptionInit} description the remote one just applied
   */
  #followRestart(pc, description) {
    const ufrag = /^a=ice-ufrag:(\S+)/m.exec(description.sdp ?? '')?.[1] ?? null;
    const restarted = this.#remoteUfrag !== null && ufrag !== null && ufrag !== this.#remoteUfrag;
    this.#remoteUfrag = ufrag ?? this.#remoteUfrag;
    if (description.type !== 'offer' || !restarted) return;
    if (this.#attempt !== 'all' || !this.hasTurn || this.#everConnected) return;
    this.#attempt = 'turn';
    clearTimeout(this.#attemptTimer);
    this.#attemptTimer = undefined;
    try {
      pc.setConfiguration({ ...pc.getConfiguration(), iceTransportPolicy: 'relay' });
    } catch (error) {
      console.warn('natter: could not limit the retry to TURN', error);
    }
  }

  /** The other side's ICE user fragment in its last offer; a new one means it restarted ICE. */
  /** @type {string | null} */
  #remoteUfrag = null;

  /**
   * The attempt under way failed or took too long: retry through TURN alone (an ICE restart
   * gathering only relay candidates), or, after that or without TURN, give up so the page can
   * use the server's relay.
   * @param {RTCPeerConnection} pc
   */
  #escalate(pc) {
    clearTimeout(this.#attemptTimer);
    this.#attemptTimer = undefined;
    if (this.#attempt === 'all' && this.hasTurn) {
      this.#attempt = 'turn';
      try {
        pc.setConfiguration({ ...pc.getConfiguration(), iceTransportPolicy: 'relay' });
      } catch (error) {
        // Still worth the restart: TURN's candidates are among the ones gathered again.
        console.warn('natter: could not limit the retry to TURN', error);
      }
      pc.restartIce();
      this.#startAttempt();
      return;
    }
    if (this.#attempt === 'gave-up') return;
    this.#attempt = 'gave-up';
    this.handlers.onUnreachable?.();
  }

  /**
   * Tells the page whether the connection is direct or through TURN, from the chosen candidate pair.
   * @param {RTCPeerConnection} pc @param {number} [tries] looks left while the other end is unknown
   */
  async #reportPath(pc, tries = 10) {
    let remoteUnknown = false;
    try {
      const { local, remote } = selectedCandidates(await pc.getStats());
      if (pc !== this.#pc || pc.connectionState !== 'connected') return;
      // The other side's relay address may first be known as "peer reflexive" (its checks
      // arrived before its candidate did): the candidates it signalled tell.
      const remoteRelay = remote && this.#remoteRelays.has(`${remote.address}:${remote.port}`);
      // No pair in the stats (a browser that does not say): no sign of a relay either.
      const relayed = local?.candidateType === 'relay' || remote?.candidateType === 'relay' || remoteRelay;
      remoteUnknown = !relayed && remote?.candidateType === 'prflx';
      const path = relayed ? 'turn' : 'direct';
      if (path !== this.path) {
        this.path = path;
        this.handlers.onPath?.(path);
      }
    } catch {
      return; // a closed connection has no stats: nothing to report
    }
    // Its candidate may still be on its way: look again shortly.
    if (remoteUnknown && tries > 1) setTimeout(() => this.#reportPath(pc, tries - 1), 300);
  }

  /** `address:port` of every relay candidate the other side signalled for this connection. */
  #remoteRelays = new Set();

  /** @type {Path | null} */
  path = null;

  /** The other side started over with a new connection: so do we. */
  #reset() {
    const old = this.#pc;
    const filesWereOpen = this.#files.readyState === 'open';
    this.conn = protocol.newConnId();
    this.#makingOffer = false;
    this.#ignoreOffer = false;
    this.#settingRemoteAnswer = false;
    this.#restartSenders = false;
    clearTimeout(this.#attemptTimer);
    this.#attemptTimer = undefined;
    this.#everConnected = false;
    this.#attempt = this.relayOnly ? 'turn' : 'all';
    this.path = null;
    this.#remoteRelays = new Set();
    this.#remoteUfrag = null;
    [this.#pc, this.#channel, this.#files] = this.#create();
    old.close();
    this.handlers.onChannelState(false);
    if (filesWereOpen) this.handlers.onFilesChannel(null);
  }

  /** @param {RTCPeerConnection} pc */
  #restartNegotiatedSenders(pc) {
    for (const transceiver of pc.getTransceivers()) {
      const { sender, currentDirection } = transceiver;
      // Only senders negotiated to send: touching one not yet in any description upsets it.
      if (!sender.track || (currentDirection !== 'sendrecv' && currentDirection !== 'sendonly')) continue;
      sender.replaceTrack(sender.track).catch(() => undefined);
    }
  }

  get channelOpen() {
    return this.#channel.readyState === 'open';
  }

  /** The other side's connection id, once known. */
  get remoteConn() {
    return this.#remoteConn;
  }

  get connectionState() {
    return this.#pc.connectionState;
  }

  /**
   * Uses these ICE servers (a new welcome's, with a fresh TURN credential) from the next ICE
   * restart on.
   * @param {RTCIceServer[]} iceServers
   */
  useIceServers(iceServers) {
    this.iceServers = iceServers;
    try {
      this.#pc.setConfiguration({ ...this.#pc.getConfiguration(), iceServers });
    } catch (error) {
      console.warn('natter: could not update the ICE servers', error);
    }
  }

  /** Restarts ICE if the connection is not healthy, e.g. after signaling came back. */
  recover() {
    const state = this.#pc.connectionState;
    if (state === 'failed' || state === 'disconnected') this.#pc.restartIce();
  }

  /** @param {unknown} raw a payload relayed by the server from the other peer */
  async handleSignal(raw) {
    const payload = protocol.parseSignalPayload(raw);
    if (!payload || this.#closed) return;
    const { description, candidate } = payload;
    if (payload.conn !== this.#remoteConn) {
      if (description?.type === 'offer') {
        // A fresh connection on the other side always opens with an offer.
        if (this.#remoteConn !== null) this.#reset();
        this.#remoteConn = payload.conn;
      } else if (description?.type === 'answer' && this.#pc.signalingState === 'have-local-offer') {
        this.#remoteConn = payload.conn;
      } else {
        return; // stale: from a connection we are not talking to
      }
    }
    const pc = this.#pc;
    try {
      if (description) {
        const readyForOffer = !this.#makingOffer && (pc.signalingState === 'stable' || this.#settingRemoteAnswer);
        const collision = description.type === 'offer' && !readyForOffer;
        this.#ignoreOffer = !this.polite && collision;
        if (this.#ignoreOffer) return;
        // Past this point a collision means the polite side rolls back its own offer (made, or
        // still in the operations chain) to take this one.
        if (collision) this.#restartSenders = true;
        this.#settingRemoteAnswer = description.type === 'answer';
        try {
          await pc.setRemoteDescription(description);
        } finally {
          this.#settingRemoteAnswer = false;
        }
        this.#followRestart(pc, description);
        // Both sides have spoken: from here a working path connects within moments.
        this.#startAttempt();
        if (description.type === 'offer') {
          await pc.setLocalDescription();
          if (pc.localDescription) this.handlers.send(protocol.descriptionPayload(this.conn, pc.localDescription));
        }
        if (this.#restartSenders) this.#restartNegotiatedSenders(pc);
        if (description.type === 'answer') this.#restartSenders = false;
      } else if (candidate) {
        // "candidate:<foundation> <component> <protocol> <priority> <address> <port> typ relay …"
        const fields = candidate.candidate?.split(' ') ?? [];
        if (fields[7] === 'relay') this.#remoteRelays.add(`${fields[4]}:${fields[5]}`);
        try {
          await pc.addIceCandidate(candidate);
        } catch (error) {
          if (!this.#ignoreOffer) throw error;
        }
      }
    } catch (error) {
      console.warn('natter: negotiation step failed', error);
    }
  }

  /** @param {string} wire a data-channel message built by protocol.js @returns {boolean} whether it was sent */
  sendData(wire) {
    if (!this.channelOpen) return false;
    this.#channel.send(wire);
    return true;
  }

  close() {
    this.#closed = true;
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#attemptTimer);
    this.#pc.close();
  }
}

/**
 * The local and remote candidates of a connection's chosen pair, from its stats: the transport's
 * `selectedCandidatePairId` (Chromium, Safari), else the succeeded pair marked `selected` or
 * `nominated` (Firefox).
 * @param {RTCStatsReport} stats
 * @returns {{ local?: any, remote?: any }}
 */
export function selectedCandidates(stats) {
  /** @type {any} */
  let pair;
  stats.forEach((report) => {
    if (report.type === 'transport' && report.selectedCandidatePairId) pair ??= stats.get(report.selectedCandidatePairId);
  });
  if (!pair) {
    stats.forEach((report) => {
      if (report.type === 'candidate-pair' && report.state === 'succeeded' && (report.selected || report.nominated)) pair ??= report;
    });
  }
  if (!pair) return {};
  return { local: stats.get(pair.localCandidateId), remote: stats.get(pair.remoteCandidateId) };
}

/**
 * Starts generating the DTLS certificate for this page's connections, so that making the first
 * offer does not wait for key generation. Resolves to null where the browser refuses.
 * @returns {Promise<RTCCertificate | null>}
 */
export function prepareCertificate() {
  /** @type {EcKeyGenParams} */
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
  return RTCPeerConnection.generateCertificate(algorithm).catch(() => null);
}
