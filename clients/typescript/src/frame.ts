// The zinx wire frame: msg_id (u32 big-endian), len (u32 big-endian), then
// `len` bytes of data. Encoding is one allocation per frame; decoding is a
// stream decoder because a transport delivers bytes, not frames: one frame
// may span several WebSocket messages or TCP reads, and one of them may
// hold several frames.

/** Length of a frame header: msg_id and len, 4 bytes each. */
export const HEADER_LEN = 8;

/** The zinx heartbeat msg id; the gate swallows it, we ignore it. */
export const HEARTBEAT_MSG_ID = 99999;
/** Session resume: HELLO, its answer, from both sides. */
export const HELLO_MSG_ID = 99990;
/** Session resume: the client acknowledges what it received. */
export const ACK_MSG_ID = 99991;
/** Session resume: the gate asks the client to move to another gate. */
export const MOVE_MSG_ID = 99992;
/** Session resume: the client ends its session for good. */
export const BYE_MSG_ID = 99993;
/** First msg id reserved for control frames (HELLO). */
export const CONTROL_FIRST = 99990;
/** Last msg id reserved for control frames. */
export const CONTROL_LAST = 99998;

/** One zinx frame. */
export interface Frame {
  /** Its msg id. */
  readonly msgId: number;
  /** Its data (may be empty). */
  readonly data: Uint8Array;
}

/** Whether a frame from the gate is a heartbeat or a control frame, which
 * the session-resume count (`received`) leaves out. */
export function isUncounted(msgId: number): boolean {
  return msgId === HEARTBEAT_MSG_ID || (msgId >= CONTROL_FIRST && msgId <= CONTROL_LAST);
}

/** The bytes of one frame. */
export function encodeFrame(msgId: number, data: Uint8Array): Uint8Array {
  if (!Number.isInteger(msgId) || msgId < 0 || msgId > 0xffffffff) {
    throw new RangeError(`msg id ${msgId} is not a u32`);
  }
  const out = new Uint8Array(HEADER_LEN + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, msgId);
  view.setUint32(4, data.length);
  out.set(data, HEADER_LEN);
  return out;
}

/** A frame announced longer than the decoder accepts. */
export class FrameTooLong extends Error {
  constructor(readonly msgId: number, readonly len: number, readonly max: number) {
    super(`frame of msg ${msgId} announces ${len} bytes, more than the limit of ${max}`);
    this.name = "FrameTooLong";
  }
}

/**
 * Stream decoder: chunks of bytes in, whole frames out, in order.
 *
 * Keeps at most one partial frame. A header announcing more than
 * `maxFrameLen` bytes throws {@link FrameTooLong} (the connection is then
 * useless: the stream cannot be resynchronised), so a broken or hostile
 * peer never makes it buffer without bound.
 */
export class FrameDecoder {
  private buf: Uint8Array = new Uint8Array(0);
  private start = 0;
  private end = 0;

  constructor(private readonly maxFrameLen: number = 16 * 1024 * 1024) {}

  /** Bytes held for a frame not complete yet. */
  get buffered(): number {
    return this.end - this.start;
  }

  /** Feeds a chunk; returns the frames it completed. */
  push(chunk: Uint8Array): Frame[] {
    this.append(chunk);
    const frames: Frame[] = [];
    while (this.end - this.start >= HEADER_LEN) {
      const view = new DataView(this.buf.buffer, this.buf.byteOffset + this.start, HEADER_LEN);
      const msgId = view.getUint32(0);
      const len = view.getUint32(4);
      if (len > this.maxFrameLen) throw new FrameTooLong(msgId, len, this.maxFrameLen);
      if (this.end - this.start < HEADER_LEN + len) break;
      const from = this.start + HEADER_LEN;
      // A copy, so that a frame kept by the application never pins (or
      // sees) the decoder's buffer.
      frames.push({ msgId, data: this.buf.slice(from, from + len) });
      this.start = from + len;
    }
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
    }
    return frames;
  }

  /** Forgets a partial frame (a new connection starts a new stream). */
  reset(): void {
    this.start = 0;
    this.end = 0;
  }

  private append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.end + chunk.length > this.buf.length) {
      const held = this.end - this.start;
      const need = held + chunk.length;
      if (need <= this.buf.length && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        const grown = new Uint8Array(Math.max(need, this.buf.length * 2, 4096));
        grown.set(this.buf.subarray(this.start, this.end));
        this.buf = grown;
      }
      this.start = 0;
      this.end = held;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }
}
