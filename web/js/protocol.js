// The only module that knows Natter's wire format (docs/protocol.md). No DOM access here:
// UI modules call these builders and parsers and never assemble messages themselves.

export const PROTOCOL_VERSION = 1;
export const ROOM_ID_LENGTH = 22;
export const PEER_ID_MIN = 16;
export const PEER_ID_MAX = 64;
export const NAME_MAX_CHARS = 48;
export const CHAT_TEXT_MAX_CHARS = 10_000;
/** Largest signaling message in bytes; larger ones make the server close the socket. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Label and id of the negotiated chat data channel. */
export const CHAT_CHANNEL = { label: 'chat', id: 0 };

/** WebSocket close codes the server uses (docs/protocol.md, "Close codes"). */
export const CLOSE = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  REPLACED: 4000,
  TIMEOUT: 4001,
  UNSUPPORTED_VERSION: 4002,
  TOO_SLOW: 4003,
});

/** Close codes after which reconnecting on our own would not help. */
/** @type {ReadonlySet<number>} */
export const FINAL_CLOSE_CODES = new Set([
  CLOSE.UNSUPPORTED_DATA,
  CLOSE.MESSAGE_TOO_BIG,
  CLOSE.REPLACED,
  CLOSE.UNSUPPORTED_VERSION,
]);

const URL_SAFE = /^[A-Za-z0-9_-]+$/;
/** Connection ids (`conn`) and chat message ids: 8–64 URL-safe characters. */
const SHORT_ID = /^[A-Za-z0-9_-]{8,64}$/;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
// Control characters, bidi controls and line/paragraph separators (see "Conventions").
const FORBIDDEN_IN_NAME = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;

/**
 * A random URL-safe id of `length` characters from the Web Crypto source (6 bits each).
 * @param {number} length
 */
export function randomId(length) {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let id = '';
  // 256 is a multiple of 64, so masking keeps every character equally likely.
  for (const byte of bytes) id += ALPHABET[byte & 63];
  return id;
}

/** A new room id: 22 characters, 132 random bits. */
export const newRoomId = () => randomId(ROOM_ID_LENGTH);
/** A new peer id. */
export const newPeerId = () => randomId(22);
/** A new id for one RTCPeerConnection (the `conn` of signal payloads). */
export const newConnId = () => randomId(16);
/** A new chat message id. */
export const newMessageId = () => randomId(16);

/** @param {unknown} value @returns {value is string} */
export function isRoomId(value) {
  return typeof value === 'string' && value.length === ROOM_ID_LENGTH && URL_SAFE.test(value);
}

/** @param {unknown} value @returns {value is string} */
export function isPeerId(value) {
  return (
    typeof value === 'string' &&
    value.length >= PEER_ID_MIN &&
    value.length <= PEER_ID_MAX &&
    URL_SAFE.test(value)
  );
}

/**
 * The name as the server will store it, or null if the server would refuse it.
 * @param {string} value
 * @returns {string | null}
 */
export function normalizeName(value) {
  const trimmed = value.trim();
  const length = [...trimmed].length;
  if (length === 0 || length > NAME_MAX_CHARS || FORBIDDEN_IN_NAME.test(trimmed)) return null;
  return trimmed;
}

/**
 * Finds a room id in what a person pasted: a room link or a bare id.
 * @param {string} text
 * @returns {string | null}
 */
export function roomIdFromLink(text) {
  const value = text.trim();
  if (isRoomId(value)) return value;
  try {
    const url = new URL(value);
    const match = /^\/r\/([^/]+)\/?$/.exec(url.pathname);
    if ((url.protocol === 'http:' || url.protocol === 'https:') && match && isRoomId(match[1])) {
      return match[1];
    }
  } catch {
    // not a URL
  }
  return null;
}

/** The path of a room's page. @param {string} roomId */
export const roomPath = (roomId) => `/r/${roomId}`;

// --- signaling: client → server -------------------------------------------------------------

