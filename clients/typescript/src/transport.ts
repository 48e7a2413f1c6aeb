// Transports: a byte pipe to a gate. The client needs only "send these
// bytes", "close", "bytes arrived" and "closed"; WebSocket (any runtime with
// a browser-style `WebSocket` class, and the `ws` package in Node) and TCP
// (Node's `net`, registered by the Node entry point) provide it.

import { ZinxError } from "./errors.js";

/** One open connection to a gate. */
export interface Transport {
  /** Sends one frame's bytes (one binary message on a WebSocket). */
  send(bytes: Uint8Array): void;
  /** Closes the connection after what was sent; `onClose` follows. */
  close(): void;
  /** Called with each chunk of bytes received (any split of frames). */
  onData: (chunk: Uint8Array) => void;
  /** Called once when the connection ended, for whatever reason. */
  onClose: (reason: string) => void;
}

/** Opens a transport to a URL; resolves once it is open. */
export type Dialer = (url: string, timeoutMs: number) => Promise<Transport>;

/** The browser-style WebSocket class the SDK needs (the DOM's, or `ws`'s). */
export interface WebSocketClass {
  new (url: string): BrowserStyleSocket;
}

/** The part of a browser-style WebSocket the SDK uses. */
export interface BrowserStyleSocket {
  binaryType: string;
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

const noop = () => {};

/** A WebSocket transport over a browser-style WebSocket class. */
export function dialWebSocketWith(Ctor: WebSocketClass, url: string, timeoutMs: number): Promise<Transport> {
  return new Promise((resolve, reject) => {
    let socket: BrowserStyleSocket;
    try {
      socket = new Ctor(url);
    } catch (e) {
      reject(new ZinxError("connect_failed", `${url}: ${(e as Error).message}`));
      return;
    }
    socket.binaryType = "arraybuffer";
    let open = false;
    let closed = false;
    const transport: Transport = {
      send: (bytes) => socket.send(bytes),
      close: () => {
        try {
          socket.close(1000, "bye");
        } catch {
          // Already closing.
        }
      },
      onData: noop,
      onClose: noop,
    };
    const timer = setTimeout(() => {
      if (!open) {
        closed = true;
        try {
          socket.close();
        } catch {
          // Not even connecting any more.
        }
        reject(new ZinxError("connect_failed", `${url}: no WebSocket handshake within ${timeoutMs} ms`));
      }
    }, timeoutMs);
    socket.onopen = () => {
      clearTimeout(timer);
      if (closed) return;
      open = true;
      resolve(transport);
    };
    socket.onmessage = (ev) => {
      const d = ev.data;
      if (d instanceof ArrayBuffer) transport.onData(new Uint8Array(d));
      else if (ArrayBuffer.isView(d)) transport.onData(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      // Text messages are not zinx frames: ignored.
    };
    socket.onerror = () => {
      // The close event follows with the details.
    };
    socket.onclose = (ev) => {
      clearTimeout(timer);
      if (closed) return;
      closed = true;
      const why = `WebSocket closed (${ev.code ?? "?"}${ev.reason ? ": " + ev.reason : ""})`;
      if (open) transport.onClose(why);
      else reject(new ZinxError("connect_failed", `${url}: ${why}`));
    };
  });
}

/** Dialers by URL scheme (`ws`, `wss`, `tcp`); the Node entry point adds
 * its own. */
const dialers = new Map<string, Dialer>();

/** Registers the dialer of a URL scheme (without `:`), replacing any. */
export function registerDialer(scheme: string, dialer: Dialer): void {
  dialers.set(scheme, dialer);
}

/** Opens a transport to `url` with the dialer of its scheme; `ws:`/`wss:`
 * fall back to the runtime's global `WebSocket`. */
export function dial(url: string, timeoutMs: number): Promise<Transport> {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  const scheme = m ? m[1].toLowerCase() : "";
  const dialer = dialers.get(scheme);
  if (dialer) return dialer(url, timeoutMs);
  if (scheme === "ws" || scheme === "wss") {
    const Global = (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
    if (Global) return dialWebSocketWith(Global, url, timeoutMs);
    return Promise.reject(
      new ZinxError("unsupported_url", `${url}: this runtime has no WebSocket (in Node, install the "ws" package)`),
    );
  }
  if (scheme === "tcp") {
    return Promise.reject(new ZinxError("unsupported_url", `${url}: tcp:// URLs need Node (import the package in Node)`));
  }
  return Promise.reject(new ZinxError("unsupported_url", `${url}: expected ws://, wss:// or tcp:// (Node)`));
}
