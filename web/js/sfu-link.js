// Group rooms: this browser's one RTCPeerConnection to the server's SFU (docs/protocol.md,
// "Group rooms"). It publishes the microphone, camera and screen while they are on, receives
// everyone else's tracks on receive slots the server assigns, and carries the chat and files data
// channels, whose messages the server relays. This side is the only offerer, so there is no glare.
// No DOM here.

import * as protocol from './protocol.js';

/** @typedef {'microphone' | 'camera' | 'screen'} Source */
/** @typedef {{ mid: string, peer: string, source: Source, paused: boolean }} ForwardedTrack */

/**
 * @typedef {{
 *   sendOffer: (sdp: string, tracks: { mid: string, source: Source }[]) => boolean,
 *   onChannelState: (open: boolean) => void,
 *   onData: (from: string, message: protocol.DataMessage) => void,
 *   onFilesChannel: (channel: RTCDataChannel | null) => void,
 *   onFileData: (from: string, data: string | ArrayBuffer) => void,
 *   onMedia: () => void,
 *   onConnectionState: (state: RTCPeerConnectionState) => void,
 * }} SfuLinkHandlers
 */

/** Publishing transceivers, by source; made on first use and kept for the connection's life. */
const SOURCES = /** @type {const} */ (['microphone', 'camera', 'screen']);

export class SfuLink {
  /** @type {RTCPeerConnection} */
  pc;
  /** @type {Map<Source, RTCRtpTransceiver>} */
  #publishing = new Map();
  /** What each receive slot carries, by mid. @type {Map<string, ForwardedTrack>} */
  slots = new Map();
  #negotiating = false;
  #again = false;
  #closed = false;
  /** Slots asked for but not yet negotiated, so a repeated `need` does not add them twice. */
  #pendingSlots = { audio: 0, video: 0 };

  /**
   * @param {{ iceServers: RTCIceServer[], certificate?: RTCCertificate | null }} options
   * @param {SfuLinkHandlers} handlers
   */
  constructor(options, handlers) {
    this.handlers = handlers;
    this.pc = new RTCPeerConnection({
      iceServers: options.iceServers,
      // One transport for everything: the SFU has one address.
      bundlePolicy: 'max-bundle',
      ...(options.certificate ? { certificates: [options.certificate] } : {}),
    });
    // Announced by the browser (DCEP): the SFU learns each channel's label when it opens.
    this.chat = this.pc.createDataChannel(protocol.CHAT_CHANNEL.label);
    this.files = this.pc.createDataChannel(protocol.FILES_CHANNEL.label);
    this.files.binaryType = 'arraybuffer';
    this.chat.onopen = () => handlers.onChannelState(true);
    this.chat.onclose = () => !this.#closed && handlers.onChannelState(false);
    this.chat.onmessage = (event) => {
      const relayed = protocol.parseRelayedText(event.data);
      if (!relayed) return;
      const message = protocol.parseDataObject(relayed.msg);
      if (message) handlers.onData(relayed.from, message);
    };
    this.files.onopen = () => handlers.onFilesChannel(this.files);
    this.files.onclose = () => !this.#closed && handlers.onFilesChannel(null);
    this.files.onmessage = (event) => {
      const relayed =
        typeof event.data === 'string' ? protocol.parseRelayedText(event.data) : protocol.parseRelayedBinary(event.data);
      if (!relayed) return;
      handlers.onFileData(relayed.from, 'msg' in relayed ? JSON.stringify(relayed.msg) : relayed.payload);
    };
    this.pc.onconnectionstatechange = () => handlers.onConnectionState(this.pc.connectionState);
    this.pc.ontrack = () => handlers.onMedia();
    this.negotiate();
  }

  get channelOpen() {
    return this.chat.readyState === 'open';
  }

  /**
   * Sends a data message to everyone (or to one person) through the server.
   * @param {string} wire a data message's JSON
   * @param {string} [to]
   */
  sendData(wire, to) {
    if (this.chat.readyState !== 'open') return false;
    this.chat.send(protocol.relayText(wire, to));
    return true;
  }

  /**
   * Sends a files-channel message or chunk to one person.
   * @param {string | ArrayBuffer | Uint8Array} data
   * @param {string} to
   */
  sendFileData(data, to) {
    if (this.files.readyState !== 'open') return false;
    if (typeof data === 'string') this.files.send(protocol.relayText(data, to));
    else this.files.send(protocol.relayBinary(data, to));
    return true;
  }

