// The SDK against a REAL demo cluster (started by the harness), over
// WebSocket and over tcp:// alike: login, request/answer, typed calls,
// pushes between two clients, the gate's error frames, raw payloads.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ZinxClient, ZinxError } from "zinx-cluster-client";
import { Chat, Delivery, Join, Login, Said, Say, Shout, Shouted } from "zinx-cluster-client/generated/demo";
import { nextEvent, startDemo } from "../testing/demo.mjs";

let demo;
before(async () => {
  demo = await startDemo();
});
after(async () => {
  await demo?.dispose();
});

/** A client connected to the demo over `transport` ("ws" or "tcp"). */
async function connect(transport, options = {}) {
  return ZinxClient.connect({ urls: [demo[transport]], ...options });
}

/** Answers of the demo are `{"ok":..}`; pushes on the same msg id are not. */
const isAnswer = (a) => typeof a === "object" && a !== null && "ok" in a;

let names = 0;
const uniqueName = (base) => `${base}-${process.pid}-${++names}`;

for (const transport of ["ws", "tcp"]) {
  describe(`over ${transport}`, () => {
    test("login: a JSON request gets its JSON answer", async () => {
      const c = await connect(transport);
      try {
        const name = uniqueName("alice");
        const answer = await c.request(1, { name });
        assert.deepEqual(answer, { ok: true, name });
        // Logging out, an empty body, answers too.
        assert.deepEqual(await c.request(2), { ok: true });
      } finally {
        await c.close();
      }
      assert.equal(c.state, "closed");
    });

    test("typed calls over the generated descriptors", async () => {
      const c = await connect(transport);
      try {
        const name = uniqueName("typed");
        const answer = await c.request(Login, { name });
        assert.deepEqual(answer, { ok: true, name });
        assert.deepEqual(await c.request(Join, { room: "lobby" }), { ok: true });
        const said = new Promise((ok) => c.on(Said, ok));
        // The demo answers a say on 9 and also pushes the line on 9 to the
        // room's members, the sender included: tell them apart.
        assert.deepEqual(await c.request(Say, { room: "lobby", text: "hello room" }, { accept: isAnswer }), { ok: true });
        assert.deepEqual(await said, { room: "lobby", from: name, text: "hello room" });
      } finally {
        await c.close();
      }
    });

    test("requests of one msg id are answered in order", async () => {
      const c = await connect(transport);
      try {
        const payloads = Array.from({ length: 20 }, (_, i) => new TextEncoder().encode(`line ${i}`));
        const answers = await Promise.all(payloads.map((p) => c.request(6, p, { raw: true })));
        assert.deepEqual(
          answers.map((a) => new TextDecoder().decode(a)),
          payloads.map((_, i) => `line ${i}`),
        );
      } finally {
        await c.close();
      }
    });

    test("a raw payload round trip (msg 5 echo), bytes as they are", async () => {
      const c = await connect(transport);
      try {
        const bytes = new Uint8Array(256);
        for (let i = 0; i < bytes.length; i++) bytes[i] = i;
        const echoed = await c.request(5, bytes, { raw: true });
        assert.ok(echoed instanceof Uint8Array);
        assert.deepEqual([...echoed], [...bytes]);
        // A large one through the cluster (msg 6, im): several TCP reads
        // or a large WebSocket message.
        const big = new Uint8Array(60_000).map((_, i) => (i * 7) & 0xff);
        const back = await c.request(6, big, { raw: true });
        assert.equal(back.length, big.length);
        assert.ok(back.every((b, i) => b === big[i]));
        // Empty data is a frame too.
        assert.equal((await c.request(5, new Uint8Array(0), { raw: true })).length, 0);
      } finally {
        await c.close();
      }
    });

    test("push: one client sends msg 3 to another", async () => {
      const alice = await connect(transport);
      const bob = await connect(transport === "ws" ? "tcp" : "ws");
      try {
        const [a, b] = [uniqueName("alice"), uniqueName("bob")];
        await alice.request(Login, { name: a });
        await bob.request(Login, { name: b });
        const got = [];
        bob.on(Delivery, (d) => got.push(d));
        // As a request: the sender's answer and bob's push share msg 3.
        assert.deepEqual(await alice.request(Chat, { to: b, text: "hi bob" }, { accept: isAnswer }), { ok: true });
        // As a send: no answer expected (alice's {"ok":true} goes to her on(3)).
        const aliceAnswers = [];
        alice.on(3, (m) => aliceAnswers.push(m));
        alice.send(Chat, { to: b, text: "second" });
        alice.send(3, { to: b, text: "third, by msg id" });
        await waitFor(() => got.length === 3 && aliceAnswers.length === 2, "three deliveries");
        assert.deepEqual(got, [
          { from: a, text: "hi bob" },
          { from: a, text: "second" },
          { from: a, text: "third, by msg id" },
        ]);
        assert.deepEqual(aliceAnswers, [{ ok: true }, { ok: true }]);
        // A user that is not online: the demo's answer says so.
        const answer = await alice.request(Chat, { to: uniqueName("nobody"), text: "?" }, { accept: isAnswer });
        assert.equal(answer.ok, false);
        assert.match(answer.error, /is not online/);
      } finally {
        await Promise.all([alice.close(), bob.close()]);
      }
    });

    test("broadcast: every logged-in session gets the push", async () => {
      const alice = await connect(transport);
      const bob = await connect(transport);
      try {
        const [a, b] = [uniqueName("alice"), uniqueName("bob")];
        await alice.request(Login, { name: a });
        await bob.request(Login, { name: b });
        const seen = (c) => {
          const lines = [];
          c.on(Shouted, (s) => {
            if (s.from === a) lines.push(s.text);
          });
          return lines;
        };
        const [atA, atB] = [seen(alice), seen(bob)];
        alice.send(Shout, { text: "hello all" });
        await waitFor(() => atA.length === 1 && atB.length === 1, "the broadcast at both");
        assert.deepEqual([atA, atB], [["hello all"], ["hello all"]]);
      } finally {
        await Promise.all([alice.close(), bob.close()]);
      }
    });

    test("error frames reject the request with the gate's code", async () => {
      const c = await connect(transport);
      try {
        // A body that is not the JSON msg 3 expects.
        await assert.rejects(c.request(3, new TextEncoder().encode("not json")), (e) => {
          assert.ok(e instanceof ZinxError);
          assert.equal(e.code, "bad_payload");
          assert.equal(e.msgId, 3);
          assert.ok(e.message.length > 0);
          return true;
        });
        // A msg id no route knows.
        await assert.rejects(c.request(12345, {}), (e) => e instanceof ZinxError && e.code === "unknown_msg_id" && e.msgId === 12345);
        // An internal msg id is refused like an unknown one.
        await assert.rejects(c.request(20, null), (e) => e.code === "unknown_msg_id");
        // The error rejects the OLDEST pending request of its msg id; the
        // next one still gets its own answer.
        const bad = c.request(1, new TextEncoder().encode("{"));
        const good = c.request(1, { name: uniqueName("after-error") });
        await assert.rejects(bad, (e) => e.code === "bad_payload" && e.msgId === 1);
        assert.equal((await good).ok, true);
        // An error no request waits for is an "error" event.
        const event = nextEvent(c, "error");
        c.send(54321, {});
        const { error } = await event;
        assert.equal(error.code, "unknown_msg_id");
        assert.equal(error.msgId, 54321);
        // The connection survived all of it.
        assert.deepEqual([...(await c.request(5, new Uint8Array([1, 2, 3]), { raw: true }))], [1, 2, 3]);
      } finally {
        await c.close();
      }
    });

    test("resume on (the default) works whatever the gate does with HELLO", async () => {
      const c = await connect(transport);
      try {
        assert.equal(c.state, "open");
        const name = uniqueName("resume-default");
        assert.deepEqual(await c.request(Login, { name }), { ok: true, name });
        process.stderr.write(`[info] the demo gate ${c.resumable ? "does" : "does not"} resume sessions\n`);
      } finally {
        await c.close();
      }
    });
  });
}

