// Protocol unit tests: the client's side of session resume (HELLO, replay,
// ACK, MOVE, BYE), matching, timeouts, heartbeats and reconnects, against a
// scripted fake gate (FakeGate) that plays the gate's part of PROTOCOL.md.
// The same behaviours against the real demo are in DemoTests and
// ResumeTests.

using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using ZinxCluster.Client.Wire;

namespace ZinxCluster.Client.Tests
{
    /// <summary>Records a client's events, checking each runs on the Poll thread.</summary>
    sealed class Events
    {
        public readonly List<string> Order = new List<string>();
        public readonly List<ReconnectingInfo> Reconnecting = new List<ReconnectingInfo>();
        public readonly List<ZinxException> Errors = new List<ZinxException>();
        public ConnectedInfo Connected;
        public ResumedInfo Resumed;
        public MovedInfo Moved;
        public ResumeFailedInfo Failed;
        public ClosedInfo Closed;

        public Events(ZinxClient c, Pump p)
        {
            c.Connected += i =>
            {
                p.OnPumpThread("Connected");
                Connected = i;
                Order.Add("connected");
            };
            c.Reconnecting += i =>
            {
                p.OnPumpThread("Reconnecting");
                Reconnecting.Add(i);
                Order.Add("reconnecting");
            };
            c.Moved += i =>
            {
                p.OnPumpThread("Moved");
                Moved = i;
                Order.Add("moved");
            };
            c.Resumed += i =>
            {
                p.OnPumpThread("Resumed");
                Resumed = i;
                Order.Add("resumed");
            };
            c.ResumeFailed += i =>
            {
                p.OnPumpThread("ResumeFailed");
                Failed = i;
                Order.Add("resume_failed:" + i.Reason);
            };
            c.Closed += i =>
            {
                p.OnPumpThread("Closed");
                Closed = i;
                Order.Add("closed");
            };
            c.Error += e =>
            {
                p.OnPumpThread("Error");
                Errors.Add(e);
                Order.Add("error:" + e.Code);
            };
        }
    }

    static class ProtocolTests
    {
        static ZinxOptions Fast(params string[] urls)
        {
            return new ZinxOptions
            {
                Urls = new List<string>(urls),
                ReconnectMinDelayMs = 20,
                ReconnectMaxDelayMs = 200,
                HeartbeatIntervalMs = 0,
                HelloTimeoutMs = 3000,
                RequestTimeoutMs = 5000,
            };
        }

        static byte[] B(string s)
        {
            return Encoding.UTF8.GetBytes(s);
        }

        static string S(byte[] b)
        {
            return Encoding.UTF8.GetString(b);
        }

        /// <summary>Waits for connection <paramref name="index"/> and completes its handshake.</summary>
        static async Task<FakeConn> Establish(Pump p, FakeGate gate, ZinxClient c, Events ev, string token, int index = 0)
        {
            if (c.Options.Resume)
            {
                await p.Until(() => gate.Count > index && gate[index].Has(Control.Hello), "HELLO on connection " + index);
                gate[index].Send(Control.Hello, "{\"token\":\"" + token + "\",\"window_ms\":30000}");
            }
            else
            {
                await p.Until(() => gate.Count > index, "connection " + index);
            }
            await p.Until(() => ev.Connected != null, "Connected");
            return gate[index];
        }

