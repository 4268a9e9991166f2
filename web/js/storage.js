// Small key-value storage in IndexedDB (database "natter", store "settings"). Falls back to
// memory when IndexedDB is unavailable, so the page still works (without remembering).

const DB_NAME = 'natter';
const DB_VERSION = 2;
const SETTINGS = 'settings';
/** Chat history: one record per message, key [room, id], index "byRoom" on [room, seq]. */
export const MESSAGES = 'messages';
/** Rooms this browser was in, for "Recent rooms": one record per room, key room id. */
export const ROOMS = 'rooms';

/** @type {Promise<IDBDatabase | null> | null} */
let opening = null;
/** @type {Map<string, unknown>} */
const memory = new Map();

/** The database, or null where IndexedDB is unavailable. @returns {Promise<IDBDatabase | null>} */
export function database() {
  opening ??= new Promise((resolve) => {
    try {
      const request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = (event) => {
        const db = request.result;
        if (event.oldVersion < 1) db.createObjectStore(SETTINGS);
        if (event.oldVersion < 2) {
          const messages = db.createObjectStore(MESSAGES, { keyPath: ['room', 'id'] });
          messages.createIndex('byRoom', ['room', 'seq']);
          db.createObjectStore(ROOMS, { keyPath: 'room' });
        }
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => resolve(null);
      request.onblocked = () => resolve(null);
    } catch {
      resolve(null);
    }
  });
  return opening;
}

/**
 * @param {string} key
 * @returns {Promise<unknown>}
 */
export async function getSetting(key) {
  const db = await database();
  if (!db) return memory.get(key);
  return new Promise((resolve) => {
    const request = db.transaction(SETTINGS).objectStore(SETTINGS).get(key);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => resolve(memory.get(key));
  });
}

/**
 * @param {string} key
 * @param {unknown} value
 * @returns {Promise<void>}
 */
export async function setSetting(key, value) {
  memory.set(key, value);
  const db = await database();
  if (!db) return;
  return new Promise((resolve) => {
    const transaction = db.transaction(SETTINGS, 'readwrite');
    transaction.objectStore(SETTINGS).put(value, key);
    transaction.oncomplete = () => resolve();
    transaction.onerror = () => resolve();
  });
}

/**
 * The result of an IndexedDB request, as a promise.
 * @template T
 * @param {IDBRequest<T>} request
 * @returns {Promise<T>}
 */
export const requestDone = (request) =>
  new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
