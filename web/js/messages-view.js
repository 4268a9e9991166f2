// Renders chat messages as DOM. Message text and names are untrusted: they only ever become text
// nodes; the only elements made from them are links, and only for http(s) URLs. Files get a card
// from file-view.js.

import { renderFileCard } from './file-view.js';

/** @typedef {import('./history.js').StoredMessage} StoredMessage */

/** Consecutive messages of one author closer than this are grouped under one name. */
const GROUP_WITHIN_MS = 5 * 60_000;
const URL_IN_TEXT = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING_PUNCTUATION = /[.,;:!?)\]}'"]+$/;
const EMOJI_ONLY = /^(?:\p{Extended_Pictographic}|\p{Emoji_Modifier}|\p{Regional_Indicator}|\u200d|\ufe0f|\s)+$/u;
const PICTOGRAPH = /\p{Extended_Pictographic}|\p{Regional_Indicator}/gu;
const STATE_TEXT = { sending: 'Sending', sent: 'Sent', delivered: 'Delivered', received: '' };

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/** A stable hue per person, so the same author keeps the same colour. @param {string} id */
export function authorHue(id) {
  let hash = 0;
  for (const char of id) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) >>> 0;
  return hash % 360;
}

/** Short messages made only of emoji are shown large. @param {string} text */
export function isEmojiOnly(text) {
  const pictographs = text.match(PICTOGRAPH)?.length ?? 0;
  return pictographs > 0 && pictographs <= 8 && EMOJI_ONLY.test(text);
}

/**
 * Appends `text` to `parent` as text nodes, with http(s) URLs as links that open safely.
 * @param {HTMLElement} parent
 * @param {string} text
 */
export function appendLinkified(parent, text) {
  let last = 0;
  for (const match of text.matchAll(URL_IN_TEXT)) {
    const start = match.index ?? 0;
    const candidate = match[0].replace(TRAILING_PUNCTUATION, '');
    /** @type {URL | null} */
    let url = null;
    try {
      url = new URL(candidate);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) continue;
    parent.append(text.slice(last, start));
    const link = document.createElement('a');
    link.href = url.href;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    link.textContent = candidate;
    parent.append(link);
    last = start + candidate.length;
  }
  parent.append(text.slice(last));
}

/**
 * Builds (or rebuilds) the list item of one message.
 * @param {StoredMessage} message
 * @param {StoredMessage | undefined} previous the message shown just before it
 * @param {HTMLLIElement} [item] an existing item to update
 */
export function renderMessage(message, previous, item = document.createElement('li')) {
  item.replaceChildren();
  item.dataset.id = message.id;
  const grouped =
    previous !== undefined &&
    previous.authorId === message.authorId &&
    Math.abs(message.sentAt - previous.sentAt) < GROUP_WITHIN_MS;
  item.className = ['message', message.own ? 'own' : '', grouped ? 'continued' : ''].filter(Boolean).join(' ');
  item.style.setProperty('--author-hue', String(authorHue(message.authorId)));

  const header = document.createElement('div');
  header.className = grouped ? 'meta visually-hidden' : 'meta';
  const author = document.createElement('span');
  author.className = 'author';
  author.dir = 'auto';
  author.textContent = message.own ? 'You' : message.author;
  const time = document.createElement('time');
  time.dateTime = new Date(message.sentAt).toISOString();
  time.textContent = timeFormat.format(message.sentAt);
  header.append(author, ' ', time);

  if (message.file) {
    item.classList.add('file');
    item.append(header, renderFileCard(/** @type {StoredMessage & { file: import('./files.js').FileInfo }} */ (message)));
    return item;
  }

  const body = document.createElement('div');
  body.className = isEmojiOnly(message.text) ? 'text emoji-only' : 'text';
  // dir=auto isolates the text, so right-to-left overrides inside it cannot reorder the page.
  body.dir = 'auto';
  appendLinkified(body, message.text);

  item.append(header, body);
  if (message.own) {
    const state = document.createElement('span');
    state.className = `state ${message.state}`;
    state.textContent = STATE_TEXT[message.state];
    item.append(state);
  }
  return item;
}
