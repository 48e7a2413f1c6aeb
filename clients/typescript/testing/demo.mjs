// Test harness: a REAL demo cluster (gate-1, im-1, im-2 in one process) on
// free loopback ports, from a temporary configuration directory.
//
// The binary: $ZINX_DEMO_BIN when set (and present); otherwise
// `cargo build -p demo` runs in the repository root (found relative to this
// package; a no-op when the build is fresh) and `target/debug/demo`
// ($CARGO_TARGET_DIR honoured) is used.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (clients/typescript/../..). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

let built;

/** The demo binary, built when needed (once per test process). */
export function demoBinary() {
  const fromEnv = process.env.ZINX_DEMO_BIN;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`ZINX_DEMO_BIN=${fromEnv}: no such file`);
    return fromEnv;
  }
  if (built) return built;
  if (!existsSync(join(REPO_ROOT, "Cargo.toml"))) {
    throw new Error(`no Cargo workspace at ${REPO_ROOT}: set ZINX_DEMO_BIN to a demo binary`);
  }
  process.stderr.write(`[harness] cargo build -p demo (in ${REPO_ROOT}) ...\n`);
  const started = Date.now();
  const r = spawnSync("cargo", ["build", "-p", "demo", "--bin", "demo"], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (r.error) throw new Error(`cargo build -p demo: ${r.error.message} (is cargo on the PATH?)`);
  if (r.status !== 0) throw new Error(`cargo build -p demo failed (exit ${r.status})`);
  process.stderr.write(`[harness] demo built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  const target = process.env.CARGO_TARGET_DIR ? resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR) : join(REPO_ROOT, "target");
  built = join(target, "debug", process.platform === "win32" ? "demo.exe" : "demo");
  if (!existsSync(built)) throw new Error(`cargo built the demo but ${built} is missing`);
  return built;
}

/** `n` distinct free loopback ports (held open together, then released). */
export async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      await new Promise((ok, fail) => {
        s.once("error", fail);
        s.listen(0, "127.0.0.1", ok);
      });
      servers.push(s);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))));
  }
}

/** The demo's routes: the file the demo ships (conf/route.json). */
function shippedRoutes() {
  return join(REPO_ROOT, "conf", "route.json");
}

/**
 * Starts the demo on free ports and waits until its gate is ready (admin
 * `/readyz` says 200: the gate serves and both im nodes are linked).
 *
 * `settings`: the settings.json object (default: a secret only, so that
 * startup does not warn). Returns `{ tcp, ws, admin, ports, stop(), restart(),
 * output() }`; `tcp`/`ws` are the gate's URLs for the client.
 */
export async function startDemo({ settings = { secret: "sdk-test-secret" } } = {}) {
  const bin = demoBinary();
  const [gate, im1, im2, wsPort, admin] = await freePorts(5);
  const dir = mkdtempSync(join(tmpdir(), "zinx-sdk-demo-"));
  const dinx = {
    gate: [{ ID: 1, Name: "gate-1", Type: 1, IP: "127.0.0.1", Port: gate, WsPort: wsPort, WsPath: "/", AdminPort: admin }],
    im: [
      { ID: 2, Name: "im-1", Type: 2, IP: "127.0.0.1", Port: im1 },
      { ID: 3, Name: "im-2", Type: 2, IP: "127.0.0.1", Port: im2 },
    ],
  };
  writeFileSync(join(dir, "dinx.json"), JSON.stringify(dinx, null, 2));
  writeFileSync(join(dir, "route.json"), readFileSync(shippedRoutes(), "utf8"));
  writeFileSync(join(dir, "settings.json"), JSON.stringify(settings));

  let lines = [];
  let child;
  const launch = async () => {
    lines = [];
    child = spawn(bin, ["--conf", dir], { cwd: dir, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info" } });
    for (const s of [child.stdout, child.stderr]) {
      s.setEncoding("utf8");
      s.on("data", (d) => {
        lines.push(d);
        if (lines.length > 2000) lines.splice(0, 1000);
      });
    }
    await waitReady(child, admin, () => lines.join(""));
  };
  const stop = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((ok) => child.once("exit", ok));
    child.kill("SIGINT");
    const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(t);
  };
  await launch();
  return {
    tcp: `tcp://127.0.0.1:${gate}`,
    ws: `ws://127.0.0.1:${wsPort}/`,
    admin: `http://127.0.0.1:${admin}`,
    ports: { gate, wsPort, admin },
    dir,
    /** The demo's log so far (for failure messages). */
    output: () => lines.join(""),
    /** Stops the demo (SIGINT, then SIGKILL after 10 s). */
    stop,
    /** Stops and starts it again on the same ports and configuration. */
    restart: async () => {
      await stop();
      await launch();
    },
    /** Stops it and removes its configuration directory. */
    dispose: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitReady(child, adminPort, output) {
  const deadline = Date.now() + 30_000;
  let last = "";
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the demo exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output()}`);
    }
    try {
      const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200) return;
      last = `readyz ${r.status}: ${await r.text()}`;
    } catch (e) {
      last = String(e);
    }
    await new Promise((ok) => setTimeout(ok, 50));
  }
  child.kill("SIGKILL");
  throw new Error(`the demo was not ready within 30 s (${last}):\n${output()}`);
}

/** Resolves with the first event `name` of client `c` (bounded). */
export function nextEvent(c, name, timeoutMs = 10_000) {
  return new Promise((ok, fail) => {
    const t = setTimeout(() => {
      off();
      fail(new Error(`no "${name}" event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = c.onEvent(name, (e) => {
      clearTimeout(t);
      off();
      ok(e);
    });
  });
}

/** Waits until `check()` is true, polling every 10 ms (bounded). */
export async function until(what, check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((ok) => setTimeout(ok, 10));
  }
}
