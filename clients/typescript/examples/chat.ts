// A complete terminal chat on the demo cluster, with the typed calls of the
// generated declarations. Build the package, start the demo
// (`cargo run -p demo` at the repository root), then, in two terminals:
//
//   node dist/examples/chat.js alice ws://127.0.0.1:9000/
//   node dist/examples/chat.js bob tcp://127.0.0.1:10000
//
// Type `bob: hi` to send a line to bob, anything else to everybody,
// `/quit` to leave.

import { ZinxClient, ZinxError } from "zinx-cluster-client";
import { Chat, Delivery, Login, Shout, Shouted } from "zinx-cluster-client/generated/demo";

const [name = "alice", url = "ws://127.0.0.1:9000/"] = process.argv.slice(2);

// The demo answers requests with {"ok":..}; pushes on the same msg id
// (a line from another user) have no "ok".
const isAnswer = (m: unknown) => typeof m === "object" && m !== null && "ok" in m;

async function login(c: ZinxClient): Promise<void> {
  const answer = await c.request(Login, { name });
  if (!answer.ok) throw new Error(`login refused: ${answer.error}`);
  console.log(`* logged in as ${answer.name}`);
}

async function main(): Promise<void> {
  const c = await ZinxClient.connect({ urls: [url], resume: true });
  await login(c);

  c.on(Delivery, (d) => console.log(`[${d.from}] ${d.text}`));
  c.on(Shouted, (s) => console.log(`[all] ${s.from}: ${s.text}`));
  c.onEvent("reconnecting", (e) => console.log(`* connection lost (${e.reason}); reconnecting to ${e.url}`));
  c.onEvent("resumed", (e) => console.log(`* session resumed, ${e.replayed} frames replayed`));
  c.onEvent("resume_failed", (e) => {
    console.log(`* session lost (${e.reason}); logging in again`);
    login(c).catch((err: unknown) => console.log(`* ${String(err)}`));
  });
  c.onEvent("error", ({ error }) => console.log(`* ${error.code}: ${error.message}`));
  c.onEvent("closed", (e) => console.log(`* closed: ${e.reason}`));

  process.stdin.setEncoding("utf8");
  process.stdin.on("data", async (chunk: string) => {
    for (const line of chunk.split("\n").map((l) => l.trim()).filter(Boolean)) {
      if (line === "/quit") {
        await c.close(); // BYE: the gate ends the session now
        process.exit(0);
      }
      const to = /^(\S+):\s*(.*)$/.exec(line);
      try {
        if (to) {
          const answer = await c.request(Chat, { to: to[1], text: to[2] }, { accept: isAnswer });
          if (!answer.ok) console.log(`* ${answer.error}`);
        } else {
          c.send(Shout, { text: line }); // answered only on failure
        }
      } catch (e) {
        console.log(`* ${e instanceof ZinxError ? `${e.code}: ${e.message}` : String(e)}`);
      }
    }
  });
}

main().catch((e: unknown) => {
  console.error(String(e));
  process.exit(1);
});
