// A group room's page: the signaling connection, the one connection to the server's SFU, the
// chat (relayed by the server to everyone) and the call grid. Untrusted text only ever reaches the
// page through textContent.

import * as protocol from './protocol.js';
import { Signaling } from './signaling.js';
import { SfuLink } from './sfu-link.js';
import { prepareCertificate } from './peer.js';
import { loadIdentity, saveIdentity } from './identity.js';
import { Chat } from './chat.js';
import { touchRoom } from './recent.js';
import { wireComposer, wireNameForm, wireShareButton } from './room-controls.js';
import { GroupCall } from './group-call.js';
import { GroupView } from './group-view.js';
import { FileTransfers } from './files.js';
import { FileHasher, FileStore } from './file-store.js';
import { FileCards, acceptFiles, fileHandlers, offerRefusal } from './file-cards.js';
import { Ownership } from './moderation.js';
import { LunaPanel } from './luna-view.js';
import { loadOwnerSecret, ownerKey } from './owner-secrets.js';
import { FINAL_STATUS, RELAY_UNREACHABLE, RelayWatch, finalStatus, setStatus, showProofProgress } from './room-controls.js';

/** @template {HTMLElement} T @param {string} id @returns {T} */
const element = (id) => /** @type {T} */ (document.getElementById(id));

const statusLine = element('status');
const peerLine = element('peer-name');
const nameInput = /** @type {HTMLInputElement} */ (element('name-input'));
const nameError = element('name-error');
const messageForm = /** @type {HTMLFormElement} */ (element('message-form'));
const messageInput = /** @type {HTMLTextAreaElement} */ (element('message-input'));
const composerNotice = element('composer-notice');
const typingLine = element('typing');
const sendButton = /** @type {HTMLButtonElement} */ (element('send'));
const messageLog = element('messages');
const attachButton = /** @type {HTMLButtonElement} */ (element('attach'));
const fileInput = /** @type {HTMLInputElement} */ (element('file-input'));

const STATUS = Object.freeze({
  connecting: 'Connecting…',
  connected: 'Connected through the server',
  unreachable: 'Server unreachable — retrying…',
  pair: 'This is a pair room: opening it as one…',
});

/** @typedef {import('./group-view.js').Person} Person */

const view = {
  /** @type {import('./signaling.js').SignalingState} */
  signaling: 'connecting',
  /** @type {string | null} */
  final: null,
  channelOpen: false,
  tooLong: 0,
  /** @type {string | null} */
  speaker: null,
};

/** Everyone else in the room, in order of arrival. @type {Map<string, Person>} */
const people = new Map();
/** @type {Person} */
const self = { peer: '', name: '', state: null };

/** @type {SfuLink | null} */
let link = null;
/** Says so when the connection to the media relay has not come up within 10 s. */
const relayWatch = new RelayWatch(() => render());

/** @type {import('./signaling.js').Signaling | null} */
let signalingRef = null;
/** Where this room's owner secret is kept; set once the page knows the room. */
let secretKey = '';
const ownership = new Ownership('group', () => secretKey, () => signalingRef);
const luna = new LunaPanel({
  messageLog,
  history: () => chat?.ordered() ?? [],
  ask: (id, text, context) => signalingRef?.askLuna(id, text, context) ?? false,
  allow: (allowed) => signalingRef?.allowLuna(allowed),
});

// Files: in a group room a file goes to each person as a transfer of its own (the same protocol
// as pair rooms, relayed to one recipient), so each person has their own transfers object.
/** @type {Map<string, FileTransfers>} */
const filesByPeer = new Map();
/** Transfers found in stored history (finished ones, for showing and downloading). @type {FileTransfers | null} */
let archive = null;
/** @type {FileStore | null} */
let fileStore = null;
/** @type {((person: Person) => FileTransfers) | null} */
let filesFor = null;

/** The transfers object a file message belongs to. @param {string} id */
function fileOwner(id) {
  for (const files of filesByPeer.values()) if (files.transfers.has(id)) return files;
  return archive?.transfers.has(id) ? archive : null;
}

