// Controls both room pages have: the composer (Enter sends, Shift+Enter adds a line, the length
// limit, typing, the emoji picker), "Share link", the name form, the progress of the check
// that this browser is not a bot, and the status line (with the watch on the media relay). They
// talk to a Chat and to the page through callbacks; they build no wire messages.

import * as protocol from './protocol.js';
import { EmojiPicker } from './emoji-picker.js';

/** What the status line says once the room cannot be used (the same on both pages). */
export const FINAL_STATUS = Object.freeze({
  full: 'This room is full',
  replaced: 'This room is open in another tab or window',
  outdated: 'This page is out of date — reload it',
  invalid: 'This is not a valid room link',
  invalidName: 'This is not a valid room name',
  kicked: "The room's owner removed you from this room.",
  banned: "The room's owner banned you from this room.",
  locked: 'This room is locked: nobody new may join.',
  bot: "The server's check that this browser is not a bot failed. Reload the page to try again.",
  unproven: "The server could not confirm this browser's identity. Reload the page to try again.",
});

const FINAL_ERRORS = /** @type {Record<string, string>} */ ({
  'room-full': FINAL_STATUS.full,
  'invalid-room-id': FINAL_STATUS.invalid,
  'invalid-room-name': FINAL_STATUS.invalidName,
  'room-locked': FINAL_STATUS.locked,
  banned: FINAL_STATUS.banned,
  kicked: FINAL_STATUS.kicked,
  'proof-required': FINAL_STATUS.bot,
  'bad-proof': FINAL_STATUS.bot,
  'peer-unproven': FINAL_STATUS.unproven,
});
const FINAL_CLOSES = /** @type {Record<number, string>} */ ({
  [protocol.CLOSE.REPLACED]: FINAL_STATUS.replaced,
  [protocol.CLOSE.UNSUPPORTED_VERSION]: FINAL_STATUS.outdated,
  [protocol.CLOSE.KICKED]: FINAL_STATUS.kicked,
  [protocol.CLOSE.BANNED]: FINAL_STATUS.banned,
});

/**
 * The status for signaling that stopped for good, or null if nothing needs saying.
 * @param {{ code?: number, error?: string } | undefined} detail
 */
export function finalStatus(detail) {
  return (detail?.error && FINAL_ERRORS[detail.error]) || (detail?.code && FINAL_CLOSES[detail.code]) || null;
}

/** @template {HTMLElement} T @param {string} id @returns {T} */
const element = (id) => /** @type {T} */ (document.getElementById(id));

/** How long a page waits for its connection to the server's media relay before saying so. */
export const RELAY_WAIT_MS = 10_000;
/** The status when the media relay has not answered within RELAY_WAIT_MS (a link to /check follows). */
export const RELAY_UNREACHABLE =
  "Cannot reach the server's media relay. Its UDP/TCP port may be blocked between you and the server.";
const CHECK_LINK_TEXT = 'Check your connection';

/**
 * Notices a connection to the media relay that has not come up within RELAY_WAIT_MS. The page
 * starts it when it connects (or loses its connection) to the relay and stops it once the relay
 * answers or the page stops trying; `late` stays set until then.
 */
export class RelayWatch {
  /** The relay has not answered in time (and still has not). */
  late = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer;

  /** @param {() => void} onLate called once the wait is over */
  constructor(onLate) {
    this.onLate = onLate;
  }

  /** Counts from now, unless already counting or late: a replaced connection does not reset it. */
  start() {
    if (this.#timer !== undefined || this.late) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.late = true;
      this.onLate();
    }, RELAY_WAIT_MS);
  }

  /** The relay answered, or the page no longer waits for it. */
  stop() {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.late = false;
  }
}

/**
 * Sets the page's connection status (its `role="status"` line) to a sentence, followed by a link
 * to the connection check when `withCheck`. Unchanged text is left alone, so nothing is announced twice.
 * @param {HTMLElement} line @param {string} text @param {boolean} [withCheck]
 */
