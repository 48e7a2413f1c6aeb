// The client: one logical session with a zinx-cluster gate, over one
// transport at a time, surviving transport drops by reconnecting and (with
// `resume`) resuming the session per PROTOCOL.md "Session resume".

import { ZinxError } from "./errors.js";
import {
  ACK_MSG_ID,
  BYE_MSG_ID,
  FrameDecoder,
  HEARTBEAT_MSG_ID,
  HELLO_MSG_ID,
  MOVE_MSG_ID,
  encodeFrame,
  isUncounted,
  type Frame,
} from "./frame.js";
import { decodeJson, encodeBody, isMessageType, type Codec, type MessageType } from "./message.js";
import { dial, type Transport } from "./transport.js";

/** Options of {@link ZinxClient.connect}. Only `urls` is required. */
export interface ClientOptions {
  /** Gates to connect to: `ws://`, `wss://`, or (in Node) `tcp://host:port`.
   * The first is tried first; reconnects go round robin over all. */
  urls: string[];
  /** Resumable session (PROTOCOL.md "Session resume"). Default `true`. A gate
   * that does not know HELLO answers with an error frame; the client then
   * goes on without resume. */
  resume?: boolean;
  /** msg id of the gate's error answers (the setting `error_msg_id`).
   * Default 0. */
  errorMsgId?: number;
  /** How long a request waits for its answer, in ms; 0 waits for ever.
   * Default 10000. */
  requestTimeoutMs?: number;
  /** Interval of the zinx heartbeat (msg 99999), in ms; 0 sends none.
   * Default 3000 (zinx's example interval, well below zinx's
   * `HeartbeatMax` of 10 s and the gate's `idle_timeout_ms`). */
  heartbeatMs?: number;
  /** Data of each heartbeat. Default `"ping"`. */
  heartbeatPayload?: string | Uint8Array;
  /** An ACK at least this often while frames arrive, in ms. Default 1000. */
  ackIntervalMs?: number;
  /** An ACK at the latest after this many frames. Default 64. */
  ackEveryFrames?: number;
  /** Reconnect when the connection drops. Default `true`. */
  reconnect?: boolean;
  /** First reconnect delay, in ms (doubled each failed attempt, with
   * jitter: a delay is drawn between half and all of the step). Default 250. */
  reconnectMinMs?: number;
  /** Cap of the reconnect delay, in ms. Default 10000. */
  reconnectMaxMs?: number;
  /** Failed reconnect attempts in a row before giving up (event `closed`).
   * Default `Infinity`. */
  maxReconnectAttempts?: number;
  /** Limit of one dial (TCP connect or WebSocket handshake), in ms.
   * Default 10000. */
  connectTimeoutMs?: number;
  /** Limit for the gate's answer to HELLO, in ms. Default 5000. On the
   * first connect, a gate silent that long is taken for one without
   * resume (the client goes on without); on a reconnect, the attempt
   * fails and the next one follows. */
  helloTimeoutMs?: number;
  /** Frames queued while disconnected (sent after a resume). Past it,
   * `send` throws and `request` rejects with `queue_full`. Default 1024. */
  maxQueued?: number;
  /** Largest frame accepted from the gate, in bytes; a longer one closes
   * the connection (and reconnects). Default 16 MiB. */
  maxFrameLen?: number;
}

/** Options of one request. */
export interface RequestOptions {
  /** This request's timeout in ms (0: none); default the client's. */
  timeoutMs?: number;
  /** Resolve with the answer's bytes instead of its JSON. Default: `false`,
   * or `true` for a message type whose codec is `raw`. */
  raw?: boolean;
  /**
   * Which frames on the request's msg id are its answer. zinx has no
   * correlation id: the oldest pending request of a msg id takes the next
   * frame on it. When the server also pushes on that msg id (the demo's
   * msg 3 answers `{"ok":..}` and pushes `{"from":..}`), say what an
   * answer looks like; frames it refuses go to the `on` handlers.
   */
  accept?: (payload: unknown, frame: Frame) => boolean;
}

