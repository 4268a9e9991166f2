// The call's part of the room page: the four header buttons, the call status, the video stage
// (the other side large, your own preview small), speaking indicators, devices, and the sound
// unlock for browsers that block audio until a click. Reads a Call (call.js); builds no wire messages.

import { callSummary, formatDuration } from './call.js';
import { getSetting, setSetting } from './storage.js';

/** @typedef {import('./call.js').Call} Call */

/** @template {HTMLElement} T @param {string} id @returns {T} */
const element = (id) => /** @type {T} */ (document.getElementById(id));

/** The four call buttons of a room's header (both room kinds have them). */
export const callButtons = () => ({
  mic: /** @type {HTMLButtonElement} */ (element('call-mic')),
  camera: /** @type {HTMLButtonElement} */ (element('call-camera')),
  screen: /** @type {HTMLButtonElement} */ (element('call-screen')),
  leave: /** @type {HTMLButtonElement} */ (element('call-leave')),
});

/**
 * Whether this page may capture a microphone, camera or screen at all: browsers offer
 * getUserMedia and getDisplayMedia only to secure pages (https, or this computer's own address).
 * On a plain-http page chat and files still work; the device buttons say why calls cannot.
 */
export const devicesAllowed = window.isSecureContext;

/**
 * On a page that may not capture devices: the microphone, camera and screen buttons keep their
 * names and stay focusable (so the reason is reached from the keyboard too), but are
 * aria-disabled and described by the page's sentence on HTTPS, which is shown. They get no
 * click handlers.
 * @param {ReturnType<typeof callButtons>} buttons
 */
export function explainNoDevices(buttons) {
  const reason = element('calls-need-https');
  reason.hidden = false;
  for (const button of [buttons.mic, buttons.camera, buttons.screen]) {
    button.disabled = false;
    button.removeAttribute('title');
    button.setAttribute('aria-disabled', 'true');
    button.setAttribute('aria-describedby', reason.id);
  }
}

/**
 * Enables or disables a device button; on a page that may not capture devices it stays as
 * explainNoDevices left it.
 * @param {HTMLButtonElement} button @param {boolean} enabled
 */
export function setDeviceButton(button, enabled) {
  if (devicesAllowed) button.disabled = !enabled;
}

export class CallView {
  buttons = callButtons();
  status = element('call-status');
  error = element('call-error');
  panel = element('call-panel');
  duration = element('call-duration');
  people = element('call-people');
  soundButton = /** @type {HTMLButtonElement} */ (element('enable-sound'));
  stage = element('call-stage');
  videos = {
    remoteScreen: /** @type {HTMLVideoElement} */ (element('remote-screen')),
    remoteCamera: /** @type {HTMLVideoElement} */ (element('remote-camera')),
    localScreen: /** @type {HTMLVideoElement} */ (element('local-screen')),
    localCamera: /** @type {HTMLVideoElement} */ (element('local-camera')),
  };
  audio = /** @type {HTMLAudioElement} */ (element('remote-audio'));
  selects = {
    mic: /** @type {HTMLSelectElement} */ (element('mic-device')),
    camera: /** @type {HTMLSelectElement} */ (element('camera-device')),
    speaker: /** @type {HTMLSelectElement} */ (element('speaker-device')),
  };
  /** The other person's name, null while nobody is connected. @type {string | null} */
  otherName = null;
  /** Whether the page may use the call buttons (the data channel is open, or a call is going). */
  available = false;
  /** The browser refused to play sound without a click. */
  #soundBlocked = false;
  /** Remote audio tracks last given to the audio element. @type {MediaStreamTrack[]} */
  #playing = [];
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #clock;
  /** Which devices were in use when the device lists were last filled. */
  #listedFor = '';

