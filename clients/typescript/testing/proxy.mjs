// A TCP proxy that tests cut: it forwards loopback connections to a gate
// port (TCP zinx or WebSocket alike, it only moves bytes) and can drop every
// connection at once, like a network that goes away, or hold what the
// client sends (so that a request never reaches the gate before a cut).

import { createConnection, createServer } from "node:net";

export async function startProxy(targetPort) {
  const pairs = new Set();
  let holding = false;
  const server = createServer((client) => {
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
    client.on("data", (d) => {
      if (!holding) upstream.write(d);
    });
    upstream.on("data", (d) => client.write(d));
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const port = server.address().port;
  return {
    port,
    /** Connections open through the proxy. */
    get open() {
      return pairs.size;
    },
    /** Drops every connection now, both ways, with a reset. */
    cut() {
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }
      pairs.clear();
    },
    /** While on, bytes from clients are dropped instead of forwarded. */
    hold(on) {
      holding = on;
    },
    close() {
      this.cut();
      return new Promise((ok) => server.close(ok));
    },
  };
}
