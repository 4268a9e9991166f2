// The chat of one room: sending with delivery marks, acknowledging, re-sending what the other
// side has not acknowledged after a reconnect, de-duplicating by message id, and history.
// No DOM here; the page renders what onChange reports.

import * as protocol from './protocol.js';
import { clearHistory, keepsHistory, loadHistory, nextSeq, saveMessage, setKeepsHistory } from './history.js';

/** @typedef {import('./history.js').StoredMessage} StoredMessage */

/** Repeat "typing" at most this often while the person keeps typing. */
const TYPING_REPEAT_MS = 3_000;

/**
 * @typedef {{
 *   send: (wire: string, to?: string) => boolean,
 *   onChange: (message: StoredMessage) => void,
 *   onReset: () => void,
 *   onTyping: (active: boolean) => void,
 * }} ChatHandlers
 */

export class Chat {
  /** Every message of the room shown in this page, by id. @type {Map<string, StoredMessage>} */
  messages = new Map();

  /** The messages in the order they were sent or received. @returns {StoredMessage[]} */
  ordered() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }
  /** Own messages sent but not yet acknowledged, oldest first. @type {Map<string, StoredMessage>} */
  #unacknowledged = new Map();
  keepHistory = true;
  #typingSentAt = 0;
  /** Resolves once stored history is loaded; received messages wait for it, so a copy re-sent
   * after a reload is recognised as one already kept. @type {Promise<unknown>} */
  #loaded = Promise.resolve();

  /**
   * @param {{ room: string, self: { peerId: string, name: string } }} options
   * @param {ChatHandlers} handlers
   */
  constructor(options, handlers) {
    this.room = options.room;
    this.self = options.self;
    this.handlers = handlers;
  }

  /** Loads the stored history (if this room keeps it). @returns {Promise<StoredMessage[]>} */
  load() {
    const loading = this.#load();
    this.#loaded = loading.catch(() => undefined);
    return loading;
  }

  /** @returns {Promise<StoredMessage[]>} */
  async #load() {
    this.keepHistory = await keepsHistory(this.room);
    const stored = this.keepHistory ? await loadHistory(this.room) : [];
    for (const message of stored) {
      this.messages.set(message.id, message);
      // Files have their own resume (files.js); only chat text is sent again.
      if (message.own && !message.file && message.state !== 'delivered') this.#unacknowledged.set(message.id, message);
    }
    return stored;
  }

  /** @param {StoredMessage} message */
  #store(message) {
    this.messages.set(message.id, message);
    if (this.keepHistory) saveMessage(message).catch((error) => console.warn('natter: history not saved', error));
    this.handlers.onChange(message);
  }

  /** Records a message that is not chat text (a file), in the page and in history. @param {StoredMessage} message */
  put(message) {
    this.#store(message);
  }

  /**
   * Sends a message now, or explains why not. Nothing is queued while the other person is away.
   * @param {string} text
   * @returns {{ ok: true, message: StoredMessage } | { ok: false, reason: 'empty' | 'too-long' | 'offline' }}
   */
  send(text) {
    if (text.trim().length === 0) return { ok: false, reason: 'empty' };
    const chat = protocol.chatMessage(text);
    if (!chat) return { ok: false, reason: 'too-long' };
    if (!this.handlers.send(chat.wire)) return { ok: false, reason: 'offline' };
    this.stopTyping();
    /** @type {StoredMessage} */
    const message = {
      room: this.room,
      id: chat.message.id,
      seq: nextSeq(),
      own: true,
      authorId: this.self.peerId,
      author: this.self.name,
      text: chat.message.text,
      sentAt: chat.message.sentAt,
      state: 'sent',
    };
    this.#unacknowledged.set(message.id, message);
    this.#store(message);
    return { ok: true, message };
  }

  /**
   * Handles a message from the other person.
   * @param {protocol.DataMessage} data
   * @param {{ peerId: string, name: string }} from
   */
  receive(data, from) {
    this.#loaded.then(() => this.#receive(data, from));
  }

  /** @param {protocol.DataMessage} data @param {{ peerId: string, name: string }} from */
  #receive(data, from) {
    switch (data.type) {
      case 'chat': {
        // Acknowledge every copy: the first ack may have been lost with the old channel.
        this.handlers.send(protocol.ackMessage(data.id), from.peerId);
        if (this.messages.has(data.id)) return;
        this.handlers.onTyping(false);
        this.#store({
          room: this.room,
          id: data.id,
          seq: nextSeq(),
          own: false,
          authorId: from.peerId,
          author: from.name,
          text: data.text,
          sentAt: data.sentAt,
          state: 'received',
        });
        return;
      }
      case 'ack': {
        const message = this.#unacknowledged.get(data.id);
        if (!message) return;
        this.#unacknowledged.delete(data.id);
        this.#store({ ...message, state: 'delivered' });
        return;
      }
      case 'typing':
        this.handlers.onTyping(data.active);
        return;
    }
  }

  /** A channel to the other person opened: send again what they have not acknowledged. */
  channelOpened() {
    for (const message of this.#unacknowledged.values()) {
      if (!this.handlers.send(protocol.chatWire({ type: 'chat', ...message }))) break;
    }
  }

  /** The person is typing in the composer. */
  typing() {
    const now = Date.now();
    if (now - this.#typingSentAt < TYPING_REPEAT_MS) return;
    if (this.handlers.send(protocol.typingMessage(true))) this.#typingSentAt = now;
  }

  stopTyping() {
    if (this.#typingSentAt === 0) return;
    this.#typingSentAt = 0;
    this.handlers.send(protocol.typingMessage(false));
  }

  /** @param {string} name */
  rename(name) {
    this.self = { ...this.self, name };
  }

  /** Turns history in this browser on (saving what is shown) or off (deleting what is stored). @param {boolean} keep */
  async setKeepHistory(keep) {
    this.keepHistory = keep;
    await setKeepsHistory(this.room, keep);
    if (keep) await Promise.all([...this.messages.values()].map((message) => saveMessage(message)));
  }

  /** Removes this browser's messages of the room; the other side keeps theirs. */
  async clear() {
    await clearHistory(this.room);
    this.messages.clear();
    this.#unacknowledged.clear();
    this.handlers.onReset();
  }
}
