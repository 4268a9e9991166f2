// A pair room whose direct and TURN paths both failed: the two people's chat and files go through
// the server's media relay instead, on the same connection group rooms use (sfu-link.js). The
// server forwards and stores nothing, but unlike a direct path it could read what it forwards,
// so the page says so ("Connected through the server"). Calls use it too: call.js publishes on
// the relay and plays what the server forwards from the other person.
// No DOM here.

import * as protocol from './protocol.js';
import { SfuLink } from './sfu-link.js';

/**
 * `onChannelState` hears whether the conversation is open (this side's channel to the relay, and
 * the other person heard from on it); `onRelayChannel` whether this side's own channel is, whatever
 * the other person's.
 * @typedef {{
 *   sendOffer: (sdp: string, tracks: { mid: string, source: import('./sfu-link.js').Source }[]) => boolean,
 *   onChannelState: (open: boolean) => void,
 *   onData: (message: protocol.DataMessage) => void,
 *   onFilesChannel: (channel: import('./files.js').FileChannel | null) => void,
 *   onFileData: (data: string | ArrayBuffer) => void,
 *   onRelayChannel: (open: boolean) => void,
 *   onFailed: () => void,
 *   onMedia: () => void,
 * }} RelayLinkHandlers
 */

/**
 * At most one restart of the conversation per this long: each re-sends unacknowledged messages
 * and re-offers transfers, which a peer repeating its hello could otherwise make it do nonstop.
 */
const RESET_EVERY_MS = 2_000;

export class RelayLink {
  /** @type {import('./peer.js').Path} */
  path = 'server';
  /** Whether the other person has been heard from on the relay: only then do messages reach them. */
  #heard = false;
  #ownOpen = false;
  #closed = false;
  /** When a hello from the other side last started the conversation over. */
  #lastReset = 0;

  /**
   * @param {{ remoteId: string, iceServers: RTCIceServer[], certificate?: RTCCertificate | null }} options
   * @param {RelayLinkHandlers} handlers
   */
  constructor(options, handlers) {
    this.remoteId = options.remoteId;
    this.handlers = handlers;
    this.sfu = new SfuLink(
      { iceServers: options.iceServers, certificate: options.certificate },
      {
        sendOffer: handlers.sendOffer,
        onChannelState: (open) => {
          if (this.#closed) return;
          this.#ownOpen = open;
          handlers.onRelayChannel(open);
          if (open) {
            // Whoever is there already answers; whoever comes later says hello in turn.
            this.sfu.sendData(protocol.relayHello(false), this.remoteId);
          } else this.#lose();
        },
        onData: (from, message) => {
          if (this.#closed || from !== this.remoteId) return;
          if (message.type === 'relay-hello') {
            if (!message.reply) {
              this.sfu.sendData(protocol.relayHello(true), this.remoteId);
              // The other side connected again (its signaling dropped, which ends its relay
              // connection): what was sent to it meanwhile was dropped, so start over as after
              // a reconnect: unacknowledged messages go again, transfers are offered again.
              if (this.#heard && Date.now() - this.#lastReset > RESET_EVERY_MS) {
                this.#lastReset = Date.now();
                this.#lose();
              }
            }
            this.#hear();
            return;
          }
          this.#hear();
          handlers.onData(message);
        },
        // The files channel is offered to the transfers once the other person is heard from.
        onFilesChannel: () => undefined,
        onFileData: (from, data) => {
          if (!this.#closed && from === this.remoteId) handlers.onFileData(data);
        },
        onMedia: () => handlers.onMedia(),
        onConnectionState: (state) => {
          if (!this.#closed && state === 'failed') handlers.onFailed();
        },
      },
    );
    // The files channel may open after the other person was heard from.
    this.sfu.files.addEventListener('open', () => this.#heard && this.#offerFiles());
  }

  #offerFiles() {
    this.handlers.onFilesChannel(this.sfu.filesChannelFor(this.remoteId));
  }

  /** The other person is not (or no longer) reachable through the relay. */
  #lose() {
    if (!this.#heard) return;
    this.#heard = false;
    this.handlers.onChannelState(false);
    this.handlers.onFilesChannel(null);
  }

  /** The other person is reachable through the relay: open for chat and files. */
  #hear() {
    if (this.#heard || !this.#ownOpen) return;
    this.#heard = true;
    this.handlers.onChannelState(true);
    if (this.sfu.files.readyState === 'open') this.#offerFiles();
  }

  /** Closed by the page (replaced, or its relay connection ended with the server's). */
  get closed() {
    return this.#closed;
  }

  get channelOpen() {
    return this.#heard && this.sfu.channelOpen;
  }

  get connectionState() {
    return this.sfu.pc.connectionState;
  }

  /** The server's relay restarts by being replaced (room.js does that on failure). */
  recover() {}

  /** @param {string} wire */
  sendData(wire) {
    if (!this.channelOpen) return false;
    return this.sfu.sendData(wire, this.remoteId);
  }

  /** @param {string} sdp */
  handleAnswer(sdp) {
    return this.sfu.handleAnswer(sdp);
  }

  /**
   * @param {import('./sfu-link.js').ForwardedTrack[]} tracks
   * @param {{ audio: number, video: number }} need
   */
  handleTracks(tracks, need) {
    this.sfu.handleTracks(tracks, need);
  }

  handleRefusal() {
    return this.sfu.handleRefusal();
  }

  close() {
    this.#closed = true;
    this.sfu.close();
  }
}
