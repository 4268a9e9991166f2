// A call in a pair room: this side's microphone, camera and screen share on the room's
// RTCPeerConnection (renegotiated by peer.js), the other side's media and call state, who is
// speaking, and what to tell the person. No DOM here; call-view.js renders what onChange reports.

import * as protocol from './protocol.js';

/** @typedef {'mic' | 'camera' | 'screen'} Device */
/** @typedef {Omit<protocol.CallState, 'type'>} CallSide */

/** Echo cancellation, noise suppression and gain control stay on unless a browser lacks them. */
export const AUDIO_PROCESSING = Object.freeze({ echoCancellation: true, noiseSuppression: true, autoGainControl: true });
/** Audio level (0–1, linear, as getStats reports it) above which a person counts as speaking. */
export const SPEAKING_LEVEL = 0.02;
/** How long someone still shows as speaking after the level dropped: words have gaps. */
const SPEAKING_HOLD_MS = 600;
const LEVEL_POLL_MS = 250;

/** The server relay's name for each device (sfu-link.js). */
const SOURCES = /** @type {const} */ ({ mic: 'microphone', camera: 'camera', screen: 'screen' });

/**
 * The server's relay, when a pair room fell back to it (relay-link.js): publishing goes through
 * it by source, and the other person's tracks come labelled by the server instead of by stream id.
 * @typedef {{
 *   pc: RTCPeerConnection,
 *   publish: (source: import('./sfu-link.js').Source, track: MediaStreamTrack | null, stream?: MediaStream) => Promise<void>,
 *   remoteTracks: () => Map<string, { microphone?: MediaStreamTrack, camera?: MediaStreamTrack, screen?: MediaStreamTrack }>,
 * }} RelayMedia
 */

/** @type {CallSide} */
const NOT_IN_CALL = Object.freeze({ inCall: false, mic: 'off', camera: false, screen: false });

/**
 * @typedef {{
 *   send: (wire: string) => boolean,
 *   onChange: () => void,
 *   getUserMedia?: (constraints: MediaStreamConstraints) => Promise<MediaStream>,
 *   getDisplayMedia?: (constraints: DisplayMediaStreamOptions) => Promise<MediaStream>,
 * }} CallHandlers
 */

export class Call {
  /** This side's live tracks by device; null when the device is off. @type {Record<Device, MediaStreamTrack | null>} */
  tracks = { mic: null, camera: null, screen: null };
  /** The microphone is captured but disabled (sends silence). */
  micMuted = false;
  /** The other side's last call-state. @type {CallSide} */
  remote = { ...NOT_IN_CALL };
  /** The other side's audio, one stream for the page's single audio element. @type {MediaStreamTrack[]} */
  remoteAudio = [];
  /** Who is speaking now, from the audio levels. */
  speaking = { self: false, other: false };
  /** Date.now() when both sides were in the call, null while they are not. @type {number | null} */
  connectedAt = null;
  /** What went wrong with the last device start, for the page (cleared by the next success). */
  error = '';
  /** The device ids chosen for the next start (empty: the browser's default). */
  deviceIds = { mic: '', camera: '' };
  /** Devices being started, so a second click while the permission prompt is up does nothing. @type {Set<Device>} */
  starting = new Set();

  /** In the call by this person's own doing (started a device), until "Leave call". */
  #joined = false;
  /** Left while the other side was in the call: stay out until the other side has left too. */
  #left = false;
  /** @type {RTCPeerConnection | null} */
  #pc = null;
  /** Set while the call goes through the server's relay, with the other person's peer id. */
  /** @type {{ media: RelayMedia, peer: string } | null} */
  #relay = null;
  /** This side's sender per device on the current connection; kept with no track when off. @type {Map<Device, RTCRtpSender>} */
  #senders = new Map();
  /** Microphone and camera travel in one stream, the screen in another: the msid tells them apart. */
  #media = new MediaStream();
  #screenStream = new MediaStream();
  /** Stream id per remote video track, from the track events. @type {WeakMap<MediaStreamTrack, string>} */
  #remoteStreams = new WeakMap();
  /** The state the other side last heard; at first, as far as it knows, this side is out. */
  #lastAnnounced = protocol.callStateMessage(NOT_IN_CALL);
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #poller;
  #heard = { self: 0, other: 0 };

