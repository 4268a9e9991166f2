// The only module that knows Natter's wire format (docs/protocol.md). No DOM access here:
// UI modules call these builders and parsers and never assemble messages themselves.

import { Sha256 } from './sha256.js';

export const PROTOCOL_VERSION = 1;
export const ROOM_ID_LENGTH = 22;
/** A peer secret's length. */
export const PEER_SECRET_LENGTH = 43;
export const PEER_ID_MIN = 16;
export const PEER_ID_MAX = 64;
export const NAME_MAX_CHARS = 48;
export const ROOM_NAME_MIN_CHARS = 3;
export const ROOM_NAME_MAX_CHARS = 40;
export const OWNER_SECRET_LENGTH = 43;
/** Messages of context the assistant sees at most (docs/protocol.md, "luna-ask"). */
export const LUNA_CONTEXT_MESSAGES = 20;
export const CHAT_TEXT_MAX_CHARS = 10_000;
/** Largest signaling message in bytes; larger ones make the server close the socket. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Label and id of the negotiated chat data channel. */
export const CHAT_CHANNEL = { label: 'chat', id: 0 };
/** Label and id of the negotiated data channel for files: control messages and binary chunks. */
export const FILES_CHANNEL = { label: 'files', id: 1 };
/** Payload bytes per file chunk; only the last chunk of a file may be shorter. */
export const FILE_CHUNK_BYTES = 16 * 1024;
/** Characters of a transfer id, which is also the first bytes of every chunk. */
export const FILE_ID_LENGTH = 16;
/** Bytes before a chunk's payload: the transfer id (ASCII) and the chunk's index (u32, big-endian). */
export const FILE_CHUNK_HEADER_BYTES = FILE_ID_LENGTH + 4;
/** Longest file name in an offer, in characters (code points). */
export const FILE_NAME_MAX_CHARS = 200;
/** The server's file-size policy when it does not say (docs/protocol.md, "welcome"). */
export const DEFAULT_MAX_FILE_BYTES = 200 * 1024 * 1024;

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
  KICKED: 4004,
  BANNED: 4005,
});

/** Close codes after which reconnecting on our own would not help. */
/** @type {ReadonlySet<number>} */
export const FINAL_CLOSE_CODES = new Set([
  CLOSE.UNSUPPORTED_DATA,
  CLOSE.MESSAGE_TOO_BIG,
  CLOSE.REPLACED,
  CLOSE.UNSUPPORTED_VERSION,
  CLOSE.KICKED,
  CLOSE.BANNED,
]);