test("a request times out with code timeout, and close() rejects what is pending", async () => {
  const c = await connect("ws");
  try {
    // Broadcast answers only on failure: a request on 4 that expects an
    // answer waits in vain (the push on 4 needs a login, so none comes).
    const name = uniqueName("timeout");
    await c.request(Login, { name });
    await assert.rejects(c.request(4, { text: "x" }, { timeoutMs: 300, accept: isAnswer }), (e) => e.code === "timeout" && e.msgId === 4);
    const pending = c.request(4, { text: "y" }, { timeoutMs: 0, accept: isAnswer });
    const closed = nextEvent(c, "closed");
    await c.close();
    await assert.rejects(pending, (e) => e.code === "closed");
    assert.ok((await closed).reason.length > 0);
    assert.throws(() => c.send(3, {}), (e) => e.code === "closed");
    await assert.rejects(c.request(1, { name }), (e) => e.code === "closed");
  } finally {
    await c.close();
  }
});

test("connect fails clearly when no gate answers", async () => {
  await assert.rejects(
    ZinxClient.connect({ urls: ["tcp://127.0.0.1:1", "ws://127.0.0.1:1/"], connectTimeoutMs: 2000 }),
    (e) => e instanceof ZinxError && e.code === "connect_failed",
  );
});

async function waitFor(check, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((ok) => setTimeout(ok, 10));
  }
}