/** Options of {@link ZinxClient.on}. */
export interface HandlerOptions {
  /** Give the handler the bytes instead of the JSON. Default: `false`, or
   * `true` for a message type whose codec is `raw`. */
  raw?: boolean;
}

/** What each event of {@link ZinxClient.onEvent} carries. */
export interface ClientEvents {
  /** The connection dropped (or the gate sent MOVE); the client is about to
   * try `url` after `delayMs`. Requests stay pending; frames sent now are
   * queued. */
  reconnecting: { attempt: number; delayMs: number; url: string; reason: string };
  /** The session was resumed on `url`: nothing was lost; `replayed`
   * frames the gate had kept follow. */
  resumed: { url: string; replayed: number };
  /** The connection is back but the session is a fresh one (`reason`: the
   * gate's, such as `expired`; `not_resumable` when the client or the gate
   * does not do resume). The application must log in again. Pending
   * requests were rejected (`session_lost`), queued frames dropped. */
  resume_failed: { url: string; reason: string; rejected: number; dropped: number };
  /** The gate asked the client to move (`draining`); a reconnect follows. */
  moved: { reason: string };
  /** The client is closed for good (by `close()`, or after giving up). */
  closed: { reason: string };
  /** Something the application should hear of that belongs to no call: an
   * error frame no pending request claimed, a push that is not JSON, a
   * handler that threw. */
  error: { error: ZinxError };
}

/** The name of an event. */
export type ClientEventName = keyof ClientEvents;

/** The client's state. */
export type ClientState = "connecting" | "open" | "reconnecting" | "closing" | "closed";

/** A payload given to `request`/`send` by msg id: JSON-encodable, or bytes. */
export type Body = unknown;

interface Pending {
  readonly msgId: number;
  readonly raw: boolean;
  readonly accept: ((payload: unknown, frame: Frame) => boolean) | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: ZinxError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  settled: boolean;
}

interface Queued {
  readonly bytes: Uint8Array;
  readonly pending: Pending | undefined;
}

interface HandlerEntry {
  readonly fn: (payload: any, frame: Frame) => void;
  readonly raw: boolean;
}

/** What the gate answered to HELLO, sorted out. */
type HelloOutcome =
  | { kind: "new"; token: string | undefined }
  | { kind: "resumed"; token: string | undefined; replayed: number }
  | { kind: "fresh"; reason: string; token: string | undefined }
  | { kind: "unsupported"; reason: string };

interface HelloWaiter {
  readonly resuming: boolean;
  readonly url: string;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

const encoder = new TextEncoder();
/** BYE's body. */
const EMPTY_JSON = encoder.encode("{}");

/**
 * A session with a zinx-cluster gate. Create it with
 * {@link ZinxClient.connect}.
 *
 * - `request(msg, body)` sends a frame and resolves with the next frame on
 *   the same msg id (oldest request first), or rejects with the gate's error
 *   frame for that msg id as a {@link ZinxError}.
 * - `send(msg, body)` sends without expecting an answer.
 * - `on(msg, handler)` receives the frames of a msg id that no request
 *   claimed (pushes).
 * - `onEvent(name, fn)`: `reconnecting`, `resumed`, `resume_failed`,
 *   `moved`, `closed`, `error`.
 *
 * `msg` is a msg id or a generated {@link MessageType}. Bodies are JSON,
 * except a `Uint8Array`, which is sent as it is.
 */
export class ZinxClient {
  private readonly opts: Required<Omit<ClientOptions, "heartbeatPayload">> & { heartbeatPayload: Uint8Array };
  private stateValue: ClientState = "connecting";
  private transport: Transport | undefined;
  /** Bumped per transport, so that late callbacks of an old one are ignored. */
  private generation = 0;
  /** App frames may be written (the transport is open and HELLO is done). */
  private live = false;
  private readonly decoder: FrameDecoder;
  private readonly pending = new Map<number, Pending[]>();
  private readonly handlers = new Map<number, HandlerEntry[]>();
  private readonly listeners = new Map<string, Array<(e: any) => void>>();
  private queue: Queued[] = [];
  /** Session resume: our token; undefined when the session is not resumable. */
  private token: string | undefined;
  /** The gate refused HELLO (it does not do resume). */
  private gateHasNoResume = false;
  /** Frames received on this logical session (PROTOCOL.md's N). */
  private receivedCount = 0;
  /** The N of our last ACK. */
  private ackedCount = 0;
  private helloWaiter: HelloWaiter | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private ackTimer: ReturnType<typeof setInterval> | undefined;
  private sleepTimer: ReturnType<typeof setTimeout> | undefined;
  private wakeSleep: (() => void) | undefined;
  private urlIndex = 0;
  /** The gate sent MOVE: reconnect at once to the next URL. */
  private moved = false;
  private closedWaiters: Array<() => void> = [];