/** Error codes that answer a join and that trying again cannot change. */
/** @type {ReadonlySet<string>} */
export const FINAL_JOIN_ERRORS = new Set([
  'room-full',
  'invalid-room-id',
  'invalid-room-name',
  'room-locked',
  'banned',
  'kicked',
  'peer-unproven',
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
/** A new peer secret: 43 random URL-safe characters (258 bits), the length the server takes. */
export const newPeerSecret = () => randomId(PEER_SECRET_LENGTH);

/** @param {unknown} value @returns {value is string} */
export const isPeerSecret = (value) => typeof value === 'string' && value.length === PEER_SECRET_LENGTH && URL_SAFE.test(value);

/**
 * The peer id a peer secret proves, as the server checks it: the first 22 characters of the
 * URL-safe base64 of SHA-256("natter peer id v1:" + secret). Hashed here rather than with Web
 * Crypto, which a page that is not a secure context (a plain-http LAN address) does not have.
 * @param {string} secret
 */
export function peerIdOf(secret) {
  const digest = new Sha256().update(new TextEncoder().encode(`natter peer id v1:${secret}`)).digest();
  let bits = 0;
  let held = 0;
  let id = '';
  for (const byte of digest.subarray(0, 17)) {
    bits = ((bits << 8) | byte) & 0xfff;
    held += 8;
    while (held >= 6 && id.length < 22) {
      held -= 6;
      id += ALPHABET[(bits >> held) & 63];
    }
  }
  return id;
}
/** A new id for one RTCPeerConnection (the `conn` of signal payloads). */
export const newConnId = () => randomId(16);
/** A new chat message id. */
export const newMessageId = () => randomId(16);
/** A new file transfer id. */
export const newFileId = () => randomId(FILE_ID_LENGTH);

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

/** @param {unknown} value @returns {value is string} */
export const isOwnerSecret = (value) =>
  typeof value === 'string' && value.length === OWNER_SECRET_LENGTH && URL_SAFE.test(value);

/**
 * A room name in the form the server keeps (docs/protocol.md, "room name"), or the rule it
 * breaks. The server decides; this lets the page explain before connecting.
 * @param {string} value
 * @returns {{ name: string } | { error: string }}
 */
export function normalizeRoomName(value) {
  const name = value.trim().toLowerCase().normalize('NFC').replace(/\s+/gu, '-');
  const length = [...name].length;
  if (length < ROOM_NAME_MIN_CHARS || length > ROOM_NAME_MAX_CHARS) {
    return { error: `A room name is ${ROOM_NAME_MIN_CHARS} to ${ROOM_NAME_MAX_CHARS} characters long.` };
  }
  if (!/^[\p{L}\p{N}._-]+$/u.test(name)) {
    return { error: "A room name holds only letters, digits, spaces, '-', '_' and '.'." };
  }
  if (!/^[\p{L}\p{N}]/u.test(name) || !/[\p{L}\p{N}]$/u.test(name)) {
    return { error: 'A room name begins and ends with a letter or a digit.' };
  }
  return { name };
}

/** The path of a named room's page. @param {string} name a normalised room name */
export const namedRoomPath = (name) => `/n/${encodeURIComponent(name)}`;

/**
 * The room name in a `/n/…` path, or null.
 * @param {string} pathname
 */
export function roomNameFromPath(pathname) {
  const match = /^\/n\/([^/]+)\/?$/.exec(pathname);
  if (!match) return null;
  try {
    const result = normalizeRoomName(decodeURIComponent(match[1]));
    return 'name' in result ? result.name : null;
  } catch {
    return null;
  }
}

/**
 * Finds a room id in what a person pasted: a room link or a bare id.
 * @param {string} text
 * @returns {string | null}
 */
export function roomIdFromLink(text) {
  return roomFromLink(text)?.room ?? null;
}

/** @typedef {'pair' | 'group'} RoomKind */

/**
 * Finds a room in what a person pasted: a room link (pair `/r/…` or group `/g/…`) or a bare id
 * (taken as a pair room).
 * @param {string} text
 * @returns {{ room: string, kind: RoomKind } | null}
 */
export function roomFromLink(text) {
  const value = text.trim();
  if (isRoomId(value)) return { room: value, kind: 'pair' };
  try {
    const url = new URL(value);
    const match = /^\/([rg])\/([^/]+)\/?$/.exec(url.pathname);
    if ((url.protocol === 'http:' || url.protocol === 'https:') && match && isRoomId(match[2])) {
      return { room: match[2], kind: match[1] === 'g' ? 'group' : 'pair' };
    }
  } catch {
    // not a URL
  }
  return null;
}

/** The path of a room's page. @param {string} roomId @param {RoomKind} [kind] */
export const roomPath = (roomId, kind = 'pair') => `/${kind === 'group' ? 'g' : 'r'}/${roomId}`;

// --- signaling: client → server -------------------------------------------------------------

export const hello = () => JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION });

/** @typedef {{ challenge: string, nonce: number }} Proof */
/**
 * Which room to join: by id (with the kind to create) or by name (always a group room).
 * @typedef {{ room: string, kind: RoomKind } | { roomName: string }} JoinTarget
 */
/**
 * `join` or `join-named`, with the peer secret that proves the peer id, the proof of work and,
 * if this browser holds one, the owner secret.
 * @param {JoinTarget} target @param {{ peerId: string, peerSecret: string }} identity
 * @param {string} name @param {Proof} proof @param {string | null} [ownerSecret]
 */
