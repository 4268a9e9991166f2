// Luna in the page: the room's "Allow @luna" setting with a plain statement of what is sent
// where, the preview of exactly which messages a question carries, and Luna's replies streamed
// into the message log. Replies are plain text (textContent) and kept in page memory only.

import * as protocol from './protocol.js';

/** Serialized questions stay well under the 64 KiB signaling limit. */
const MAX_ASK_BYTES = 48 * 1024;

/**
 * @typedef {import('./history.js').StoredMessage} StoredMessage
 * @typedef {{ item: HTMLLIElement, body: HTMLElement, text: string, afterSeq: number }} Reply
 */

/**
 * The messages a question carries: the chat's text messages before it and Luna's replies among
 * them, the last LUNA_CONTEXT_MESSAGES, dropping the oldest while the whole would be too large.
 * @param {StoredMessage[]} history the chat, in order
 * @param {{ text: string, afterSeq: number, id: string }[]} replies Luna's replies, with the chat's seq they followed
 * @param {string} questionId
 * @returns {protocol.LunaTurn[]}
 */
export function lunaContext(history, replies, questionId) {
  const question = history.find((message) => message.id === questionId);
  const before = history.filter(
    (message) => !message.file && message.text && message.id !== questionId && (!question || message.seq < question.seq),
  );
  /** @type {(protocol.LunaTurn & { order: number })[]} */
  const turns = before.map((message) => ({ id: message.id, author: message.author, text: message.text, order: message.seq }));
  for (const reply of replies) {
    if (reply.text && (!question || reply.afterSeq < question.seq)) {
      turns.push({ id: reply.id, author: 'Luna', text: reply.text, luna: true, order: reply.afterSeq + 0.5 });
    }
  }
  turns.sort((a, b) => a.order - b.order);
  const context = turns.slice(-protocol.LUNA_CONTEXT_MESSAGES).map(({ order: _order, ...turn }) => turn);
  while (context.length && new TextEncoder().encode(JSON.stringify(context)).length > MAX_ASK_BYTES) context.shift();
  return context;
}

export class LunaPanel {
  /** @type {protocol.LunaInfo | null} */
  info = null;
  /** @type {Map<string, Reply>} */
  #replies = new Map();
  #setting = document.createElement('div');
  #toggle = document.createElement('input');
  #statement = document.createElement('p');
  #preview = document.createElement('details');
  #previewSummary = document.createElement('summary');
  #previewList = document.createElement('ol');

