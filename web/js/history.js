// Chat history per room, kept in this browser's IndexedDB (store "messages") while the room's
// "Keep history in this browser" setting is on. Nothing here ever leaves the browser.

import { MESSAGES, database, getSetting, requestDone as done, setSetting } from './storage.js';

/**
 * One message as the page shows and stores it.
 * @typedef {{
 *   room: string,
 *   id: string,
 *   seq: number,
 *   own: boolean,
 *   authorId: string,
 *   author: string,
 *   text: string,
 *   sentAt: number,
 *   state: 'sending' | 'sent' | 'delivered' | 'received',
 *   file?: import('./files.js').FileInfo,
 * }} StoredMessage
 */

/** A number that orders messages as this browser saw them, across reloads. */
export const nextSeq = () => performance.timeOrigin + performance.now();

/** @param {string} room */
const keepKey = (room) => `room:${room}:keepHistory`;

/** Whether this browser keeps the room's history (on unless turned off). @param {string} room */
export async function keepsHistory(room) {
  return (await getSetting(keepKey(room))) !== false;
}

/** @param {string} room @param {boolean} keep */
export async function setKeepsHistory(room, keep) {
  await setSetting(keepKey(room), keep);
  if (!keep) await clearHistory(room);
}

/** @param {string} room */
const roomRange = (room) => IDBKeyRange.bound([room, -Infinity], [room, Infinity]);

/**
 * The room's stored messages, oldest first.
 * @param {string} room
 * @returns {Promise<StoredMessage[]>}
 */
export async function loadHistory(room) {
  const db = await database();
  if (!db) return [];
  const index = db.transaction(MESSAGES).objectStore(MESSAGES).index('byRoom');
  return done(index.getAll(roomRange(room)));
}

/** Stores or updates one message. @param {StoredMessage} message */
export async function saveMessage(message) {
  const db = await database();
  if (!db) return;
  await done(db.transaction(MESSAGES, 'readwrite').objectStore(MESSAGES).put(message));
}

/** Removes this browser's history of the room. @param {string} room */
export async function clearHistory(room) {
  const db = await database();
  if (!db) return;
  // Primary keys are [room, id]; every id is a string, and arrays sort after strings.
  const everyIdOfRoom = IDBKeyRange.bound([room], [room, []]);
  await done(db.transaction(MESSAGES, 'readwrite').objectStore(MESSAGES).delete(everyIdOfRoom));
}