export function join(target, identity, name, proof, ownerSecret = null) {
  const { peerId: peer, peerSecret } = identity;
  /** @type {Record<string, unknown>} */
  const message =
    'roomName' in target
      ? { type: 'join-named', roomName: target.roomName, peer, name, peerSecret }
      : { type: 'join', room: target.room, peer, name, peerSecret };
  if ('kind' in target && target.kind !== 'pair') message.kind = target.kind;
  message.proof = proof;
  if (ownerSecret) message.ownerSecret = ownerSecret;
  return JSON.stringify(message);
}
/** Owner only. @param {string} peer */
export const kick = (peer) => JSON.stringify({ type: 'kick', peer });
/** Owner only. @param {string} peer */
export const ban = (peer) => JSON.stringify({ type: 'ban', peer });
/** Owner only. @param {boolean} locked */
export const lock = (locked) => JSON.stringify({ type: 'lock', locked });
/** Owner only. @param {number} capacity */
export const setCapacity = (capacity) => JSON.stringify({ type: 'set-capacity', capacity });
/** Owner only. @param {string} peer */
export const handOver = (peer) => JSON.stringify({ type: 'hand-over', peer });
/** @param {boolean} allowed */
export const lunaAllow = (allowed) => JSON.stringify({ type: 'luna-allow', allowed });

/** @typedef {{ id: string, author: string, text: string, luna?: boolean }} LunaTurn */
/**
 * A question for the assistant with the messages before it, oldest first.
 * @param {string} id @param {string} text @param {LunaTurn[]} context
 */
export const lunaAsk = (id, text, context) => JSON.stringify({ type: 'luna-ask', id, text, context });

/** True when a message calls the assistant: `@luna` as a word of its own. @param {string} text */
export const mentionsLuna = (text) => /(^|[^\p{L}\p{N}_@])@luna(?![\p{L}\p{N}_])/iu.test(text);
/** @param {string} sdp @param {{ mid: string, source: MediaSourceKind }[]} tracks */
export const sfuOffer = (sdp, tracks) => JSON.stringify({ type: 'sfu-offer', sdp, tracks });
/** @param {string} name */
export const rename = (name) => JSON.stringify({ type: 'rename', name });
/** @param {string} to @param {SignalPayload} payload */
export const signal = (to, payload) => JSON.stringify({ type: 'signal', to, payload });
export const leave = () => JSON.stringify({ type: 'leave' });
export const ping = () => JSON.stringify({ type: 'ping' });

// --- signaling: server → client -------------------------------------------------------------

/** @typedef {{ peer: string, name: string }} PeerInfo */
/** @typedef {'microphone' | 'camera' | 'screen'} MediaSourceKind */
/** @typedef {{ mid: string, peer: string, source: MediaSourceKind, paused: boolean }} ForwardedTrack */
/** @typedef {{ urls: string[], username?: string, credential?: string }} IceServer */
/**
 * @typedef {{ type: 'hello', version: number, server: string }
 *   | { type: 'welcome', room: string, peer: string, kind: string, capacity: number,
 *       peers: PeerInfo[], iceServers: IceServer[], resumed: boolean, maxFileBytes: number,
 *       owner: string | null, locked: boolean, ownerSecret: string | null, roomName: string | null,
 *       luna: LunaInfo | null, pairRelay: boolean }
 *   | { type: 'challenge', token: string, difficulty: number }
 *   | { type: 'room-state', owner: string | null, locked: boolean, capacity: number, luna: boolean | null }
 *   | { type: 'luna', reply: string, question: string, text: string, done: boolean, failure: string | null }
 *   | { type: 'owner-secret', secret: string }
 *   | { type: 'peer-joined', peer: string, name: string }
 *   | { type: 'peer-left', peer: string, reason: LeaveReason }
 *   | { type: 'peer-renamed', peer: string, name: string }
 *   | { type: 'signal', from: string, payload: unknown }
 *   | { type: 'pong' }
 *   | { type: 'sfu-answer', sdp: string }
 *   | { type: 'sfu-tracks', tracks: ForwardedTrack[], need: { audio: number, video: number } }
 *   | { type: 'sfu-speaker', peer: string | null }
 *   | { type: 'error', code: string, message: string, retryAfterMs: number | null }} ServerMessage
 */
