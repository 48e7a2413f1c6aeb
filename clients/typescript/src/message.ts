// Typed messages: a descriptor per message type, as the Rust codegen
// writes them (`generated/*.ts`), and the payload codecs.

import { ZinxError } from "./errors.js";

/** How a message's payload is encoded: JSON text, or bytes as they are. */
export type Codec = "json" | "raw";

/**
 * A message type: its msg id, its name and its codec, with two phantom type
 * parameters that only the compiler sees: `T`, the shape of the message,
 * and `A`, the answer a request of it gets (`unknown` when not known).
 *
 * The codegen declares one per Rust `#[derive(Message)]` type, beside an
 * interface of the same name:
 *
 * ```ts
 * export interface Login { name: string; }
 * export const Login: MessageType<Login, Answer> = { id: 1, name: "Login", codec: "json" };
 * ```
 *
 * and the client's typed calls take it in place of a msg id:
 * `await c.request(Login, { name: "alice" })` is an `Answer`.
 */
export interface MessageType<T, A = unknown> {
  /** The msg id it travels on. */
  readonly id: number;
  /** The Rust type's name (for messages and logs). */
  readonly name: string;
  /** Its payload codec. */
  readonly codec: Codec;
  /** Phantom: never set; carries `T` for the compiler. */
  readonly __message?: T;
  /** Phantom: never set; carries `A` for the compiler. */
  readonly __answer?: A;
}

/** Declares a message type by hand (the codegen writes object literals). */
export function defineMessage<T, A = unknown>(id: number, name: string, codec: Codec = "json"): MessageType<T, A> {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new RangeError(`msg id ${id} is not a u32`);
  if (codec !== "json" && codec !== "raw") throw new RangeError(`unknown codec ${String(codec)}`);
  return Object.freeze({ id, name, codec });
}

/** Whether `x` is a message descriptor rather than a msg id. */
export function isMessageType(x: unknown): x is MessageType<unknown, unknown> {
  return typeof x === "object" && x !== null && typeof (x as { id?: unknown }).id === "number";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The payload bytes of a body: a `Uint8Array` as it is; `undefined` as no
 * bytes; anything else as JSON (with the raw codec, a string as its UTF-8).
 */
export function encodeBody(body: unknown, codec: Codec = "json"): Uint8Array {
  if (body instanceof Uint8Array) return body;
  if (body === undefined) return new Uint8Array(0);
  if (codec === "raw") {
    if (typeof body === "string") return encoder.encode(body);
    if (body instanceof ArrayBuffer) return new Uint8Array(body);
    throw new TypeError("a raw message's body is a Uint8Array or a string");
  }
  return encoder.encode(JSON.stringify(body));
}

/** The JSON value of a payload (`undefined` for no bytes). Throws a
 * {@link ZinxError} `bad_answer` when the bytes are not JSON. */
export function decodeJson(data: Uint8Array, msgId: number): unknown {
  if (data.length === 0) return undefined;
  try {
    return JSON.parse(decoder.decode(data));
  } catch (e) {
    throw new ZinxError("bad_answer", `msg ${msgId}: the payload is not JSON (${(e as Error).message})`, msgId);
  }
}
