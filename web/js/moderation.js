// The room's people and, for its owner, what an owner may do: remove or ban someone, hand the room
// on, lock it, set how many it holds. Everyone sees who owns the room and whether it is locked.
// Names are untrusted text and only ever set through textContent. Both room pages use it.

import { saveOwnerSecret } from './owner-secrets.js';

/**
 * @typedef {{ peer: string, name: string }} Member
 * @typedef {{ owner: string | null, locked: boolean, capacity: number, kind: 'pair' | 'group' }} RoomRules
 * @typedef {{ kick: (peer: string) => void, ban: (peer: string) => void,
 *   handOver: (peer: string) => void, lock: (locked: boolean) => void,
 *   setCapacity: (capacity: number) => void }} ModerationActions
 * @typedef {import('./protocol.js').ServerMessage} ServerMessage
 */

/**
 * An element with attributes and children.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag @param {Record<string, string>} [attributes] @param {(Node | string)[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
function make(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/**
 * The "People" section, built into the page's `<details id="people">` so both room pages share
 * one definition.
 */
export class ModerationView {
  #list = make('ul', { class: 'people-list', 'aria-label': 'People' });
  #rules = make('p', { class: 'room-rules', role: 'status', 'aria-label': 'Room rules' });
  #lock = make('input', { type: 'checkbox', id: 'lock-room' });
  #capacityInput = make('input', {
    id: 'capacity-input',
    type: 'number',
    min: '2',
    inputmode: 'numeric',
    'aria-describedby': 'owner-error',
  });
  #capacityForm = make('form', { class: 'capacity-form', novalidate: '' }, [
    make('label', { for: 'capacity-input' }, ['Room capacity']),
    this.#capacityInput,
    make('button', { type: 'submit' }, ['Set capacity']),
  ]);
  /** Where the owner's refused requests are explained. */
  error = make('p', { id: 'owner-error', class: 'error', role: 'alert' });
  #ownerControls = make('div', { class: 'owner-controls', role: 'group', 'aria-label': 'Owner controls' }, [
    make('label', { class: 'toggle' }, [this.#lock, ' Lock room']),
    this.#capacityForm,
    this.error,
  ]);
  /** The last announcement, so re-rendering does not repeat it to screen readers. */
  #announced = '';

  /** @param {ModerationActions} actions */
  constructor(actions) {
    this.actions = actions;
    const section = /** @type {HTMLElement} */ (document.getElementById('people'));
    section.append(make('summary', {}, ['People']), this.#rules, this.#list, this.#ownerControls);
    this.#ownerControls.hidden = true;
    this.#lock.addEventListener('change', () => actions.lock(this.#lock.checked));
    this.#capacityForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const capacity = Number(this.#capacityInput.value);
      if (Number.isInteger(capacity)) actions.setCapacity(capacity);
    });
  }

  /**
   * @param {{ self: Member, others: Member[], rules: RoomRules, available: boolean }} state
   */
  render({ self, others, rules, available }) {
    const isOwner = available && rules.owner !== null && rules.owner === self.peer;
    const rows = [self, ...others].map((member) => this.#row(member, member === self, rules, isOwner));
    this.#list.replaceChildren(...rows);
    this.#ownerControls.hidden = !isOwner;
    this.#lock.checked = rules.locked;
    this.#capacityForm.hidden = rules.kind !== 'group';
    if (document.activeElement !== this.#capacityInput) this.#capacityInput.value = String(rules.capacity);
    const ownerName =
      rules.owner === self.peer ? 'you' : (others.find((member) => member.peer === rules.owner)?.name ?? null);
    let text = '';
    if (available) {
      const parts = [ownerName ? `Owner: ${ownerName}.` : 'The owner is not here.'];
      if (rules.locked) parts.push('Room locked: nobody new may join.');
      if (rules.kind === 'group') parts.push(`Holds up to ${rules.capacity} people.`);
      text = parts.join(' ');
    }
    if (text !== this.#announced) {
      this.#announced = text;
      this.#rules.textContent = text;
    }
  }

  /** @param {Member} member @param {boolean} isSelf @param {RoomRules} rules @param {boolean} isOwner */
  #row(member, isSelf, rules, isOwner) {
    const item = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'person-name';
    name.textContent = member.name;
    item.append(name);
    const tags = [];
    if (isSelf) tags.push('you');
    if (member.peer === rules.owner) tags.push('owner');
    if (tags.length) {
      const tag = document.createElement('span');
      tag.className = 'person-tags';
      tag.textContent = ` (${tags.join(', ')})`;
      item.append(tag);
    }
    if (isOwner && !isSelf) {
      const actions = document.createElement('span');
      actions.className = 'person-actions';
      /** @param {string} label @param {string} accessible @param {() => void} act */
      const button = (label, accessible, act) => {
        const control = document.createElement('button');
        control.type = 'button';
        control.textContent = label;
        control.setAttribute('aria-label', accessible);
        control.addEventListener('click', act);
        return control;
      };
      actions.append(
        button('Remove', `Remove ${member.name}`, () => this.actions.kick(member.peer)),
        button('Ban', `Ban ${member.name}`, () => this.actions.ban(member.peer)),
        button('Make owner', `Make ${member.name} the owner`, () => this.actions.handOver(member.peer)),
      );
      item.append(actions);
    }
    return item;
  }
}

/**
 * A room's ownership as the server reports it: the rules, this browser's owner secret, the view,
 * and the owner's requests (sent through the page's signaling connection).
 */
export class Ownership {
  #view;

  /**
   * @param {'pair' | 'group'} kind
   * @param {() => string} secretKey where this room's secret is kept (see owner-secrets.js)
   * @param {() => ModerationActions | null} signaling the connection, once there is one
   */
  constructor(kind, secretKey, signaling) {
    /** @type {RoomRules} */
    this.rules = { owner: null, locked: false, capacity: 0, kind };
    this.secretKey = secretKey;
    this.#view = new ModerationView({
      kick: (peer) => signaling()?.kick(peer),
      ban: (peer) => signaling()?.ban(peer),
      handOver: (peer) => signaling()?.handOver(peer),
      lock: (locked) => signaling()?.lock(locked),
      setCapacity: (capacity) => {
        this.#view.error.textContent = '';
        signaling()?.setCapacity(capacity);
      },
    });
  }

  /** Takes what concerns ownership from a server message. @param {ServerMessage} message */
  handle(message) {
    switch (message.type) {
      case 'welcome':
        if (message.ownerSecret) saveOwnerSecret(this.secretKey(), message.ownerSecret);
        this.#update(message);
        break;
      case 'room-state':
        this.#update(message);
        break;
      case 'owner-secret':
        saveOwnerSecret(this.secretKey(), message.secret);
        break;
      case 'error':
        if (message.code === 'invalid-capacity') {
          this.#view.error.textContent = 'A room holds at least 2 people and at most what this server allows.';
        } else if (message.code === 'not-owner') {
          this.#view.error.textContent = 'Only the owner may do that.';
        }
        break;
    }
  }

  /** @param {{ owner: string | null, locked: boolean, capacity: number }} state */
  #update({ owner, locked, capacity }) {
    Object.assign(this.rules, { owner, locked, capacity });
  }

  /** @param {{ self: Member, others: Member[], available: boolean }} state */
  render({ self, others, available }) {
    this.#view.render({ self, others, rules: this.rules, available });
  }
}
