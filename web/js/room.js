// The room page: ties the signaling connection, the peer link and the page together.
// Untrusted text (names, messages) only ever reaches the page through textContent.

import * as protocol from './protocol.js';
import { Signaling } from './signaling.js';
import { PeerLink, hasTurn, prepareCertificate } from './peer.js';
import { RelayLink } from './relay-link.js';
import { loadIdentity, saveIdentity } from './identity.js';
import { Chat } from './chat.js';
import { getRoom, roomLabel, touchRoom } from './recent.js';
import { getSetting, setSetting } from './storage.js';
import {
  FINAL_STATUS,
  RELAY_UNREACHABLE,
  RelayWatch,
  finalStatus,
  setStatus,
  showProofProgress,
  wireComposer,
  wireNameForm,
  wireShareButton,
} from './room-controls.js';
import { Ownership } from './moderation.js';
import { LunaPanel } from './luna-view.js';
import { loadOwnerSecret, ownerKey } from './owner-secrets.js';
import { FileTransfers } from './files.js';
import { FileHasher, FileStore } from './file-store.js';
import { formatBytes, revokePreviews } from './file-view.js';
import { FileCards, acceptFiles, fileHandlers, offerRefusal } from './file-cards.js';
import { Call } from './call.js';
import { CallView } from './call-view.js';

/** @template {HTMLElement} T @param {string} id @returns {T} */
const element = (id) => /** @type {T} */ (document.getElementById(id));

const statusLine = element('status');
const peerLine = element('peer-name');
const shareFeedback = element('share-feedback');
const nameInput = /** @type {HTMLInputElement} */ (element('name-input'));
const nameError = element('name-error');
const messageForm = /** @type {HTMLFormElement} */ (element('message-form'));
const messageInput = /** @type {HTMLTextAreaElement} */ (element('message-input'));
const composerNotice = element('composer-notice');
const typingLine = element('typing');
const roomNameForm = /** @type {HTMLFormElement} */ (element('room-name-form'));
const roomNameInput = /** @type {HTMLInputElement} */ (element('room-name-input'));
const settings = /** @type {HTMLDetailsElement} */ (element('room-settings'));
// On a phone the chat needs the room: the settings start folded there.
settings.open = matchMedia('(min-width: 40rem)').matches;
const keepHistoryBox = /** @type {HTMLInputElement} */ (element('keep-history'));
const soundBox = /** @type {HTMLInputElement} */ (element('sound'));
const clearButton = /** @type {HTMLButtonElement} */ (element('clear-messages'));
const sendButton = /** @type {HTMLButtonElement} */ (element('send'));
const messageLog = element('messages');
const earlierButton = /** @type {HTMLButtonElement} */ (element('show-earlier'));
const attachButton = /** @type {HTMLButtonElement} */ (element('attach'));
const fileInput = /** @type {HTMLInputElement} */ (element('file-input'));
const reselectInput = /** @type {HTMLInputElement} */ (element('reselect-input'));
const fileStatus = element('file-status');
const pathLine = element('connection-path');
const relayOnlyBox = /** @type {HTMLInputElement} */ (element('relay-only'));
const relayOnlyRow = element('relay-only-row');

const RELAY_ONLY_UNAVAILABLE =
  'This server has no TURN relay, so “Always connect through the relay” cannot hide your address here.';

/** What each path means for the people in the room, in the status's second line. */
const PATH_DETAIL = Object.freeze({
  direct: 'Direct connection: your browsers talk to each other; the server sees nothing.',
  turn: 'Through a TURN relay: it passes on encrypted data it cannot read.',
  server: "Through Natter's server, because your networks block a direct connection: it forwards your messages, files and calls, as in a group room, and stores nothing.",
});

const STATUS = Object.freeze({
  waiting: 'Waiting for the other person…',
  connecting: 'Connecting…',
  connected: 'Connected',
  connectedTurn: 'Connected through a TURN relay',
  connectedServer: 'Connected through the server',
  relayRefused: 'Cannot connect: your networks block a direct connection, and this server does not relay pair rooms.',
  left: 'The other person left',
  unreachable: 'Server unreachable — retrying…',
});

