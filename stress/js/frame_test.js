'use strict';
// The JavaScript framing against docs/PROTOCOL.md, without a server.
const test = require('node:test');
const assert = require('node:assert/strict');
const { encodeHeader, FrameReader, MAX_MESSAGE_LIMIT } = require('./ipc_client.js');

const frame = (payload) => Buffer.concat([encodeHeader(payload.length), payload]);

test('the header is the length as 4 bytes little-endian', () => {
  assert.deepEqual([...encodeHeader(0)], [0, 0, 0, 0]);
  assert.deepEqual([...encodeHeader(0x01020304)], [4, 3, 2, 1]);
  assert.deepEqual([...encodeHeader(MAX_MESSAGE_LIMIT)], [255, 255, 255, 255]);
  assert.throws(() => encodeHeader(-1), RangeError);
  assert.throws(() => encodeHeader(MAX_MESSAGE_LIMIT + 1), RangeError);
  assert.throws(() => encodeHeader(1.5), RangeError);
});

test('frames split byte by byte and coalesced are reassembled in order', () => {
  const payloads = [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(70000, 7), Buffer.alloc(0), Buffer.from('xyz')];
  const stream = Buffer.concat(payloads.map(frame));
  const bytewise = new FrameReader();
  const got = [];
  for (let i = 0; i < stream.length; i++) got.push(...bytewise.push(stream.subarray(i, i + 1)));
  assert.deepEqual(got, payloads);
  assert.equal(bytewise.pending(), 0);
  assert.deepEqual(new FrameReader().push(stream), payloads);
  // Cut at every offset of a short stream: two chunks give the same frames.
  const short = Buffer.concat(payloads.filter((p) => p.length < 10).map(frame));
  for (let cut = 0; cut <= short.length; cut++) {
    const r = new FrameReader();
    const out = [...r.push(short.subarray(0, cut)), ...r.push(short.subarray(cut))];
    assert.deepEqual(out, payloads.filter((p) => p.length < 10), `cut at ${cut}`);
  }
});

test('a partial frame is pending, not delivered', () => {
  const r = new FrameReader();
  assert.deepEqual(r.push(frame(Buffer.from('hello')).subarray(0, 6)), []);
  assert.equal(r.pending(), 6);
});

test('a length over the limit is refused before its payload arrives', () => {
  const r = new FrameReader(16);
  assert.deepEqual(r.push(frame(Buffer.alloc(16))), [Buffer.alloc(16)]);
  assert.throws(() => r.push(encodeHeader(17)), { code: 'EMSGSIZE' });
  assert.throws(() => new FrameReader().push(Buffer.from([255, 255, 255, 255])), { code: 'EMSGSIZE' });
});