  /** @param {CallHandlers} handlers */
  constructor(handlers) {
    this.handlers = handlers;
    this.getUserMedia = handlers.getUserMedia ?? ((constraints) => navigator.mediaDevices.getUserMedia(constraints));
    this.getDisplayMedia =
      handlers.getDisplayMedia ?? ((constraints) => navigator.mediaDevices.getDisplayMedia(constraints));
  }

  /** Whether this side is in the call: joined by itself, or listening to a call the other started. */
  get inCall() {
    return this.#joined || (this.remote.inCall && !this.#left);
  }

  /** Left a call the other person is still in ("Leave call" shows pressed; pressing it again rejoins). */
  get left() {
    return this.#left && this.remote.inCall;
  }

  /** @returns {CallSide} */
  get local() {
    if (!this.inCall) return { ...NOT_IN_CALL };
    const mic = this.tracks.mic ? (this.micMuted ? 'muted' : 'on') : 'off';
    /** @type {CallSide} */
    const side = { inCall: true, mic, camera: Boolean(this.tracks.camera), screen: Boolean(this.tracks.screen) };
    if (side.screen) side.screenStream = this.#screenStream.id;
    return side;
  }

  /** The other side's camera and screen tracks that are arriving now. */
  get remoteVideo() {
    /** @type {{ camera: MediaStreamTrack | null, screen: MediaStreamTrack | null }} */
    const video = { camera: null, screen: null };
    if (!this.#pc || !this.inCall || !this.remote.inCall) return video;
    if (this.#relay) {
      const tracks = this.#relay.media.remoteTracks().get(this.#relay.peer);
      video.camera = (this.remote.camera && tracks?.camera) || null;
      video.screen = (this.remote.screen && tracks?.screen) || null;
      return video;
    }
    for (const transceiver of this.#pc.getTransceivers()) {
      const track = transceiver.receiver.track;
      const direction = transceiver.currentDirection;
      if (track.kind !== 'video' || (direction !== 'sendrecv' && direction !== 'recvonly')) continue;
      const stream = this.#remoteStreams.get(track);
      if (this.remote.screen && stream === this.remote.screenStream) video.screen = track;
      else if (this.remote.camera && stream !== undefined) video.camera = track;
    }
    return video;
  }

  /**
   * Uses this connection from now on (a new one after the other side reloaded): this side's
   * tracks go onto it and its incoming tracks are watched.
   * @param {RTCPeerConnection} pc
   */
  attach(pc) {
    this.#pc = pc;
    this.#relay = null;
    this.#senders.clear();
    this.remoteAudio = [];
    pc.addEventListener('track', (event) => this.#onTrack(pc, event));
    for (const device of /** @type {Device[]} */ (['mic', 'camera', 'screen'])) {
      if (this.tracks[device]) this.#send(device);
    }
    this.#applyDirections();
  }

  /**
   * Uses the server's relay from now on (a pair room whose other paths failed): this side's
   * tracks are published there and the other person's arrive on the relay's receive slots.
   * @param {RelayMedia} media
   * @param {string} peer the other person's peer id
   */
  attachRelay(media, peer) {
    this.#pc = media.pc;
    this.#relay = { media, peer };
    this.#senders.clear();
    this.remoteAudio = [];
    media.pc.addEventListener('track', (event) => this.#onTrack(media.pc, event));
    for (const device of /** @type {Device[]} */ (['mic', 'camera', 'screen'])) {
      if (this.tracks[device]) this.#send(device);
    }
  }

  /** The chat channel opened: tell the other side where this one stands. */
  channelOpened() {
    this.#announce(true);
  }

  /** The chat channel closed: until it reopens the other side counts as out of the call. */
  channelClosed() {
    this.receiveState({ ...NOT_IN_CALL });
  }

  /** @param {CallSide} state the other side's `call-state` */
  receiveState(state) {
    const { inCall, mic, camera, screen, screenStream } = state;
    this.remote = { inCall, mic, camera, screen, ...(screenStream ? { screenStream } : {}) };
    // Once the other side is out, the next call it starts is a new one this side hears.
    if (!inCall) this.#left = false;
    this.#changed();
  }

  /**
   * The button for a device was pressed. The microphone mutes and unmutes once captured; the
   * camera and the screen share start and stop.
   * @param {Device} device
   */
  async toggle(device) {
    if (this.starting.has(device)) return;
    const track = this.tracks[device];
    if (device === 'mic' && track) {
      this.micMuted = !this.micMuted;
      track.enabled = !this.micMuted;
      this.#changed();
    } else if (track) {
      this.#stop(device);
      this.#changed();
    } else {
      await this.#start(device);
    }
  }

  /** Hangs up: every device stops and nothing flows either way; the chat stays connected. */
  leave() {
    for (const device of /** @type {Device[]} */ (['mic', 'camera', 'screen'])) this.#stop(device);
    this.micMuted = false;
    this.#joined = false;
    this.#left = this.remote.inCall;
    this.#changed();
  }

  /** "Leave call" pressed again after leaving: listen to the other side's call once more. */
  rejoin() {
    this.#left = false;
    this.#changed();
  }

  /**
   * Uses another microphone or camera; a running one is switched at once (no renegotiation).
   * @param {'mic' | 'camera'} device @param {string} deviceId
   */
  async chooseDevice(device, deviceId) {
    this.deviceIds[device] = deviceId;
    const old = this.tracks[device];
    if (!old) return;
    let track;
    try {
      track = await this.#capture(device);
    } catch (error) {
      this.error = mediaErrorText(device, error);
      this.#changed();
      return;
    }
    if (this.tracks[device] !== old) {
      track.stop(); // stopped or replaced while the new one was starting
      return;
    }
    if (device === 'mic') track.enabled = !this.micMuted;
    old.stop();
    this.#swapStreamTrack(device, old, track);
    this.tracks[device] = track;
    if (this.#relay) await this.#relay.media.publish(SOURCES[device], track, this.#streamFor(device));
    else await this.#senders.get(device)?.replaceTrack(track);
    this.#changed();
  }

  /** Stops everything: the page is going away. */
  close() {
    for (const device of /** @type {Device[]} */ (['mic', 'camera', 'screen'])) this.tracks[device]?.stop();
    clearInterval(this.#poller);
  }

  /** @param {Device} device */
  async #start(device) {
    this.starting.add(device);
    this.handlers.onChange();
    try {
      const track = await this.#capture(device);
      if (this.tracks[device]) {
        track.stop();
        return;
      }
      this.tracks[device] = track;
      this.error = '';
      if (device === 'mic') this.micMuted = false;
      // The browser's own "Stop sharing" (or an unplugged camera) ends the track.
      track.addEventListener('ended', () => {
        if (this.tracks[device] !== track) return;
        this.#stop(device);
        this.#changed();
      });
      this.#streamFor(device).addTrack(track);
      this.#joined = true;
      this.#left = false;
      this.#send(device);
    } catch (error) {
      this.error = mediaErrorText(device, error);
    } finally {
      this.starting.delete(device);
      this.#changed();
    }
  }

  /** @param {Device} device @returns {Promise<MediaStreamTrack>} */
  async #capture(device) {
    let stream;
    if (device === 'screen') {
      stream = await this.getDisplayMedia({ video: true, audio: false });
    } else if (device === 'mic') {
      const id = this.deviceIds.mic;
      stream = await this.getUserMedia({ audio: { ...AUDIO_PROCESSING, ...(id ? { deviceId: { exact: id } } : {}) } });
    } else {
      const id = this.deviceIds.camera;
      stream = await this.getUserMedia({
        video: { width: { ideal: 1280 }, height: { ideal: 720 }, ...(id ? { deviceId: { exact: id } } : {}) },
      });
    }
    const [track] = device === 'mic' ? stream.getAudioTracks() : stream.getVideoTracks();
    if (!track) throw new DOMException('no track', 'NotFoundError');
    // Screen content is text and edges more than motion: ask the encoder to keep it sharp.
    if (device === 'screen') track.contentHint = 'detail';
    return track;
  }

  /** @param {Device} device */
  #streamFor(device) {
    return device === 'screen' ? this.#screenStream : this.#media;
  }

  /** @param {Device} device @param {MediaStreamTrack} old @param {MediaStreamTrack} track */
  #swapStreamTrack(device, old, track) {
    const stream = this.#streamFor(device);
    stream.removeTrack(old);
    stream.addTrack(track);
  }

  /** @param {Device} device */
  #stop(device) {
    const track = this.tracks[device];
    if (!track) return;
    track.stop();
    this.#streamFor(device).removeTrack(track);
    this.tracks[device] = null;
    if (this.#relay) {
      this.#relay.media.publish(SOURCES[device], null).catch(() => undefined);
      return;
    }
    const sender = this.#senders.get(device);
    if (sender) sender.replaceTrack(null).catch(() => undefined);
    this.#applyDirections();
  }