export const hello = () => JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION });
/** @param {string} room @param {string} peer @param {string} name */
export const join = (room, peer, name) => JSON.stringify({ type: 'join', room, peer, name });
/** @param {string} name */
export const rename = (name) => JSON.stringify({ type: 'rename', name });
/** @param {string} to @param {SignalPayload} payload */
export const signal = (to, payload) => JSON.stringify({ type: 'signal', to, payload });
export const leave = () => JSON.stringify({ type: 'leave' });
export const ping = () => JSON.stringify({ type: 'ping' });

// --- signaling: server → client -------------------------------------------------------------

/** @typedef {{ peer: string, name: string }} PeerInfo */
/** @typedef {{ urls: string[], username?: string, credential?: string }} IceServer */
/**
 * @typedef {{ type: 'hello', version: number, server: string }
 *   | { type: 'welcome', room: string, peer: string, kind: string, capacity: number,
 *       peers: PeerInfo[], iceServers: IceServer[], resumed: boolean }
 *   | { type: 'peer-joined', peer: string, name: string }
 *   | { type: 'peer-left', peer: string, reason: 'left' | 'timed-out' }
 *   | { type: 'peer-renamed', peer: string, name: string }
 *   | { type: 'signal', from: string, payload: unknown }
 *   | { type: 'pong' }
 *   | { type: 'error', code: string, message: string }} ServerMessage
 */

/** @param {unknown} value @returns {value is Record<string, unknown>} */
const isObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);
/**
 * A JSON object, or null for invalid JSON and for any other JSON value.
 * @param {string} text
 * @returns {Record<string, unknown> | null}
 */
function parseObject(text) {
  try {
    const value = JSON.parse(text);
    return isObject(value) ? value : null;
  } catch {
    return null;
  }
}

/** @param {unknown} value @returns {value is PeerInfo} */
const isPeerInfo = (value) => isObject(value) && isPeerId(value.peer) && typeof value.name === 'string';
/** @param {unknown} value @returns {value is IceServer} */
const isIceServer = (value) =>
  isObject(value) && Array.isArray(value.urls) && value.urls.every((url) => typeof url === 'string');

/**
 * Parses a server frame; null for anything malformed or of an unknown type (ignored, per the spec).
 * @param {string} text
 * @returns {ServerMessage | null}
 */
export function parseServerMessage(text) {
  const m = parseObject(text);
  if (!m) return null;
  switch (m.type) {
    case 'hello':
      return typeof m.version === 'number' ? { type: 'hello', version: m.version, server: String(m.server) } : null;
    case 'welcome':
      if (!isRoomId(m.room) || !isPeerId(m.peer) || !Array.isArray(m.peers) || !m.peers.every(isPeerInfo)) {
        return null;
      }
      return {
        type: 'welcome',
        room: m.room,
        peer: m.peer,
        kind: String(m.kind),
        capacity: Number(m.capacity),
        peers: m.peers,
        iceServers: Array.isArray(m.iceServers) ? m.iceServers.filter(isIceServer) : [],
        resumed: m.resumed === true,
      };
    case 'peer-joined':
    case 'peer-renamed':
      return isPeerId(m.peer) && typeof m.name === 'string' ? { type: m.type, peer: m.peer, name: m.name } : null;
    case 'peer-left':
      return isPeerId(m.peer)
        ? { type: 'peer-left', peer: m.peer, reason: m.reason === 'timed-out' ? 'timed-out' : 'left' }
        : null;
    case 'signal':
      return isPeerId(m.from) ? { type: 'signal', from: m.from, payload: m.payload } : null;
    case 'pong':
      return { type: 'pong' };
    case 'error':
      return typeof m.code === 'string' ? { type: 'error', code: m.code, message: String(m.message ?? '') } : null;
    default:
      return null;
  }
}

// --- peer to peer: signal payloads ----------------------------------------------------------

/**
 * @typedef {{ conn: string, description?: RTCSessionDescriptionInit, candidate?: RTCIceCandidateInit }} SignalPayload
 */

/** @param {string} conn @param {RTCSessionDescriptionInit} description @returns {SignalPayload} */
export const descriptionPayload = (conn, description) => ({
  conn,
  description: { type: description.type, sdp: description.sdp ?? '' },
});

