// Compile-time checks of the typed API (`npm run build` type-checks this
// file and emits nothing): the generated descriptors carry the message and
// answer types; wrong bodies and wrong handler uses do not compile.

import { ZinxClient, defineMessage, type MessageType } from "zinx-cluster-client";
import { Chat, Delivery, Login, Stats, type Answer } from "zinx-cluster-client/generated/demo";

declare const c: ZinxClient;

type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends <T>() => T extends Y ? 1 : 2 ? true : false;
const assertType = <T extends true>(_: T) => {};

export async function typed(): Promise<void> {
  const answer = await c.request(Login, { name: "alice" });
  assertType<Equal<typeof answer, Answer>>(true);
  const ok: boolean = answer.ok;
  void ok;

  // @ts-expect-error: a Login has a `name`, not a `user`
  await c.request(Login, { user: "alice" });
  // @ts-expect-error: a Chat needs `to` and `text`
  c.send(Chat, { text: "hi" });

  c.on(Delivery, (d) => {
    assertType<Equal<typeof d, Delivery>>(true);
    // @ts-expect-error: a Delivery has no `to`
    void d.to;
  });

  const stats = await c.request(Stats.id, {});
  void stats; // any: untyped by msg id
  const typedStats = await c.request<Stats>(Stats.id, {});
  assertType<Equal<typeof typedStats, Stats>>(true);

  const bytes = await c.request(5, new Uint8Array([1]), { raw: true });
  assertType<Equal<typeof bytes, Uint8Array>>(true);

  // Hand-declared messages, raw codec.
  const Echo: MessageType<Uint8Array, Uint8Array> = defineMessage<Uint8Array, Uint8Array>(5, "Echo", "raw");
  const echoed = await c.request(Echo, new Uint8Array([1, 2]));
  assertType<Equal<typeof echoed, Uint8Array>>(true);
  // @ts-expect-error: a raw message's body is bytes
  await c.request(Echo, { not: "bytes" });

  c.onEvent("resume_failed", (e) => {
    const reason: string = e.reason;
    void reason;
  });
  // @ts-expect-error: no such event
  c.onEvent("resumd", () => {});
}