/** @typedef {'left' | 'timed-out' | 'kicked' | 'banned'} LeaveReason */
/** @typedef {{ model: string, host: string, allowed: boolean }} LunaInfo */
const LEAVE_REASONS = ['left', 'timed-out', 'kicked', 'banned'];

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
const MEDIA_SOURCES = ['microphone', 'camera', 'screen'];
/** @param {unknown} value @returns {value is ForwardedTrack} */
const isForwardedTrack = (value) =>
  isObject(value) &&
  typeof value.mid === 'string' &&
  value.mid.length <= 16 &&
  isPeerId(value.peer) &&
  MEDIA_SOURCES.includes(String(value.source)) &&
  typeof value.paused === 'boolean';
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
        maxFileBytes:
          Number.isSafeInteger(m.maxFileBytes) && Number(m.maxFileBytes) > 0
            ? Number(m.maxFileBytes)
            : DEFAULT_MAX_FILE_BYTES,
        owner: isPeerId(m.owner) ? m.owner : null,
        locked: m.locked === true,
        ownerSecret: isOwnerSecret(m.ownerSecret) ? m.ownerSecret : null,
        roomName: typeof m.roomName === 'string' ? m.roomName : null,
        luna:
          isObject(m.luna) && typeof m.luna.model === 'string' && typeof m.luna.host === 'string'
            ? { model: m.luna.model, host: m.luna.host, allowed: m.luna.allowed === true }
            : null,
        pairRelay: m.pairRelay !== false,
      };
    case 'luna':
      return typeof m.reply === 'string' && typeof m.question === 'string' && typeof m.text === 'string'
        ? {
            type: 'luna',
            reply: m.reply,
            question: m.question,
            text: m.text,
            done: m.done === true,
            failure: typeof m.failure === 'string' ? m.failure : null,
          }
        : null;
    case 'challenge':
      return typeof m.token === 'string' && Number.isSafeInteger(m.difficulty) && Number(m.difficulty) >= 0
        ? { type: 'challenge', token: m.token, difficulty: Number(m.difficulty) }
        : null;
    case 'room-state':
      return Number.isSafeInteger(m.capacity)
        ? {
            type: 'room-state',
            owner: isPeerId(m.owner) ? m.owner : null,
            locked: m.locked === true,
            capacity: Number(m.capacity),
            luna: typeof m.luna === 'boolean' ? m.luna : null,
          }
        : null;
    case 'owner-secret':
      return isOwnerSecret(m.secret) ? { type: 'owner-secret', secret: m.secret } : null;
    case 'peer-joined':
    case 'peer-renamed':
      return isPeerId(m.peer) && typeof m.name === 'string' ? { type: m.type, peer: m.peer, name: m.name } : null;
    case 'peer-left':
      return isPeerId(m.peer)
        ? {
            type: 'peer-left',
            peer: m.peer,
            reason: /** @type {LeaveReason} */ (LEAVE_REASONS.includes(String(m.reason)) ? m.reason : 'left'),
          }
        : null;
    case 'signal':
      return isPeerId(m.from) ? { type: 'signal', from: m.from, payload: m.payload } : null;
    case 'pong':
      return { type: 'pong' };
    case 'sfu-answer':
      return typeof m.sdp === 'string' ? { type: 'sfu-answer', sdp: m.sdp } : null;
    case 'sfu-tracks': {
      const need = isObject(m.need) ? m.need : {};
      const count = (/** @type {unknown} */ n) => (Number.isSafeInteger(n) && Number(n) >= 0 ? Math.min(Number(n), 256) : 0);
      if (!Array.isArray(m.tracks) || !m.tracks.every(isForwardedTrack)) return null;
      return { type: 'sfu-tracks', tracks: m.tracks, need: { audio: count(need.audio), video: count(need.video) } };
    }
    case 'sfu-speaker':
      return m.peer === null || isPeerId(m.peer) ? { type: 'sfu-speaker', peer: m.peer ?? null } : null;
    case 'error':
      return typeof m.code === 'string'
        ? {
            type: 'error',
            code: m.code,
            message: String(m.message ?? ''),
            retryAfterMs: Number.isSafeInteger(m.retryAfterMs) ? Math.max(0, Number(m.retryAfterMs)) : null,
          }
        : null;
    default:
      return null;
  }
}

