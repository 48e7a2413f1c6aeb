// The Node entry point (the package's "node" export): everything of the
// browser entry, plus dialers for `ws://`/`wss://` through the `ws` package
// (Node 20 has no global WebSocket; a global one is used when `ws` is not
// installed) and for `tcp://host:port` through `net`. Loaded only in Node:
// bundlers for browsers take the default export, which has no dependency.

import * as net from "node:net";
import { ZinxError } from "./errors.js";
import { dialWebSocketWith, registerDialer, type Transport, type WebSocketClass } from "./transport.js";

export * from "./index.js";

let wsClass: Promise<WebSocketClass | undefined> | undefined;

/** The `ws` package's class, else the runtime's global WebSocket. */
function webSocketClass(): Promise<WebSocketClass | undefined> {
  wsClass ??= import("ws").then(
    (m) => (m.WebSocket ?? m.default) as unknown as WebSocketClass,
    () => (globalThis as { WebSocket?: WebSocketClass }).WebSocket,
  );
  return wsClass;
}

async function dialWs(url: string, timeoutMs: number): Promise<Transport> {
  const Ctor = await webSocketClass();
  if (!Ctor) {
    throw new ZinxError("unsupported_url", `${url}: no WebSocket in this Node: install the "ws" package`);
  }
  return dialWebSocketWith(Ctor, url, timeoutMs);
}

/** `tcp://host:port`: a plain TCP connection, the zinx stream as it is. */
function dialTcp(url: string, timeoutMs: number): Promise<Transport> {
  let host: string;
  let port: number;
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[(.*)\]$/, "$1");
    port = Number(u.port);
    if (!host || !Number.isInteger(port) || port <= 0) throw new Error("expected tcp://host:port");
  } catch (e) {
    return Promise.reject(new ZinxError("unsupported_url", `${url}: ${(e as Error).message}`));
  }
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host, port });
    socket.setNoDelay(true);
    let open = false;
    let lastError: Error | undefined;
    const transport: Transport = {
      send: (bytes) => {
        socket.write(bytes);
      },
      close: () => {
        socket.end();
        // A peer that never closes its side must not keep the socket.
        const t: unknown = setTimeout(() => socket.destroy(), 2_000);
        (t as { unref?: () => void }).unref?.();
      },
      onData: () => {},
      onClose: () => {},
    };
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ZinxError("connect_failed", `${url}: no TCP connection within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on("connect", () => {
      clearTimeout(timer);
      open = true;
      resolve(transport);
    });
    socket.on("data", (b: Uint8Array) => transport.onData(new Uint8Array(b.buffer, b.byteOffset, b.byteLength)));
    socket.on("error", (e: Error) => {
      lastError = e;
      if (!open) {
        clearTimeout(timer);
        reject(new ZinxError("connect_failed", `${url}: ${e.message}`));
      }
    });
    socket.on("close", () => {
      if (open) transport.onClose(lastError ? `TCP connection closed (${lastError.message})` : "TCP connection closed");
    });
  });
}

registerDialer("ws", dialWs);
registerDialer("wss", dialWs);
registerDialer("tcp", dialTcp);