  private constructor(options: ClientOptions) {
    if (!options || !Array.isArray(options.urls) || options.urls.length === 0) {
      throw new TypeError("ZinxClient.connect: `urls` must list at least one gate URL");
    }
    const hb = options.heartbeatPayload ?? "ping";
    this.opts = {
      urls: [...options.urls],
      resume: options.resume ?? true,
      errorMsgId: options.errorMsgId ?? 0,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      heartbeatMs: options.heartbeatMs ?? 3_000,
      heartbeatPayload: typeof hb === "string" ? encoder.encode(hb) : hb,
      ackIntervalMs: options.ackIntervalMs ?? 1_000,
      ackEveryFrames: Math.max(1, options.ackEveryFrames ?? 64),
      reconnect: options.reconnect ?? true,
      reconnectMinMs: options.reconnectMinMs ?? 250,
      reconnectMaxMs: options.reconnectMaxMs ?? 10_000,
      maxReconnectAttempts: options.maxReconnectAttempts ?? Infinity,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      helloTimeoutMs: options.helloTimeoutMs ?? 5_000,
      maxQueued: options.maxQueued ?? 1024,
      maxFrameLen: options.maxFrameLen ?? 16 * 1024 * 1024,
    };
    this.decoder = new FrameDecoder(this.opts.maxFrameLen);
  }

  /**
   * Connects to the first gate of `urls` that answers (each is tried once,
   * in order) and, with `resume` (the default), opens a resumable session.
   * Rejects with a {@link ZinxError} `connect_failed` when none does.
   */
  static async connect(options: ClientOptions): Promise<ZinxClient> {
    const c = new ZinxClient(options);
    let last: unknown;
    for (let i = 0; i < c.opts.urls.length; i++) {
      c.urlIndex = i;
      try {
        await c.establish(c.opts.urls[i], false);
        c.stateValue = "open";
        return c;
      } catch (e) {
        last = e;
      }
    }
    c.stateValue = "closed";
    const why = last instanceof Error ? last.message : String(last);
    throw new ZinxError("connect_failed", `no gate answered (${c.opts.urls.join(", ")}): ${why}`);
  }

  /** `connecting`, `open`, `reconnecting`, `closing` or `closed`. */
  get state(): ClientState {
    return this.stateValue;
  }

  /** Whether the session can be resumed after a drop (resume on, and the
   * gate gave a token). */
  get resumable(): boolean {
    return this.token !== undefined;
  }

  /** Frames received on this session, heartbeats and control frames left
   * out: the N of PROTOCOL.md, reset when a session is lost. */
  get received(): number {
    return this.receivedCount;
  }

  /** The URL of the gate in use (or being tried). */
  get url(): string {
    return this.opts.urls[this.urlIndex];
  }

  // ---- the application's calls -------------------------------------------