/** This browser's place in the room, for the people list. */
const me = { peer: '', name: '' };
/** @type {Signaling | null} */
let signalingRef = null;
/** Where this room's owner secret is kept; set once the page knows the room. */
let secretKey = '';
const ownership = new Ownership('pair', () => secretKey, () => signalingRef);
/** Made once the identity is known, which is before any channel opens. @type {Chat | null} */
let chat = null;
const luna = new LunaPanel({
  messageLog: element('messages'),
  history: () => chat?.ordered() ?? [],
  ask: (id, text, context) => signalingRef?.askLuna(id, text, context) ?? false,
  allow: (allowed) => signalingRef?.allowLuna(allowed),
});

/**
 * Everything the status line is derived from.
 * @type {{
 *   signaling: import('./signaling.js').SignalingState,
 *   final: string | null,
 *   other: { peer: string, name: string } | null,
 *   otherLeft: boolean,
 *   channelOpen: boolean,
 *   path: import('./peer.js').Path | null,
 *   relayOnlyUnavailable: boolean,
 *   blocked: boolean,
 *   tooLong: number,
 *   localName: string,
 *   unread: number,
 * }}
 */
const view = {
  signaling: 'connecting',
  final: null,
  other: null,
  otherLeft: false,
  channelOpen: false,
  // How the open channel reaches the other person.
  path: null,
  // "Always connect through the relay" is on, but this server has no TURN to hide behind.
  relayOnlyUnavailable: false,
  // Direct and TURN failed and this server does not relay pair rooms: said until a path works.
  blocked: false,
  // Characters over the limit in the composer, 0 when it fits.
  tooLong: 0,
  // This browser's own name for the room ("Rename room").
  localName: '',
  // Messages received while the tab was hidden, shown in the title until it is seen.
  unread: 0,
};

let everConnected = false;
/** On the server's relay: says so when this side's connection to it has not come up within 10 s. */
const relayWatch = new RelayWatch(() => render());

/** The call: made before any connection, so the first one already carries its tracks. */
/** @type {PeerLink | RelayLink | null} */
let currentLink = null;
const call = new Call({
  send: (wire) => currentLink?.sendData(wire) ?? false,
  onChange: () => callView.render(),
});
const callView = new CallView(call);

function render() {
  let status;
  if (view.final) status = view.final;
  else if (view.channelOpen && view.path) {
    status = view.path === 'server' ? STATUS.connectedServer : view.path === 'turn' ? STATUS.connectedTurn : STATUS.connected;
  } else if (view.channelOpen) status = STATUS.connecting; // the path is known a moment later
  else if (view.signaling === 'retrying') status = STATUS.unreachable;
  else if (relayWatch.late) status = RELAY_UNREACHABLE;
  else if (view.blocked && view.other) status = STATUS.relayRefused;
  else if (view.signaling === 'connecting' || view.other) status = STATUS.connecting;
  else if (view.otherLeft) status = STATUS.left;
  else status = STATUS.waiting;
  setStatus(statusLine, status, status === RELAY_UNREACHABLE);
  const cannotHide = view.path === 'direct' && view.relayOnlyUnavailable ? ` ${RELAY_ONLY_UNAVAILABLE}` : '';
  pathLine.textContent = view.channelOpen && view.path ? `${PATH_DETAIL[view.path]}${cannotHide}` : '';
  if (view.channelOpen && view.path && !everConnected) {
    everConnected = true;
    // Lets tests and curious people measure time from navigation to Connected.
    performance.mark('natter:connected');
  }
  peerLine.textContent = view.other ? `With ${view.other.name}` : 'Nobody else is here yet';
  sendButton.disabled = !view.channelOpen || view.tooLong > 0;
  attachButton.disabled = !view.channelOpen;
  composerNotice.textContent = view.tooLong
    ? `Too long: ${view.tooLong} characters over the limit of ${protocol.CHAT_TEXT_MAX_CHARS.toLocaleString('en')}. Nothing is cut; shorten it to send.`
    : view.final || view.channelOpen
      ? ''
      : 'The other person is not connected, so messages cannot be sent now. Nothing is kept for later.';
  callView.available = view.channelOpen;
  callView.otherName = view.other?.name ?? null;
  callView.render();
  const joined = view.signaling === 'joined' && !view.final;
  ownership.render({ self: me, others: view.other ? [view.other] : [], available: joined });
  // In a pair room both people are equals: either may allow @luna.
  luna.render({ canToggle: joined, whoDecides: 'Either of you' });
  document.title = `${view.unread ? `(${view.unread}) ` : ''}${roomLabel({ localName: view.localName, peerName: view.other?.name ?? '' })} · Natter`;
}