// --- peer to peer: signal payloads ----------------------------------------------------------

/**
 * A negotiation step, or (`relay: true`) word that the sender's direct and TURN paths failed and
 * it is moving this conversation to the server's relay, where the receiver should follow.
 * @typedef {{ conn: string, description?: RTCSessionDescriptionInit, candidate?: RTCIceCandidateInit,
 *   relay?: true }} SignalPayload
 */

/** @param {string} conn @returns {SignalPayload} */
export const relayPayload = (conn) => ({ conn, relay: true });

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
  if (value.relay === true) return { conn: value.conn, relay: true };
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
/** @typedef {'on' | 'muted' | 'off'} MicState */
/**
 * What one side of a call is doing: in the call or not, its microphone, camera and screen share,
 * and which of its media streams is the screen (so the other side tells screen from camera).
 * @typedef {{ type: 'call-state', inCall: boolean, mic: MicState, camera: boolean, screen: boolean,
 *   screenStream?: string }} CallState
 */
/**
 * @typedef {ChatMessage
 *   | { type: 'ack', id: string }
 *   | { type: 'typing', active: boolean }
 *   | { type: 'relay-hello', reply: boolean }
 *   | CallState} DataMessage
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
 * A pair room through the server's relay: "I am here" (`reply: false`, answered) or the answer.
 * The relay drops what is sent to someone not connected yet, so each side waits for the other's
 * word before it counts the conversation as connected.
 * @param {boolean} reply
 */
export const relayHello = (reply) => JSON.stringify({ type: 'relay-hello', reply });

const MIC_STATES = ['on', 'muted', 'off'];
/** A media stream id as browsers make them (a UUID, possibly in braces); never shown. */
const STREAM_ID = /^[A-Za-z0-9{}_-]{1,64}$/;

/**
 * The wire form of this side's call state.
 * @param {Omit<CallState, 'type'>} state
 */
export function callStateMessage(state) {
  /** @type {CallState} */
  const message = { type: 'call-state', inCall: state.inCall, mic: state.mic, camera: state.camera, screen: state.screen };
  if (state.screen && state.screenStream) message.screenStream = state.screenStream;
  return JSON.stringify(message);
}

/**
 * Parses a data-channel message; null for anything malformed, over a limit or of an unknown type.
 * @param {unknown} data
 * @returns {DataMessage | null}
 */
export function parseDataMessage(data) {
  if (typeof data !== 'string' || data.length > MAX_MESSAGE_BYTES) return null;
  return parseDataObject(parseObject(data));
}

/**
 * Checks an already parsed data-channel message (as relayed in group rooms).
 * @param {unknown} value
 * @returns {DataMessage | null}
 */
export function parseDataObject(value) {
  if (!isObject(value)) return null;
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
    case 'relay-hello':
      return typeof value.reply === 'boolean' ? { type: 'relay-hello', reply: value.reply } : null;
    case 'call-state': {
      const { inCall, mic, camera, screen, screenStream } = value;
      if (typeof inCall !== 'boolean' || typeof camera !== 'boolean' || typeof screen !== 'boolean') return null;
      if (typeof mic !== 'string' || !MIC_STATES.includes(mic)) return null;
      /** @type {CallState} */
      const state = { type: 'call-state', inCall, mic: /** @type {MicState} */ (mic), camera, screen };
      if (screenStream !== undefined) {
        if (typeof screenStream !== 'string' || !STREAM_ID.test(screenStream)) return null;
        state.screenStream = screenStream;
      }
      return state;
    }
    default:
      return null;
  }
}

// --- peer to peer: data channel `files` -----------------------------------------------------

const FILE_ID = /^[A-Za-z0-9_-]{16}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const MIME_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/;
/** Characters that could hide a file's real name or extension, or act as a path. */
const UNSAFE_IN_FILE_NAME = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufeff\\/:*?"<>|]/g;
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;