  /** A request of a typed message: resolves with its typed answer. */
  request<T, A>(type: MessageType<T, A>, body: T, options?: RequestOptions): Promise<A>;
  /** A request by msg id whose answer is wanted as bytes. */
  request(msgId: number, body: Body, options: RequestOptions & { raw: true }): Promise<Uint8Array>;
  /** A request by msg id: JSON in (or bytes), JSON out. */
  request<A = any>(msgId: number, body?: Body, options?: RequestOptions): Promise<A>;
  request(target: number | MessageType<unknown, unknown>, body?: unknown, options: RequestOptions = {}): Promise<unknown> {
    const { msgId, codec } = this.resolveTarget(target);
    return new Promise((resolve, reject) => {
      if (this.stateValue === "closing" || this.stateValue === "closed") {
        reject(new ZinxError("closed", `msg ${msgId}: the client is closed`, msgId));
        return;
      }
      let bytes: Uint8Array;
      try {
        bytes = encodeFrame(msgId, encodeBody(body, codec));
      } catch (e) {
        reject(e);
        return;
      }
      const p: Pending = {
        msgId,
        raw: options.raw ?? codec === "raw",
        accept: options.accept,
        resolve,
        reject,
        timer: undefined,
        settled: false,
      };
      if (!this.live && this.queue.length >= this.opts.maxQueued) {
        reject(new ZinxError("queue_full", `msg ${msgId}: ${this.queue.length} frames already wait for the connection`, msgId));
        return;
      }
      let list = this.pending.get(msgId);
      if (!list) this.pending.set(msgId, (list = []));
      list.push(p);
      const timeout = options.timeoutMs ?? this.opts.requestTimeoutMs;
      if (timeout > 0) {
        p.timer = setTimeout(() => {
          this.forget(p);
          this.settle(p, new ZinxError("timeout", `msg ${msgId}: no answer within ${timeout} ms`, msgId));
        }, timeout);
      }
      this.write(bytes, p);
    });
  }

  /** Sends a typed message; no answer expected. */
  send<T>(type: MessageType<T, unknown>, body: T): void;
  /** Sends by msg id: JSON (or bytes as they are); no answer expected.
   * Throws a {@link ZinxError} `closed` after close, `queue_full` when
   * disconnected with a full queue. */
  send(msgId: number, body?: Body): void;
  send(target: number | MessageType<unknown, unknown>, body?: unknown): void {
    const { msgId, codec } = this.resolveTarget(target);
    if (this.stateValue === "closing" || this.stateValue === "closed") {
      throw new ZinxError("closed", `msg ${msgId}: the client is closed`, msgId);
    }
    const bytes = encodeFrame(msgId, encodeBody(body, codec));
    if (!this.live && this.queue.length >= this.opts.maxQueued) {
      throw new ZinxError("queue_full", `msg ${msgId}: ${this.queue.length} frames already wait for the connection`, msgId);
    }
    this.write(bytes, undefined);
  }

  /** Handles the pushes of a typed message. Returns a function that
   * removes the handler. */
  on<T>(type: MessageType<T, unknown>, handler: (payload: T, frame: Frame) => void): () => void;
  /** Handles the frames of a msg id that no request claimed, as bytes. */
  on(msgId: number, handler: (payload: Uint8Array, frame: Frame) => void, options: HandlerOptions & { raw: true }): () => void;
  /** Handles the frames of a msg id that no request claimed, JSON-decoded. */
  on(msgId: number, handler: (payload: any, frame: Frame) => void, options?: HandlerOptions): () => void;
  on(target: number | MessageType<unknown, unknown>, handler: (payload: any, frame: Frame) => void, options: HandlerOptions = {}): () => void {
    const { msgId, codec } = this.resolveTarget(target);
    const entry: HandlerEntry = { fn: handler, raw: options.raw ?? codec === "raw" };
    let list = this.handlers.get(msgId);
    if (!list) this.handlers.set(msgId, (list = []));
    list.push(entry);
    return () => {
      const l = this.handlers.get(msgId);
      const i = l ? l.indexOf(entry) : -1;
      if (l && i >= 0) l.splice(i, 1);
    };
  }

  /** Listens to a client event. Returns a function that removes it. */
  onEvent<K extends ClientEventName>(name: K, listener: (event: ClientEvents[K]) => void): () => void {
    let list = this.listeners.get(name);
    if (!list) this.listeners.set(name, (list = []));
    list.push(listener);
    return () => {
      const l = this.listeners.get(name);
      const i = l ? l.indexOf(listener) : -1;
      if (l && i >= 0) l.splice(i, 1);
    };
  }

