// The home page: create a room, or open one from a pasted link or id.

import { newRoomId, roomIdFromLink, roomPath } from './protocol.js';

const createButton = /** @type {HTMLButtonElement} */ (document.getElementById('create-room'));
const joinForm = /** @type {HTMLFormElement} */ (document.getElementById('join-form'));
const linkInput = /** @type {HTMLInputElement} */ (document.getElementById('room-link'));
const joinError = /** @type {HTMLElement} */ (document.getElementById('join-error'));

createButton.addEventListener('click', () => {
  location.assign(roomPath(newRoomId()));
});

joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const roomId = roomIdFromLink(linkInput.value);
  if (!roomId) {
    joinError.textContent = 'That is not a Natter room link. It looks like …/r/ followed by 22 letters, digits, - or _.';
    linkInput.setAttribute('aria-invalid', 'true');
    linkInput.focus();
    return;
  }
  location.assign(roomPath(roomId));
});

linkInput.addEventListener('input', () => {
  joinError.textContent = '';
  linkInput.removeAttribute('aria-invalid');
});
