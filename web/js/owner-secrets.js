// Owner secrets this browser holds, one per room (by id, or by name for named rooms), kept in
// IndexedDB's settings like the identity. A secret is what makes this browser the room's owner
// again after a reload; it never leaves the browser except to the server in `join`.

import { isOwnerSecret } from './protocol.js';
import { getSetting, setSetting } from './storage.js';

const KEY = 'owner-secrets';
/** Rooms remembered at most; the oldest are forgotten first. */
const MAX_ROOMS = 200;

/** @typedef {Record<string, { secret: string, savedAt: number }>} SecretMap */

/** @returns {Promise<SecretMap>} */
async function all() {
  const stored = await getSetting(KEY);
  return stored && typeof stored === 'object' ? /** @type {SecretMap} */ (stored) : {};
}

/** The key of a room: its name for named rooms, else its id. @param {{ room?: string, roomName?: string | null }} room */
export const ownerKey = ({ room, roomName }) => (roomName ? `n:${roomName}` : `r:${room}`);

/** @param {string} key @returns {Promise<string | null>} */
export async function loadOwnerSecret(key) {
  const entry = (await all())[key];
  return isOwnerSecret(entry?.secret) ? entry.secret : null;
}

/** @param {string} key @param {string} secret */
export async function saveOwnerSecret(key, secret) {
  const secrets = await all();
  secrets[key] = { secret, savedAt: Date.now() };
  const keys = Object.keys(secrets).sort((a, b) => secrets[b].savedAt - secrets[a].savedAt);
  for (const old of keys.slice(MAX_ROOMS)) delete secrets[old];
  await setSetting(KEY, secrets);
}