  /**
   * @param {{
   *   messageLog: HTMLElement,
   *   history: () => StoredMessage[],
   *   ask: (id: string, text: string, context: protocol.LunaTurn[]) => boolean,
   *   allow: (allowed: boolean) => void,
   * }} options
   */
  constructor(options) {
    this.options = options;
    this.#setting.className = 'luna-setting';
    this.#setting.hidden = true;
    this.#toggle.type = 'checkbox';
    this.#toggle.addEventListener('change', () => options.allow(this.#toggle.checked));
    const label = document.createElement('label');
    label.className = 'toggle';
    label.append(this.#toggle, ' Allow @luna');
    this.#statement.className = 'note';
    this.#statement.setAttribute('role', 'status');
    this.#statement.setAttribute('aria-label', 'Luna');
    this.#setting.append(label, this.#statement);
    document.getElementById('people')?.append(this.#setting);
    this.#preview.className = 'luna-preview';
    this.#preview.hidden = true;
    this.#previewList.setAttribute('aria-label', 'What Luna will see');
    this.#preview.append(this.#previewSummary, this.#previewList);
    document.getElementById('composer-notice')?.after(this.#preview);
  }

  /** True when a message that mentions @luna is sent to Luna. */
  get allowed() {
    return this.info?.allowed === true;
  }

  /** Takes what concerns Luna from a server message. @param {protocol.ServerMessage} message */
  handle(message) {
    if (message.type === 'welcome') this.info = message.luna;
    else if (message.type === 'room-state' && this.info && message.luna !== null) {
      this.info = { ...this.info, allowed: message.luna };
    } else if (message.type === 'luna') this.#piece(message);
  }

  /**
   * @param {{ canToggle: boolean, whoDecides: string }} state who may change the setting, and
   *   how to name them to the others
   */
  render({ canToggle, whoDecides }) {
    const info = this.info;
    this.#setting.hidden = !info;
    if (!info) return;
    this.#toggle.checked = info.allowed;
    this.#toggle.disabled = !canToggle;
    const where = `the model ${info.model} at ${info.host}`;
    const text = info.allowed
      ? `@luna is on in this room. A message that mentions @luna goes, with up to ${protocol.LUNA_CONTEXT_MESSAGES} messages before it, to this server, which passes them to ${where}. Everyone here sees Luna's reply. The server keeps no more than ${protocol.LUNA_CONTEXT_MESSAGES} messages, in memory, until the room empties.`
      : `@luna is off in this room. ${whoDecides} can turn it on; then a message that mentions @luna, with up to ${protocol.LUNA_CONTEXT_MESSAGES} messages before it, goes through this server to ${where}.`;
    if (this.#statement.textContent !== text) this.#statement.textContent = text;
  }

  /** Luna's replies so far, for the context of the next question. */
  #replyTurns() {
    return [...this.#replies.entries()].map(([id, reply]) => ({ id, text: reply.text, afterSeq: reply.afterSeq }));
  }

  /**
   * Shows, while a person writes, exactly which messages a question would carry.
   * @param {string} draft
   */
  preview(draft) {
    const show = this.allowed && protocol.mentionsLuna(draft);
    this.#preview.hidden = !show;
    if (!show) return;
    const context = lunaContext(this.options.history(), this.#replyTurns(), '');
    this.#previewSummary.textContent =
      context.length === 0
        ? 'Luna will see only this message'
        : `Luna will see this message and the ${context.length === 1 ? 'message' : `${context.length} messages`} before it`;
    this.#previewList.replaceChildren(
      ...context.map((turn) => {
        const item = document.createElement('li');
        item.textContent = `${turn.author}: ${turn.text}`;
        return item;
      }),
    );
  }

  /** After a message was sent: asks Luna if it mentions @luna and the room allows it. @param {StoredMessage} message */
  sent(message) {
    this.#preview.hidden = true;
    if (!this.allowed || !protocol.mentionsLuna(message.text)) return;
    const context = lunaContext(this.options.history(), this.#replyTurns(), message.id);
    this.options.ask(message.id, message.text, context);
  }

  /** @param {Extract<protocol.ServerMessage, { type: 'luna' }>} message */
  #piece(message) {
    let reply = this.#replies.get(message.reply);
    if (!reply) {
      if (this.#replies.size >= 200) {
        // Page memory is bounded: forget the oldest reply's text (its item stays in the log).
        const [oldest] = this.#replies.keys();
        this.#replies.delete(oldest);
      }
      const item = document.createElement('li');
      item.className = 'message luna';
      item.dataset.lunaReply = message.reply;
      const meta = document.createElement('div');
      meta.className = 'meta';
      const author = document.createElement('span');
      author.className = 'author';
      author.textContent = 'Luna';
      meta.append(author);
      const body = document.createElement('div');
      body.className = 'text';
      item.append(meta, body);
      const history = this.options.history();
      reply = { item, body, text: '', afterSeq: history.at(-1)?.seq ?? 0 };
      this.#replies.set(message.reply, reply);
      const log = this.options.messageLog;
      const following = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      log.append(item);
      if (following) log.scrollTop = log.scrollHeight;
    }
    if (message.failure) {
      reply.item.classList.add('failed');
      reply.text = '';
      reply.body.textContent = message.text;
    } else {
      reply.text += message.text;
      reply.body.textContent = reply.text;
    }
    if (message.done) {
      reply.item.classList.add('done');
      if (!reply.body.textContent) reply.body.textContent = '(Luna had nothing to say.)';
    }
  }
}
