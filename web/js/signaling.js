// The signaling connection: one WebSocket to the server, with hello, the proof of work, join,
// keepalive and reconnection with back-off. Knows no DOM; reports what happens through callbacks.

import * as protocol from './protocol.js';
import { ProofSolver } from './proof.js';

/** How often to ping the server, and how long to wait for any answer before calling it dead. */
const PING_EVERY_MS = 15_000;
const PONG_WITHIN_MS = 10_000;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5_000;
/** Refused proofs in a row before giving up (the server closes the socket after 5). */
const MAX_PROOF_FAILURES = 3;
/** After a join refused for now without a retry time, wait this long before the next. */
const JOIN_RETRY_MS = 2_000;

/**
 * @typedef {'connecting' | 'joined' | 'retrying' | 'stopped'} SignalingState
 * @typedef {{
 *   onMessage: (message: protocol.ServerMessage) => void,
 *   onState: (state: SignalingState, detail?: { code?: number, error?: string }) => void,
 *   onProof?: (fraction: number | null) => void,
 * }} SignalingHandlers
 */

export class Signaling {
  /** @type {WebSocket | null} */
  #socket = null;
  /** @type {SignalingState} */
  #state = 'connecting';
  #attempt = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retryTimer;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #pingTimer;
  #lastHeard = 0;
  /** The name the last join was sent with. @type {string | null} */
  #joinedAs = null;
  /** Joins refused for their proof since the last welcome. */
  #proofFailures = 0;
  /** After `rate-limited`, no join before this time (ms since the epoch). */
  #joinNotBefore = 0;
  /** @type {ProofSolver} */
  #solver;

  /**
   * @param {{ url: string, room?: string, kind?: protocol.RoomKind, roomName?: string,
   *   identity: Promise<{ peerId: string, peerSecret: string, name: string }>, ownerSecret?: () => Promise<string | null> }} options
   *   A room by id (`room`, `kind`) or by name (`roomName`). `identity` may still be loading: the
   *   socket opens, says hello and solves the challenge meanwhile. `ownerSecret` is asked at
   *   every join.
   * @param {SignalingHandlers} handlers
   */
  constructor(options, handlers) {
    this.url = options.url;
    this.room = options.room ?? '';
    this.kind = options.kind ?? 'pair';
    this.roomName = options.roomName ?? null;
    this.identity = options.identity;
    this.ownerSecret = options.ownerSecret ?? (async () => null);
    /** @type {string | null} a name set by rename() before or after joining */
    this.name = null;
    this.handlers = handlers;
    this.#solver = new ProofSolver((fraction) => this.handlers.onProof?.(fraction));
  }

