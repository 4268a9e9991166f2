// Who you are, without an account: a random peer id and a friendly generated name, kept in this
// browser so a reload is the same person.

import { isPeerId, newPeerId, normalizeName } from './protocol.js';
import { getSetting, setSetting } from './storage.js';

const ADJECTIVES = [
  'Brave', 'Calm', 'Clever', 'Cosy', 'Curious', 'Eager', 'Gentle', 'Happy', 'Jolly', 'Kind',
  'Lively', 'Lucky', 'Merry', 'Mellow', 'Nimble', 'Plucky', 'Quiet', 'Quick', 'Sunny', 'Witty',
];
const ANIMALS = [
  'Badger', 'Beaver', 'Crane', 'Dolphin', 'Falcon', 'Fox', 'Heron', 'Ibex', 'Koala', 'Lynx',
  'Marten', 'Otter', 'Owl', 'Panda', 'Puffin', 'Robin', 'Seal', 'Stoat', 'Tapir', 'Wren',
];

/** @template T @param {T[]} list @returns {T} */
function pick(list) {
  const [random] = crypto.getRandomValues(new Uint32Array(1));
  return list[random % list.length];
}

/** A friendly random name such as "Calm Otter". */
export const friendlyName = () => `${pick(ADJECTIVES)} ${pick(ANIMALS)}`;

/** @typedef {{ peerId: string, name: string }} Identity */

/** @returns {Promise<Identity>} this browser's identity, created on first use */
export async function loadIdentity() {
  const stored = /** @type {Partial<Identity> | undefined} */ (await getSetting('identity'));
  const peerId = isPeerId(stored?.peerId) ? /** @type {string} */ (stored?.peerId) : newPeerId();
  const name = normalizeName(String(stored?.name ?? '')) ?? friendlyName();
  const identity = { peerId, name };
  // Not awaited: the write commits in the background, and joining need not wait for it.
  if (stored?.peerId !== peerId || stored?.name !== name) setSetting('identity', identity);
  return identity;
}

/** @param {Identity} identity */
export const saveIdentity = (identity) => setSetting('identity', identity);
