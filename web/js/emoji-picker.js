// The emoji picker: a button that opens a panel with search, recently used emoji and every emoji
// by category. Data and code are served from our own origin (emoji-data.js is generated).

import { getSetting, setSetting } from './storage.js';

/** The emoji list is fetched the first time the picker opens, so it never delays the room page. */
/** @type {Promise<typeof import('./emoji-data.js').EMOJI> | null} */
let emojiLoading = null;
const loadEmoji = () => (emojiLoading ??= import('./emoji-data.js').then((module) => module.EMOJI));

const RECENT_KEY = 'recentEmoji';
const RECENT_MAX = 24;

/** @param {string} emoji @param {string} name */
function emojiButton(emoji, name) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'emoji';
  button.textContent = emoji;
  button.setAttribute('aria-label', name);
  button.dataset.emoji = emoji;
  return button;
}

/** @param {string} title @param {HTMLElement[]} buttons */
function section(title, buttons) {
  const group = document.createElement('div');
  group.setAttribute('role', 'group');
  group.setAttribute('aria-label', title);
  group.className = 'emoji-section';
  const heading = document.createElement('p');
  heading.className = 'emoji-heading';
  heading.textContent = title;
  heading.setAttribute('aria-hidden', 'true');
  group.append(heading, ...buttons);
  return group;
}

export class EmojiPicker {
  /** @type {HTMLInputElement | null} */
  #search = null;
  /** @type {HTMLElement | null} */
  #recentSection = null;

  /**
   * @param {{ button: HTMLButtonElement, panel: HTMLElement, onPick: (emoji: string) => void }} options
   */
  constructor(options) {
    this.button = options.button;
    this.panel = options.panel;
    this.onPick = options.onPick;
    this.button.addEventListener('click', () => (this.panel.hidden ? this.open() : this.close()));
    this.panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        this.close();
        this.button.focus();
      }
    });
    document.addEventListener('pointerdown', (event) => {
      const target = /** @type {Node} */ (event.target);
      if (!this.panel.hidden && !this.panel.contains(target) && !this.button.contains(target)) this.close();
    });
  }

  /** Builds the panel on first use: most visits never open it. @param {typeof import('./emoji-data.js').EMOJI} EMOJI */
  #build(EMOJI) {
    const label = document.createElement('label');
    label.className = 'emoji-search';
    label.textContent = 'Search emoji ';
    const search = document.createElement('input');
    search.type = 'search';
    search.autocomplete = 'off';
    label.append(search);
    const scroller = document.createElement('div');
    scroller.className = 'emoji-scroller';
    this.#recentSection = section('Recently used', []);
    /** @type {Map<string, HTMLElement[]>} */
    const byCategory = new Map();
    for (const [emoji, name, words, category] of EMOJI) {
      const button = emojiButton(emoji, name);
      button.dataset.words = words;
      byCategory.set(category, [...(byCategory.get(category) ?? []), button]);
    }
    scroller.append(this.#recentSection, ...[...byCategory].map(([title, buttons]) => section(title, buttons)));
    this.panel.append(label, scroller);
    search.addEventListener('input', () => this.#filter(search.value));
    scroller.addEventListener('click', (event) => {
      const button = /** @type {HTMLElement} */ (event.target).closest('button.emoji');
      if (button instanceof HTMLButtonElement && button.dataset.emoji) this.#pick(button.dataset.emoji);
    });
    this.#search = search;
  }

  /** @param {string} query */
  #filter(query) {
    const words = query.trim().toLowerCase().split(/\s+/).filter(Boolean);
    for (const button of this.panel.querySelectorAll('.emoji-section:not(:first-child) button.emoji')) {
      const haystack = /** @type {HTMLElement} */ (button).dataset.words ?? '';
      /** @type {HTMLElement} */ (button).hidden = !words.every((word) => haystack.includes(word));
    }
    if (this.#recentSection) this.#recentSection.hidden = words.length > 0;
  }

  /** @param {typeof import('./emoji-data.js').EMOJI} EMOJI */
  async #showRecent(EMOJI) {
    const recent = /** @type {unknown} */ (await getSetting(RECENT_KEY));
    const list = Array.isArray(recent) ? recent.filter((item) => typeof item === 'string') : [];
    const names = new Map(EMOJI.map(([emoji, name]) => [emoji, name]));
    const buttons = list.filter((emoji) => names.has(emoji)).map((emoji) => emojiButton(emoji, names.get(emoji) ?? emoji));
    const section = /** @type {HTMLElement} */ (this.#recentSection);
    section.replaceChildren(/** @type {Node} */ (section.firstChild), ...buttons);
    section.hidden = buttons.length === 0;
  }

  async open() {
    const emoji = await loadEmoji();
    if (!this.#search) this.#build(emoji);
    await this.#showRecent(emoji);
    this.panel.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
    const search = /** @type {HTMLInputElement} */ (this.#search);
    search.value = '';
    this.#filter('');
    search.focus();
  }

  close() {
    this.panel.hidden = true;
    this.button.setAttribute('aria-expanded', 'false');
  }

  /** @param {string} emoji */
  async #pick(emoji) {
    this.close();
    this.onPick(emoji);
    const recent = /** @type {unknown} */ (await getSetting(RECENT_KEY));
    const list = Array.isArray(recent) ? recent.filter((item) => typeof item === 'string' && item !== emoji) : [];
    await setSetting(RECENT_KEY, [emoji, ...list].slice(0, RECENT_MAX));
  }
}
