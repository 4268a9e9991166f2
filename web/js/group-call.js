// A call in a group room: this side's microphone, camera and screen, published on the connection
// to the SFU (sfu-link.js), and the call state everyone else announces. No DOM here;
// group-view.js renders it.

import * as protocol from './protocol.js';
import { AUDIO_PROCESSING, mediaErrorText } from './call.js';

/** @typedef {'mic' | 'camera' | 'screen'} Device */
/** @typedef {import('./sfu-link.js').Source} Source */

/** Which published source each device is. @type {Record<Device, Source>} */
const SOURCE_OF = { mic: 'microphone', camera: 'camera', screen: 'screen' };

/**
 * @typedef {{
 *   publish: (source: Source, track: MediaStreamTrack | null, stream?: MediaStream) => void,
 *   onChange: () => void,
 *   getUserMedia?: (constraints: MediaStreamConstraints) => Promise<MediaStream>,
 *   getDisplayMedia?: (constraints: DisplayMediaStreamOptions) => Promise<MediaStream>,
 * }} GroupCallHandlers
 */

export class GroupCall {
  /** @type {protocol.MicState} */
  mic = 'off';
  camera = false;
  screen = false;
  /** Local streams while their device is on. @type {Partial<Record<Device, MediaStream>>} */
  streams = {};
  /** What to tell the person about a device that failed; '' when all is well. */
  error = '';
  /** A device is starting: its button waits. @type {Set<Device>} */
  starting = new Set();

  /** @param {GroupCallHandlers} handlers */
  constructor(handlers) {
    this.handlers = handlers;
    this.getUserMedia = handlers.getUserMedia ?? ((constraints) => navigator.mediaDevices.getUserMedia(constraints));
    this.getDisplayMedia =
      handlers.getDisplayMedia ?? ((constraints) => navigator.mediaDevices.getDisplayMedia(constraints));
  }

  /** True while anything of ours is on. */
  get active() {
    return this.mic !== 'off' || this.camera || this.screen;
  }

  /** This side's call state, as announced to the others. @returns {Omit<protocol.CallState, 'type'>} */
  state() {
    return { inCall: this.active, mic: this.mic, camera: this.camera, screen: this.screen };
  }

  /** @param {Device} device */
  async toggle(device) {
    if (this.starting.has(device)) return;
    if (device === 'mic' && this.mic !== 'off') {
      // Muting sends silence: the track stays, so unmuting is instant.
      this.mic = this.mic === 'on' ? 'muted' : 'on';
      for (const track of this.streams.mic?.getAudioTracks() ?? []) track.enabled = this.mic === 'on';
      this.handlers.onChange();
      return;
    }
    if ((device === 'camera' && this.camera) || (device === 'screen' && this.screen)) {
      this.#stop(device);
      this.handlers.onChange();
      return;
    }
    this.starting.add(device);
    this.handlers.onChange();
    try {
      const stream = await this.#capture(device);
      const track = stream.getTracks()[0];
      this.streams[device] = stream;
      if (device === 'screen') {
        track.contentHint = 'detail';
        // The browser's own "Stop sharing" ends the track.
        track.addEventListener('ended', () => {
          if (this.streams.screen === stream) {
            this.#stop('screen');
            this.handlers.onChange();
          }
        });
      }
      if (device === 'mic') this.mic = 'on';
      else if (device === 'camera') this.camera = true;
      else this.screen = true;
      this.error = '';
      this.handlers.publish(SOURCE_OF[device], track, stream);
    } catch (error) {
      this.error = mediaErrorText(device, error);
    } finally {
      this.starting.delete(device);
      this.handlers.onChange();
    }
  }

  /** @param {Device} device @returns {Promise<MediaStream>} */
  #capture(device) {
    if (device === 'screen') return this.getDisplayMedia({ video: true, audio: false });
    if (device === 'mic') return this.getUserMedia({ audio: { ...AUDIO_PROCESSING } });
    return this.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } } });
  }

  /** @param {Device} device */
  #stop(device) {
    for (const track of this.streams[device]?.getTracks() ?? []) track.stop();
    delete this.streams[device];
    if (device === 'mic') this.mic = 'off';
    else if (device === 'camera') this.camera = false;
    else this.screen = false;
    this.handlers.publish(SOURCE_OF[device], null);
  }

  /** Turns everything of ours off. */
  leave() {
    for (const device of /** @type {Device[]} */ (['mic', 'camera', 'screen'])) {
      if (this.streams[device]) this.#stop(device);
    }
    this.handlers.onChange();
  }

  /** Publishes again what is on: a new connection to the server starts with nothing. */
  republish() {
    for (const device of /** @type {Device[]} */ (['mic', 'camera', 'screen'])) {
      const stream = this.streams[device];
      const track = stream?.getTracks()[0];
      if (stream && track) this.handlers.publish(SOURCE_OF[device], track, stream);
    }
  }
}

/**
 * The call line: who shares a screen, whether you are muted, how many are in the call.
 * @param {GroupCall} call
 * @param {{ name: string, state: Omit<protocol.CallState, 'type'> | null }[]} others
 */
export function groupCallSummary(call, others) {
  const parts = [];
  const sharing = others.find((person) => person.state?.screen);
  if (sharing) parts.push(`${sharing.name} is sharing their screen.`);
  const inCall = others.filter((person) => person.state?.inCall).length + (call.active ? 1 : 0);
  if (inCall > 0) parts.push(`${inCall} ${inCall === 1 ? 'person is' : 'people are'} in the call.`);
  if (call.mic === 'muted') parts.push('You are muted.');
  return parts.join(' ');
}
