// The signaling connection: one WebSocket to the server, with hello/join, keepalive and
// reconnection with back-off. Knows no DOM; reports what happens through callbacks.

import * as protocol from './protocol.js';

/** How often to ping the server, and how long to wait for any answer before calling it dead. */
const PING_EVERY_MS = 15_000;
const PONG_WITHIN_MS = 10_000;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5_000;

/**
 * @typedef {'connecting' | 'joined' | 'retrying' | 'stopped'} SignalingState
 * @typedef {{
 *   onMessage: (message: protocol.ServerMessage) => void,
 *   onState: (state: SignalingState, detail?: { code?: number, error?: string }) => void,
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

  /**
   * @param {{ url: string, room: string, kind?: protocol.RoomKind, identity: Promise<{ peerId: string, name: string }> }} options
   *   `identity` may still be loading: the socket opens and says hello meanwhile, and joins as
   *   soon as it is known, which keeps the storage round trip out of the time to connect.
   * @param {SignalingHandlers} handlers
   */
  constructor(options, handlers) {
    this.url = options.url;
    this.room = options.room;
    this.kind = options.kind ?? 'pair';
    this.identity = options.identity;
    /** @type {string | null} a name set by rename() before or after joining */
    this.name = null;
    this.handlers = handlers;
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
      socket.send(protocol.hello());
      // Join right behind hello instead of waiting for the server's hello: the server handles
      // messages in order (and closes on a version mismatch), so this saves a round trip.
      this.identity.then(({ peerId, name }) => {
        if (this.#socket === socket && socket.readyState === WebSocket.OPEN) {
          socket.send(protocol.join(this.room, peerId, this.name ?? name, this.kind));
        }
      });
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

  /** @param {WebSocket} socket @param {protocol.ServerMessage} message */
  #receive(socket, message) {
    switch (message.type) {
      case 'hello':
        return;
      case 'welcome':
        this.#attempt = 0;
        this.#setState('joined');
        break;
      case 'error':
        if (message.code === 'room-full' || message.code === 'invalid-room-id') {
          // Retrying cannot help; the page explains.
          this.stop();
          this.handlers.onState('stopped', { error: message.code });
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
    clearTimeout(this.#retryTimer);
    clearInterval(this.#pingTimer);
    const socket = this.#socket;
    this.#socket = null;
    socket?.close(protocol.CLOSE.NORMAL);
  }
}