export function setStatus(line, text, withCheck = false) {
  const shown = withCheck ? `${text} ${CHECK_LINK_TEXT}` : text;
  if (line.textContent === shown && Boolean(line.querySelector('a')) === withCheck) return;
  if (!withCheck) {
    line.textContent = text;
    return;
  }
  const link = document.createElement('a');
  link.href = new URL('/check', location.origin).href;
  // A new tab: the room stays open (and keeps trying) while the check runs.
  link.target = '_blank';
  link.rel = 'noopener';
  link.textContent = CHECK_LINK_TEXT;
  line.replaceChildren(`${text} `, link);
}

/**
 * Wires the composer.
 * @param {{
 *   form: HTMLFormElement,
 *   input: HTMLTextAreaElement,
 *   notice: HTMLElement,
 *   chat: () => import('./chat.js').Chat | null,
 *   offline: string,
 *   setTooLong: (over: number) => void,
 *   render: () => void,
 *   onDraft?: (text: string) => void,
 *   onSent?: (message: import('./history.js').StoredMessage) => void,
 * }} options `offline` is what to say when a message cannot go now; `onDraft` hears every edit
 *   and `onSent` every message sent
 */
export function wireComposer({ form, input, notice, chat, offline, setTooLong, render, onDraft, onSent }) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const result = chat()?.send(input.value);
    if (!result) return;
    if (result.ok) {
      input.value = '';
      setTooLong(0);
      onSent?.(result.message);
    } else if (result.reason === 'offline') {
      notice.textContent = offline;
      return;
    }
    render();
  });
  input.addEventListener('keydown', (event) => {
    // Enter sends, Shift+Enter starts a new line; never interrupt an input method's composition.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener('input', () => {
    const over = protocol.textLength(input.value) - protocol.CHAT_TEXT_MAX_CHARS;
    setTooLong(Math.max(0, over));
    if (input.value.trim()) chat()?.typing();
    else chat()?.stopTyping();
    onDraft?.(input.value);
    render();
  });
  new EmojiPicker({
    button: /** @type {HTMLButtonElement} */ (element('emoji-button')),
    panel: element('emoji-panel'),
    onPick: (emoji) => {
      const { selectionStart, selectionEnd } = input;
      input.setRangeText(emoji, selectionStart, selectionEnd, 'end');
      input.focus();
      input.dispatchEvent(new Event('input'));
    },
  });
}

/**
 * "Share link": copies the room's address, or shows it where the clipboard is not allowed.
 * @param {string} path the room page's path @param {string} copied what to say once it is copied
 */
export function wireShareButton(path, copied) {
  const feedback = element('share-feedback');
  element('share-link').addEventListener('click', async () => {
    const address = new URL(path, location.origin).href;
    try {
      await navigator.clipboard.writeText(address);
      feedback.textContent = copied;
    } catch {
      feedback.textContent = `Copy this link: ${address}`;
    }
  });
}

/**
 * The "Your name" form: checks the name and hands a valid one to `onName`.
 * @param {(name: string) => Promise<void>} onName
 */
export function wireNameForm(onName) {
  const form = /** @type {HTMLFormElement} */ (element('name-form'));
  const input = /** @type {HTMLInputElement} */ (element('name-input'));
  const error = element('name-error');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = protocol.normalizeName(input.value);
    if (!name) {
      error.textContent = `A name is 1 to ${protocol.NAME_MAX_CHARS} characters, without control characters.`;
      input.setAttribute('aria-invalid', 'true');
      return;
    }
    error.textContent = '';
    input.removeAttribute('aria-invalid');
    input.value = name;
    await onName(name);
  });
}

/** Shown only if solving takes longer than this, so a quick check does not flash by. */
const PROOF_PROGRESS_DELAY_MS = 250;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let proofProgressTimer;

/**
 * Shows how far the proof of work has got (`null`: done), in the page's `#proof-progress`.
 * @param {number | null} fraction
 */
export function showProofProgress(fraction) {
  const bar = /** @type {HTMLProgressElement | null} */ (document.getElementById('proof-progress'));
  if (!bar) return;
  if (fraction === null) {
    clearTimeout(proofProgressTimer);
    proofProgressTimer = undefined;
    bar.hidden = true;
    bar.value = 0;
    return;
  }
  bar.value = fraction;
  if (bar.hidden && proofProgressTimer === undefined) {
    proofProgressTimer = setTimeout(() => (bar.hidden = false), PROOF_PROGRESS_DELAY_MS);
  }
}
