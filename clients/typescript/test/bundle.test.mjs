// The browser build (one ES module): checked in at
// demo/static/zinx-cluster-client.js, where the Rust demo embeds it at
// compile time. These tests fail when that copy is stale versus the
// sources, and check that the build works with nothing but a browser-style
// global WebSocket. Also: the hand-written generated/demo.ts still lists
// every message type of demo/src/lib.rs (until the codegen checks it).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { after, before, test } from "node:test";
import { DEMO_COPY, bundle } from "../scripts/bundle.mjs";
import { REPO_ROOT, startDemo } from "../testing/demo.mjs";

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The checked-in (staged) content of a repository file, or undefined
 * (after saying why) when there is no git or the file is not tracked. */
function checkedIn(path) {
  const rel = relative(REPO_ROOT, path).split("\\").join("/");
  try {
    return execFileSync("git", ["show", `:${rel}`], { cwd: REPO_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  } catch (e) {
    process.stderr.write(`[bundle.test] SKIPPED the staleness check: cannot read ${rel} from git (${e.message.split("\n")[0]})\n`);
    return undefined;
  }
}

test("the checked-in browser build is the one the sources make (else: npm run build, commit the file)", (t) => {
  const fresh = bundle();
  assert.equal(readFileSync(join(pkgDir, "dist", "zinx-cluster-client.js"), "utf8"), fresh, "dist/ is from this build");
  if (!existsSync(dirname(DEMO_COPY))) {
    t.skip("no demo/static beside this package");
    return;
  }
  const committed = checkedIn(DEMO_COPY);
  if (committed === undefined) {
    if (process.env.CI) assert.fail("CI: the staleness check of demo/static/zinx-cluster-client.js could not run");
    t.skip("no git");
    return;
  }
  assert.ok(
    committed === fresh,
    "demo/static/zinx-cluster-client.js as checked in differs from what `npm run build` makes from src/: " +
      "run `npm run build` in clients/typescript and commit demo/static/zinx-cluster-client.js",
  );
});

test("generated/demo.ts declares every message type of demo/src/lib.rs with its msg id", async (t) => {
  const lib = join(REPO_ROOT, "demo", "src", "lib.rs");
  if (!existsSync(lib)) {
    t.skip("no demo/src/lib.rs beside this package");
    return;
  }
  const rust = readFileSync(lib, "utf8");
  const want = [...rust.matchAll(/#\[message\(id = (\d+)[^\]]*\)\][\s\S]*?pub struct (\w+)/g)].map((m) => [m[2], Number(m[1])]).sort();
  const generated = await import("zinx-cluster-client/generated/demo");
  const have = Object.values(generated)
    .map((d) => [d.name, d.id])
    .sort();
  assert.ok(want.length >= 10, `found ${want.length} message types in lib.rs`);
  assert.deepEqual(have, want);
});

let demo;
before(async () => {
  demo = await startDemo();
});
after(async () => {
  await demo?.dispose();
});

test("the browser build runs on a browser-style global WebSocket alone", async () => {
  const { WebSocket } = await import("ws");
  const had = globalThis.WebSocket;
  globalThis.WebSocket = WebSocket;
  try {
    const sdk = await import(pathToFileURL(join(pkgDir, "dist", "zinx-cluster-client.js")).href);
    const c = await sdk.ZinxClient.connect({ urls: [demo.ws] });
    try {
      assert.deepEqual(await c.request(1, { name: "bundle" }), { ok: true, name: "bundle" });
      await assert.rejects(c.request(12345, {}), (e) => e instanceof sdk.ZinxError && e.code === "unknown_msg_id");
      await assert.rejects(
        sdk.ZinxClient.connect({ urls: ["tcp://127.0.0.1:1"] }),
        (e) => e.code === "connect_failed" && /tcp:\/\/ URLs need Node/.test(e.message),
      );
    } finally {
      await c.close();
    }
  } finally {
    globalThis.WebSocket = had;
  }
});