/** @param {string} conn @param {RTCIceCandidateInit | null} candidate @returns {SignalPayload} */
export function candidatePayload(conn, candidate) {
  /** @type {RTCIceCandidateInit} */
  const init = { candidate: candidate?.candidate ?? '' };
  if (candidate?.sdpMid != null) init.sdpMid = candidate.sdpMid;
  if (candidate?.sdpMLineIndex != null) init.sdpMLineIndex = candidate.sdpMLineIndex;
  if (candidate?.usernameFragment != null) init.usernameFragment = candidate.usernameFragment;
  return { conn, candidate: init };
}

const DESCRIPTION_TYPES = new Set(['offer', 'answer', 'pranswer', 'rollback']);

/**
 * Validates a payload relayed from the other peer; null if it is not a well-formed signal payload.
 * @param {unknown} value
 * @returns {SignalPayload | null}
 */
export function parseSignalPayload(value) {
  if (!isObject(value) || typeof value.conn !== 'string' || !SHORT_ID.test(value.conn)) {
    return null;
  }
  const { description, candidate } = value;
  if (isObject(description) && DESCRIPTION_TYPES.has(String(description.type))) {
    const type = /** @type {RTCSdpType} */ (description.type);
    return { conn: value.conn, description: { type, sdp: typeof description.sdp === 'string' ? description.sdp : '' } };
  }
  if (isObject(candidate) && typeof candidate.candidate === 'string') {
    /** @type {RTCIceCandidateInit} */
    const init = { candidate: candidate.candidate };
    if (typeof candidate.sdpMid === 'string') init.sdpMid = candidate.sdpMid;
    if (typeof candidate.sdpMLineIndex === 'number') init.sdpMLineIndex = candidate.sdpMLineIndex;
    if (typeof candidate.usernameFragment === 'string') init.usernameFragment = candidate.usernameFragment;
    return { conn: value.conn, candidate: init };
  }
  return null;
}

// --- peer to peer: data channel -------------------------------------------------------------

/** @typedef {{ type: 'chat', id: string, text: string, sentAt: number }} ChatMessage */
/**
 * @typedef {ChatMessage
 *   | { type: 'ack', id: string }
 *   | { type: 'typing', active: boolean }} DataMessage
 */

/** Number of characters as people count them (code points, not UTF-16 units). @param {string} text */
export const textLength = (text) => [...text].length;

/**
 * A chat message ready to send, or null if the text is empty or too long.
 * @param {string} text
 * @returns {{ message: ChatMessage, wire: string } | null}
 */
export function chatMessage(text) {
  if (text.trim().length === 0 || textLength(text) > CHAT_TEXT_MAX_CHARS) return null;
  /** @type {ChatMessage} */
  const message = { type: 'chat', id: newMessageId(), text, sentAt: Date.now() };
  return { message, wire: JSON.stringify(message) };
}

/** The wire form of a chat message (for sending it again). @param {ChatMessage} message */
export const chatWire = (message) =>
  JSON.stringify({ type: 'chat', id: message.id, text: message.text, sentAt: message.sentAt });

/** @param {string} id */
export const ackMessage = (id) => JSON.stringify({ type: 'ack', id });

/** @param {boolean} active */
export const typingMessage = (active) => JSON.stringify({ type: 'typing', active });

/**
 * Parses a data-channel message; null for anything malformed, over a limit or of an unknown type.
 * @param {unknown} data
 * @returns {DataMessage | null}
 */
export function parseDataMessage(data) {
  if (typeof data !== 'string' || data.length > MAX_MESSAGE_BYTES) return null;
  const value = parseObject(data);
  if (!value) return null;
  switch (value.type) {
    case 'chat': {
      const { id, text, sentAt } = value;
      if (typeof id !== 'string' || !SHORT_ID.test(id)) return null;
      if (typeof text !== 'string' || text.length === 0 || textLength(text) > CHAT_TEXT_MAX_CHARS) return null;
      if (typeof sentAt !== 'number' || !Number.isFinite(sentAt)) return null;
      return { type: 'chat', id, text, sentAt };
    }
    case 'ack':
      return typeof value.id === 'string' && SHORT_ID.test(value.id) ? { type: 'ack', id: value.id } : null;
    case 'typing':
      return typeof value.active === 'boolean' ? { type: 'typing', active: value.active } : null;
    default:
      return null;
  }
}