  /** Puts a device's track on the connection, reusing its sender (and transceiver) if it had one. @param {Device} device */
  #send(device) {
    const pc = this.#pc;
    const track = this.tracks[device];
    if (!pc || !track || pc.signalingState === 'closed') return;
    const stream = this.#streamFor(device);
    if (this.#relay) {
      this.#relay.media.publish(SOURCES[device], track, stream).catch((error) => console.warn('natter: could not send a track', error));
      return;
    }
    const sender = this.#senders.get(device);
    if (sender) {
      sender.replaceTrack(track).catch((error) => console.warn('natter: could not send a track', error));
      sender.setStreams(stream);
    } else {
      this.#senders.set(device, pc.addTrack(track, stream));
    }
    this.#applyDirections();
  }

  /**
   * Every transceiver sends when it has this side's track and receives while this side is in the
   * call; changing a direction renegotiates (peer.js), which is how the other side learns of it.
   */
  #applyDirections() {
    const pc = this.#pc;
    // On the relay, sfu-link.js owns the transceivers: it publishes and the server forwards.
    if (!pc || pc.signalingState === 'closed' || this.#relay) return;
    const receive = this.inCall;
    // From this side's tracks, not sender.track: replaceTrack() changes that only later.
    const sending = new Set();
    for (const [device, sender] of this.#senders) if (this.tracks[device]) sending.add(sender);
    for (const transceiver of pc.getTransceivers()) {
      if (transceiver.currentDirection === 'stopped') continue;
      const send = sending.has(transceiver.sender);
      /** @type {RTCRtpTransceiverDirection} */
      const direction = send ? (receive ? 'sendrecv' : 'sendonly') : receive ? 'recvonly' : 'inactive';
      if (transceiver.direction !== direction) transceiver.direction = direction;
    }
  }

  /** @param {RTCPeerConnection} pc @param {RTCTrackEvent} event */
  #onTrack(pc, event) {
    if (pc !== this.#pc) return;
    const { track } = event;
    const stream = event.streams[0];
    if (track.kind === 'video') {
      if (stream) this.#remoteStreams.set(track, stream.id);
    } else if (!this.remoteAudio.includes(track)) {
      this.remoteAudio = [...this.remoteAudio.filter((other) => other.readyState === 'live'), track];
    }
    // Muted/unmuted: frames stopped or started arriving (the other side turned a device off or on).
    track.addEventListener('mute', () => this.handlers.onChange());
    track.addEventListener('unmute', () => this.handlers.onChange());
    this.handlers.onChange();
  }

  /** Applies a change: directions, the announcement, the clock and the level poller. */
  #changed() {
    this.#applyDirections();
    this.#announce(false);
    const both = this.inCall && this.remote.inCall;
    if (both && this.connectedAt === null) this.connectedAt = Date.now();
    if (!both) this.connectedAt = null;
    const polling = this.inCall || this.remote.inCall;
    if (polling && this.#poller === undefined) this.#poller = setInterval(() => this.#pollLevels(), LEVEL_POLL_MS);
    if (!polling && this.#poller !== undefined) {
      clearInterval(this.#poller);
      this.#poller = undefined;
      this.speaking = { self: false, other: false };
    }
    this.handlers.onChange();
  }

  /** Sends this side's call-state if it changed (or always, when the channel just opened). @param {boolean} always */
  #announce(always) {
    const wire = protocol.callStateMessage(this.local);
    if (!always && wire === this.#lastAnnounced) return;
    if (this.handlers.send(wire)) this.#lastAnnounced = wire;
  }

  /** Speaking indicators from the audio levels WebRTC already measures (no audio graph needed). */
  async #pollLevels() {
    const pc = this.#pc;
    if (!pc || pc.connectionState === 'closed') return;
    let self = 0;
    let other = 0;
    try {
      const report = await pc.getStats();
      report.forEach((stats) => {
        if (stats.kind !== 'audio' || typeof stats.audioLevel !== 'number') return;
        if (stats.type === 'media-source') self = Math.max(self, stats.audioLevel);
        else if (stats.type === 'inbound-rtp') other = Math.max(other, stats.audioLevel);
      });
    } catch {
      return; // closed while asking
    }
    const now = Date.now();
    if (this.tracks.mic && !this.micMuted && self > SPEAKING_LEVEL) this.#heard.self = now;
    if (this.remote.mic === 'on' && this.inCall && other > SPEAKING_LEVEL) this.#heard.other = now;
    const speaking = {
      self: Boolean(this.tracks.mic) && !this.micMuted && now - this.#heard.self < SPEAKING_HOLD_MS,
      other: this.remote.mic === 'on' && this.inCall && now - this.#heard.other < SPEAKING_HOLD_MS,
    };
    if (speaking.self !== this.speaking.self || speaking.other !== this.speaking.other) {
      this.speaking = speaking;
      this.handlers.onChange();
    }
  }
}