        public static void Register(Suite s)
        {
            s.Add("protocol: a new session sends HELLO {} first and nothing else before its answer", async p =>
            {
                using (var gate = new FakeGate())
                {
                    var c = p.Connect(Fast(gate.Url));
                    var ev = new Events(c, p);
                    var answer = c.Request(5, B("first"));
                    await p.Until(() => gate.Count == 1 && gate[0].Has(Control.Hello), "HELLO");
                    var g = gate[0];
                    Assert.Equal("{}", g.Text(Control.Hello), "HELLO of a new session");
                    await p.Delay(100);
                    Assert.Equal(1, g.Frames.Count, "frames before the HELLO answer");
                    Assert.True(!c.IsReady, "not ready before the HELLO answer");
                    g.Send(Control.Hello, "{\"token\":\"t1\",\"window_ms\":30000}");
                    await p.Until(() => ev.Connected != null, "Connected");
                    Assert.True(ev.Connected.Resumable, "resumable");
                    Assert.Equal("t1", c.ResumeToken, "token");
                    await p.Until(() => g.Has(5), "the queued request");
                    g.Send(5, "answer");
                    Assert.Equal("answer", S(await answer), "answer");
                    p.OnPumpThread("the continuation of a request");
                }
            });

            s.Add("protocol: ACK every 64 counted frames and every second; heartbeats and control frames do not count", async p =>
            {
                using (var gate = new FakeGate())
                {
                    var c = p.Connect(Fast(gate.Url));
                    var ev = new Events(c, p);
                    var pushes = 0;
                    c.On(3, data => pushes++);
                    var g = await Establish(p, gate, c, ev, "t1");
                    for (var i = 0; i < 64; i++)
                    {
                        g.Send(3, "{\"i\":" + i + "}");
                        if (i % 10 == 0)
                        {
                            g.Send(Control.Heartbeat, "ping");
                            g.Send(Control.Move + 5, "{}");
                        }
                    }
                    await p.Until(() => g.Has(Control.Ack), "the ACK after 64 frames", 2000);
                    Assert.Equal("{\"received\":64}", g.Text(Control.Ack), "ACK after 64 frames");
                    await p.Until(() => pushes == 64, "64 pushes");
                    g.Send(3, "{}");
                    g.Send(3, "{}");
                    g.Send(3, "{}");
                    await p.Until(() => g.Of(Control.Ack).Count == 2, "the periodic ACK", 2500);
                    Assert.Equal("{\"received\":67}", S(g.Of(Control.Ack)[1].Data), "periodic ACK");
                    Assert.Equal(67L, c.ReceivedCount, "received count");
                }
            });

            s.Add("protocol: a dropped connection resumes: HELLO with token and count, replay, waiting requests answered", async p =>
            {
                using (var gate = new FakeGate())
                {
                    var c = p.Connect(Fast(gate.Url));
                    var ev = new Events(c, p);
                    var pushes = new List<string>();
                    c.On(3, data =>
                    {
                        p.OnPumpThread("a push handler");
                        pushes.Add(S(data));
                        ev.Order.Add("push");
                    });
                    var g0 = await Establish(p, gate, c, ev, "t1");
                    var request = c.Request(1, B("login"));
                    await p.Until(() => g0.Has(1), "the request");
                    for (var i = 0; i < 5; i++)
                    {
                        g0.Send(3, "p" + i);
                    }
                    await p.Until(() => pushes.Count == 5, "5 pushes");
                    g0.Close();
                    await p.Until(() => ev.Reconnecting.Count == 1, "Reconnecting");
                    Assert.Equal(1, ev.Reconnecting[0].Attempt, "first attempt");
                    Assert.Equal(gate.Url, ev.Reconnecting[0].Url, "the same gate first");
                    c.Send(7, B("queued while away"));
                    await p.Until(() => gate.Count == 2 && gate[1].Has(Control.Hello), "the resuming HELLO");
                    var g1 = gate[1];
                    Assert.Equal("{\"token\":\"t1\",\"received\":5}", g1.Text(Control.Hello), "resuming HELLO");
                    await p.Delay(100);
                    Assert.Equal(1, g1.Frames.Count, "frames before the HELLO answer");
                    g1.Send(Control.Hello, "{\"resumed\":true,\"token\":\"t2\",\"window_ms\":30000,\"replayed\":2}");
                    g1.Send(3, "p5");
                    g1.Send(3, "p6");
                    g1.Send(1, "welcome");
                    Assert.Equal("welcome", S(await request), "the answer of the request sent before the drop");
                    await p.Until(() => pushes.Count == 7, "7 pushes");
                    Assert.Equal("p0,p1,p2,p3,p4,p5,p6", string.Join(",", pushes), "pushes in order, once each");
                    Assert.Equal(2, ev.Resumed.Replayed, "replayed");
                    Assert.Equal(gate.Url, ev.Resumed.Url, "resumed on");
                    Assert.Equal(null, ev.Failed, "no ResumeFailed");
                    Assert.Equal("connected,push,push,push,push,push,reconnecting,resumed,push,push",
                        string.Join(",", ev.Order), "event order");
                    Assert.Equal("t2", c.ResumeToken, "the new token");
                    Assert.Equal(8L, c.ReceivedCount, "received count across the resume");
                    await p.Until(() => g1.Has(7), "the message queued while away");
                    Assert.Equal(Control.Hello, g1.Frames[0].MsgId, "HELLO first");
                    Assert.Equal("queued while away", g1.Text(7), "queued message");
                }
            });

            s.Add("protocol: a refused resume is a fresh session: ResumeFailed, requests fail session_lost, queue dropped", async p =>
            {
                using (var gate = new FakeGate())
                {
                    var c = p.Connect(Fast(gate.Url));
                    var ev = new Events(c, p);
                    var g0 = await Establish(p, gate, c, ev, "t1");
                    var sent = c.Request(1, B("before"));
                    await p.Until(() => g0.Has(1), "the request");
                    g0.Send(3, "x");
                    g0.Send(3, "y");
                    await p.Until(() => c.ReceivedCount == 2, "2 frames");
                    g0.Close();
                    await p.Until(() => ev.Reconnecting.Count == 1, "Reconnecting");
                    c.Send(7, B("queued"));
                    var queued = c.Request(8, B("queued request"));
                    await p.Until(() => gate.Count == 2 && gate[1].Has(Control.Hello), "the resuming HELLO");
                    var g1 = gate[1];
                    Assert.Equal("{\"token\":\"t1\",\"received\":2}", g1.Text(Control.Hello), "resuming HELLO");
                    g1.Send(Control.Hello, "{\"resumed\":false,\"reason\":\"expired\",\"token\":\"t3\",\"window_ms\":30000}");
                    await p.Until(() => ev.Failed != null, "ResumeFailed");
                    Assert.Equal("expired", ev.Failed.Reason, "reason");
                    Assert.Equal(2, ev.Failed.Rejected, "requests rejected: the one sent and the one queued");
                    Assert.Equal(1, ev.Failed.Dropped, "sends dropped");
                    Assert.Equal(ZinxException.SessionLost, (await Assert.Fails(sent, "sent request")).Code, "sent request");
                    Assert.Equal(ZinxException.SessionLost, (await Assert.Fails(queued, "queued request")).Code, "queued request");
                    Assert.Equal("t3", c.ResumeToken, "the fresh session's token");
                    Assert.Equal(0L, c.ReceivedCount, "count restarts");
                    var again = c.Request(1, B("again"));
                    await p.Until(() => g1.Has(1), "a request on the fresh session");
                    Assert.True(!g1.Has(7) && !g1.Has(8), "nothing of the lost session was sent");
                    g1.Send(1, "ok");
                    Assert.Equal("ok", S(await again), "answer on the fresh session");
                    g1.Close();
                    await p.Until(() => gate.Count == 3 && gate[2].Has(Control.Hello), "the next HELLO");
                    Assert.Equal("{\"token\":\"t3\",\"received\":1}", gate[2].Text(Control.Hello), "HELLO of the fresh session");
                }
            });

            s.Add("protocol: MOVE goes to the next URL and resumes there", async p =>
            {
                using (var a = new FakeGate())
                using (var b = new FakeGate())
                {
                    var c = p.Connect(Fast(a.Url, b.Url));
                    var ev = new Events(c, p);
                    var ga = await Establish(p, a, c, ev, "ta");
                    ga.Send(3, "1");
                    ga.Send(3, "2");
                    ga.Send(3, "3");
                    ga.Send(Control.Move, "{\"reason\":\"draining\"}");
                    await p.Until(() => b.Count == 1 && b[0].Has(Control.Hello), "HELLO on the next gate");
                    Assert.Equal("{\"token\":\"ta\",\"received\":3}", b[0].Text(Control.Hello), "HELLO after MOVE");
                    Assert.Equal("draining", ev.Moved.Reason, "Moved reason");
                    Assert.Equal("connected,moved,reconnecting", string.Join(",", ev.Order), "events");
                    Assert.Equal("move: draining", ev.Reconnecting[0].Reason, "reason");
                    Assert.Equal(b.Url, ev.Reconnecting[0].Url, "next URL");
                    Assert.Equal(0, ev.Reconnecting[0].DelayMs, "no delay after MOVE");
                    b[0].Send(Control.Hello, "{\"resumed\":true,\"token\":\"tb\",\"window_ms\":30000,\"replayed\":0}");
                    await p.Until(() => ev.Resumed != null, "Resumed");
                    await p.Until(() => ga.Eof, "the moved-from connection closed");
                    Assert.Equal(1, a.Count, "no reconnect to the draining gate");
                }
            });

            s.Add("protocol: Close() sends BYE, closes, fails waiting requests with closed", async p =>
            {
                using (var gate = new FakeGate())
                {
                    var c = p.Connect(Fast(gate.Url));
                    var ev = new Events(c, p);
                    var g = await Establish(p, gate, c, ev, "t1");
                    var waiting = c.Request(5, B("never answered"));
                    await p.Until(() => g.Has(5), "the request");
                    c.Close();
                    Assert.True(g.Has(Control.Bye), "BYE written before Close() returns");
                    Assert.Equal(Control.Bye, g.Frames[g.Frames.Count - 1].MsgId, "BYE last");
                    await p.Until(() => g.Eof, "the connection closed");
                    await p.Until(() => ev.Closed != null, "Closed");
                    Assert.True(ev.Closed.ByClient, "closed by the client");
                    Assert.Equal(ZinxException.Closed, (await Assert.Fails(waiting, "waiting request")).Code, "waiting request");
                    Assert.Equal(ZinxException.Closed, (await Assert.Fails(c.Request(5, B("late")), "request after Close")).Code, "after Close");
                    Assert.True(c.IsClosed, "IsClosed");
                }
            });

            s.Add("protocol: a gate without resume (HELLO gets unknown_msg_id): works, no ACK, reconnect is ResumeFailed(not_resumable)", async p =>
            {
                using (var gate = new FakeGate())
                {
                    var c = p.Connect(Fast(gate.Url));
                    var ev = new Events(c, p);
                    await p.Until(() => gate.Count == 1 && gate[0].Has(Control.Hello), "HELLO");
                    var g0 = gate[0];
                    g0.Send(0, "{\"msg_id\":99990,\"code\":\"unknown_msg_id\",\"error\":\"no route for msg_id 99990\"}");
                    await p.Until(() => ev.Connected != null, "Connected");
                    Assert.True(!ev.Connected.Resumable, "not resumable");
                    Assert.Equal(null, c.ResumeToken, "no token");
                    var pushes = 0;
                    c.On(3, d => pushes++);
                    for (var i = 0; i < 70; i++)
                    {
                        g0.Send(3, "x");
                    }
                    var sent = c.Request(5, B("x"));
                    await p.Until(() => pushes == 70 && g0.Has(5), "70 pushes and the request");
                    await p.Delay(1200);
                    Assert.True(!g0.Has(Control.Ack), "no ACK to a gate without resume");
                    Assert.Equal(0, ev.Errors.Count, "the HELLO's error answer is not an application error");
                    g0.Close();
                    await p.Until(() => gate.Count == 2 && gate[1].Has(Control.Hello), "HELLO on reconnect");
                    Assert.Equal("{}", gate[1].Text(Control.Hello), "a new-session HELLO");
                    gate[1].Send(0, "{\"msg_id\":99990,\"code\":\"unknown_msg_id\",\"error\":\"no route\"}");
                    await p.Until(() => ev.Failed != null, "ResumeFailed");
                    Assert.Equal(ResumeFailedInfo.NotResumable, ev.Failed.Reason, "reason");
                    Assert.Equal(1, ev.Failed.Rejected, "requests rejected");
                    Assert.Equal(ZinxException.SessionLost, (await Assert.Fails(sent, "request of the lost session")).Code, "code");
                }
            });

            s.Add("protocol: resume off: no HELLO; a reconnect is ResumeFailed(not_resumable)", async p =>
            {
                using (var gate = new FakeGate())
                {
                    var o = Fast(gate.Url);
                    o.Resume = false;
                    var c = p.Connect(o);
                    var ev = new Events(c, p);
                    var sent = c.Request(5, B("x"));
                    var g0 = await Establish(p, gate, c, ev, null);
                    await p.Until(() => g0.Has(5), "the request");
                    Assert.Equal(5u, g0.Frames[0].MsgId, "the request is the first frame");
                    Assert.True(!ev.Connected.Resumable, "not resumable");
                    g0.Close();
                    await p.Until(() => ev.Failed != null, "ResumeFailed");
                    Assert.Equal(ResumeFailedInfo.NotResumable, ev.Failed.Reason, "reason");
                    Assert.Equal(ZinxException.SessionLost, (await Assert.Fails(sent, "request")).Code, "code");
                    // Without HELLO the session is ready once TCP connects, maybe
                    // before the fake gate's accept thread registered the connection.
                    await p.Until(() => gate.Count == 2, "the second connection");
                    var probe = c.Request(5, B("probe"));
                    await p.Until(() => gate[1].Has(5), "a request on the new connection");
                    Assert.Equal(5u, gate[1].Frames[0].MsgId, "no HELLO: the request is the first frame");
                    gate[1].Send(5, "probed");
                    Assert.Equal("probed", S(await probe), "the answer on the new session");
                }
            });

            s.Add("protocol: a timed-out request fails with timeout and its late answer does not answer the next one", async p =>
            {
                using (var gate = new FakeGate())
                {
                    var o = Fast(gate.Url);
                    o.RequestTimeoutMs = 300;
                    var c = p.Connect(o);
                    var ev = new Events(c, p);
                    var g = await Establish(p, gate, c, ev, "t");
                    var first = c.Request(5, B("a"));
                    await p.Until(() => g.Has(5), "the first request");
                    var e = await Assert.Fails(first, "first request");
                    Assert.Equal(ZinxException.Timeout, e.Code, "code");
                    Assert.Equal(5u, e.MsgId, "msg id");
                    var second = c.Request(5, B("b"));
                    await p.Until(() => g.Of(5).Count == 2, "the second request");
                    g.Send(5, "late answer of a");
                    g.Send(5, "answer of b");
                    Assert.Equal("answer of b", S(await second), "the second request's own answer");
                }
            });

            s.Add("protocol: an error frame fails the oldest waiting request of its msg_id; others go to Error", async p =>
            {
                using (var gate = new FakeGate())
                {
                    var c = p.Connect(Fast(gate.Url));
                    var ev = new Events(c, p);
                    var g = await Establish(p, gate, c, ev, "t");
                    var r1 = c.Request<Demo.Answer>(3, new Demo.Chat { to = "bob", text = "1" });
                    var r2 = c.Request<Demo.Answer>(3, new Demo.Chat { to = "bob", text = "2" });
                    ZinxException viaCallback = null;
                    c.Request<Demo.Answer>(4, new Demo.Shout { text = "x" }, a => { }, err =>
                    {
                        p.OnPumpThread("an error callback");
                        viaCallback = err;
                    });
                    await p.Until(() => g.Of(3).Count == 2 && g.Has(4), "the requests");
                    Assert.Equal("{\"to\":\"bob\",\"text\":\"1\"}", g.Text(3), "JSON payload");
                    g.Send(0, "{\"msg_id\":3,\"code\":\"bad_payload\",\"error\":\"nope\"}");
                    g.Send(3, "{\"ok\":true}");
                    g.Send(0, "{\"msg_id\":4,\"code\":\"no_live_node\",\"error\":\"none\"}");
                    g.Send(0, "{\"msg_id\":42,\"code\":\"unknown_msg_id\",\"error\":\"?\"}");
                    var e1 = await Assert.Fails(r1, "first request");
                    Assert.Equal("bad_payload", e1.Code, "code");
                    Assert.Equal(3u, e1.MsgId, "msg id");
                    Assert.Equal("nope", e1.Message, "message");
                    Assert.True((await r2).ok, "the second request gets the answer");
                    await p.Until(() => viaCallback != null && ev.Errors.Count == 1, "the error callback and the Error event");
                    Assert.Equal("no_live_node", viaCallback.Code, "callback code");
                    Assert.Equal("unknown_msg_id", ev.Errors[0].Code, "unmatched error code");
                    Assert.Equal(42u, ev.Errors[0].MsgId, "unmatched error msg id");
                }
            });

            s.Add("protocol: frames split across reads and merged in one read are all delivered", async p =>
            {
                using (var gate = new FakeGate())
                {
                    var o = Fast(gate.Url);
                    o.Resume = false;
                    var c = p.Connect(o);
                    var ev = new Events(c, p);
                    var got = new List<string>();
                    c.On(3, d => got.Add(S(d)));
                    var g = await Establish(p, gate, c, ev, null);
                    var one = Frame.Encode(3, B("split"));
                    g.SendBytes(one, 0, 3);
                    await p.Delay(30);
                    g.SendBytes(one, 3, 6);
                    await p.Delay(30);
                    g.SendBytes(one, 9, one.Length - 9);
                    var two = new List<byte>(Frame.Encode(3, B("merged-1")));
                    two.AddRange(Frame.Encode(3, new byte[0]));
                    two.AddRange(Frame.Encode(3, B("merged-2")));
                    g.SendBytes(two.ToArray(), 0, two.Count);
                    await p.Until(() => got.Count == 4, "4 pushes");
                    Assert.Equal("split,merged-1,,merged-2", string.Join(",", got), "pushes");
                }
            });

            s.Add("protocol: reconnecting backs off over the URLs and gives up after MaxReconnectAttempts", async p =>
            {
                var dead = DeadPort();
                var o = Fast("tcp://127.0.0.1:" + dead, "tcp://127.0.0.1:" + dead + "/second");
                o.MaxReconnectAttempts = 2;
                o.ReconnectMinDelayMs = 10;
                var c = p.Connect(o);
                var ev = new Events(c, p);
                var queued = c.Request(5, B("never sent"));
                await p.Until(() => ev.Closed != null, "Closed");
                Assert.Equal(2, ev.Reconnecting.Count, "reconnect attempts");
                Assert.Equal(1, ev.Reconnecting[0].Attempt, "attempt 1");
                Assert.Equal(2, ev.Reconnecting[1].Attempt, "attempt 2");
                Assert.Equal("tcp://127.0.0.1:" + dead + "/second", ev.Reconnecting[0].Url, "the next URL after a failure");
                Assert.True(!ev.Closed.ByClient, "closed because reconnecting gave up");
                Assert.Equal(ZinxException.Closed, (await Assert.Fails(queued, "queued request")).Code, "code");
            });

            s.Add("protocol: a gate that drops every connection at once gets growing delays, not a tight loop", async p =>
            {
                using (var gate = new FakeGate { DropOnAccept = true })
                {
                    var o = Fast(gate.Url);
                    o.Resume = false;
                    o.ReconnectMinDelayMs = 20;
                    o.ReconnectMaxDelayMs = 10000;
                    var c = p.Connect(o);
                    var ev = new Events(c, p);
                    await p.Until(() => ev.Reconnecting.Count >= 5, "5 reconnect attempts");
                    for (var i = 0; i < 5; i++)
                    {
                        Assert.Equal(i + 1, ev.Reconnecting[i].Attempt, "attempt numbers keep growing");
                    }
                    Assert.True(ev.Reconnecting[4].DelayMs >= 20 * 16 / 2, "the fifth delay doubled four times: " + ev.Reconnecting[4].DelayMs + " ms");
                }
            });

            s.Add("protocol: heartbeats go out every interval; the gate's heartbeats are not pushes and do not count", async p =>
            {
                using (var gate = new FakeGate())
                {
                    var o = Fast(gate.Url);
                    o.HeartbeatIntervalMs = 100;
                    var c = p.Connect(o);
                    var ev = new Events(c, p);
                    var unhandled = new List<uint>();
                    c.Unhandled += (id, d) => unhandled.Add(id);
                    var g = await Establish(p, gate, c, ev, "t");
                    await p.Until(() => g.Of(Control.Heartbeat).Count >= 3, "3 heartbeats", 2000);
                    Assert.Equal("ping", g.Text(Control.Heartbeat), "heartbeat payload");
                    g.Send(Control.Heartbeat, "ping");
                    g.Send(Control.Heartbeat, "ping");
                    g.Send(9, "{}");
                    await p.Until(() => unhandled.Count == 1, "the push");
                    await p.Delay(50);
                    Assert.Equal(9u, unhandled[0], "only the push is delivered");
                    Assert.Equal(1L, c.ReceivedCount, "heartbeats not counted");
                }
            });

            s.Add("protocol: callbacks run on the thread that calls Poll(), here a dedicated game thread", async p =>
            {
                using (var gate = new FakeGate())
                {
                    var c = ZinxClient.Connect(Fast(gate.Url));
                    var seen = new List<string>();
                    var wrong = new List<string>();
                    var gameThread = 0;
                    var stop = false;
                    Action<string> note = what =>
                    {
                        lock (seen)
                        {
                            seen.Add(what);
                            if (Thread.CurrentThread.ManagedThreadId != gameThread)
                            {
                                wrong.Add(what + " on thread " + Thread.CurrentThread.ManagedThreadId);
                            }
                        }
                    };
                    c.Connected += i => note("connected");
                    c.Reconnecting += i => note("reconnecting");
                    c.Resumed += i => note("resumed");
                    c.Error += e => note("error");
                    c.Closed += i => note("closed");
                    c.On(3, d => note("push"));
                    var game = new Thread(() =>
                    {
                        gameThread = Thread.CurrentThread.ManagedThreadId;
                        c.Request(5, B("cb"), d => note("callback"), e => note("callback error"));
                        c.Request(5, B("task")).ContinueWith(t => note("task continuation"), TaskContinuationOptions.ExecuteSynchronously);
                        while (!Volatile.Read(ref stop))
                        {
                            c.Poll();
                            Thread.Sleep(1);
                        }
                        c.Poll();
                    }) { IsBackground = true, Name = "game" };
                    game.Start();
                    Func<string, bool> has = what =>
                    {
                        lock (seen)
                        {
                            return seen.Contains(what);
                        }
                    };
                    try
                    {
                        await p.Until(() => gate.Count == 1 && gate[0].Has(Control.Hello), "HELLO");
                        var g = gate[0];
                        g.Send(Control.Hello, "{\"token\":\"t\",\"window_ms\":1000}");
                        await p.Until(() => g.Of(5).Count == 2, "the requests");
                        g.Send(5, "a");
                        g.Send(5, "b");
                        g.Send(3, "push");
                        g.Send(0, "{\"msg_id\":77,\"code\":\"x\",\"error\":\"y\"}");
                        g.Close();
                        await p.Until(() => gate.Count == 2 && gate[1].Has(Control.Hello), "the resuming HELLO");
                        gate[1].Send(Control.Hello, "{\"resumed\":true,\"token\":\"t2\",\"window_ms\":1000,\"replayed\":0}");
                        await p.Until(() => has("resumed"), "Resumed");
                        c.Close();
                        await p.Until(() => has("closed"), "Closed");
                    }
                    finally
                    {
                        Volatile.Write(ref stop, true);
                        game.Join(2000);
                        c.Close();
                    }
                    foreach (var what in new[] { "connected", "callback", "task continuation", "push", "error", "reconnecting", "resumed", "closed" })
                    {
                        Assert.True(has(what), what + " was delivered");
                    }
                    Assert.True(gameThread != p.ThreadId, "the game thread is not the test thread");
                    Assert.Equal(0, wrong.Count, "callbacks off the Poll thread: " + string.Join("; ", wrong));
                }
            });
        }

        static int DeadPort()
        {
            var l = new TcpListener(IPAddress.Loopback, 0);
            l.Start();
            var port = ((IPEndPoint)l.LocalEndpoint).Port;
            l.Stop();
            return port;
        }
    }
}