const fileCards = new FileCards({
  messageLog,
  owner: fileOwner,
  store: () => fileStore,
  // A reloaded sender's unfinished group transfers are not resumed: the person sends again.
  reselect: () => undefined,
});

const call = new GroupCall({
  publish: (source, track, stream) => link?.publish(source, track, stream),
  onChange: () => {
    announceCallState();
    render();
  },
});
const callView = new GroupView(call);

/** Tells everyone (or one newcomer) what this side's microphone, camera and screen are doing. @param {string} [to] */
function announceCallState(to) {
  link?.sendData(protocol.callStateMessage(call.state()), to);
}

function render() {
  let status;
  if (view.final) status = view.final;
  else if (view.channelOpen) status = STATUS.connected;
  else if (view.signaling === 'retrying') status = STATUS.unreachable;
  else if (relayWatch.late) status = RELAY_UNREACHABLE;
  else status = STATUS.connecting;
  setStatus(statusLine, status, status === RELAY_UNREACHABLE);
  const count = people.size;
  peerLine.textContent = count === 0 ? 'Nobody else is here yet' : `${count + 1} people here`;
  sendButton.disabled = !view.channelOpen || view.tooLong > 0;
  attachButton.disabled = !view.channelOpen || people.size === 0;
  composerNotice.textContent = view.tooLong
    ? `Too long: ${view.tooLong} characters over the limit of ${protocol.CHAT_TEXT_MAX_CHARS.toLocaleString('en')}. Nothing is cut; shorten it to send.`
    : view.final || view.channelOpen
      ? ''
      : 'Not connected to the room, so messages cannot be sent now.';
  callView.render({
    self,
    others: [...people.values()],
    remote: link?.remoteTracks() ?? new Map(),
    speaker: view.speaker,
    available: view.channelOpen,
  });
  const joined = view.signaling === 'joined' && !view.final;
  ownership.render({ self, others: [...people.values()], available: joined });
  // In a group room the owner decides about @luna.
  luna.render({ canToggle: joined && ownership.rules.owner === self.peer, whoDecides: 'The owner' });
  document.title = `Group room (${count + 1}) · Natter`;
}

/** @typedef {import('./history.js').StoredMessage} StoredMessage */

/** @param {StoredMessage} message */
function showMessage(message) {
  const existing = /** @type {HTMLLIElement | null} */ (
    messageLog.querySelector(`li[data-id="${CSS.escape(message.id)}"]`)
  );
  if (existing) {
    fileCards.render(message, undefined, existing);
    return;
  }
  const previous = /** @type {HTMLLIElement | null} */ (messageLog.lastElementChild);
  const previousMessage = previous?.dataset.id ? chat?.messages.get(previous.dataset.id) : undefined;
  messageLog.append(fileCards.render(message, previousMessage));
  messageLog.scrollTop = messageLog.scrollHeight;
}

/** @type {Chat | null} */
let chat = null;