const DEVICE_NAMES = Object.freeze({ mic: 'microphone', camera: 'camera', screen: 'screen' });

/**
 * What to tell the person when a device could not start.
 * @param {Device} device @param {unknown} error
 */
export function mediaErrorText(device, error) {
  const name = error instanceof Error || error instanceof DOMException ? error.name : '';
  const what = DEVICE_NAMES[device];
  if (device === 'screen' && name === 'NotAllowedError') {
    return 'Screen sharing did not start: it was cancelled or the browser does not allow it.';
  }
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return `Natter may not use your ${what}: permission was denied. Allow it in the browser's site settings (the icon beside the address) and try again.`;
    case 'NotFoundError':
    case 'OverconstrainedError':
      return `No ${what} found. Connect one (or choose another under Devices) and try again.`;
    case 'NotReadableError':
    case 'AbortError':
      return `Your ${what} could not be started: another program may be using it.`;
    case 'TypeError':
      return `This browser cannot use a ${what} here (a secure https page is needed).`;
    default:
      return `Your ${what} could not be started${name ? ` (${name})` : ''}.`;
  }
}

/**
 * The call line for the page's status: where the call stands and what the other side is doing.
 * @param {Call} call @param {string | null} otherName the other person's name, null if nobody is connected
 */
export function callSummary(call, otherName) {
  const name = otherName ?? 'the other person';
  const remote = call.remote;
  /** @type {string[]} */
  const parts = [];
  if (call.inCall && remote.inCall) parts.push(`In call with ${name}.`);
  else if (call.inCall) parts.push(otherName ? `Calling ${name}…` : 'Calling… The other person is not connected.');
  else if (remote.inCall) parts.push(`${capitalise(name)} is in a call. Press Microphone or Camera to join.`);
  else return '';
  if (remote.inCall) {
    if (remote.mic === 'muted') parts.push(`${capitalise(name)} is muted.`);
    else if (remote.mic === 'off') parts.push(`${capitalise(name)}'s microphone is off.`);
    if (!remote.camera) parts.push(`${capitalise(name)}'s camera is off.`);
    if (remote.screen) parts.push(`${capitalise(name)} is sharing their screen.`);
  }
  if (call.inCall && call.tracks.mic && call.micMuted) parts.push('You are muted.');
  return parts.join(' ');
}

/** @param {string} text */
const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/** @param {number} ms */
export function formatDuration(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = String(seconds % 60).padStart(2, '0');
  return hours ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`;
}