  /**
   * Ends the session: sends BYE (when the session is resumable, so that the
   * gate ends it at once instead of keeping it for the resume window), closes
   * the connection, rejects pending requests (`closed`), emits `closed`.
   * Resolves once the connection is closed (at most ~2 s).
   */
  async close(): Promise<void> {
    if (this.stateValue === "closed") return;
    if (this.stateValue === "closing") return new Promise((r) => this.closedWaiters.push(r));
    this.stateValue = "closing";
    this.stopTimers();
    this.wakeSleep?.();
    const t = this.transport;
    if (t) {
      if (this.live && this.token !== undefined) {
        try {
          t.send(encodeFrame(BYE_MSG_ID, EMPTY_JSON));
        } catch {
          // The connection is going anyway.
        }
      }
      this.live = false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2_000);
        t.onClose = () => {
          clearTimeout(timer);
          resolve();
        };
        t.close();
      });
    }
    this.finish("closed by the application", "closed");
  }

  // ---- connection and session --------------------------------------------

  /** Dials `url`, says HELLO when resuming is on, and goes live. */
  private async establish(url: string, resuming: boolean): Promise<void> {
    const t = await dial(url, this.opts.connectTimeoutMs);
    if (this.stateValue === "closing" || this.stateValue === "closed") {
      t.close();
      throw new ZinxError("closed", "the client was closed while connecting");
    }
    const gen = ++this.generation;
    this.transport = t;
    this.decoder.reset();
    t.onData = (chunk) => {
      if (gen === this.generation) this.onData(chunk);
    };
    t.onClose = (reason) => {
      if (gen === this.generation) this.onTransportClosed(reason);
    };
    try {
      if (this.opts.resume && !this.gateHasNoResume) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            this.helloWaiter = undefined;
            if (resuming) {
              reject(new ZinxError("connect_failed", `${url}: no answer to HELLO within ${this.opts.helloTimeoutMs} ms`));
              return;
            }
            // A first connect whose HELLO gets no answer at all: a gate
            // without session resume that answers unknown msg ids with
            // nothing (`error_reply: "none"`). Go on without resume.
            this.completeSession(url, false, { kind: "unsupported", reason: "not_resumable" });
            resolve();
          }, this.opts.helloTimeoutMs);
          this.helloWaiter = {
            resuming,
            url,
            resolve: () => {
              clearTimeout(timer);
              resolve();
            },
            reject: (e) => {
              clearTimeout(timer);
              reject(e);
            },
          };
          const hello = resuming && this.token !== undefined ? { token: this.token, received: this.receivedCount } : {};
          t.send(encodeFrame(HELLO_MSG_ID, encodeBody(hello)));
        });
      } else {
        this.completeSession(url, resuming, resuming ? { kind: "fresh", reason: "not_resumable", token: undefined } : { kind: "new", token: undefined });
      }
    } catch (e) {
      this.helloWaiter = undefined;
      if (gen === this.generation) {
        this.generation++;
        this.transport = undefined;
      }
      t.close();
      throw e;
    }
  }

  /**
   * The session is settled on a new transport (called synchronously from the
   * frame that settled it, so that frames behind it in the same chunk are
   * counted against the right session): update token and count, keep or
   * fail what was pending, go live, flush the queue, tell the application.
   */
  private completeSession(url: string, resuming: boolean, outcome: HelloOutcome): void {
    let lost: { reason: string } | undefined;
    switch (outcome.kind) {
      case "new":
        this.token = outcome.token;
        this.receivedCount = 0;
        this.ackedCount = 0;
        if (resuming) lost = { reason: "not_resumable" };
        break;
      case "resumed":
        this.token = outcome.token ?? this.token;
        this.ackedCount = this.receivedCount;
        break;
      case "fresh":
        this.token = outcome.token;
        this.receivedCount = 0;
        this.ackedCount = 0;
        if (resuming) lost = { reason: outcome.reason };
        break;
      case "unsupported":
        this.gateHasNoResume = true;
        this.token = undefined;
        this.receivedCount = 0;
        this.ackedCount = 0;
        if (resuming) lost = { reason: outcome.reason };
        break;
    }
    let rejected = 0;
    let dropped = 0;
    if (lost) {
      dropped = this.queue.filter((q) => !q.pending).length;
      this.queue = [];
      rejected = this.rejectAll("session_lost", `the session was lost (${lost.reason}) before the answer came`);
    }
    this.live = true;
    this.stateValue = "open";
    this.startTimers();
    const queued = this.queue;
    this.queue = [];
    for (const q of queued) {
      if (q.pending?.settled) continue;
      this.transport?.send(q.bytes);
    }
    if (!resuming) return;
    if (lost) this.emit("resume_failed", { url, reason: lost.reason, rejected, dropped });
    else if (outcome.kind === "resumed") this.emit("resumed", { url, replayed: outcome.replayed });
  }

  private onTransportClosed(reason: string): void {
    this.generation++;
    this.transport = undefined;
    this.live = false;
    this.stopTimers();
    const waiter = this.helloWaiter;
    if (waiter) {
      this.helloWaiter = undefined;
      waiter.reject(new ZinxError("connect_failed", `${waiter.url}: ${reason} before the HELLO answer`));
      return; // establish() fails and its caller goes on
    }
    if (this.stateValue !== "open") return;
    if (!this.opts.reconnect) {
      this.finish(`connection lost: ${reason}`, "session_lost");
      return;
    }
    void this.reconnectLoop(reason);
  }

  private async reconnectLoop(reason: string): Promise<void> {
    this.stateValue = "reconnecting";
    for (let attempt = 1; ; attempt++) {
      if (attempt > this.opts.maxReconnectAttempts) {
        this.finish(`gave up after ${attempt - 1} reconnect attempts (${reason})`, "session_lost");
        return;
      }
      const immediate = this.moved && attempt === 1;
      this.moved = false;
      const delayMs = immediate ? 0 : this.backoff(attempt);
      this.urlIndex = (this.urlIndex + 1) % this.opts.urls.length;
      const url = this.opts.urls[this.urlIndex];
      this.emit("reconnecting", { attempt, delayMs, url, reason });
      await this.sleep(delayMs);
      if (this.stateValue !== "reconnecting") return;
      try {
        await this.establish(url, true);
        return;
      } catch (e) {
        if (this.stateValue !== "reconnecting") return;
        reason = e instanceof Error ? e.message : String(e);
      }
    }
  }

  /** Step `attempt`'s delay: min·2^(attempt-1), capped, drawn between half
   * and all of it (jitter spreads a crowd of clients a gate just dropped). */
  private backoff(attempt: number): number {
    const step = Math.min(this.opts.reconnectMaxMs, this.opts.reconnectMinMs * 2 ** Math.min(attempt - 1, 30));
    return Math.round(step / 2 + (Math.random() * step) / 2);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(this.sleepTimer);
        this.sleepTimer = undefined;
        this.wakeSleep = undefined;
        resolve();
      };
      this.wakeSleep = wake;
      this.sleepTimer = setTimeout(wake, ms);
    });
  }

  /** Closed for good: reject everything, tell the application. */
  private finish(reason: string, code: "closed" | "session_lost"): void {
    if (this.stateValue === "closed") return;
    this.stateValue = "closed";
    this.live = false;
    this.stopTimers();
    this.wakeSleep?.();
    const waiter = this.helloWaiter;
    this.helloWaiter = undefined;
    waiter?.reject(new ZinxError("closed", `the client is closed: ${reason}`));
    const t = this.transport;
    this.generation++;
    this.transport = undefined;
    t?.close();
    this.queue = [];
    this.rejectAll(code, `the client is closed: ${reason}`);
    this.emit("closed", { reason });
    for (const w of this.closedWaiters.splice(0)) w();
  }

  private startTimers(): void {
    this.stopTimers();
    if (this.opts.heartbeatMs > 0) {
      const beat = encodeFrame(HEARTBEAT_MSG_ID, this.opts.heartbeatPayload);
      this.heartbeatTimer = setInterval(() => {
        if (this.live) this.transport?.send(beat);
      }, this.opts.heartbeatMs);
    }
    if (this.token !== undefined && this.opts.ackIntervalMs > 0) {
      this.ackTimer = setInterval(() => {
        if (this.receivedCount !== this.ackedCount) this.sendAck();
      }, this.opts.ackIntervalMs);
    }
  }

  private stopTimers(): void {
    clearInterval(this.heartbeatTimer);
    clearInterval(this.ackTimer);
    this.heartbeatTimer = undefined;
    this.ackTimer = undefined;
  }

  private sendAck(): void {
    if (!this.live || this.token === undefined || !this.transport) return;
    this.ackedCount = this.receivedCount;
    this.transport.send(encodeFrame(ACK_MSG_ID, encodeBody({ received: this.receivedCount })));
  }

  // ---- frames in ---------------------------------------------------------

  private onData(chunk: Uint8Array): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.emit("error", { error: new ZinxError("bad_frame", (e as Error).message) });
      this.transport?.close();
      return;
    }
    const gen = this.generation;
    for (const f of frames) {
      // A frame may close or replace the transport (MOVE): the rest of the
      // chunk belongs to the old one.
      if (gen !== this.generation) return;
      this.onFrame(f);
    }
  }

  private onFrame(f: Frame): void {
    if (isUncounted(f.msgId)) {
      if (f.msgId === HELLO_MSG_ID) this.onHelloAnswer(f);
      else if (f.msgId === MOVE_MSG_ID) this.onMove(f);
      return; // heartbeats and other control frames
    }
    this.receivedCount++;
    if (this.token !== undefined && this.receivedCount - this.ackedCount >= this.opts.ackEveryFrames) this.sendAck();
    if (f.msgId === this.opts.errorMsgId && this.onErrorFrame(f)) return;
    this.deliver(f);
  }

  private onHelloAnswer(f: Frame): void {
    const waiter = this.helloWaiter;
    if (!waiter) return; // not asked for: ignored
    this.helloWaiter = undefined;
    let a: any;
    try {
      a = decodeJson(f.data, HELLO_MSG_ID);
    } catch (e) {
      waiter.reject(e as Error);
      return;
    }
    const token = typeof a?.token === "string" ? a.token : undefined;
    let outcome: HelloOutcome;
    if (a?.resumed === true) outcome = { kind: "resumed", token, replayed: Number(a.replayed) || 0 };
    else if (a?.resumed === false) {
      const reason = typeof a.reason === "string" ? a.reason : "unknown";
      outcome = reason === "disabled" ? { kind: "unsupported", reason } : { kind: "fresh", reason, token };
    } else outcome = { kind: "new", token };
    if (outcome.kind === "resumed" && !waiter.resuming) outcome = { kind: "new", token };
    this.completeSession(waiter.url, waiter.resuming, outcome);
    waiter.resolve();
  }

  private onMove(f: Frame): void {
    let reason = "draining";
    try {
      const m: any = decodeJson(f.data, MOVE_MSG_ID);
      if (typeof m?.reason === "string") reason = m.reason;
    } catch {
      // A MOVE is a MOVE, whatever its body.
    }
    this.emit("moved", { reason });
    if (this.stateValue !== "open" || !this.transport) return;
    this.moved = true;
    const t = this.transport;
    this.onTransportClosed(`the gate asked to move (${reason})`);
    t.close();
  }

  /** An error frame: rejects the oldest pending request of its msg id.
   * Returns false when it is not an error answer at all. */
  private onErrorFrame(f: Frame): boolean {
    let e: any;
    try {
      e = decodeJson(f.data, f.msgId);
    } catch {
      return false;
    }
    if (typeof e !== "object" || e === null || typeof e.msg_id !== "number" || typeof e.code !== "string") return false;
    const msgId: number = e.msg_id;
    const error = new ZinxError(e.code, typeof e.error === "string" ? e.error : e.code, msgId);
    const waiter = this.helloWaiter;
    if (waiter && msgId === HELLO_MSG_ID) {
      // A gate without session resume: "no route for msg_id 99990".
      this.helloWaiter = undefined;
      this.completeSession(waiter.url, waiter.resuming, { kind: "unsupported", reason: "not_resumable" });
      waiter.resolve();
      return true;
    }
    const p = this.pending.get(msgId)?.[0];
    if (p) {
      this.forget(p);
      this.settle(p, error);
      return true;
    }
    this.emit("error", { error });
    this.dispatch(f);
    return true;
  }

  private deliver(f: Frame): void {
    const p = this.pending.get(f.msgId)?.[0];
    if (p) {
      let value: unknown = f.data;
      if (!p.raw) {
        try {
          value = decodeJson(f.data, f.msgId);
        } catch (e) {
          if (p.accept) {
            this.dispatch(f);
            return;
          }
          this.forget(p);
          this.settle(p, e as ZinxError);
          return;
        }
      }
      if (!p.accept || this.safeAccept(p, value, f)) {
        this.forget(p);
        this.settle(p, undefined, value);
        return;
      }
    }
    this.dispatch(f);
  }

  private safeAccept(p: Pending, value: unknown, f: Frame): boolean {
    try {
      return p.accept ? p.accept(value, f) : true;
    } catch (e) {
      this.emit("error", { error: new ZinxError("handler_threw", `accept of msg ${f.msgId} threw: ${String(e)}`, f.msgId) });
      return false;
    }
  }

  /** Gives a frame to the `on` handlers of its msg id. */
  private dispatch(f: Frame): void {
    const list = this.handlers.get(f.msgId);
    if (!list || list.length === 0) return;
    let json: unknown;
    let jsonError: ZinxError | undefined;
    let decoded = false;
    for (const h of [...list]) {
      let payload: unknown = f.data;
      if (!h.raw) {
        if (!decoded) {
          decoded = true;
          try {
            json = decodeJson(f.data, f.msgId);
          } catch (e) {
            jsonError = e as ZinxError;
            this.emit("error", { error: jsonError });
          }
        }
        if (jsonError) continue;
        payload = json;
      }
      try {
        h.fn(payload, f);
      } catch (e) {
        this.emit("error", { error: new ZinxError("handler_threw", `a handler of msg ${f.msgId} threw: ${String(e)}`, f.msgId) });
      }
    }
  }

  // ---- helpers -----------------------------------------------------------

  private resolveTarget(target: number | MessageType<unknown, unknown>): { msgId: number; codec: Codec } {
    if (isMessageType(target)) return { msgId: target.id, codec: target.codec };
    if (typeof target !== "number") throw new TypeError("expected a msg id or a message type");
    return { msgId: target, codec: "json" };
  }

  private write(bytes: Uint8Array, p: Pending | undefined): void {
    if (this.live && this.transport) {
      this.transport.send(bytes);
      return;
    }
    this.queue.push({ bytes, pending: p });
  }

  private forget(p: Pending): void {
    const list = this.pending.get(p.msgId);
    if (!list) return;
    const i = list.indexOf(p);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.pending.delete(p.msgId);
  }

  private settle(p: Pending, error: ZinxError | undefined, value?: unknown): void {
    if (p.settled) return;
    p.settled = true;
    clearTimeout(p.timer);
    if (error) p.reject(error);
    else p.resolve(value);
  }

  private rejectAll(code: string, message: string): number {
    let n = 0;
    const all = [...this.pending.values()].flat();
    this.pending.clear();
    for (const p of all) {
      if (p.settled) continue;
      n++;
      this.settle(p, new ZinxError(code, `msg ${p.msgId}: ${message}`, p.msgId));
    }
    return n;
  }

  private emit<K extends ClientEventName>(name: K, event: ClientEvents[K]): void {
    const list = this.listeners.get(name);
    if (!list) return;
    for (const l of [...list]) {
      try {
        l(event);
      } catch (e) {
        if (name !== "error") {
          this.emit("error", { error: new ZinxError("handler_threw", `a listener of "${name}" threw: ${String(e)}`) });
        }
      }
    }
  }
}
