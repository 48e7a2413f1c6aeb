// The few Node and `ws` declarations src/node.ts uses, so that the build
// needs no @types packages (TypeScript is the only dev dependency).

declare module "node:net" {
  interface Socket {
    setNoDelay(noDelay?: boolean): this;
    write(data: Uint8Array): boolean;
    end(): this;
    destroy(): this;
    on(event: "connect" | "close", listener: () => void): this;
    on(event: "data", listener: (data: Uint8Array) => void): this;
    on(event: "error", listener: (error: Error) => void): this;
  }
  function createConnection(options: { host: string; port: number }): Socket;
}

declare module "ws" {
  const WebSocket: unknown;
  export { WebSocket };
  export default WebSocket;
}
