// The zinx frame codec: PROTOCOL.md's test vectors, and the stream decoder
// fed one byte at a time, several frames at once, and a hostile length.

import assert from "node:assert/strict";
import { test } from "node:test";
import { FrameDecoder, FrameTooLong, defineMessage, encodeFrame } from "zinx-cluster-client";

const hex = (b) => Buffer.from(b).toString("hex");
const text = (s) => new TextEncoder().encode(s);

test("frames are encoded as PROTOCOL.md's test vectors", () => {
  assert.equal(hex(encodeFrame(4, text("FullSend..."))), "000000040000000b46756c6c53656e642e2e2e");
  assert.equal(hex(encodeFrame(3, text("Send..."))), "000000030000000753656e642e2e2e");
  assert.equal(hex(encodeFrame(1, new Uint8Array(0))), "0000000100000000");
  assert.throws(() => encodeFrame(-1, new Uint8Array(0)), RangeError);
  assert.throws(() => encodeFrame(2 ** 32, new Uint8Array(0)), RangeError);
});

test("the decoder takes a stream one byte at a time", () => {
  const d = new FrameDecoder();
  const bytes = Buffer.from("000000040000000b46756c6c53656e642e2e2e0000000100000000", "hex");
  const out = [];
  for (const b of bytes) out.push(...d.push(new Uint8Array([b])));
  assert.deepEqual(
    out.map((f) => [f.msgId, Buffer.from(f.data).toString()]),
    [
      [4, "FullSend..."],
      [1, ""],
    ],
  );
  assert.equal(d.buffered, 0);
});

test("the decoder takes several frames in one chunk, and a frame split over chunks", () => {
  const d = new FrameDecoder();
  const a = encodeFrame(3, text("Send..."));
  const b = encodeFrame(99999, text("ping"));
  const c = encodeFrame(7, new Uint8Array(10_000).fill(9));
  const all = Buffer.concat([a, b, c]);
  const first = d.push(all.subarray(0, a.length + b.length + 100));
  assert.deepEqual(
    first.map((f) => f.msgId),
    [3, 99999],
  );
  assert.equal(d.buffered, 100);
  const rest = d.push(all.subarray(a.length + b.length + 100));
  assert.equal(rest.length, 1);
  assert.equal(rest[0].data.length, 10_000);
  // A frame's data is the application's: later input does not change it.
  const kept = rest[0].data;
  d.push(encodeFrame(8, new Uint8Array(10_000).fill(1)));
  assert.ok(kept.every((x) => x === 9));
});

test("a header announcing more than the limit is refused before buffering", () => {
  const d = new FrameDecoder(1024);
  const header = new Uint8Array(8);
  new DataView(header.buffer).setUint32(0, 5);
  new DataView(header.buffer).setUint32(4, 1025);
  assert.throws(() => d.push(header), (e) => e instanceof FrameTooLong && e.len === 1025 && e.max === 1024);
});

test("defineMessage declares a descriptor like the generated ones", () => {
  const Ping = defineMessage(42, "Ping");
  assert.deepEqual({ ...Ping }, { id: 42, name: "Ping", codec: "json" });
  assert.ok(Object.isFrozen(Ping));
  assert.throws(() => defineMessage(-1, "Bad"), RangeError);
  assert.throws(() => defineMessage(1, "Bad", "protobuf"), RangeError);
});
