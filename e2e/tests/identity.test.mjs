// Unit tests, in node, of the browser's identity: the peer id is derived from the peer secret
// exactly as the server derives it (docs/protocol.md's worked example and the Rust unit test's
// value), and the join carries the secret. The server's refusal of ids without their secret is
// tested against the real server in crates/server/tests/server/attacks.rs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as protocol from '../../web/js/protocol.js';

test('a peer id is derived from its secret as the server derives it', () => {
  // docs/protocol.md, "Identity".
  assert.equal(protocol.peerIdOf('Hq3Zx8Lm4Np7Rs1Vc6Ws3Hd5Jf9Ga7Ue2Yo0Ri4KtPb'), 'U91W4MeVgJpI37i8JHyDDQ');
  // crates/proto/src/ids.rs's unit test.
  assert.equal(protocol.peerIdOf('A'.repeat(43)), 'aRgIaJ_hvcAfezbWR3QxTi');
});

test('new secrets are well-formed, distinct, and give valid peer ids', () => {
  const secrets = new Set(Array.from({ length: 100 }, () => protocol.newPeerSecret()));
  assert.equal(secrets.size, 100);
  for (const secret of secrets) {
    assert.ok(protocol.isPeerSecret(secret), secret);
    assert.ok(protocol.isPeerId(protocol.peerIdOf(secret)));
  }
  for (const bad of ['', 'A'.repeat(42), 'A'.repeat(44), `${'A'.repeat(42)}=`, `${'A'.repeat(42)} `, 42, null]) {
    assert.equal(protocol.isPeerSecret(bad), false, String(bad));
  }
});

test('a join carries the peer secret beside the id it proves', () => {
  const peerSecret = protocol.newPeerSecret();
  const identity = { peerId: protocol.peerIdOf(peerSecret), peerSecret };
  const proof = { challenge: 'c', nonce: 1 };
  const join = JSON.parse(protocol.join({ room: 'AAAAAAAAAAAAAAAAAAAAAA', kind: 'pair' }, identity, 'Ann', proof));
  assert.equal(join.peer, identity.peerId);
  assert.equal(join.peerSecret, peerSecret);
  const named = JSON.parse(protocol.join({ roomName: 'standup' }, identity, 'Ann', proof));
  assert.equal(named.type, 'join-named');
  assert.equal(named.peerSecret, peerSecret);
});