async function main() {
  // A group room is reached by id (/g/<id>) or by name (/n/<name>); a named room's id is learned
  // from the first welcome.
  const byName = location.pathname.startsWith('/n/');
  const roomName = byName ? protocol.roomNameFromPath(location.pathname) : null;
  let roomId = byName ? '' : decodeURIComponent(location.pathname.split('/')[2] ?? '');
  if (byName ? !roomName : !protocol.isRoomId(roomId)) {
    view.final = byName ? FINAL_STATUS.invalidName : FINAL_STATUS.invalid;
    render();
    return;
  }
  /** @type {(id: string) => void} */
  let roomIdLearned = () => {};
  /** @type {Promise<string>} */
  const roomIdKnown = roomName ? new Promise((resolve) => (roomIdLearned = resolve)) : Promise.resolve(roomId);
  secretKey = ownerKey({ room: roomId, roomName });
  const identityLoading = loadIdentity();
  let maxFileBytes = protocol.DEFAULT_MAX_FILE_BYTES;
  /** @type {RTCCertificate | null} */
  let certificate = null;
  prepareCertificate().then((ready) => (certificate = ready));
  /** @type {RTCIceServer[]} */
  let iceServers = [];

  const url = new URL('/ws', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';

  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let typingTimer;
  /** @param {string | null} who */
  const showTyping = (who) => {
    clearTimeout(typingTimer);
    typingLine.textContent = who ? `${who} is typing…` : '';
    if (who) typingTimer = setTimeout(() => showTyping(null), 6_000);
  };

  const openLink = () => {
    link?.close();
    view.channelOpen = false;
    const created = new SfuLink(
      { iceServers, certificate },
      {
        sendOffer: (sdp, tracks) => signaling.sfuOffer(sdp, tracks),
        onChannelState: (open) => {
          if (link !== created) return;
          view.channelOpen = open;
          if (open) {
            relayWatch.stop();
            chat?.channelOpened();
            announceCallState();
          } else relayWatch.start();
          render();
        },
        onData: (from, message) => {
          const person = people.get(from);
          if (!person) return;
          if (message.type === 'call-state') {
            const { type: _type, ...state } = message;
            person.state = state;
            render();
          } else if (message.type === 'typing') {
            showTyping(message.active ? person.name : null);
          } else {
            chat?.receive(message, { peerId: from, name: person.name });
          }
        },
        onFilesChannel: (channel) => {
          if (link !== created) return;
          for (const [peer, files] of filesByPeer) {
            if (channel) files.channelOpened(created.filesChannelFor(peer));
            else files.channelClosed('connection');
          }
        },
        onFileData: (from, data) => filesByPeer.get(from)?.receive(data),
        onMedia: () => render(),
        onConnectionState: (state) => {
          if (link !== created) return;
          // The SFU is ICE-lite and cannot restart: a failed connection is replaced.
          if (state === 'failed' && view.signaling === 'joined') {
            openLink();
            render();
          }
        },
      },
    );
    link = created;
    relayWatch.start();
    call.republish();
  };

  const signaling = new Signaling(
    {
      url: url.href,
      ...(roomName ? { roomName } : { room: roomId, kind: /** @type {const} */ ('group') }),
      identity: identityLoading,
      ownerSecret: () => loadOwnerSecret(secretKey),
    },
    {
      onProof: showProofProgress,
      onState: (state, detail) => {
        view.signaling = state;
        if (state === 'stopped') {
          view.final = finalStatus(detail) ?? view.final;
          if (view.final) {
            link?.close();
            link = null;
            view.channelOpen = false;
            relayWatch.stop();
          }
        }
        if (state === 'retrying') {
          // The server went away (a restart ends calls): start afresh when it is back. Until
          // then the status says the server is unreachable, not its relay.
          link?.close();
          link = null;
          view.channelOpen = false;
          view.speaker = null;
          relayWatch.stop();
        }
        render();
      },
      onMessage: (message) => {
        ownership.handle(message);
        luna.handle(message);
        switch (message.type) {
          case 'welcome':
            if (roomName && !roomId) {
              roomId = message.room;
              roomIdLearned(roomId);
            }
            if (message.kind === 'pair') {
              // The link said group, but this room is a pair room: open it as what it is.
              view.final = STATUS.pair;
              signaling.stop();
              location.replace(protocol.roomPath(roomId, 'pair'));
              break;
            }
            iceServers = message.iceServers;
            self.peer = message.peer;
            people.clear();
            for (const peer of message.peers) {
              const person = { peer: peer.peer, name: peer.name, state: null };
              people.set(peer.peer, person);
              filesFor?.(person);
            }
            maxFileBytes = message.maxFileBytes;
            touchRoom(roomId, roomName ? { kind: 'group', roomName } : { kind: 'group' });
            openLink();
            break;
          case 'peer-joined': {
            const person = { peer: message.peer, name: message.name, state: null };
            people.set(message.peer, person);
            filesFor?.(person);
            announceCallState(message.peer);
            break;
          }
          case 'peer-renamed': {
            const person = people.get(message.peer);
            if (person) person.name = message.name;
            const files = filesByPeer.get(message.peer);
            if (files) files.peer = { peerId: message.peer, name: message.name };
            break;
          }
          case 'peer-left':
            people.delete(message.peer);
            filesByPeer.get(message.peer)?.channelClosed('left');
            if (view.speaker === message.peer) view.speaker = null;
            break;
          case 'sfu-answer':
            link?.handleAnswer(message.sdp);
            break;
          case 'sfu-tracks':
            link?.handleTracks(message.tracks, message.need);
            break;
          case 'sfu-speaker':
            view.speaker = message.peer;
            break;
          case 'error':
            if (message.code === 'bad-offer') link?.handleRefusal();
            if (message.code === 'invalid-name') nameError.textContent = 'The server refused that name.';
            break;
        }
        render();
      },
    },
  );

  signalingRef = signaling;
  wireShareButton(
    roomName ? protocol.namedRoomPath(roomName) : protocol.roomPath(roomId, 'group'),
    'Link copied. Send it to the people you want to talk to.',
  );
  wireComposer({
    form: messageForm,
    input: messageInput,
    notice: composerNotice,
    chat: () => chat,
    offline: 'Not sent: not connected to the room.',
    setTooLong: (over) => (view.tooLong = over),
    render,
    onDraft: (text) => luna.preview(text),
    onSent: (message) => luna.sent(message),
  });

  // Closing the page is leaving: the others see it at once, not after a timeout.
  window.addEventListener('pagehide', () => {
    signaling.leave();
    call.leave();
    link?.close();
  });

  render();
  signaling.start();
  const identity = await identityLoading;
  self.name = identity.name;
  nameInput.value = identity.name;
  wireNameForm(async (name) => {
    identity.name = name;
    self.name = name;
    chat?.rename(name);
    for (const files of filesByPeer.values()) files.self = { ...files.self, name };
    await saveIdentity(identity);
    signaling.rename(name);
    render();
  });
  // Chat history and stored files are kept by room id, which a named room has only once joined.
  await roomIdKnown;
  const roomChat = new Chat(
    { room: roomId, self: identity },
    {
      send: (wire, to) => link?.sendData(wire, to) ?? false,
      onChange: showMessage,
      onReset: () => messageLog.replaceChildren(),
      onTyping: (active) => !active && showTyping(null),
    },
  );
  chat = roomChat;
  const store = new FileStore(roomId, (event) => {
    for (const files of filesByPeer.values()) files.storageEvent(event);
  });
  fileStore = store;
  const hasher = new FileHasher();
  const handlers = fileHandlers({ chat: roomChat, messageLog, store, hasher });
  await roomChat.load();
  // Before any transfer starts: loading prunes stored files that history no longer mentions.
  archive = new FileTransfers({ room: roomId, self: identity, maxFileBytes }, handlers);
  archive.load(roomChat.messages.values());
  filesFor = (person) => {
    let files = filesByPeer.get(person.peer);
    if (!files) {
      files = new FileTransfers({ room: roomId, self: identity, maxFileBytes }, handlers);
      filesByPeer.set(person.peer, files);
      if (link?.files.readyState === 'open') files.channelOpened(link.filesChannelFor(person.peer));
    }
    files.peer = { peerId: person.peer, name: person.name };
    files.maxFileBytes = maxFileBytes;
    return files;
  };
  for (const person of people.values()) filesFor(person);
  acceptFiles(attachButton, fileInput, (chosen) => {
    for (const file of chosen) {
      if (people.size === 0) composerNotice.textContent = 'Nobody else is here to send it to.';
      for (const person of people.values()) {
        const files = filesFor?.(person);
        const result = files?.offer(file);
        if (result && !result.ok) composerNotice.textContent = offerRefusal(file, result.reason, maxFileBytes);
      }
    }
  });

  for (const message of roomChat.ordered()) showMessage(message);
  render();

}

main();
