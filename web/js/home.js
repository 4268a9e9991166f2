// The home page: create a room, open one from a pasted link or id, or open a named room.

import { namedRoomPath, newRoomId, normalizeRoomName, roomFromLink, roomPath } from './protocol.js';
import { listRooms, removeRoom, roomLabel } from './recent.js';

const createButton = /** @type {HTMLButtonElement} */ (document.getElementById('create-room'));
const joinForm = /** @type {HTMLFormElement} */ (document.getElementById('join-form'));
const linkInput = /** @type {HTMLInputElement} */ (document.getElementById('room-link'));
const joinError = /** @type {HTMLElement} */ (document.getElementById('join-error'));

createButton.addEventListener('click', () => {
  const group = /** @type {HTMLInputElement | null} */ (document.getElementById('kind-group'));
  location.assign(roomPath(newRoomId(), group?.checked ? 'group' : 'pair'));
});

joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const found = roomFromLink(linkInput.value);
  if (!found) {
    joinError.textContent =
      'That is not a Natter room link. It looks like …/r/ or …/g/ followed by 22 letters, digits, - or _.';
    linkInput.setAttribute('aria-invalid', 'true');
    linkInput.focus();
    return;
  }
  location.assign(roomPath(found.room, found.kind));
});

linkInput.addEventListener('input', () => {
  joinError.textContent = '';
  linkInput.removeAttribute('aria-invalid');
});

const namedForm = /** @type {HTMLFormElement} */ (document.getElementById('named-form'));
const nameInput = /** @type {HTMLInputElement} */ (document.getElementById('room-name'));
const nameError = /** @type {HTMLElement} */ (document.getElementById('room-name-error'));

namedForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const result = normalizeRoomName(nameInput.value);
  if ('error' in result) {
    nameError.textContent = result.error;
    nameInput.setAttribute('aria-invalid', 'true');
    nameInput.focus();
    return;
  }
  location.assign(namedRoomPath(result.name));
});

nameInput.addEventListener('input', () => {
  nameError.textContent = '';
  nameInput.removeAttribute('aria-invalid');
});

const recentList = /** @type {HTMLUListElement} */ (document.getElementById('recent-rooms'));
const recentEmpty = /** @type {HTMLElement} */ (document.getElementById('recent-empty'));
const when = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** Lists this browser's recent rooms, newest first. Names are untrusted: text only. */
async function showRecentRooms() {
  const rooms = await listRooms();
  recentEmpty.hidden = rooms.length > 0;
  recentList.replaceChildren(
    ...rooms.map((entry) => {
      const item = document.createElement('li');
      const link = document.createElement('a');
      link.href = entry.roomName ? namedRoomPath(entry.roomName) : roomPath(entry.room, entry.kind);
      link.textContent = roomLabel(entry);
      const details = document.createElement('span');
      details.className = 'details';
      const time = document.createElement('time');
      time.dateTime = new Date(entry.lastActivity).toISOString();
      time.textContent = when.format(entry.lastActivity);
      details.append(entry.peerName ? `with ${entry.peerName} · last active ` : 'last active ', time);
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Remove';
      remove.setAttribute('aria-label', `Remove ${roomLabel(entry)} from recent rooms`);
      remove.addEventListener('click', async () => {
        await removeRoom(entry.room);
        await showRecentRooms();
        createButton.focus();
      });
      item.append(link, details, remove);
      return item;
    }),
  );
}

showRecentRooms();