/** @typedef {import('./history.js').StoredMessage} StoredMessage */

/** Messages put in the page at once; earlier ones come on request, so a long history opens fast. */
const PAGE = 200;

/** Every message of the room in order, and the index of the first one in the page. */
const shown = { ordered: /** @type {StoredMessage[]} */ ([]), from: 0 };

/** The room's file transfers, once the identity is known. @type {FileTransfers | null} */
let files = null;
/** @type {FileStore | null} */
let fileStore = null;

/** The cards of file messages. */
const fileCards = new FileCards({
  messageLog,
  owner: () => files,
  store: () => fileStore,
  reselect: (id) => {
    reselecting = id;
    reselectInput.click();
  },
});
/** The transfer a "Select file again" click is for. @type {string | null} */
let reselecting = null;

function updateEarlierButton() {
  earlierButton.hidden = shown.from === 0;
  earlierButton.textContent = `Show earlier messages (${shown.from})`;
}

/** Shows the latest messages of the chat, in order. @param {Chat} chat */
function renderAll(chat) {
  shown.ordered = chat.ordered();
  shown.from = Math.max(0, shown.ordered.length - PAGE);
  messageLog.replaceChildren(renderRange(shown.from, shown.ordered.length));
  updateEarlierButton();
  scrollToLatest(true);
}

let scrollQueued = false;
/** Whether the view follows new messages: true unless the person scrolled up to read. */
let followLatest = true;
messageLog.addEventListener(
  'scroll',
  () => (followLatest = messageLog.scrollHeight - messageLog.scrollTop - messageLog.clientHeight < 80),
  { passive: true },
);

/**
 * Keeps the newest message in view, once per frame rather than forcing a layout per message, and
 * only if the person was following the latest messages (not while they read older ones).
 * @param {boolean} [always]
 */
function scrollToLatest(always = false) {
  if (scrollQueued || !(always || followLatest)) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    messageLog.scrollTop = messageLog.scrollHeight;
  });
}

/** @param {number} from @param {number} to */
function renderRange(from, to) {
  const fragment = document.createDocumentFragment();
  for (let index = from; index < to; index += 1) {
    fragment.append(fileCards.render(shown.ordered[index], shown.ordered[index - 1]));
  }
  return fragment;
}

/** Puts the next page of earlier messages above the shown ones, keeping the view where it was. */
function showEarlier() {
  const from = Math.max(0, shown.from - PAGE);
  const heightBefore = messageLog.scrollHeight;
  messageLog.prepend(renderRange(from, shown.from));
  shown.from = from;
  messageLog.scrollTop += messageLog.scrollHeight - heightBefore;
  updateEarlierButton();
}

/** Shows a new or changed message. @param {StoredMessage} message */
function showMessage(message) {
  const index = shown.ordered.findLastIndex((other) => other.id === message.id);
  if (index >= 0) {
    shown.ordered[index] = message;
    const item = /** @type {HTMLLIElement | null} */ (
      messageLog.querySelector(`li[data-id="${CSS.escape(message.id)}"]`)
    );
    if (item) fileCards.render(message, shown.ordered[index - 1], item);
    return;
  }
  const previous = shown.ordered.at(-1);
  shown.ordered.push(message);
  const item = fileCards.render(message, previous);
  messageLog.append(item);
  scrollToLatest(message.own);
}

