// Heartbeats against the REAL demo, whose gate closes clients idle for
// longer than `idle_timeout_ms` (here 600 ms): a client sending the zinx
// heartbeat (msg 99999) keeps its session; one that does not is dropped.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ZinxClient } from "zinx-cluster-client";
import { Chat, Login } from "zinx-cluster-client/generated/demo";
import { nextEvent, startDemo } from "../testing/demo.mjs";

let demo;
before(async () => {
  demo = await startDemo({ settings: { secret: "sdk-test-secret", idle_timeout_ms: 600 } });
});
after(async () => {
  await demo?.dispose();
});

// Over WebSocket the demo's gate (main at 364d385) closes a client after
// `idle_timeout_ms` even while it sends frames (heartbeats or echo requests
// every 150 ms); over TCP it does not. A gate bug, reported: the idle sweep
// reads `Session::last_read`, which only the plain-TCP loop refreshes
// (`session.touch()` in gate/conn.rs); the WebSocket/TLS endpoint
// (`GateEndpoint::frame_in`, gate/transports.rs) never does. The WebSocket
// case runs as a TODO until it is fixed (it then passes: drop the TODO).
const WS_IDLE_BUG = "the gate's WebSocket idle timer ignores client frames (gate bug, reported)";

for (const transport of ["ws", "tcp"]) {
  const todo = transport === "ws" ? WS_IDLE_BUG : undefined;
  if (todo) process.stderr.write(`[heartbeat.test] TODO over ws: ${todo}\n`);
  test(`over ${transport}: heartbeats keep an idle session; without them the gate closes it`, { todo }, async () => {
    const beating = await ZinxClient.connect({ urls: [demo[transport]], heartbeatMs: 150 });
    const silent = await ZinxClient.connect({ urls: [demo[transport]], heartbeatMs: 0, reconnect: false });
    try {
      const drops = [];
      beating.onEvent("reconnecting", (e) => drops.push(e));
      const name = `hb-${transport}-${process.pid}`;
      await beating.request(Login, { name });
      const silentClosed = nextEvent(silent, "closed", 5_000);
      // Three idle timeouts long.
      await new Promise((ok) => setTimeout(ok, 1_800));
      assert.match((await silentClosed).reason, /connection lost/);
      assert.deepEqual(drops, [], "the beating client was never dropped");
      // Still the same, logged-in session: a line to oneself is delivered.
      const got = new Promise((ok) => beating.on(Chat, ok));
      const answer = await beating.request(Chat, { to: name, text: "still here" }, { accept: (a) => "ok" in a });
      assert.deepEqual(answer, { ok: true });
      assert.deepEqual(await got, { from: name, text: "still here" });
    } finally {
      await Promise.all([beating.close(), silent.close()]);
    }
  });
}
