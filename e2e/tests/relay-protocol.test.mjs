// Unit tests, in node, of what protocol.js accepts for a pair room's fallback to the server's
// relay: the `relay` signal payload and the `relay-hello` data message, and hostile variants.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as protocol from '../../web/js/protocol.js';

test('a relay payload round-trips and needs a valid conn', () => {
  const payload = protocol.relayPayload('b1Xc9Rt2');
  assert.deepEqual(protocol.parseSignalPayload(JSON.parse(JSON.stringify(payload))), { conn: 'b1Xc9Rt2', relay: true });
  for (const hostile of [
    { relay: true },
    { conn: 'short', relay: true },
    { conn: '<script>alert(1)</script>', relay: true },
    { conn: 'b1Xc9Rt2', relay: 'true' },
    { conn: 'b1Xc9Rt2', relay: 1 },
  ]) {
    const parsed = protocol.parseSignalPayload(hostile);
    assert.ok(parsed === null || !('relay' in parsed), JSON.stringify(hostile));
  }
});

test('relay-hello parses only with a boolean reply', () => {
  assert.deepEqual(protocol.parseDataMessage(protocol.relayHello(false)), { type: 'relay-hello', reply: false });
  assert.deepEqual(protocol.parseDataMessage(protocol.relayHello(true)), { type: 'relay-hello', reply: true });
  for (const hostile of ['{"type":"relay-hello"}', '{"type":"relay-hello","reply":"yes"}', '{"type":"relay-hello","reply":null}']) {
    assert.equal(protocol.parseDataMessage(hostile), null, hostile);
  }
});
