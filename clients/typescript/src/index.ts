// zinx-cluster-client: the SDK for zinx-cluster gates. This entry point has
// no dependency and runs wherever a browser-style `WebSocket` exists
// (browsers, Cocos Creator, Deno, Node >= 22); in Node, the package's
// "node" export (`./node.js`) adds `ws` for Node 20 and `tcp://` URLs.

export { ZinxClient } from "./client.js";
export type {
  Body,
  ClientEventName,
  ClientEvents,
  ClientOptions,
  ClientState,
  HandlerOptions,
  RequestOptions,
} from "./client.js";
export { ZinxError } from "./errors.js";
export type { ClientErrorCode } from "./errors.js";
export { defineMessage } from "./message.js";
export type { Codec, MessageType } from "./message.js";
export {
  ACK_MSG_ID,
  BYE_MSG_ID,
  FrameDecoder,
  FrameTooLong,
  HEARTBEAT_MSG_ID,
  HELLO_MSG_ID,
  MOVE_MSG_ID,
  encodeFrame,
} from "./frame.js";
export type { Frame } from "./frame.js";
export { registerDialer } from "./transport.js";
export type { Dialer, Transport } from "./transport.js";