/** The reasons of `file-decline` and `file-cancel`. */
export const DECLINE_REASONS = /** @type {const} */ (['declined', 'too-large', 'no-space', 'busy']);
export const CANCEL_REASONS = /** @type {const} */ (['cancelled', 'corrupt', 'failed']);

/**
 * @typedef {{ type: 'file-offer', id: string, name: string, size: number, mime: string, sha256: string, sentAt: number }} FileOffer
 * @typedef {FileOffer
 *   | { type: 'file-accept', id: string, from: number }
 *   | { type: 'file-decline', id: string, reason: typeof DECLINE_REASONS[number] }
 *   | { type: 'file-cancel', id: string, reason: typeof CANCEL_REASONS[number] }
 *   | { type: 'file-ack', id: string, stored: number }
 *   | { type: 'file-complete', id: string }} FileMessage
 */

/**
 * A file name that is safe to show and to save: no path, no control or text-direction characters
 * (which could disguise "photo\u202Egpj.exe" as "photoexe.jpg"), no characters Windows refuses,
 * no leading dots, at most FILE_NAME_MAX_CHARS characters with the extension kept.
 * @param {string} name
 */
export function sanitizeFileName(name) {
  let clean = String(name).normalize('NFC').replace(/\s+/g, ' ').replace(UNSAFE_IN_FILE_NAME, '_').trim();
  clean = clean.replace(/^[.\s]+/, '').replace(/[.\s]+$/, '');
  if (WINDOWS_RESERVED.test(clean)) clean = `_${clean}`;
  const chars = [...clean];
  if (chars.length > FILE_NAME_MAX_CHARS) {
    const dot = clean.lastIndexOf('.');
    const extension = dot > 0 ? [...clean.slice(dot)] : [];
    const keep = extension.length <= 16 ? extension : [];
    clean = chars.slice(0, FILE_NAME_MAX_CHARS - keep.length).join('') + keep.join('');
  }
  return clean || 'file';
}

/** A MIME type as offered: lowercase `type/subtype` without parameters, or '' if unknown. @param {string} type */
export function sanitizeMimeType(type) {
  const bare = String(type).split(';')[0].trim().toLowerCase();
  return MIME_TYPE.test(bare) ? bare : '';
}

/** @param {FileMessage} message */
export const fileWire = (message) => JSON.stringify(message);

/** @param {unknown} value @returns {value is number} */
const isCount = (value) => Number.isSafeInteger(value) && Number(value) >= 0;

/**
 * Parses a control message of the `files` channel; null for anything malformed or unknown.
 * @param {unknown} data
 * @returns {FileMessage | null}
 */
export function parseFileMessage(data) {
  if (typeof data !== 'string' || data.length > MAX_MESSAGE_BYTES) return null;
  const value = parseObject(data);
  if (!value || typeof value.id !== 'string' || !FILE_ID.test(value.id)) return null;
  const id = value.id;
  switch (value.type) {
    case 'file-offer': {
      const { name, size, mime, sha256, sentAt } = value;
      if (typeof name !== 'string' || name.length === 0 || textLength(name) > FILE_NAME_MAX_CHARS) return null;
      if (sanitizeFileName(name) !== name) return null;
      if (!isCount(size) || typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) return null;
      if (typeof mime !== 'string' || (mime !== '' && sanitizeMimeType(mime) !== mime)) return null;
      if (typeof sentAt !== 'number' || !Number.isFinite(sentAt)) return null;
      return { type: 'file-offer', id, name, size, mime, sha256, sentAt };
    }
    case 'file-accept':
      return isCount(value.from) ? { type: 'file-accept', id, from: value.from } : null;
    case 'file-decline': {
      const reason = DECLINE_REASONS.find((known) => known === value.reason);
      return reason ? { type: 'file-decline', id, reason } : null;
    }
    case 'file-cancel': {
      const reason = CANCEL_REASONS.find((known) => known === value.reason);
      return reason ? { type: 'file-cancel', id, reason } : null;
    }
    case 'file-ack':
      return isCount(value.stored) ? { type: 'file-ack', id, stored: value.stored } : null;
    case 'file-complete':
      return { type: 'file-complete', id };
    default:
      return null;
  }
}