  /** @returns {protocol.JoinTarget} */
  #target() {
    return this.roomName ? { roomName: this.roomName } : { room: this.room, kind: this.kind };
  }

  get state() {
    return this.#state;
  }

  start() {
    this.#connect();
  }

  /** @param {SignalingState} state @param {{ code?: number, error?: string }} [detail] */
  #setState(state, detail) {
    this.#state = state;
    this.handlers.onState(state, detail);
  }

  #connect() {
    clearTimeout(this.#retryTimer);
    const socket = new WebSocket(this.url);
    this.#socket = socket;
    socket.onopen = () => {
      this.#lastHeard = Date.now();
      // The server answers hello with its own and a challenge; the join follows the solution.
      socket.send(protocol.hello());
      this.#pingTimer = setInterval(() => this.#keepalive(socket), PING_EVERY_MS);
    };
    socket.onmessage = (event) => {
      this.#lastHeard = Date.now();
      if (typeof event.data !== 'string') return;
      const message = protocol.parseServerMessage(event.data);
      if (message) this.#receive(socket, message);
    };
    socket.onclose = (event) => {
      clearInterval(this.#pingTimer);
      if (this.#socket !== socket) return;
      this.#socket = null;
      if (this.#state === 'stopped') return;
      if (protocol.FINAL_CLOSE_CODES.has(event.code)) {
        this.#setState('stopped', { code: event.code });
        return;
      }
      this.#retry();
    };
  }

  /** @param {WebSocket} socket */
  #keepalive(socket) {
    if (Date.now() - this.#lastHeard > PING_EVERY_MS + PONG_WITHIN_MS) {
      // Half-open connection: nothing heard, not even a pong. Start over.
      socket.close();
      return;
    }
    socket.send(protocol.ping());
  }

  #retry() {
    this.#setState('retrying');
    const ceiling = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** this.#attempt);
    this.#attempt += 1;
    // Full jitter, so a restarted server is not hit by every client at the same instant.
    const delay = RETRY_MIN_MS / 2 + Math.random() * ceiling;
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  /**
   * Solves the challenge (while the identity loads), then joins on `socket` if it is still the
   * current one and not yet in the room.
   * @param {WebSocket} socket @param {string} token @param {number} difficulty
   */
  async #solveAndJoin(socket, token, difficulty) {
    const [proof, identity, ownerSecret] = await Promise.all([
      this.#solver.solve(token, difficulty),
      this.identity,
      this.ownerSecret(),
    ]);
    const wait = this.#joinNotBefore - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (!proof || this.#socket !== socket || socket.readyState !== WebSocket.OPEN) return;
    // Lets tests and benchmarks see how long the check took.
    performance.mark('natter:proof-solved', { detail: { difficulty, ms: this.#solver.lastMs } });
    if (this.#state === 'joined' || this.#state === 'stopped') return;
    const name = this.name ?? identity.name;
    this.#joinedAs = name;
    socket.send(protocol.join(this.#target(), identity, name, proof, ownerSecret));
  }

  /** @param {WebSocket} socket @param {protocol.ServerMessage} message */
  #receive(socket, message) {
    switch (message.type) {
      case 'hello':
        return;
      case 'challenge':
        this.#solveAndJoin(socket, message.token, message.difficulty);
        return;
      case 'welcome':
        this.#attempt = 0;
        this.#proofFailures = 0;
        this.#setState('joined');
        // A rename while the join was on its way could not be sent then: send it now.
        if (this.name !== null && this.name !== this.#joinedAs) this.#send(protocol.rename(this.name));
        break;
      case 'error':
        if (this.#state !== 'joined' && protocol.FINAL_JOIN_ERRORS.has(message.code)) {
          // Retrying cannot help; the page explains.
          this.stop();
          this.handlers.onState('stopped', { error: message.code });
        } else if (message.code === 'harder-proof-required') {
          // A new room name costs more work: the challenge that follows asks for it. Nothing
          // failed, so nothing is counted and nothing waits.
        } else if (message.code === 'proof-required' || message.code === 'bad-proof') {
          // A new challenge follows; after a few refusals in a row something is wrong here.
          this.#proofFailures += 1;
          if (this.#proofFailures >= MAX_PROOF_FAILURES) {
            this.stop();
            this.handlers.onState('stopped', { error: message.code });
          }
        } else if (this.#state !== 'joined') {
          // A join refused for now (rate-limited, server-busy, internal): the next try, on the
          // challenge that follows, waits as long as the server asks, or a moment.
          this.#joinNotBefore = Date.now() + (message.retryAfterMs ?? JOIN_RETRY_MS);
        }
        break;
      case 'pong':
        return;
    }
    this.handlers.onMessage(message);
  }

  /** @param {string} text @returns {boolean} whether it was handed to an open socket */
  #send(text) {
    if (this.#state !== 'joined' || this.#socket?.readyState !== WebSocket.OPEN) return false;
    this.#socket.send(text);
    return true;
  }

  /** @param {string} to @param {protocol.SignalPayload} payload */
  signal(to, payload) {
    return this.#send(protocol.signal(to, payload));
  }

  /** Group rooms: an offer for the connection to the SFU. @param {string} sdp @param {{ mid: string, source: protocol.MediaSourceKind }[]} tracks */
  sfuOffer(sdp, tracks) {
    return this.#send(protocol.sfuOffer(sdp, tracks));
  }

  /** Owner only. @param {string} peer */
  kick(peer) {
    return this.#send(protocol.kick(peer));
  }

  /** Owner only. @param {string} peer */
  ban(peer) {
    return this.#send(protocol.ban(peer));
  }

  /** Owner only. @param {boolean} locked */
  lock(locked) {
    return this.#send(protocol.lock(locked));
  }

  /** Owner only. @param {number} capacity */
  setCapacity(capacity) {
    return this.#send(protocol.setCapacity(capacity));
  }

  /** Owner only. @param {string} peer */
  handOver(peer) {
    return this.#send(protocol.handOver(peer));
  }

  /** @param {boolean} allowed */
  allowLuna(allowed) {
    return this.#send(protocol.lunaAllow(allowed));
  }

  /** @param {string} id @param {string} text @param {protocol.LunaTurn[]} context */
  askLuna(id, text, context) {
    return this.#send(protocol.lunaAsk(id, text, context));
  }

  /** @param {string} name */
  rename(name) {
    this.name = name;
    return this.#send(protocol.rename(name));
  }

  /** Leaves the room and closes the connection for good. */
  leave() {
    this.#send(protocol.leave());
    this.stop();
  }

  stop() {
    this.#state = 'stopped';
    this.#solver.stop();
    clearTimeout(this.#retryTimer);
    clearInterval(this.#pingTimer);
    const socket = this.#socket;
    this.#socket = null;
    socket?.close(protocol.CLOSE.NORMAL);
  }
}
