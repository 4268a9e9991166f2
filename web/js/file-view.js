// Renders files in the message log: a card with name, size, progress, state and the buttons that
// fit the state, and for finished files a preview. File names are untrusted and only ever become
// text. Previews are chosen by the file's first bytes, not by its name or declared type: images
// (PNG, JPEG, GIF, WebP, AVIF) through <img>, audio and video through players. Nothing is ever
// rendered as a document: SVG and HTML are offered as downloads, typed application/octet-stream.

/** @typedef {import('./history.js').StoredMessage} StoredMessage */
/** @typedef {import('./files.js').FileInfo} FileInfo */
/** @typedef {import('./files.js').Transfer} Transfer */

/** Declared types that may play in a media element (which never runs script). */
const PLAYABLE = new Set([
  'video/mp4', 'video/webm', 'video/ogg', 'audio/mpeg', 'audio/ogg', 'audio/wav', 'audio/webm',
  'audio/mp4', 'audio/aac', 'audio/flac', 'audio/x-wav',
]);

/**
 * The image type of a file by its magic bytes, or null.
 * @param {Uint8Array} head the file's first 16 bytes (or fewer)
 * @returns {string | null}
 */
export function sniffImageType(head) {
  /** @param {number} at @param {string} ascii */
  const has = (at, ascii) => [...ascii].every((char, i) => head[at + i] === char.charCodeAt(0));
  if (head[0] === 0x89 && has(1, 'PNG\r\n\u001a\n')) return 'image/png';
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'image/jpeg';
  if (has(0, 'GIF87a') || has(0, 'GIF89a')) return 'image/gif';
  if (has(0, 'RIFF') && has(8, 'WEBP')) return 'image/webp';
  if (has(4, 'ftypavif') || has(4, 'ftypavis')) return 'image/avif';
  return null;
}

