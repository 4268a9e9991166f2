// Who you are, without an account: a random peer secret, the peer id derived from it, and a
// friendly generated name, kept in this browser so a reload is the same person. The secret goes
// to the server with every join (it proves the id is this browser's) and to nobody else.

import { isPeerSecret, newPeerSecret, normalizeName, peerIdOf } from './protocol.js';
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

/** @typedef {{ peerId: string, peerSecret: string, name: string }} Identity */

/**
 * This browser's identity, created on first use. An identity kept before peer secrets existed
 * (an id without a secret) cannot prove its id: it gets a new secret and so a new id, and keeps
 * its name.
 * @returns {Promise<Identity>}
 */
export async function loadIdentity() {
  const stored = /** @type {Partial<Identity> | undefined} */ (await getSetting('identity'));
  const peerSecret = isPeerSecret(stored?.peerSecret) ? /** @type {string} */ (stored?.peerSecret) : newPeerSecret();
  const peerId = peerIdOf(peerSecret);
  const name = normalizeName(String(stored?.name ?? '')) ?? friendlyName();
  const identity = { peerId, peerSecret, name };
  // Not awaited: the write commits in the background, and joining need not wait for it.
  if (stored?.peerId !== peerId || stored?.peerSecret !== peerSecret || stored?.name !== name) setSetting('identity', identity);
  return identity;
}

/** @param {Identity} identity */
export const saveIdentity = (identity) => setSetting('identity', identity);