/** @type {AudioContext | null} */
let audio = null;

/** A short, soft two-note chime, synthesised: no sound file to fetch. */
function chime() {
  try {
    audio ??= new AudioContext();
    const start = audio.currentTime;
    for (const [offset, frequency] of [[0, 880], [0.12, 1320]]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.15, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.25);
      tone.connect(gain).connect(audio.destination);
      tone.start(start + offset);
      tone.stop(start + offset + 0.3);
    }
  } catch {
    // No audio output: the title still counts.
  }
}

async function main() {
  const roomId = decodeURIComponent(location.pathname.split('/')[2] ?? '');
  if (!protocol.isRoomId(roomId)) {
    view.final = FINAL_STATUS.invalid;
    render();
    return;
  }
  secretKey = ownerKey({ room: roomId });
  const identityLoading = loadIdentity();
  /** Ready long before the first connection is made; until then connections make their own. */
  /** @type {RTCCertificate | null} */
  let certificate = null;
  prepareCertificate().then((ready) => (certificate = ready));

  /** @type {PeerLink | RelayLink | null} */
  let link = null;
  /** The person asked that their address stay hidden: TURN only, never a direct path. */
  /** Loaded before the first connection is made (signaling starts after it): see main's end. */
  let relayOnly = false;
  const relayOnlyLoading = getSetting('relay-only').then((on) => (relayOnly = relayOnlyBox.checked = on === true));
  /** @type {RTCIceServer[]} */
  let iceServers = [];

  const url = new URL('/ws', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';

  /** Known before any welcome: joining waits for it. @type {import('./identity.js').Identity} */
  let identity = { peerId: '', peerSecret: '', name: '' };
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let typingTimer;
  /** @param {boolean} active */
  const showTyping = (active) => {
    clearTimeout(typingTimer);
    typingLine.textContent = active && view.other ? `${view.other.name} is typing…` : '';
    // A lost "stopped typing" must not leave the indicator on for ever.
    if (active) typingTimer = setTimeout(() => showTyping(false), 6_000);
  };

  /** The link's channel opened or closed. @param {PeerLink | RelayLink} created @param {boolean} open */
  const channelState = (created, open) => {
    if (link !== created) return;
    view.channelOpen = open;
    if (open) view.blocked = false;
    view.path = open ? created.path : null;
    if (open) {
      chat?.channelOpened();
      call.channelOpened();
    } else {
      showTyping(false);
      call.channelClosed();
    }
    render();
  };
  /**
   * The link's files channel opened (or closed: null).
   * @param {PeerLink | RelayLink} created @param {import('./files.js').FileChannel | null} channel
   */
  const filesChannel = (created, channel) => {
    if (link !== created) return;
    if (channel) files?.channelOpened(channel);
    else files?.channelClosed('connection');
  };
  /** @param {protocol.DataMessage} message @param {string} remoteId */
  const receive = (message, remoteId) => {
    if (message.type === 'call-state') call.receiveState(message);
    else chat?.receive(message, { peerId: remoteId, name: view.other?.name ?? 'The other person' });
  };

  /** Whether this server relays pair rooms whose other paths fail (welcome's `pairRelay`). */
  let pairRelay = true;
  /** The other side's connections this page gave up for the relay. @type {Set<string>} */
  const abandonedConns = new Set();

  /** Closes the current link before another replaces it; its own events are ignored from now on. */
  const replaceLink = () => {
    link?.close();
    if (!view.channelOpen) return;
    view.channelOpen = false;
    view.path = null;
    showTyping(false);
    call.channelClosed();
    files?.channelClosed('connection');
  };

  /**
   * Moves the conversation to the server's relay: this side's direct and TURN attempts failed
   * (`tell`: the other side is told to follow), or the other side's did.
   * @param {string} remoteId
   * @param {boolean} tell
   */
  const openRelay = (remoteId, tell) => {
    const previous = link;
    if (tell) {
      const conn = previous instanceof PeerLink ? previous.conn : protocol.newConnId();
      signaling.signal(remoteId, protocol.relayPayload(conn));
    }
    // Late offers of the connection given up (a renegotiation in flight) must not pull us back.
    if (previous instanceof PeerLink && previous.remoteConn) abandonedConns.add(previous.remoteConn);
    replaceLink();
    /** @type {RelayLink} */
    const created = new RelayLink(
      { remoteId, iceServers, certificate },
      {
        sendOffer: (sdp, tracks) => signaling.sfuOffer(sdp, tracks),
        onChannelState: (open) => channelState(created, open),
        onData: (message) => receive(message, remoteId),
        onFilesChannel: (channel) => filesChannel(created, channel),
        onFileData: (data) => files?.receive(data),
        // This side's own connection to the relay, whether or not the other person is there yet.
        onRelayChannel: (open) => {
          if (link !== created) return;
          if (open) relayWatch.stop();
          else relayWatch.start();
          render();
        },
        // The relay has no ICE restart: a failed connection is replaced.
        onFailed: () => link === created && view.other?.peer === remoteId && openRelay(remoteId, false),
        // The other person's tracks arrived or changed slots: the call's view shows them.
        onMedia: () => callView.render(),
      },
    );
    link = created;
    currentLink = created;
    relayWatch.start();
    call.attachRelay(created.sfu, remoteId);
    render();
    return created;
  };

  /** @param {string} remoteId */
  const openLink = (remoteId) => {
    replaceLink();
    // Direct again: the relay's silence no longer matters.
    relayWatch.stop();
    view.blocked = false;
    const created = new PeerLink(
      { selfId: identity.peerId, remoteId, iceServers, certificate, relayOnly },
      {
        send: (payload) => signaling.signal(remoteId, payload),
        onChannelState: (open) => channelState(created, open),
        onData: (message) => receive(message, remoteId),
        onFilesChannel: (channel) => filesChannel(created, channel),
        onFileData: (data) => files?.receive(data),
        onPeerConnection: (pc) => call.attach(pc),
        onPath: (path) => {
          if (link !== created) return;
          if (view.channelOpen) view.path = path;
          render();
        },
        onUnreachable: () => {
          if (link !== created) return;
          if (pairRelay) openRelay(remoteId, true);
          else {
            // Nothing more to try here; the connection stays in case the network changes.
            view.blocked = true;
            render();
          }
        },
      },
    );
    link = created;
    currentLink = created;
    return created;
  };

  const closeLink = () => {
    link?.close();
    relayWatch.stop();
    link = null;
    currentLink = null;
    view.channelOpen = false;
    // The closed link reports nothing more, so the call hears of it here.
    call.channelClosed();
    files?.channelClosed(view.otherLeft ? 'left' : 'connection');
  };

  /** Who files come from and go to, for naming them in messages. */
  const notePeer = () => {
    if (files && view.other) files.peer = { peerId: view.other.peer, name: view.other.name };
  };
  let maxFileBytes = protocol.DEFAULT_MAX_FILE_BYTES;

  const signaling = new Signaling(
    { url: url.href, room: roomId, identity: identityLoading, ownerSecret: () => loadOwnerSecret(secretKey) },
    {
      onProof: showProofProgress,
      onState: (state, detail) => {
        view.signaling = state;
        if (state === 'stopped') {
          view.final = finalStatus(detail) ?? view.final;
          if (view.final) closeLink();
        }
        // The server's relay ends with the signaling connection (the server removes it):
        // nothing gets through until the welcome after reconnecting opens a new one, which
        // replaces the closed link (kept, so the welcome knows to go back to the relay).
        if (state === 'retrying' && link instanceof RelayLink) replaceLink();
        // Until the server is back, the status says it is unreachable, not its relay.
        if (state === 'retrying') relayWatch.stop();
        render();
      },
      onMessage: (message) => {
        ownership.handle(message);
        luna.handle(message);
        switch (message.type) {
          case 'welcome': {
            me.peer = message.peer;
            iceServers = message.iceServers;
            pairRelay = message.pairRelay;
            // Hiding one's address needs a TURN server to hide behind.
            relayOnlyRow.hidden = !hasTurn(iceServers);
            view.relayOnlyUnavailable = relayOnly && relayOnlyRow.hidden;
            maxFileBytes = message.maxFileBytes;
            if (files) files.maxFileBytes = maxFileBytes;
            const other = message.peers[0] ?? null;
            touchRoom(roomId, other ? { peerName: other.name } : {});
            view.other = other;
            if (other) {
              view.otherLeft = false;
              // Keep a link that still works (signaling dropped, the peer connection did not).
              if (link instanceof PeerLink && link.remoteId === other.peer && link.connectionState !== 'closed') {
                // Fresh TURN credentials for any later ICE restart: the old ones expire.
                link.useIceServers(iceServers);
                link.recover();
              } else if (link instanceof RelayLink && link.remoteId === other.peer) {
                // Our side of the relay ended with the old signaling connection: connect afresh,
                // and bring the other side along in case its relay connection ended too.
                openRelay(other.peer, true);
              } else openLink(other.peer);
            }
            break;
          }
          case 'peer-joined':
            view.other = { peer: message.peer, name: message.name };
            touchRoom(roomId, { peerName: message.name });
            view.otherLeft = false;
            break;
          case 'peer-renamed':
            if (view.other?.peer === message.peer) {
              view.other = { peer: message.peer, name: message.name };
              touchRoom(roomId, { peerName: message.name });
            }
            break;
          case 'peer-left':
            if (view.other?.peer === message.peer) {
              view.other = null;
              view.otherLeft = true;
              closeLink();
            }
            break;
          case 'signal': {
            notePeer();
            if (view.other?.peer !== message.from) break;
            const payload = protocol.parseSignalPayload(message.payload);
            if (!payload) break;
            if (payload.relay) {
              // The other side could not reach us directly or through TURN: follow it to the relay
              // (unless this server does not relay pair rooms: then the other side is told no).
              if (!pairRelay) break;
              if (!(link instanceof RelayLink && link.remoteId === message.from && !link.closed)) {
                openRelay(message.from, false);
              }
              break;
            }
            // The newcomer offers first; the one who was waiting makes its link on the first signal.
            // An offer while on the relay means the other side started over: try directly again.
            const current = link instanceof PeerLink && link.remoteId === message.from ? link : null;
            const restart = payload.description?.type === 'offer' && !abandonedConns.has(payload.conn);
            if (!current && link instanceof RelayLink && !restart) break;
            (current ?? openLink(message.from)).handleSignal(message.payload);
            break;
          }
          case 'sfu-answer':
            if (link instanceof RelayLink) link.handleAnswer(message.sdp);
            break;
          case 'sfu-tracks':
            if (link instanceof RelayLink) link.handleTracks(message.tracks, message.need);
            break;
          case 'error':
            if (message.code === 'invalid-name') nameError.textContent = 'The server refused that name.';
            if (message.code === 'bad-offer' && link instanceof RelayLink) link.handleRefusal();
            if (message.code === 'not-group-room' && link instanceof RelayLink) {
              // The welcome said otherwise (an older server?): stay with the direct attempts.
              pairRelay = false;
              if (view.other) openLink(view.other.peer);
              view.blocked = true;
            }
            break;
        }
        notePeer();
        render();
      },
    },
  );
  signalingRef = signaling;


  /** Offers files to the other person; each is its own transfer. @param {Iterable<File>} chosen */
  const sendFiles = (chosen) => {
    for (const file of chosen) {
      const result = files?.offer(file);
      if (!result || result.ok) continue;
      composerNotice.textContent = offerRefusal(file, result.reason, files?.maxFileBytes ?? 0);
    }
  };
  // Files dropped anywhere on the page, or pasted, are sent like attached ones.
  acceptFiles(attachButton, fileInput, sendFiles);

  reselectInput.addEventListener('change', async () => {
    const file = reselectInput.files?.[0];
    const id = reselecting;
    reselectInput.value = '';
    if (!file || !id || !files) return;
    const expected = files.transfers.get(id)?.info;
    const same = await files.reselect(id, file);
    if (!same && expected) {
      fileStatus.textContent = `That is not the same file: ${expected.name} is ${formatBytes(expected.size)} and must be identical to continue.`;
    }
  });

  wireShareButton(protocol.roomPath(roomId), 'Link copied. Send it to the person you want to talk to.');
  wireComposer({
    form: messageForm,
    input: messageInput,
    notice: composerNotice,
    chat: () => chat,
    offline: 'Not sent: the other person is not connected.',
    setTooLong: (over) => (view.tooLong = over),
    render,
    onDraft: (text) => luna.preview(text),
    onSent: (message) => luna.sent(message),
  });

  earlierButton.addEventListener('click', showEarlier);

  /** Recent rooms are ordered by activity; a chatty room need not write on every message. */
  let lastTouched = 0;
  const noteActivity = () => {
    if (Date.now() - lastTouched < 10_000) return;
    lastTouched = Date.now();
    touchRoom(roomId);
  };

  getRoom(roomId).then((entry) => {
    view.localName = entry?.localName ?? '';
    roomNameInput.value = view.localName;
    render();
  });

  roomNameForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    // Only this browser ever sees it, but it is still shown as text and kept to one short line.
    const name = roomNameInput.value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '').trim().slice(0, 64);
    roomNameInput.value = name;
    view.localName = name;
    await touchRoom(roomId, { localName: name });
    shareFeedback.textContent = name ? `Room renamed to “${name}” (only you see this name).` : 'Room name cleared.';
    render();
  });

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && view.unread) {
      view.unread = 0;
      render();
    }
  });

  getSetting('sound').then((on) => (soundBox.checked = on === true));
  relayOnlyBox.addEventListener('change', async () => {
    relayOnly = relayOnlyBox.checked;
    await setSetting('relay-only', relayOnly);
    // A new connection with the new rule; the other side answers it afresh.
    if (view.other && link) openLink(view.other.peer);
  });
  soundBox.addEventListener('change', () => setSetting('sound', soundBox.checked));

  keepHistoryBox.addEventListener('change', () => {
    chat?.setKeepHistory(keepHistoryBox.checked);
  });

  clearButton.addEventListener('click', async () => {
    const sure = window.confirm(
      "Clear this browser's messages of this room? The other person keeps theirs. This cannot be undone.",
    );
    if (!sure) return;
    files?.clear();
    revokePreviews();
    await chat?.clear();
  });

  // Closing the page is leaving: tell the other person now rather than after the grace period.
  window.addEventListener('pagehide', () => {
    signaling.leave();
    call.close();
    link?.close();
  });

  render();
  // The first connection must already know whether to hide this person's address.
  await relayOnlyLoading;
  signaling.start();
  identity = await identityLoading;
  me.name = identity.name;
  nameInput.value = identity.name;
  const roomChat = new Chat(
    { room: roomId, self: identity },
    {
      send: (wire) => link?.sendData(wire) ?? false,
      onChange: (message) => {
        showMessage(message);
        noteActivity();
        // Received messages are reported once (ids are de-duplicated); own ones on every change.
        if (!message.own && document.visibilityState === 'hidden') {
          view.unread += 1;
          if (soundBox.checked) chime();
          render();
        }
      },
      onReset: () => renderAll(roomChat),
      onTyping: showTyping,
    },
  );
  chat = roomChat;
  const store = new FileStore(roomId, (event) => files?.storageEvent(event));
  fileStore = store;
  const hasher = new FileHasher();
  files = new FileTransfers(
    { room: roomId, self: identity, maxFileBytes },
    fileHandlers({ chat: roomChat, messageLog, store, hasher }),
  );
  notePeer();
  await roomChat.load();
  files.load(roomChat.messages.values());
  keepHistoryBox.checked = roomChat.keepHistory;
  renderAll(roomChat);
  performance.mark('natter:history-shown');
  wireNameForm(async (name) => {
    identity.name = name;
    me.name = name;
    chat?.rename(name);
    if (files) files.self = { ...files.self, name };
    await saveIdentity(identity);
    signaling.rename(name);
  });
}

main();
