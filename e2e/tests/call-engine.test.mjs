// Unit tests of web/js/call.js and the call-state message in protocol.js, in node: the call's
// state machine (who is in the call, what is announced, which transceivers send and receive)
// against small stand-ins for MediaStream and RTCPeerConnection, and hostile call-state messages.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as protocol from '../../web/js/protocol.js';
import { Call, callSummary, formatDuration, mediaErrorText } from '../../web/js/call.js';

let nextId = 0;
class FakeTrack extends EventTarget {
  enabled = true;
  readyState = 'live';
  contentHint = '';
  /** @param {string} kind */
  constructor(kind) {
    super();
    this.kind = kind;
    this.id = `track-${(nextId += 1)}`;
  }
  stop() {
    this.readyState = 'ended';
  }
}

class FakeStream {
  id = `stream-${(nextId += 1)}`;
  /** @type {FakeTrack[]} */
  tracks = [];
  /** @param {FakeTrack[]} [tracks] */
  constructor(tracks = []) {
    this.tracks = [...tracks];
  }
  /** @param {FakeTrack} track */
  addTrack(track) {
    this.tracks.push(track);
  }
  /** @param {FakeTrack} track */
  removeTrack(track) {
    this.tracks = this.tracks.filter((each) => each !== track);
  }
  getAudioTracks() {
    return this.tracks.filter((track) => track.kind === 'audio');
  }
  getVideoTracks() {
    return this.tracks.filter((track) => track.kind === 'video');
  }
}
Object.assign(globalThis, { MediaStream: FakeStream });

/** Enough of RTCPeerConnection for the call: senders, transceivers and their directions. */
class FakePeerConnection extends EventTarget {
  signalingState = 'stable';
  connectionState = 'connected';
  /** @type {{ sender: any, receiver: { track: FakeTrack }, direction: string, currentDirection: string | null }[]} */
  transceivers = [];
  /** @param {FakeTrack} track @param {FakeStream} stream */
  addTrack(track, stream) {
    const sender = {
      track,
      streams: [stream.id],
      /** @param {FakeTrack | null} next */
      replaceTrack: async (next) => {
        sender.track = next;
      },
      /** @param {FakeStream} next */
      setStreams: (next) => (sender.streams = [next.id]),
    };
    this.transceivers.push({ sender, receiver: { track: new FakeTrack(track.kind) }, direction: 'sendrecv', currentDirection: null });
    return sender;
  }
  getTransceivers() {
    return this.transceivers;
  }
  async getStats() {
    return new Map();
  }
}

/** A call whose devices always start, and a record of what it sent. */
function makeCall({ fail = /** @type {string | null} */ (null) } = {}) {
  /** @type {any[]} */
  const sent = [];
  const call = new Call({
    send: (wire) => {
      sent.push(JSON.parse(wire));
      return true;
    },
    onChange: () => {},
    getUserMedia: async (constraints) => {
      if (fail) throw new DOMException('refused', fail);
      return /** @type {any} */ (new FakeStream([new FakeTrack(constraints.audio ? 'audio' : 'video')]));
    },
    getDisplayMedia: async () => /** @type {any} */ (new FakeStream([new FakeTrack('video')])),
  });
  const pc = new FakePeerConnection();
  call.attach(/** @type {any} */ (pc));
  return { call, sent, pc };
}

const REMOTE_IN_CALL = { inCall: true, mic: /** @type {const} */ ('on'), camera: false, screen: false };
const REMOTE_OUT = { inCall: false, mic: /** @type {const} */ ('off'), camera: false, screen: false };

/**
 * The server relay's side of a call (relay-link.js's SfuLink): what was published per source, and
 * the tracks the server labels by person and source.
 */
class FakeRelay {
  pc = new FakePeerConnection();
  /** @type {[string, FakeTrack | null, FakeStream | undefined][]} */
  published = [];
  /** @type {Map<string, { microphone?: FakeTrack, camera?: FakeTrack, screen?: FakeTrack }>} */
  forwarded = new Map();
  /** @param {string} source @param {FakeTrack | null} track @param {FakeStream} [stream] */
  async publish(source, track, stream) {
    this.published.push([source, track, stream]);
  }
  remoteTracks() {
    return this.forwarded;
  }
}