/** Number of chunks of a file of `size` bytes. @param {number} size */
export const chunkCount = (size) => Math.ceil(size / FILE_CHUNK_BYTES);

/** Payload bytes of chunk `seq` of a file of `size` bytes. @param {number} size @param {number} seq */
export const chunkLength = (size, seq) => Math.min(FILE_CHUNK_BYTES, size - seq * FILE_CHUNK_BYTES);

/**
 * A binary chunk: transfer id, index, payload.
 * @param {string} id a transfer id (16 ASCII characters)
 * @param {number} seq
 * @param {Uint8Array} payload
 */
export function encodeChunk(id, seq, payload) {
  const chunk = new Uint8Array(FILE_CHUNK_HEADER_BYTES + payload.length);
  for (let i = 0; i < FILE_ID_LENGTH; i += 1) chunk[i] = id.charCodeAt(i);
  new DataView(chunk.buffer).setUint32(FILE_ID_LENGTH, seq);
  chunk.set(payload, FILE_CHUNK_HEADER_BYTES);
  return chunk;
}

/**
 * Reads a chunk's header; null if it is too short, too long or its id is not a transfer id. The
 * payload is the rest of `buffer`, from `offset`.
 * @param {ArrayBuffer} buffer
 * @returns {{ id: string, seq: number, offset: number, length: number } | null}
 */
export function parseChunk(buffer) {
  if (!(buffer instanceof ArrayBuffer)) return null;
  const length = buffer.byteLength - FILE_CHUNK_HEADER_BYTES;
  if (length <= 0 || length > FILE_CHUNK_BYTES) return null;
  const id = String.fromCharCode(...new Uint8Array(buffer, 0, FILE_ID_LENGTH));
  if (!FILE_ID.test(id)) return null;
  const seq = new DataView(buffer).getUint32(FILE_ID_LENGTH);
  return { id, seq, offset: FILE_CHUNK_HEADER_BYTES, length };
}

// --- group rooms: the relay envelope (docs/protocol.md, "Relayed data") ---------------------

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/**
 * Wraps a data message for the SFU's relay: to everyone, or to one person.
 * @param {string} wire the message's JSON (an object)
 * @param {string} [to]
 */
export const relayText = (wire, to) => (to ? `{"to":${JSON.stringify(to)},"msg":${wire}}` : `{"msg":${wire}}`);

/**
 * Wraps binary data for the relay: a length byte, the recipient's id, the payload.
 * @param {ArrayBuffer | Uint8Array} data
 * @param {string} [to]
 */
export function relayBinary(data, to = '') {
  const id = textEncoder.encode(to);
  const payload = data instanceof Uint8Array ? data : new Uint8Array(data);
  const out = new Uint8Array(1 + id.length + payload.length);
  out[0] = id.length;
  out.set(id, 1);
  out.set(payload, 1 + id.length);
  return out;
}

/**
 * A relayed text message: who sent it and the message object; null if malformed.
 * @param {unknown} data
 * @returns {{ from: string, msg: Record<string, unknown> } | null}
 */
export function parseRelayedText(data) {
  if (typeof data !== 'string' || data.length > MAX_MESSAGE_BYTES + 128) return null;
  const value = parseObject(data);
  if (!value || !isPeerId(value.from) || !isObject(value.msg)) return null;
  return { from: value.from, msg: value.msg };
}

/**
 * A relayed binary message: who sent it and the payload; null if malformed.
 * @param {unknown} data
 * @returns {{ from: string, payload: ArrayBuffer } | null}
 */
export function parseRelayedBinary(data) {
  if (!(data instanceof ArrayBuffer) || data.byteLength < 1) return null;
  const bytes = new Uint8Array(data);
  const length = bytes[0];
  if (bytes.length < 1 + length) return null;
  const from = textDecoder.decode(bytes.subarray(1, 1 + length));
  if (!isPeerId(from)) return null;
  return { from, payload: data.slice(1 + length) };
}
