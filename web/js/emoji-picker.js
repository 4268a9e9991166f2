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
  // Roving focus: the grid is one Tab stop, arrow keys move within it.
  button.tabIndex = -1;
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
    search.addEventListener('keydown', (event) => {
      const first = this.#visibleButtons()[0];
      if (!first) return;
      if (event.key === 'ArrowDown') {
        event.preventDefault();
        this.#focusButton(first);
      } else if (event.key === 'Enter') {
        // Search then Enter picks the best match, as in the pickers people know.
        event.preventDefault();
        if (first.dataset.emoji) this.#pick(first.dataset.emoji);
      }
    });
    scroller.addEventListener('keydown', (event) => this.#navigate(event));
    scroller.addEventListener('click', (event) => {
      const button = /** @type {HTMLElement} */ (event.target).closest('button.emoji');
      if (button instanceof HTMLButtonElement && button.dataset.emoji) this.#pick(button.dataset.emoji);
    });
    this.#search = search;
  }

  /** Emoji buttons on show, in reading order. @returns {HTMLButtonElement[]} */
  #visibleButtons() {
    const all = /** @type {NodeListOf<HTMLButtonElement>} */ (this.panel.querySelectorAll('button.emoji'));
    // offsetParent is null for anything inside a hidden section or hidden itself.
    return [...all].filter((button) => button.offsetParent !== null);
  }

  /** Makes `button` the grid's single Tab stop. @param {HTMLButtonElement} button */
  #setTabStop(button) {
    for (const other of this.panel.querySelectorAll('button.emoji[tabindex="0"]')) /** @type {HTMLElement} */ (other).tabIndex = -1;
    button.tabIndex = 0;
  }

  /** @param {HTMLButtonElement} button */
  #focusButton(button) {
    this.#setTabStop(button);
    button.focus();
    button.scrollIntoView({ block: 'nearest' });
  }

  /** Arrow keys, Home and End move through the grid; Up/Down keep the column. @param {KeyboardEvent} event */
  #navigate(event) {
    const current = /** @type {HTMLElement} */ (event.target).closest('button.emoji');
    if (!(current instanceof HTMLButtonElement)) return;
    const buttons = this.#visibleButtons();
    const index = buttons.indexOf(current);
    if (index < 0) return;
    /** @type {HTMLButtonElement | undefined} */
    let next;
    if (event.key === 'ArrowRight') next = buttons[index + 1];
    else if (event.key === 'ArrowLeft') next = buttons[index - 1];
    else if (event.key === 'Home') next = buttons[0];
    else if (event.key === 'End') next = buttons.at(-1);
    else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      next = this.#sameColumn(buttons, index, event.key === 'ArrowDown' ? 1 : -1);
      if (!next && event.key === 'ArrowUp') {
        // Up from the first row goes back to the search box.
        event.preventDefault();
        this.#search?.focus();
        return;
      }
    } else return;
    event.preventDefault();
    if (next) this.#focusButton(next);
  }

  /**
   * The button in the row above or below whose centre is nearest the current one's: rows differ in
   * length between sections, so the column is found by position, not by counting.
   * @param {HTMLButtonElement[]} buttons @param {number} index @param {1 | -1} step
   */
  #sameColumn(buttons, index, step) {
    const from = buttons[index].getBoundingClientRect();
    const centre = from.left + from.width / 2;
    /** @type {number | null} */
    let rowTop = null;
    /** @type {HTMLButtonElement | undefined} */
    let best;
    let bestDistance = Infinity;
    for (let i = index + step; i >= 0 && i < buttons.length; i += step) {
      const rect = buttons[i].getBoundingClientRect();
      if (Math.abs(rect.top - from.top) < 1) continue;
      rowTop ??= rect.top;
      if (Math.abs(rect.top - rowTop) >= 1) break;
      const distance = Math.abs(rect.left + rect.width / 2 - centre);
      if (distance < bestDistance) [best, bestDistance] = [buttons[i], distance];
    }
    return best;
  }

  /** @param {string} query */
  #filter(query) {
    const words = query.trim().toLowerCase().split(/\s+/).filter(Boolean);
    for (const button of this.panel.querySelectorAll('.emoji-section:not(:first-child) button.emoji')) {
      const haystack = /** @type {HTMLElement} */ (button).dataset.words ?? '';
      /** @type {HTMLElement} */ (button).hidden = !words.every((word) => haystack.includes(word));
    }
    if (this.#recentSection) this.#recentSection.hidden = words.length > 0;
    // Tab from the search box lands on the first match.
    const first = this.#visibleButtons()[0];
    if (first) this.#setTabStop(first);
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