/** @param {number} bytes */
export function formatBytes(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** @param {number} seconds */
export function formatDuration(seconds) {
  const s = Math.max(1, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const PAUSED = {
  left: 'Paused: the other person left. It continues when they are back.',
  connection: 'Paused: the connection dropped. It continues when you are reconnected.',
  sender: 'Paused: waiting for the sender to continue (they may need to select the file again).',
};

/** What the card says about the file's state. @param {FileInfo} info @param {boolean} own */
export function stateText(info, own) {
  const paused = PAUSED[info.reason === 'left' || info.reason === 'sender' ? info.reason : 'connection'];
  switch (info.state) {
    case 'hashing':
      return 'Preparing: computing its checksum…';
    case 'waiting':
      return 'Waiting for the other person to accept';
    case 'offered':
      return 'Wants to send you this file';
    case 'sending':
    case 'receiving':
      return 'Starting…';
    case 'paused':
      return own ? `${paused} Keep this page open.` : paused;
    case 'needs-file':
      return 'Paused: this page was reloaded. Select the file again to resume.';
    case 'complete':
      return own ? 'Sent: the other person has it, checked.' : 'Received: checked, complete and intact.';
    case 'declined':
      switch (info.reason) {
        case 'too-large':
          return own ? 'Not sent: larger than the other side allows.' : 'Declined: larger than this server allows.';
        case 'no-space':
          return own ? 'Not sent: the other person has no room for it.' : 'Declined: not enough storage space.';
        case 'busy':
          return 'Not sent: the other person is receiving too many files. Try again later.';
        default:
          return info.byYou ? 'You declined it.' : 'The other person declined it.';
      }
    case 'cancelled':
      return info.byYou ? 'Cancelled.' : `Cancelled by the ${own ? 'other person' : 'sender'}.`;
    case 'failed':
      if (info.reason === 'corrupt') {
        return own
          ? 'Failed: it arrived damaged on the other side and was not kept.'
          : 'Failed: it arrived damaged (checksum mismatch) and was deleted.';
      }
      if (info.reason === 'unreadable') return 'Failed: the file could not be read.';
      return 'Failed.';
  }
}

/**
 * @param {string} label
 * @param {string} action
 * @param {string} [className]
 */
function actionButton(label, action, className = '') {
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = label;
  button.dataset.action = action;
  if (className) button.className = className;
  return button;
}

/**
 * The body of a file message: the card.
 * @param {StoredMessage & { file: FileInfo }} message
 */
export function renderFileCard(message) {
  const { file: info, own } = message;
  const card = document.createElement('div');
  card.className = `file-card ${info.state}`;
  card.setAttribute('role', 'group');
  card.setAttribute('aria-label', `File ${info.name}`);

  const preview = document.createElement('div');
  preview.className = 'file-preview';
  const name = document.createElement('span');
  name.className = 'file-name';
  name.dir = 'auto';
  name.textContent = info.name;
  const size = document.createElement('span');
  size.className = 'file-size';
  size.textContent = formatBytes(info.size);
  const title = document.createElement('div');
  title.className = 'file-title';
  title.append(name, ' ', size);

  const progress = document.createElement('progress');
  progress.max = 100;
  progress.value = 0;
  progress.setAttribute('aria-label', `Progress of ${info.name}`);
  progress.hidden = !['hashing', 'sending', 'receiving', 'paused'].includes(info.state);
  const status = document.createElement('p');
  status.className = 'file-status';
  status.textContent = stateText(info, own);

  const actions = document.createElement('div');
  actions.className = 'file-actions';
  if (info.state === 'offered') actions.append(actionButton('Accept', 'accept'), actionButton('Decline', 'decline'));
  if (info.state === 'needs-file') actions.append(actionButton('Select file again', 'reselect'));
  if (['hashing', 'waiting', 'sending', 'receiving', 'paused', 'needs-file'].includes(info.state)) {
    actions.append(actionButton('Cancel', 'cancel'));
  }
  if (info.state === 'complete' && !own) actions.append(actionButton('Download', 'download'));

  card.append(preview, title, progress, status, actions);
  return card;
}

/**
 * Shows a live transfer's progress in its card: percentage, speed and time left.
 * @param {HTMLElement} item the message's list item
 * @param {Transfer} transfer
 */
export function showProgress(item, transfer) {
  const progress = item.querySelector('progress');
  const status = item.querySelector('.file-status');
  if (!progress || !status) return;
  const { size, state } = transfer.info;
  if (state === 'hashing') {
    const percent = size ? Math.floor((transfer.hashed / size) * 100) : 100;
    progress.value = percent;
    status.textContent = `Preparing: computing its checksum… ${percent}%`;
    return;
  }
  const done = transfer.bytesDone;
  const percent = size ? Math.floor((done / size) * 100) : 100;
  progress.value = percent;
  if (state !== 'sending' && state !== 'receiving') return;
  const speed = transfer.speed;
  const parts = [`${percent}%`, `${formatBytes(done)} of ${formatBytes(size)}`];
  if (speed > 0) {
    parts.push(`${formatBytes(speed)}/s`);
    if (done < size) parts.push(`${formatDuration((size - done) / speed)} left`);
  }
  if (done >= size && state === 'receiving') parts.push('checking…');
  status.textContent = parts.join(' · ');
}

/** Object URLs of previews, by file id (one per file, kept while the page shows it). @type {Map<string, Promise<{ url: string, kind: 'image' | 'video' | 'audio' } | null>>} */
const previews = new Map();

/** Forgets every preview (the room's messages were cleared). */
export function revokePreviews() {
  for (const pending of previews.values()) pending.then((preview) => preview && URL.revokeObjectURL(preview.url));
  previews.clear();
}

/**
 * A preview for a file's bytes, or null if it is not an image or playable media.
 * @param {Blob} blob
 * @param {string} mime the declared type (only trusted for audio and video, which cannot run script)
 */
async function makePreview(blob, mime) {
  const head = new Uint8Array(await blob.slice(0, 16).arrayBuffer());
  const image = sniffImageType(head);
  if (image) return { url: URL.createObjectURL(new Blob([blob], { type: image })), kind: /** @type {const} */ ('image') };
  if (PLAYABLE.has(mime)) {
    const kind = mime.startsWith('video/') ? /** @type {const} */ ('video') : /** @type {const} */ ('audio');
    return { url: URL.createObjectURL(new Blob([blob], { type: mime })), kind };
  }
  return null;
}

/**
 * Fills a card's preview once the file's bytes can be read.
 * @param {HTMLElement} item the message's list item
 * @param {StoredMessage & { file: FileInfo }} message
 * @param {() => Promise<Blob | null>} read the file's bytes (disk-backed, not loaded)
 * @param {(url: string, name: string) => void} enlarge opens the large view
 */
export async function fillPreview(item, message, read, enlarge) {
  let pending = previews.get(message.id);
  if (!pending) {
    pending = read().then((blob) => (blob ? makePreview(blob, message.file.mime) : null)).catch(() => null);
    previews.set(message.id, pending);
  }
  const preview = await pending;
  const slot = item.querySelector('.file-preview');
  if (!preview || !slot || item.dataset.id !== message.id) return;
  const name = message.file.name;
  if (preview.kind === 'image') {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'file-thumb';
    button.setAttribute('aria-label', `Enlarge ${name}`);
    const image = document.createElement('img');
    image.src = preview.url;
    image.alt = name;
    image.decoding = 'async';
    button.append(image);
    button.addEventListener('click', () => enlarge(preview.url, name));
    slot.replaceChildren(button);
  } else {
    const player = document.createElement(preview.kind);
    player.controls = true;
    player.preload = 'metadata';
    player.src = preview.url;
    player.setAttribute('aria-label', name);
    slot.replaceChildren(player);
  }
}
