// Controls both room pages have: the composer (Enter sends, Shift+Enter adds a line, the length
// limit, typing, the emoji picker), "Share link", and the name form. They talk to a Chat and to
// the page through callbacks; they build no wire messages.

import * as protocol from './protocol.js';
import { EmojiPicker } from './emoji-picker.js';

/** @template {HTMLElement} T @param {string} id @returns {T} */
const element = (id) => /** @type {T} */ (document.getElementById(id));

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
 * }} options `offline` is what to say when a message cannot go now
 */
export function wireComposer({ form, input, notice, chat, offline, setTooLong, render }) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const result = chat()?.send(input.value);
    if (!result) return;
    if (result.ok) {
      input.value = '';
      setTooLong(0);
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
