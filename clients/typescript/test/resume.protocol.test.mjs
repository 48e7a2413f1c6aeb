// PROTOCOL UNIT TESTS of the SDK's session-resume state machine, against a
// fake gate written for them (testing/fakegate.mjs) that speaks PROTOCOL.md
// "Session resume": HELLO and its answers, ACK, replay after N, MOVE, BYE.
// They pin the client's side of the contract while the real gate's side is
// being built; test/resume.integration.test.mjs runs the same story
// against the real demo.

import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { ZinxClient, ZinxError } from "zinx-cluster-client";
import { ACK, BYE, HEARTBEAT, HELLO, SessionStore, startFakeGate } from "../testing/fakegate.mjs";
import { nextEvent, until } from "../testing/demo.mjs";

const cleanups = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function gate(options) {
  const g = await startFakeGate(options);
  cleanups.push(() => g.close());
  return g;
}

async function client(options) {
  const c = await ZinxClient.connect({ reconnectMinMs: 10, reconnectMaxMs: 50, heartbeatMs: 0, ...options });
  cleanups.push(() => c.close());
  return c;
}

/** Collects the JSON pushes of `msgId`. */
function collect(c, msgId) {
  const got = [];
  c.on(msgId, (m) => got.push(m));
  return got;
}

describe("session resume: protocol unit tests against a fake gate", () => {
  test("HELLO {} on the first connect; the token is kept; connect resolves after the answer", async () => {
    const g = await gate();
    const c = await client({ urls: [g.url] });
    const hello = await g.next((f) => f.msgId === HELLO);
    assert.deepEqual(JSON.parse(hello.text), {});
    assert.equal(c.resumable, true);
    assert.equal(g.received[0].msgId, HELLO, "HELLO is the first frame");
    assert.deepEqual(await c.request(1, { name: "alice" }), { ok: true, name: "alice" });
  });

  test("ACK every 64 frames, and within a second otherwise; heartbeats and control frames are not counted", async () => {
    const g = await gate();
    const c = await client({ urls: [g.url] });
    const got = collect(c, 7);
    for (let i = 0; i < 64; i++) g.sendApp(g.session, 7, { i });
    g.sendRaw(g.session, HEARTBEAT, "ping");
    g.sendRaw(g.session, 99998, {});
    const ack64 = await g.next((f) => f.msgId === ACK, 2_000);
    assert.deepEqual(JSON.parse(ack64.text), { received: 64 });
    for (let i = 64; i < 67; i++) g.sendApp(g.session, 7, { i });
    const started = Date.now();
    const ack = await g.next((f) => f.msgId === ACK, 3_000);
    assert.deepEqual(JSON.parse(ack.text), { received: 67 });
    assert.ok(Date.now() - started <= 1_500, "the timer ACKs within about a second");
    assert.equal(c.received, 67);
    assert.equal(got.length, 67, "the heartbeat and the control frame are not delivered");
  });

  test("a dropped connection is resumed: frames lost in flight are replayed, none twice, in order", async () => {
    const g = await gate();
    const c = await client({ urls: [g.url] });
    const got = collect(c, 3);
    for (let i = 0; i < 5; i++) g.sendApp(g.session, 3, { n: i });
    await until("5 pushes", () => got.length === 5);
    const s = g.session;
    // Three more are sent but lost with the connection.
    for (let i = 5; i < 8; i++) g.sendApp(s, 3, { n: i }, { lose: true });
    const resumed = nextEvent(c, "resumed");
    const reconnecting = nextEvent(c, "reconnecting");
    g.drop(s);
    assert.equal((await reconnecting).attempt, 1);
    // Frames sent while disconnected are queued and sent after the resume.
    c.send(9, { queued: true });
    const e = await resumed;
    assert.equal(e.replayed, 3);
    assert.deepEqual(s.hellos.at(-1), { token: s.hellos.at(-1).token, received: 5 });
    g.sendApp(s, 3, { n: 8 });
    await until("9 pushes", () => got.length === 9);
    assert.deepEqual(
      got.map((m) => m.n),
      [0, 1, 2, 3, 4, 5, 6, 7, 8],
    );
    const queued = await g.next((f) => f.msgId === 9);
    assert.equal(queued.session, s, "the queued frame went out on the resumed session");
    assert.equal(c.received, 9);
  });

  test("a request pending across a drop is answered by the replay after the resume", async () => {
    const g = await gate();
    let hold;
    g.onRequest = (conn, f) => {
      if (f.msgId === 7) hold = conn.session;
    };
    const c = await client({ urls: [g.url] });
    const answer = c.request(7, { q: 1 });
    await until("the request at the gate", () => hold);
    g.sendApp(hold, 7, { a: 1 }, { lose: true });
    g.drop(hold);
    assert.deepEqual(await answer, { a: 1 });
  });

  test("a failed resume: event resume_failed, pending requests rejected (session_lost), a fresh session", async () => {
    const store = new SessionStore();
    const g = await gate({ store });
    let held = 0;
    g.onRequest = (conn, f) => {
      if (f.msgId === 1) g.sendApp(conn.session, 1, { ok: true, name: JSON.parse(f.text).name });
      if (f.msgId === 7) held++;
    };
    const c = await client({ urls: [g.url] });
    await c.request(1, { name: "alice" });
    const pending = c.request(7, {});
    await until("the request at the gate", () => held === 1);
    const s = g.session;
    store.expire(s, "expired");
    const failed = nextEvent(c, "resume_failed");
    const reconnecting = nextEvent(c, "reconnecting");
    g.drop(s);
    await reconnecting;
    c.send(9, { dropped: true }); // queued while disconnected: dropped with the session
    const e = await failed;
    assert.equal(e.reason, "expired");
    assert.equal(e.rejected, 1);
    assert.equal(e.dropped, 1);
    await assert.rejects(pending, (err) => err instanceof ZinxError && err.code === "session_lost" && err.msgId === 7);
    assert.equal(c.resumable, true, "the fresh session is resumable again");
    assert.equal(c.received, 0, "the count starts again with the fresh session");
    // The application logs in again on the fresh session.
    assert.deepEqual(await c.request(1, { name: "alice" }), { ok: true, name: "alice" });
    assert.equal(g.appFrames().filter((f) => f.msgId === 9).length, 0, "the queued frame was dropped");
    // And that session resumes in its turn.
    const fresh = g.session;
    assert.notEqual(fresh, s);
    g.sendApp(fresh, 3, { x: 1 }, { lose: true });
    const got = collect(c, 3);
    const resumed = nextEvent(c, "resumed");
    g.drop(fresh);
    assert.equal((await resumed).replayed, 1);
    await until("the replayed push", () => got.length === 1);
  });

  test("MOVE: the client reconnects to the next URL at once and resumes there", async () => {
    const store = new SessionStore();
    const g1 = await gate({ store });
    const g2 = await gate({ store });
    const c = await client({ urls: [g1.url, g2.url], reconnectMinMs: 5_000, reconnectMaxMs: 5_000 });
    const got = collect(c, 3);
    g1.sendApp(g1.session, 3, { n: 0 });
    await until("the first push", () => got.length === 1);
    const s = g1.session;
    const moved = nextEvent(c, "moved");
    const reconnecting = nextEvent(c, "reconnecting");
    const resumed = nextEvent(c, "resumed");
    g1.move(s);
    assert.deepEqual(await moved, { reason: "draining" });
    const r = await reconnecting;
    assert.equal(r.delayMs, 0, "no backoff after a MOVE");
    assert.equal(r.url, g2.url);
    await resumed;
    assert.equal(c.url, g2.url);
    g2.sendApp(s, 3, { n: 1 });
    await until("the push through the second gate", () => got.length === 2);
    assert.deepEqual(got, [{ n: 0 }, { n: 1 }]);
  });

  test("close() sends BYE, then closes", async () => {
    const g = await gate();
    const c = await client({ urls: [g.url] });
    const closed = nextEvent(c, "closed");
    await c.close();
    await g.next((f) => f.msgId === BYE);
    assert.equal((await closed).reason, "closed by the application");
    assert.equal(c.state, "closed");
  });

  test("heartbeats: msg 99999 at the configured interval", async () => {
    const g = await gate();
    const c = await client({ urls: [g.url], heartbeatMs: 50 });
    await g.next((f) => f.msgId === HEARTBEAT);
    await g.next((f) => f.msgId === HEARTBEAT);
    const beats = g.received.filter((f) => f.msgId === HEARTBEAT);
    assert.equal(beats[0].text, "ping");
    assert.equal(c.state, "open");
  });

  test("a gate without resume (HELLO is an unknown msg id) is used without it", async () => {
    const g = await gate({ mode: "no-resume" });
    const c = await client({ urls: [g.url] });
    assert.equal(c.resumable, false);
    assert.deepEqual(await c.request(1, { name: "bob" }), { ok: true, name: "bob" });
    // A drop then gives a fresh session: the application must log in again.
    const failed = nextEvent(c, "resume_failed");
    g.drop(g.received.at(-1).session);
    assert.equal((await failed).reason, "not_resumable");
    assert.equal(g.received.filter((f) => f.msgId === HELLO).length, 1, "no HELLO to a gate that refused it");
    assert.equal(g.received.filter((f) => f.msgId === ACK).length, 0);
  });

  test("a gate that does not answer HELLO at all is used without resume", async () => {
    const g = await gate({ mode: "silent" });
    const c = await client({ urls: [g.url], helloTimeoutMs: 200 });
    assert.equal(c.resumable, false);
    assert.deepEqual(await c.request(1, { name: "carol" }), { ok: true, name: "carol" });
  });

  test("reconnect backoff: attempts over the URLs round robin, delays with jitter, capped", async () => {
    const g = await gate();
    const c = await client({ urls: [g.url, "tcp://127.0.0.1:1"], reconnectMinMs: 10, reconnectMaxMs: 40, maxReconnectAttempts: 6 });
    const events = [];
    c.onEvent("reconnecting", (e) => events.push(e));
    const closed = nextEvent(c, "closed");
    const pending = c.request(7, {});
    await g.close();
    const e = await closed;
    assert.match(e.reason, /gave up after 6 reconnect attempts/);
    await assert.rejects(pending, (err) => err.code === "session_lost");
    assert.deepEqual(
      events.map((x) => x.attempt),
      [1, 2, 3, 4, 5, 6],
    );
    assert.deepEqual(
      events.map((x) => x.url),
      ["tcp://127.0.0.1:1", g.url, "tcp://127.0.0.1:1", g.url, "tcp://127.0.0.1:1", g.url],
    );
    const steps = [10, 20, 40, 40, 40, 40];
    events.forEach((x, i) => assert.ok(x.delayMs >= steps[i] / 2 && x.delayMs <= steps[i], `attempt ${i + 1}: ${x.delayMs} ms`));
  });

  test("an error frame rejects the oldest pending request of its msg id", async () => {
    const g = await gate();
    const seen = [];
    g.onRequest = (conn, f) => {
      if (f.msgId !== 7) return;
      seen.push(f);
      if (seen.length === 2) {
        g.sendApp(conn.session, 0, { msg_id: 7, code: "bad_payload", error: "first one was bad" });
        g.sendApp(conn.session, 7, { second: true });
      }
    };
    const c = await client({ urls: [g.url] });
    const first = c.request(7, { n: 1 });
    const second = c.request(7, { n: 2 });
    await assert.rejects(first, (e) => e.code === "bad_payload" && e.msgId === 7 && e.message === "first one was bad");
    assert.deepEqual(await second, { second: true });
  });

  test("a stream decoder: frames split and batched any way arrive whole", async () => {
    const g = await gate();
    const c = await client({ urls: [g.url] });
    const got = collect(c, 3);
    const s = g.session;
    const frames = [];
    for (let i = 0; i < 10; i++) {
      s.log.push(null); // counted as sent
      const body = new TextEncoder().encode(JSON.stringify({ n: i, pad: "x".repeat(i * 100) }));
      const f = new Uint8Array(8 + body.length);
      new DataView(f.buffer).setUint32(0, 3);
      new DataView(f.buffer).setUint32(4, body.length);
      f.set(body, 8);
      frames.push(f);
    }
    const all = Buffer.concat(frames);
    // One byte, then odd-sized pieces straddling frame boundaries.
    let at = 0;
    for (const size of [1, 7, 3, 500, 1, 2000]) {
      s.conn.write(all.subarray(at, at + size));
      at += size;
      await new Promise((ok) => setTimeout(ok, 5));
    }
    s.conn.write(all.subarray(at));
    await until("10 frames", () => got.length === 10);
    assert.deepEqual(
      got.map((m) => m.n),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
  });
});