  /** @param {Call} call */
  constructor(call) {
    this.call = call;
    if (devicesAllowed) {
      this.buttons.mic.addEventListener('click', () => call.toggle('mic'));
      this.buttons.camera.addEventListener('click', () => call.toggle('camera'));
      this.buttons.screen.addEventListener('click', () => call.toggle('screen'));
    } else explainNoDevices(this.buttons);
    // Listening needs no device: "Leave call" works on any page.
    this.buttons.leave.addEventListener('click', () => (call.left ? call.rejoin() : call.leave()));
    this.soundButton.addEventListener('click', () => this.#playAudio());
    for (const video of Object.values(this.videos)) {
      video.addEventListener('dblclick', () => this.#toggleFullscreen(video));
    }
    // Screen sharing needs getDisplayMedia, which phones lack. (A plain-http page has no
    // mediaDevices at all: there the button stays, saying why it does nothing.)
    if (devicesAllowed && !navigator.mediaDevices?.getDisplayMedia) this.buttons.screen.hidden = true;
    const speakerChoice = element('speaker-choice');
    if (!('setSinkId' in HTMLMediaElement.prototype)) speakerChoice.hidden = true;
    this.selects.mic.addEventListener('change', () => this.#choose('mic'));
    this.selects.camera.addEventListener('change', () => this.#choose('camera'));
    this.selects.speaker.addEventListener('change', () => this.#choose('speaker'));
    navigator.mediaDevices?.addEventListener('devicechange', () => this.#listDevices());
    Promise.all([getSetting('mic-device'), getSetting('camera-device'), getSetting('speaker-device')]).then(
      ([mic, camera, speaker]) => {
        if (typeof mic === 'string') call.deviceIds.mic = mic;
        if (typeof camera === 'string') call.deviceIds.camera = camera;
        if (typeof speaker === 'string') this.#setSpeaker(speaker);
      },
    );
  }

  render() {
    const call = this.call;
    const { mic, camera, screen } = call.tracks;
    const usable = this.available || call.inCall;
    setPressed(this.buttons.mic, Boolean(mic) && !call.micMuted);
    setPressed(this.buttons.camera, Boolean(camera));
    setPressed(this.buttons.screen, Boolean(screen));
    setPressed(this.buttons.leave, call.left);
    setDeviceButton(this.buttons.mic, usable && !call.starting.has('mic'));
    setDeviceButton(this.buttons.camera, usable && !call.starting.has('camera'));
    setDeviceButton(this.buttons.screen, usable && !call.starting.has('screen'));
    this.buttons.leave.disabled = !call.inCall && !call.left;
    if (devicesAllowed) this.buttons.mic.title = mic ? (call.micMuted ? 'Unmute' : 'Mute') : 'Start the microphone';

    const summary = callSummary(call, this.otherName);
    if (this.status.textContent !== summary) this.status.textContent = summary;
    if (this.error.textContent !== call.error) this.error.textContent = call.error;

    const active = call.inCall || call.remote.inCall;
    this.panel.hidden = !active;
    this.#tickClock();

    const remote = call.remoteVideo;
    const name = this.otherName ?? 'The other person';
    showVideo(this.videos.remoteScreen, remote.screen, `${name}'s screen`);
    showVideo(this.videos.remoteCamera, remote.camera, `${name}'s camera`);
    showVideo(this.videos.localCamera, camera, 'Your camera');
    showVideo(this.videos.localScreen, screen, 'Your screen');
    // The largest thing is what the other side shows: their screen, else their camera. A remote
    // camera beside a remote screen becomes a small tile, like your own preview.
    this.videos.remoteCamera.classList.toggle('small', Boolean(remote.screen));
    this.stage.hidden = !(remote.screen || remote.camera || camera || screen);

    this.#renderPeople();
    this.#renderAudio();
    // Device names appear only once a device is in use, so list again when that changes.
    const inUse = `${active}:${mic?.id}:${camera?.id}`;
    if (inUse !== this.#listedFor) {
      this.#listedFor = inUse;
      if (active) this.#listDevices();
    }
  }

  #renderPeople() {
    const call = this.call;
    /** @type {[string, boolean, string][]} */
    const rows = [];
    if (call.inCall) rows.push(['You', call.speaking.self, micWord(call.local.mic)]);
    if (call.remote.inCall) rows.push([this.otherName ?? 'The other person', call.speaking.other, micWord(call.remote.mic)]);
    const text = rows.map(([who, speaking, micState]) => `${who}${speaking ? ' (speaking)' : micState ? ` (${micState})` : ''}`);
    if (text.join('|') === [...this.people.children].map((item) => item.textContent).join('|')) return;
    this.people.replaceChildren(
      ...rows.map(([who, speaking], index) => {
        const item = document.createElement('li');
        item.textContent = text[index];
        item.classList.toggle('speaking', speaking);
        item.dataset.who = who === 'You' ? 'self' : 'other';
        return item;
      }),
    );
  }

  /** Plays the other side's audio; if the browser wants a click first, asks for one. */
  #renderAudio() {
    const tracks = this.call.inCall ? this.call.remoteAudio.filter((track) => track.readyState === 'live') : [];
    if (tracks.length === this.#playing.length && tracks.every((track, index) => track === this.#playing[index])) {
      this.soundButton.hidden = !this.#soundBlocked || tracks.length === 0;
      return;
    }
    this.#playing = tracks;
    if (tracks.length === 0) {
      this.audio.srcObject = null;
      this.soundButton.hidden = true;
      return;
    }
    this.audio.srcObject = new MediaStream(tracks);
    this.#playAudio();
  }

  async #playAudio() {
    try {
      await this.audio.play();
      this.#soundBlocked = false;
    } catch (error) {
      // NotAllowedError: autoplay policy. Anything else (e.g. AbortError from a newer srcObject) is
      // followed by another play().
      if (error instanceof DOMException && error.name === 'NotAllowedError') this.#soundBlocked = true;
    }
    this.soundButton.hidden = !this.#soundBlocked || this.#playing.length === 0;
  }

  /** Keeps the duration ticking once a second while both are in the call, and only then. */
  #tickClock() {
    const started = this.call.connectedAt;
    if (started === null) {
      clearInterval(this.#clock);
      this.#clock = undefined;
      this.duration.textContent = '';
      return;
    }
    const tick = () => (this.duration.textContent = formatDuration(Date.now() - started));
    tick();
    if (this.#clock === undefined) this.#clock = setInterval(() => this.render(), 1000);
  }

  /** @param {HTMLVideoElement} video */
  #toggleFullscreen(video) {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => undefined);
    else video.requestFullscreen().catch(() => undefined);
  }

  /** Fills the device lists; names appear once the browser has granted access to a device. */
  async #listDevices() {
    if (!navigator.mediaDevices?.enumerateDevices) return;
    const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
    /** @type {[HTMLSelectElement, MediaDeviceKind, string, string][]} */
    const lists = [
      [this.selects.mic, 'audioinput', this.call.deviceIds.mic, 'Microphone'],
      [this.selects.camera, 'videoinput', this.call.deviceIds.camera, 'Camera'],
      [this.selects.speaker, 'audiooutput', /** @type {any} */ (this.audio).sinkId ?? '', 'Speaker'],
    ];
    for (const [select, kind, chosen, word] of lists) {
      const options = devices
        .filter((device) => device.kind === kind)
        .map((device, index) => {
          const option = document.createElement('option');
          option.value = device.deviceId === 'default' ? '' : device.deviceId;
          option.textContent = device.label || `${word} ${index + 1}`;
          return option;
        });
      if (!options.some((option) => option.value === '')) {
        const fallback = document.createElement('option');
        fallback.value = '';
        fallback.textContent = 'Default';
        options.unshift(fallback);
      }
      select.replaceChildren(...options);
      select.value = options.some((option) => option.value === chosen) ? chosen : '';
    }
  }

  /** @param {'mic' | 'camera' | 'speaker'} which */
  async #choose(which) {
    const deviceId = this.selects[which].value;
    await setSetting(`${which}-device`, deviceId);
    if (which === 'speaker') this.#setSpeaker(deviceId);
    else await this.call.chooseDevice(which, deviceId);
  }

  /** @param {string} deviceId */
  #setSpeaker(deviceId) {
    const audio = /** @type {HTMLAudioElement & { setSinkId?: (id: string) => Promise<void> }} */ (this.audio);
    audio.setSinkId?.(deviceId).catch(() => {
      this.call.error = 'That speaker cannot be used; sound stays on the default one.';
      this.render();
    });
  }
}

/** @param {'on' | 'muted' | 'off'} mic */
export const micWord = (mic) => (mic === 'on' ? '' : mic === 'muted' ? 'muted' : 'microphone off');

/** @param {HTMLButtonElement} button @param {boolean} pressed */
export function setPressed(button, pressed) {
  const value = String(pressed);
  if (button.getAttribute('aria-pressed') !== value) button.setAttribute('aria-pressed', value);
}

/**
 * Shows a track in a video element, or hides the element when there is none.
 * @param {HTMLVideoElement} video @param {MediaStreamTrack | null} track @param {string} label
 */
export function showVideo(video, track, label) {
  const current = /** @type {MediaStream | null} */ (video.srcObject)?.getVideoTracks()[0] ?? null;
  video.hidden = !track;
  if (track) video.setAttribute('aria-label', label);
  if (current === track) return;
  video.srcObject = track ? new MediaStream([track]) : null;
  // Muted video may always autoplay; sound comes through the audio element.
  if (track) video.play().catch(() => undefined);
}