describe('a call through the server relay', () => {
  test('devices are published by source, stopped with null, and carried over from the direct connection', async () => {
    const { call, pc } = makeCall();
    await call.toggle('mic');
    const relay = new FakeRelay();
    // The pair fell back to the server relay with the microphone on: it is published there at once.
    call.attachRelay(/** @type {any} */ (relay), 'peer-bob-0000000002');
    assert.deepEqual(relay.published.map(([source, track]) => [source, track === call.tracks.mic]), [['microphone', true]]);
    await call.toggle('camera');
    await call.toggle('screen');
    assert.deepEqual(relay.published.map(([source]) => source), ['microphone', 'camera', 'screen']);
    // The screen goes in a stream of its own, as on the direct path.
    assert.notEqual(relay.published[2][2], relay.published[1][2]);
    await call.toggle('camera');
    assert.deepEqual(relay.published.at(-1)?.slice(0, 2), ['camera', null]);
    // Nothing more touches the old connection's transceivers, and the relay's are sfu-link.js's.
    const directions = pc.transceivers.map((transceiver) => transceiver.direction);
    call.leave();
    assert.deepEqual(pc.transceivers.map((transceiver) => transceiver.direction), directions);
    assert.deepEqual(relay.pc.transceivers, []);
    call.close();
  });

  test("the other person's camera and screen come from the slots the server labels, while both are in the call", async () => {
    const { call } = makeCall();
    const relay = new FakeRelay();
    call.attachRelay(/** @type {any} */ (relay), 'peer-bob-0000000002');
    const camera = new FakeTrack('video');
    const screen = new FakeTrack('video');
    relay.forwarded.set('peer-bob-0000000002', { camera, screen });
    // Someone else's tracks (there is nobody else in a pair room) are never shown.
    relay.forwarded.set('peer-eve-0000000003', { camera: new FakeTrack('video') });
    assert.deepEqual(call.remoteVideo, { camera: null, screen: null }, 'nobody is in the call yet');
    call.receiveState({ ...REMOTE_IN_CALL, camera: true });
    assert.deepEqual(call.remoteVideo, { camera, screen: null }, 'the screen shows only once announced');
    call.receiveState({ ...REMOTE_IN_CALL, camera: true, screen: true, screenStream: 'any' });
    assert.deepEqual(call.remoteVideo, { camera, screen });
    // A direct connection again (the other side reloaded): back to the peer connection's tracks.
    call.attach(/** @type {any} */ (new FakePeerConnection()));
    assert.deepEqual(call.remoteVideo, { camera: null, screen: null });
    call.close();
  });
});

describe('call state', () => {
  test('starting the microphone joins the call and tells the other side', async () => {
    const { call, sent, pc } = makeCall();
    await call.toggle('mic');
    assert.equal(call.inCall, true);
    assert.deepEqual(sent.at(-1), { type: 'call-state', inCall: true, mic: 'on', camera: false, screen: false });
    assert.equal(pc.transceivers.length, 1);
    assert.equal(pc.transceivers[0].direction, 'sendrecv');
    // Pressing it again mutes: the track stays, disabled, and the other side hears of it.
    await call.toggle('mic');
    assert.equal(call.tracks.mic?.enabled, false);
    assert.equal(sent.at(-1).mic, 'muted');
    call.close();
  });

  test('a call the other side starts is joined as a listener, until this side leaves', () => {
    const { call, sent, pc } = makeCall();
    call.receiveState(REMOTE_IN_CALL);
    assert.equal(call.inCall, true);
    assert.deepEqual(sent.at(-1), { type: 'call-state', inCall: true, mic: 'off', camera: false, screen: false });
    call.leave();
    assert.equal(call.inCall, false);
    assert.equal(call.left, true);
    // The other side changing its devices does not pull this side back in.
    call.receiveState({ ...REMOTE_IN_CALL, camera: true });
    assert.equal(call.inCall, false);
    // Once the other side is out, its next call is heard again without a click.
    call.receiveState(REMOTE_OUT);
    call.receiveState(REMOTE_IN_CALL);
    assert.equal(call.inCall, true);
    assert.equal(pc.transceivers.length, 0);
    call.close();
  });

  test('leaving stops every device and makes every transceiver inactive', async () => {
    const { call, sent, pc } = makeCall();
    call.receiveState(REMOTE_IN_CALL);
    await call.toggle('mic');
    await call.toggle('camera');
    await call.toggle('screen');
    assert.equal(sent.at(-1).screen, true);
    assert.match(sent.at(-1).screenStream, /^stream-/);
    const tracks = [call.tracks.mic, call.tracks.camera, call.tracks.screen];
    call.leave();
    assert.ok(tracks.every((track) => track?.readyState === 'ended'), 'devices are released');
    assert.deepEqual(
      pc.transceivers.map((each) => each.direction),
      ['inactive', 'inactive', 'inactive'],
    );
    assert.deepEqual(sent.at(-1), { type: 'call-state', inCall: false, mic: 'off', camera: false, screen: false });
    // "Leave call" pressed again: listening again, receiving but not sending.
    call.rejoin();
    assert.deepEqual(
      pc.transceivers.map((each) => each.direction),
      ['recvonly', 'recvonly', 'recvonly'],
    );
    call.close();
  });

  test('a camera turned off and on again reuses its sender: no new transceiver', async () => {
    const { call, pc } = makeCall();
    await call.toggle('camera');
    await call.toggle('camera');
    assert.equal(pc.transceivers[0].direction, 'recvonly');
    await call.toggle('camera');
    assert.equal(pc.transceivers.length, 1);
    assert.equal(pc.transceivers[0].direction, 'sendrecv');
    call.close();
  });

  test('a new connection (the other side reloaded) gets the running tracks', async () => {
    const { call } = makeCall();
    await call.toggle('mic');
    await call.toggle('camera');
    const next = new FakePeerConnection();
    call.attach(/** @type {any} */ (next));
    assert.deepEqual(next.transceivers.map((each) => each.sender.track.kind), ['audio', 'video']);
    call.close();
  });

  test('a refused device leaves the call as it was and says why', async () => {
    const { call, sent } = makeCall({ fail: 'NotAllowedError' });
    await call.toggle('camera');
    assert.equal(call.inCall, false);
    assert.equal(call.tracks.camera, null);
    assert.match(call.error, /^Natter may not use your camera: permission was denied\./);
    assert.equal(sent.length, 0, 'nothing to announce');
  });

  test('the same state is announced once; a reopened channel hears it again', async () => {
    const { call, sent } = makeCall();
    await call.toggle('mic');
    const count = sent.length;
    call.receiveState(REMOTE_IN_CALL);
    call.receiveState(REMOTE_IN_CALL);
    assert.equal(sent.length, count);
    call.channelOpened();
    assert.equal(sent.length, count + 1);
    call.close();
  });

  test('a closed channel means the other side is out of the call', () => {
    const { call } = makeCall();
    call.receiveState(REMOTE_IN_CALL);
    call.channelClosed();
    assert.equal(call.remote.inCall, false);
    assert.equal(call.inCall, false);
    call.close();
  });
});