  /**
   * The `files` channel as one person sees it: what is sent on it goes to them alone, wrapped
   * for the relay; flow control is the shared channel's.
   * @param {string} to
   * @returns {import('./files.js').FileChannel}
   */
  filesChannelFor(to) {
    const channel = this.files;
    const link = this;
    const view = {
      /** @param {string | ArrayBuffer | Uint8Array} data */
      send(data) {
        link.sendFileData(data, to);
      },
      get bufferedAmount() {
        return channel.bufferedAmount;
      },
      get bufferedAmountLowThreshold() {
        return channel.bufferedAmountLowThreshold;
      },
      set bufferedAmountLowThreshold(value) {
        channel.bufferedAmountLowThreshold = value;
      },
      /** @param {string} type @param {EventListener} listener */
      addEventListener(type, listener) {
        channel.addEventListener(type, listener);
      },
      /** @param {string} type @param {EventListener} listener */
      removeEventListener(type, listener) {
        channel.removeEventListener(type, listener);
      },
    };
    return /** @type {import('./files.js').FileChannel} */ (/** @type {unknown} */ (view));
  }

  /**
   * Starts, replaces or stops (null) what this browser publishes from a source.
   * @param {Source} source
   * @param {MediaStreamTrack | null} track
   * @param {MediaStream} [stream]
   */
  async publish(source, track, stream) {
    let transceiver = this.#publishing.get(source);
    if (!transceiver) {
      if (!track) return;
      transceiver = this.pc.addTransceiver(track, { direction: 'sendonly', streams: stream ? [stream] : [] });
      this.#publishing.set(source, transceiver);
      this.negotiate();
      return;
    }
    await transceiver.sender.replaceTrack(track);
    const direction = track ? 'sendonly' : 'inactive';
    if (transceiver.direction !== direction) {
      transceiver.direction = direction;
      this.negotiate();
    }
  }

  /** Renegotiates now, or once the exchange under way is answered. */
  async negotiate() {
    if (this.#closed) return;
    if (this.#negotiating) {
      this.#again = true;
      return;
    }
    this.#negotiating = true;
    this.#again = false;
    try {
      await this.pc.setLocalDescription(await this.pc.createOffer());
      const tracks = SOURCES.flatMap((source) => {
        const transceiver = this.#publishing.get(source);
        const on = transceiver?.mid && transceiver.sender.track && transceiver.direction === 'sendonly';
        return on && transceiver.mid ? [{ mid: transceiver.mid, source }] : [];
      });
      if (!this.handlers.sendOffer(this.pc.localDescription?.sdp ?? '', tracks)) {
        // Signaling is down: the welcome after reconnecting starts a new connection anyway.
        this.#negotiating = false;
      }
    } catch (error) {
      console.warn('natter: could not make an offer', error);
      this.#negotiating = false;
    }
  }

  /** The SFU's answer to our offer. @param {string} sdp */
  async handleAnswer(sdp) {
    if (this.#closed || this.pc.signalingState !== 'have-local-offer') return;
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
    } catch (error) {
      console.warn('natter: the server answer was not accepted', error);
    }
    this.#pendingSlots = { audio: 0, video: 0 };
    this.#negotiating = false;
    if (this.#again) this.negotiate();
    this.handlers.onMedia();
  }

  /** The server refused our offer: go back to the last agreed state. */
  async handleRefusal() {
    if (this.pc.signalingState === 'have-local-offer') {
      await this.pc.setLocalDescription({ type: 'rollback' }).catch(() => undefined);
    }
    this.#negotiating = false;
  }

  /**
   * What our receive slots carry, and how many more we need.
   * @param {ForwardedTrack[]} tracks
   * @param {{ audio: number, video: number }} need
   */
  handleTracks(tracks, need) {
    this.slots = new Map(tracks.map((track) => [track.mid, track]));
    const audio = Math.max(0, need.audio - this.#pendingSlots.audio);
    const video = Math.max(0, need.video - this.#pendingSlots.video);
    for (let i = 0; i < audio; i += 1) this.pc.addTransceiver('audio', { direction: 'recvonly' });
    for (let i = 0; i < video; i += 1) this.pc.addTransceiver('video', { direction: 'recvonly' });
    this.#pendingSlots.audio += audio;
    this.#pendingSlots.video += video;
    if (audio || video) this.negotiate();
    this.handlers.onMedia();
  }

  /**
   * Everyone's received tracks, by peer.
   * @returns {Map<string, { microphone?: MediaStreamTrack, camera?: MediaStreamTrack, screen?: MediaStreamTrack, paused: Set<Source> }>}
   */
  remoteTracks() {
    /** @type {ReturnType<SfuLink['remoteTracks']>} */
    const byPeer = new Map();
    for (const transceiver of this.pc.getTransceivers()) {
      const slot = transceiver.mid ? this.slots.get(transceiver.mid) : undefined;
      if (!slot) continue;
      const entry = byPeer.get(slot.peer) ?? { paused: new Set() };
      entry[slot.source] = transceiver.receiver.track;
      if (slot.paused) entry.paused.add(slot.source);
      byPeer.set(slot.peer, entry);
    }
    return byPeer;
  }

  close() {
    this.#closed = true;
    this.pc.close();
  }
}
