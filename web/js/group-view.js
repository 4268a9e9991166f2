// The call part of a group room's page: the four header buttons, a grid with one tile per person
// (video or initial, name, mute state, speaking highlight), a shared screen shown large, and one
// audio element per person. Reads a GroupCall and the SFU link's tracks; builds no wire messages.

import { callButtons, devicesAllowed, explainNoDevices, micWord, setDeviceButton, setPressed, showVideo } from './call-view.js';
import { groupCallSummary } from './group-call.js';

/** @typedef {import('./group-call.js').GroupCall} GroupCall */
/** @typedef {import('./protocol.js').CallState} CallState */
/**
 * @typedef {{ microphone?: MediaStreamTrack, camera?: MediaStreamTrack, screen?: MediaStreamTrack,
 *   paused: Set<import('./sfu-link.js').Source> }} RemoteTracks
 */
/** @typedef {{ peer: string, name: string, state: Omit<CallState, 'type'> | null }} Person */

/** @template {HTMLElement} T @param {string} id @returns {T} */
const element = (id) => /** @type {T} */ (document.getElementById(id));

/**
 * @typedef {{ item: HTMLLIElement, video: HTMLVideoElement, audio: HTMLAudioElement,
 *   initial: HTMLSpanElement, caption: HTMLParagraphElement }} Tile
 */

export class GroupView {
  buttons = callButtons();
  status = element('call-status');
  error = element('call-error');
  grid = element('grid');
  screenStage = element('screen-stage');
  screenVideo = /** @type {HTMLVideoElement} */ (element('screen-video'));
  soundButton = /** @type {HTMLButtonElement} */ (element('enable-sound'));
  /** @type {Map<string, Tile>} */
  #tiles = new Map();
  #soundBlocked = false;

  /** @param {GroupCall} call */
  constructor(call) {
    this.call = call;
    if (devicesAllowed) {
      this.buttons.mic.addEventListener('click', () => call.toggle('mic'));
      this.buttons.camera.addEventListener('click', () => call.toggle('camera'));
      this.buttons.screen.addEventListener('click', () => call.toggle('screen'));
    } else explainNoDevices(this.buttons);
    this.buttons.leave.addEventListener('click', () => call.leave());
    this.soundButton.addEventListener('click', () => {
      this.#soundBlocked = false;
      for (const tile of this.#tiles.values()) this.#play(tile.audio);
      this.soundButton.hidden = true;
    });
    this.screenVideo.addEventListener('dblclick', () => this.screenVideo.requestFullscreen?.().catch(() => undefined));
  }

  /**
   * @param {{ self: Person, others: Person[], remote: Map<string, RemoteTracks>, speaker: string | null,
   *   available: boolean }} model
   */
  render(model) {
    const call = this.call;
    setPressed(this.buttons.mic, call.mic === 'on');
    setPressed(this.buttons.camera, call.camera);
    setPressed(this.buttons.screen, call.screen);
    setDeviceButton(this.buttons.mic, model.available && !call.starting.has('mic'));
    setDeviceButton(this.buttons.camera, model.available && !call.starting.has('camera'));
    setDeviceButton(this.buttons.screen, model.available && !call.starting.has('screen'));
    this.buttons.leave.disabled = !call.active;
    if (devicesAllowed) {
      this.buttons.mic.title = call.mic === 'off' ? 'Start the microphone' : call.mic === 'muted' ? 'Unmute' : 'Mute';
    }

    const summary = groupCallSummary(call, model.others);
    if (this.status.textContent !== summary) this.status.textContent = summary;
    if (this.error.textContent !== call.error) this.error.textContent = call.error;

    const people = [model.self, ...model.others];
    for (const [peer, tile] of this.#tiles) {
      if (!people.some((person) => person.peer === peer)) {
        tile.item.remove();
        this.#tiles.delete(peer);
      }
    }
    let sharing = null;
    for (const [index, person] of people.entries()) {
      const own = index === 0;
      const tile = this.#tile(person.peer, own);
      if (this.grid.children[index] !== tile.item) this.grid.insertBefore(tile.item, this.grid.children[index] ?? null);
      const tracks = own ? null : model.remote.get(person.peer);
      const state = own ? call.state() : person.state;
      const camera = own
        ? (call.streams.camera?.getVideoTracks()[0] ?? null)
        : tracks?.camera && state?.camera !== false && !tracks.paused.has('camera')
          ? tracks.camera
          : null;
      showVideo(tile.video, camera, own ? 'Your camera' : `${person.name}'s camera`);
      tile.initial.hidden = Boolean(camera);
      tile.initial.textContent = [...person.name][0]?.toUpperCase() ?? '?';
      if (!own) {
        const microphone = tracks?.microphone ?? null;
        const current = /** @type {MediaStream | null} */ (tile.audio.srcObject)?.getAudioTracks()[0] ?? null;
        if (current !== microphone) {
          tile.audio.srcObject = microphone ? new MediaStream([microphone]) : null;
          if (microphone) this.#play(tile.audio);
        }
        if (!sharing && tracks?.screen && !tracks.paused.has('screen') && state?.screen !== false) {
          sharing = { track: tracks.screen, name: person.name };
        }
      }
      const words = [own ? `${person.name} (you)` : person.name];
      if (state?.inCall) {
        const mic = micWord(state.mic);
        if (mic) words.push(mic);
      }
      if (tracks?.paused.has('camera')) words.push('video paused: low bandwidth');
      const speaking = model.speaker === person.peer;
      if (speaking) words.push('speaking');
      const caption = words.join(' · ');
      if (tile.caption.textContent !== caption) tile.caption.textContent = caption;
      tile.item.setAttribute('aria-label', caption);
      tile.item.classList.toggle('speaking', speaking);
    }
    this.screenStage.hidden = !sharing;
    showVideo(this.screenVideo, sharing?.track ?? null, sharing ? `${sharing.name}'s screen` : '');
    this.soundButton.hidden = !this.#soundBlocked;
  }

  /** @param {string} peer @param {boolean} own @returns {Tile} */
  #tile(peer, own) {
    const existing = this.#tiles.get(peer);
    if (existing) return existing;
    const item = document.createElement('li');
    item.classList.toggle('own', own);
    const video = document.createElement('video');
    video.playsInline = true;
    video.muted = true;
    video.hidden = true;
    const initial = document.createElement('span');
    initial.className = 'initial';
    initial.setAttribute('aria-hidden', 'true');
    const caption = document.createElement('p');
    caption.className = 'caption';
    const audio = document.createElement('audio');
    item.append(video, initial, caption, audio);
    const tile = { item, video, audio, initial, caption };
    this.#tiles.set(peer, tile);
    return tile;
  }

  /** @param {HTMLAudioElement} audio */
  #play(audio) {
    if (!audio.srcObject) return;
    audio.play().catch(() => {
      // The browser wants a click before it plays sound.
      this.#soundBlocked = true;
      this.soundButton.hidden = false;
    });
  }
}
