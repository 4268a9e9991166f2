// File cards in a room's message log, shared by the pair and group pages: rendering a file message
// with its live progress and preview, the card's buttons (accept, decline, cancel, download,
// select again), the large image view, and sending what is attached, dropped or pasted.

import * as protocol from './protocol.js';
import { renderMessage } from './messages-view.js';
import { fillPreview, formatBytes, showProgress } from './file-view.js';
import { hasSpaceFor } from './file-store.js';

/** @typedef {import('./history.js').StoredMessage} StoredMessage */
/** @typedef {import('./files.js').FileTransfers} FileTransfers */
/** @typedef {import('./file-store.js').FileStore} FileStore */

/** @template {HTMLElement} T @param {string} id @returns {T} */
const element = (id) => /** @type {T} */ (document.getElementById(id));

export class FileCards {
  viewer = /** @type {HTMLDialogElement} */ (element('file-viewer'));
  viewerImage = /** @type {HTMLImageElement} */ (element('file-viewer-image'));
  fileStatus = element('file-status');

  /**
   * @param {{
   *   messageLog: HTMLElement,
   *   owner: (id: string) => FileTransfers | null,
   *   store: () => FileStore | null,
   *   reselect: (id: string) => void,
   * }} options `owner` finds the transfers object a file message belongs to
   */
  constructor(options) {
    this.owner = options.owner;
    this.store = options.store;
    options.messageLog.addEventListener('click', (event) => {
      const button = /** @type {HTMLElement} */ (event.target).closest('button[data-action]');
      const id = button?.closest('li')?.dataset.id;
      const files = id ? this.owner(id) : null;
      if (!(button instanceof HTMLButtonElement) || !id || !files) return;
      switch (button.dataset.action) {
        case 'accept':
          files.accept(id);
          break;
        case 'decline':
          files.decline(id);
          break;
        case 'cancel':
          files.cancel(id);
          break;
        case 'download':
          this.download(id);
          break;
        case 'reselect':
          options.reselect(id);
          break;
      }
    });
    this.viewer.addEventListener('click', (event) => {
      // A click on the backdrop (outside the image) closes the view, like Escape and "Close".
      if (event.target === this.viewer) this.viewer.close();
    });
    element('file-viewer-close').addEventListener('click', () => this.viewer.close());
  }

  /** Opens the large view of an image. @param {string} url @param {string} name */
  enlarge(url, name) {
    this.viewerImage.src = url;
    this.viewerImage.alt = name;
    this.viewer.setAttribute('aria-label', name);
    this.viewer.showModal();
  }

  /**
   * Builds a message's list item; a file's card also gets its live progress and its preview.
   * @param {StoredMessage} message
   * @param {StoredMessage | undefined} previous
   * @param {HTMLLIElement} [item]
   */
  render(message, previous, item) {
    const rendered = renderMessage(message, previous, item);
    const info = message.file;
    const files = info ? this.owner(message.id) : null;
    if (!info || !files) return rendered;
    const transfer = files.transfers.get(message.id);
    if (transfer?.active) showProgress(rendered, transfer);
    const file = message.own ? transfer?.file : null;
    const store = this.store();
    if (file || (!message.own && info.state === 'complete' && store)) {
      const read = async () => file ?? (await store?.read(message.id)) ?? null;
      fillPreview(rendered, /** @type {StoredMessage & { file: typeof info }} */ (message), read, (url, name) =>
        this.enlarge(url, name),
      );
    }
    return rendered;
  }

  /** Saves a received file under its (sanitised) name. @param {string} id */
  async download(id) {
    const info = this.owner(id)?.transfers.get(id)?.info;
    const file = await this.store()?.read(id);
    if (!info || !file) {
      this.fileStatus.textContent = 'That file is no longer stored in this browser.';
      return;
    }
    // Typed as plain bytes, so the browser saves it instead of opening it as a page.
    const url = URL.createObjectURL(new Blob([file], { type: 'application/octet-stream' }));
    const anchor = document.createElement('a');
    anchor.href = url;
    anchor.download = protocol.sanitizeFileName(info.name);
    anchor.click();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
}

/**
 * Sends files the person attaches, drops anywhere on the page or pastes.
 * @param {HTMLButtonElement} attachButton @param {HTMLInputElement} fileInput
 * @param {(files: Iterable<File>) => void} send
 */
export function acceptFiles(attachButton, fileInput, send) {
  attachButton.addEventListener('click', () => fileInput.click());
  fileInput.addEventListener('change', () => {
    send(fileInput.files ?? []);
    fileInput.value = '';
  });
  document.addEventListener('dragover', (event) => {
    if (!event.dataTransfer?.types.includes('Files')) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
  });
  document.addEventListener('drop', (event) => {
    if (!event.dataTransfer?.files.length) return;
    event.preventDefault();
    send(event.dataTransfer.files);
  });
  document.addEventListener('paste', (event) => {
    if (!event.clipboardData?.files.length) return;
    event.preventDefault();
    send(event.clipboardData.files);
  });
}

/**
 * Why an offer was not made, in words. @param {File} file @param {string} reason @param {number} limit
 */
export const offerRefusal = (file, reason, limit) =>
  reason === 'offline'
    ? 'Not sent: the other person is not connected.'
    : `${file.name} is ${formatBytes(file.size)}: larger than this server's limit of ${formatBytes(limit)}.`;

/**
 * What a room's file transfers need from its page: the chat that records file messages, progress
 * shown on their cards, the "Files" status line, hashing and storage.
 * @param {{ chat: import('./chat.js').Chat, messageLog: HTMLElement, store: FileStore,
 *   hasher: import('./file-store.js').FileHasher }} page
 * @returns {import('./files.js').FileHandlers}
 */
export function fileHandlers({ chat, messageLog, store, hasher }) {
  const fileStatus = element('file-status');
  return {
    put: (message) => chat.put(message),
    onProgress: (transfer) => {
      const item = messageLog.querySelector(`li[data-id="${CSS.escape(transfer.id)}"]`);
      if (item instanceof HTMLElement) showProgress(item, transfer);
    },
    notify: (text) => (fileStatus.textContent = text),
    hash: (file, progress, signal) => hasher.hash(file, progress, signal),
    hasSpaceFor,
    idInUse: (id) => chat.messages.has(id),
    storage: store,
  };
}