describe('what the page says', () => {
  test('the summary names the state of both sides', async () => {
    const { call } = makeCall();
    assert.equal(callSummary(call, 'Ann'), '');
    await call.toggle('mic');
    assert.equal(callSummary(call, 'Ann'), 'Calling Ann…');
    assert.equal(callSummary(call, null), 'Calling… The other person is not connected.');
    call.receiveState({ inCall: true, mic: 'muted', camera: false, screen: true, screenStream: 's1' });
    assert.equal(
      callSummary(call, 'Ann'),
      "In call with Ann. Ann is muted. Ann's camera is off. Ann is sharing their screen.",
    );
    await call.toggle('mic');
    assert.match(callSummary(call, 'Ann'), / You are muted\.$/);
    call.leave();
    assert.match(callSummary(call, 'Ann'), /^Ann is in a call\. Press Microphone or Camera to join\. Ann is muted\./);
    call.close();
  });

  test('errors name the device and what to do', () => {
    const error = (name) => new DOMException('x', name);
    assert.match(mediaErrorText('mic', error('NotFoundError')), /^No microphone found\./);
    assert.match(mediaErrorText('camera', error('NotReadableError')), /another program/);
    assert.match(mediaErrorText('screen', error('NotAllowedError')), /^Screen sharing did not start/);
    assert.match(mediaErrorText('mic', new Error('odd')), /^Your microphone could not be started \(Error\)\.$/);
  });

  test('durations read like a clock', () => {
    assert.equal(formatDuration(0), '0:00');
    assert.equal(formatDuration(61_500), '1:01');
    assert.equal(formatDuration(3_723_000), '1:02:03');
  });
});

describe('call-state on the wire', () => {
  test('a state round-trips; the screen stream only travels while sharing', () => {
    const wire = protocol.callStateMessage({ inCall: true, mic: 'on', camera: true, screen: false, screenStream: 'abc' });
    assert.deepEqual(JSON.parse(wire), { type: 'call-state', inCall: true, mic: 'on', camera: true, screen: false });
    const sharing = protocol.callStateMessage({ inCall: true, mic: 'off', camera: false, screen: true, screenStream: '{6a1d-2b3c}' });
    assert.deepEqual(protocol.parseDataMessage(sharing), JSON.parse(sharing));
  });

  test('malformed call states are dropped', () => {
    const good = { type: 'call-state', inCall: true, mic: 'on', camera: false, screen: false };
    for (const bad of [
      { ...good, inCall: 'yes' },
      { ...good, mic: 'loud' },
      { ...good, mic: undefined },
      { ...good, camera: 1 },
      { ...good, screen: null },
      { ...good, screenStream: '<img src=x onerror=alert(1)>' },
      { ...good, screenStream: 'x'.repeat(65) },
      { ...good, screenStream: 42 },
    ]) {
      assert.equal(protocol.parseDataMessage(JSON.stringify(bad)), null, JSON.stringify(bad));
    }
    assert.deepEqual(protocol.parseDataMessage(JSON.stringify({ ...good, extra: 'ignored' })), good);
  });
});
