// "Recent rooms": the rooms this browser was in, with a name only this browser knows, the other
// person's name and the time of the last activity. Kept in IndexedDB (store "rooms").

import { ROOMS, database, requestDone as done } from './storage.js';

/**
 * @typedef {{ room: string, localName: string, peerName: string, lastActivity: number,
 *   kind?: import('./protocol.js').RoomKind, roomName?: string }} RecentRoom
 */

/**
 * Creates or updates the room's entry and marks it active now.
 * @param {string} room
 * @param {Partial<Pick<RecentRoom, 'localName' | 'peerName' | 'kind' | 'roomName'>>} [changes]
 */
export async function touchRoom(room, changes = {}) {
  const db = await database();
  if (!db) return;
  const store = db.transaction(ROOMS, 'readwrite').objectStore(ROOMS);
  /** @type {RecentRoom | undefined} */
  const existing = await done(store.get(room));
  /** @type {RecentRoom} */
  const entry = { room, localName: '', peerName: '', ...existing, ...changes, lastActivity: Date.now() };
  await done(store.put(entry));
}

/** @param {string} room @returns {Promise<RecentRoom | undefined>} */
export async function getRoom(room) {
  const db = await database();
  if (!db) return undefined;
  return done(db.transaction(ROOMS).objectStore(ROOMS).get(room));
}

/** Newest first. @returns {Promise<RecentRoom[]>} */
export async function listRooms() {
  const db = await database();
  if (!db) return [];
  /** @type {RecentRoom[]} */
  const rooms = await done(db.transaction(ROOMS).objectStore(ROOMS).getAll());
  return rooms.sort((a, b) => b.lastActivity - a.lastActivity);
}

/** Takes the room off the list (its messages, if kept, stay until cleared in the room). @param {string} room */
export async function removeRoom(room) {
  const db = await database();
  if (!db) return;
  await done(db.transaction(ROOMS, 'readwrite').objectStore(ROOMS).delete(room));
}

/** What to call a room in lists and titles. @param {Pick<RecentRoom, 'localName' | 'peerName'> & { roomName?: string }} entry */
export const roomLabel = (entry) =>
  entry.localName ||
  (entry.roomName ? `Room “${entry.roomName}”` : entry.peerName ? `Room with ${entry.peerName}` : 'Unnamed room');
