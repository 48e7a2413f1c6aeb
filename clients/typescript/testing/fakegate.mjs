// A fake gate for the PROTOCOL UNIT TESTS of the SDK's session-resume state
// machine (test/resume.protocol.test.mjs): a small Node `net` server
// speaking zinx frames and the "Session resume" contract of PROTOCOL.md
// (HELLO answers, replay of the frames after N, ACK, MOVE, BYE), with knobs
// that the real gate does not have: lose a frame in flight, forget a
// session, answer nothing.
//
// It is NOT a stand-in for the real gate in the integration tests, which
// run the real demo (test/client.test.mjs, test/resume.integration.test.mjs).

import { createServer } from "node:net";
import { FrameDecoder, encodeFrame } from "zinx-cluster-client";

const enc = new TextEncoder();
const dec = new TextDecoder();

export const HELLO = 99990;
export const ACK = 99991;
export const MOVE = 99992;
export const BYE = 99993;
export const HEARTBEAT = 99999;

/** Sessions shared by several fake gates (a client may move between them). */
export class SessionStore {
  constructor() {
    this.byToken = new Map();
    this.next = 1;
  }

  create() {
    const s = { id: this.next++, log: [], acked: 0, conn: undefined, token: "", bye: false, hellos: [] };
    this.rotate(s);
    return s;
  }

  /** A new token for the session (the old one stops working). */
  rotate(s) {
    if (s.token) this.byToken.delete(s.token);
    s.token = `tok-${s.id}-${Math.random().toString(36).slice(2)}`;
    this.byToken.set(s.token, s);
    return s.token;
  }

  /** Forgets a session: a later resume of it fails with `reason`. */
  expire(s, reason = "expired") {
    this.byToken.delete(s.token);
    s.expiredAs = reason;
    this.expired ??= new Map();
    this.expired.set(s.token, reason);
  }
}

/**
 * Starts a fake gate on a free loopback port.
 *
 * `mode`: "resume" (default), "no-resume" (HELLO is an unknown msg id: an
 * error frame, as the demo answers today), or "silent" (HELLO gets nothing,
 * a gate with `error_reply: "none"`).
 */
export async function startFakeGate({ store = new SessionStore(), mode = "resume", windowMs = 30_000 } = {}) {
  const conns = new Set();
  const received = [];
  const waiters = [];
  const gate = {
    store,
    received,
    conns,
    /** Application frames the client sent: [{ msgId, text, session }]. */
    appFrames: () => received.filter((f) => f.msgId < 99990),
    /** The session of the connected client (the last one to say HELLO). */
    session: undefined,
    /** Called for app frames; default: 1 login answers, 5 echoes. */
    onRequest: (conn, f) => {
      if (f.msgId === 1) gate.sendApp(conn.session, 1, { ok: true, name: JSON.parse(f.text).name });
      if (f.msgId === 5) gate.sendApp(conn.session, 5, f.data);
    },
    /**
     * Sends an application frame on a session: logged (counted in N) and
     * written to its connection, unless `lose` (lost in flight: the
     * connection will drop before it arrives) or the session is detached.
     */
    sendApp(session, msgId, body, { lose = false } = {}) {
      const data = body instanceof Uint8Array ? body : enc.encode(JSON.stringify(body));
      const frame = encodeFrame(msgId, data);
      session.log.push(frame);
      if (!lose && session.conn && !session.conn.destroyed) session.conn.write(frame);
    },
    /** Writes a frame that is not counted (heartbeat, control). */
    sendRaw(session, msgId, body) {
      const data = body instanceof Uint8Array ? body : enc.encode(typeof body === "string" ? body : JSON.stringify(body));
      session.conn?.write(encodeFrame(msgId, data));
    },
    /** Cuts the session's connection (no FIN, like a lost network). */
    drop(session) {
      const c = session.conn;
      session.conn = undefined;
      c?.resetAndDestroy ? c.resetAndDestroy() : c?.destroy();
    },
    /** Asks the session's client to move (MOVE, draining). */
    move(session) {
      gate.sendRaw(session, MOVE, { reason: "draining" });
    },
    /** Resolves with the next frame the client sends that `match`es. */
    next(match, timeoutMs = 10_000) {
      const hit = received.find((f) => !f.taken && match(f));
      if (hit) {
        hit.taken = true;
        return Promise.resolve(hit);
      }
      return new Promise((ok, fail) => {
        const w = { match, ok };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) {
            waiters.splice(i, 1);
            fail(new Error(`the fake gate saw no matching frame within ${timeoutMs} ms`));
          }
        }, timeoutMs);
      });
    },
    /** Stops listening and closes every connection. */
    async close() {
      for (const c of conns) c.destroy();
      await new Promise((ok) => server.close(ok));
    },
  };

  const server = createServer((conn) => {
    conns.add(conn);
    conn.on("close", () => conns.delete(conn));
    conn.on("error", () => {});
    conn.session = store.create(); // an anonymous session until HELLO
    conn.session.conn = conn;
    const decoder = new FrameDecoder();
    conn.on("data", (chunk) => {
      for (const f of decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))) {
        const rec = { msgId: f.msgId, data: f.data, text: dec.decode(f.data), session: conn.session, at: Date.now() };
        received.push(rec);
        handle(conn, rec);
        for (const w of [...waiters]) {
          if (!rec.taken && w.match(rec)) {
            rec.taken = true;
            waiters.splice(waiters.indexOf(w), 1);
            w.ok(rec);
          }
        }
      }
    });
  });

  function handle(conn, f) {
    if (f.msgId === HEARTBEAT) return;
    if (f.msgId === HELLO) return hello(conn, f);
    if (f.msgId === ACK) {
      conn.session.acked = JSON.parse(f.text).received;
      return;
    }
    if (f.msgId === BYE) {
      conn.session.bye = true;
      store.expire(conn.session, "unknown");
      conn.end();
      return;
    }
    gate.onRequest(conn, f);
  }

  function hello(conn, f) {
    if (mode === "silent") return;
    if (mode === "no-resume") {
      const body = { msg_id: HELLO, code: "unknown_msg_id", error: `no route for msg_id ${HELLO}` };
      gate.sendApp(conn.session, 0, body);
      return;
    }
    const req = JSON.parse(f.text);
    const answer = (session, body) => {
      session.conn = conn;
      conn.session = session;
      gate.session = session;
      session.hellos.push(req);
      conn.write(encodeFrame(HELLO, enc.encode(JSON.stringify(body))));
    };
    if (req.token === undefined) {
      const s = conn.session;
      store.rotate(s);
      answer(s, { token: s.token, window_ms: windowMs });
      return;
    }
    const s = store.byToken.get(req.token);
    if (!s) {
      const reason = store.expired?.get(req.token) ?? "unknown";
      const fresh = conn.session;
      store.rotate(fresh);
      answer(fresh, { resumed: false, reason, token: fresh.token, window_ms: windowMs });
      return;
    }
    // The anonymous session this connection started with is not needed.
    store.byToken.delete(conn.session.token);
    if (s.conn && s.conn !== conn) s.conn.destroy();
    const n = req.received;
    const replay = s.log.slice(n);
    store.rotate(s);
    answer(s, { resumed: true, token: s.token, window_ms: windowMs, replayed: replay.length });
    for (const frame of replay) conn.write(frame);
  }

  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  gate.port = server.address().port;
  gate.url = `tcp://127.0.0.1:${gate.port}`;
  return gate;
}
