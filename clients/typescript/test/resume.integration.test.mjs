// Session resume against the REAL demo, through a TCP proxy the test cuts:
// the issue's "a dropped connection resumed with 0 lost pushes" and "a
// failed resume".
//
// The gate side of resume is being built in another branch. Until it is
// merged these tests FAIL against the demo (its gate answers HELLO with
// unknown_msg_id), so `npm test` runs them only with ZINX_RESUME=1 and
// otherwise says loudly that it skipped them.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ZinxClient } from "zinx-cluster-client";
import { Chat, Delivery, Login } from "zinx-cluster-client/generated/demo";
import { nextEvent, startDemo, until } from "../testing/demo.mjs";
import { startProxy } from "../testing/proxy.mjs";

const enabled = process.env.ZINX_RESUME === "1";
const skip = enabled ? false : "SKIPPED: session resume tests need a gate that resumes sessions; set ZINX_RESUME=1 to run them";
if (!enabled) {
  process.stderr.write(
    "\n" +
      "##########################################################################\n" +
      "## resume.integration.test.mjs SKIPPED: set ZINX_RESUME=1 to run the     ##\n" +
      "## session-resume tests against the real demo (they need the gate side). ##\n" +
      "##########################################################################\n\n",
  );
}

const isAnswer = (a) => typeof a === "object" && a !== null && "ok" in a;

let demo;
before(async () => {
  if (enabled) demo = await startDemo();
});
after(async () => {
  await demo?.dispose();
});

describe("session resume against the real demo", { skip }, () => {
  for (const transport of ["tcp", "ws"]) {
    test(`over ${transport}: a dropped connection is resumed with 0 lost pushes`, { timeout: 60_000 }, async () => {
      const proxy = await startProxy(transport === "tcp" ? demo.ports.gate : demo.ports.wsPort);
      const viaProxy = transport === "tcp" ? `tcp://127.0.0.1:${proxy.port}` : `ws://127.0.0.1:${proxy.port}/`;
      const alice = await ZinxClient.connect({ urls: [viaProxy], reconnectMinMs: 50, reconnectMaxMs: 200 });
      const bob = await ZinxClient.connect({ urls: [demo.ws] });
      try {
        assert.equal(alice.resumable, true, "the gate gave alice a resume token (HELLO answered)");
        const [a, b] = [`alice-${transport}-r`, `bob-${transport}-r`];
        await alice.request(Login, { name: a });
        await bob.request(Login, { name: b });
        const events = [];
        for (const name of ["reconnecting", "resumed", "resume_failed"]) alice.onEvent(name, (e) => events.push(name));
        const got = [];
        const CUT_AT = 30;
        const TOTAL = 100;
        alice.on(Delivery, (d) => {
          got.push(d.text);
          if (got.length === CUT_AT) proxy.cut(); // mid-stream: the rest is in flight or not sent yet
        });
        const resumed = nextEvent(alice, "resumed", 30_000);
        for (let i = 0; i < TOTAL; i++) {
          const answer = await bob.request(Chat, { to: a, text: `line ${i}` }, { accept: isAnswer });
          assert.deepEqual(answer, { ok: true }, `line ${i}: alice stays online while detached`);
        }
        await resumed;
        await until(`${TOTAL} lines at alice`, () => got.length >= TOTAL, 20_000);
        await new Promise((ok) => setTimeout(ok, 200)); // nothing more (no duplicate) comes
        assert.deepEqual(
          got,
          Array.from({ length: TOTAL }, (_, i) => `line ${i}`),
          "every push exactly once, in order",
        );
        assert.deepEqual(events.filter((e) => e !== "reconnecting"), ["resumed"]);
        // The session is the same logged-in one: alice can still chat.
        assert.deepEqual(await alice.request(Chat, { to: b, text: "back" }, { accept: isAnswer }), { ok: true });
      } finally {
        await Promise.all([alice.close(), bob.close()]);
        await proxy.close();
      }
    });
  }

  test("a failed resume: resume_failed, pending requests rejected, the app logs in again", { timeout: 60_000 }, async () => {
    const proxy = await startProxy(demo.ports.gate);
    const alice = await ZinxClient.connect({ urls: [`tcp://127.0.0.1:${proxy.port}`], reconnectMinMs: 100, reconnectMaxMs: 500 });
    try {
      assert.equal(alice.resumable, true, "the gate gave alice a resume token (HELLO answered)");
      const name = "alice-failed-resume";
      await alice.request(Login, { name });
      // A request that never reaches the gate; then the network goes and
      // the demo restarts: the gate no longer knows the session.
      proxy.hold(true);
      const pending = alice.request(Chat, { to: name, text: "lost" }, { accept: isAnswer });
      await new Promise((ok) => setTimeout(ok, 100));
      const failed = nextEvent(alice, "resume_failed", 30_000);
      proxy.cut();
      await demo.restart();
      proxy.hold(false);
      const e = await failed;
      assert.ok(["unknown", "expired"].includes(e.reason), `reason ${e.reason}`);
      assert.equal(e.rejected, 1);
      await assert.rejects(pending, (err) => err.code === "session_lost");
      assert.equal(alice.resumable, true, "the fresh session is resumable");
      // A fresh session: not logged in until the app logs in again.
      const before = await alice.request(Chat, { to: name, text: "?" }, { accept: isAnswer });
      assert.deepEqual(before, { ok: false, error: "not logged in" });
      await alice.request(Login, { name });
      const got = new Promise((ok) => alice.on(Delivery, ok));
      assert.deepEqual(await alice.request(Chat, { to: name, text: "again" }, { accept: isAnswer }), { ok: true });
      assert.deepEqual(await got, { from: name, text: "again" });
    } finally {
      await alice.close();
      await proxy.close();
    }
  });
});
