// The one error type the SDK rejects and throws with.

/**
 * Codes the SDK itself uses (the gate's error frames bring their own, such
 * as `bad_payload`, `unknown_msg_id`, `no_live_node`, `handler_error`).
 */
export type ClientErrorCode =
  /** The request got no answer within its timeout. */
  | "timeout"
  /** The connection dropped and the session could not be resumed: the
   * requests of the old session will never be answered. */
  | "session_lost"
  /** The client was closed (by `close()` or after giving up reconnecting). */
  | "closed"
  /** Too many frames queued while disconnected. */
  | "queue_full"
  /** An answer or push that is not the JSON it should be. */
  | "bad_answer"
  /** No gate could be reached (initial connect). */
  | "connect_failed"
  /** A URL scheme this runtime cannot dial. */
  | "unsupported_url"
  /** The gate sent a frame longer than `maxFrameLen` (the connection is
   * closed and reconnected). */
  | "bad_frame"
  /** An `on` handler, an event listener or an `accept` function threw. */
  | "handler_threw";

/**
 * An error of a request or of the client.
 *
 * `code` is machine-readable: the gate's code for an error frame
 * (`bad_payload`, `unknown_msg_id`, ...) or one of {@link ClientErrorCode}.
 * `msgId` is the msg id of the request it concerns, when there is one.
 */
export class ZinxError extends Error {
  /** Machine-readable code. */
  readonly code: string;
  /** The msg id of the request or message concerned, if any. */
  readonly msgId: number | undefined;

  constructor(code: string, message: string, msgId?: number) {
    super(message);
    this.name = "ZinxError";
    this.code = code;
    this.msgId = msgId;
  }
}
