// Integration tests against a real demo process (test.sh starts it and
// passes its addresses): login, request/answer, pushes between clients,
// error frames, raw echo, heartbeats, Poll() thread affinity, over TCP and
// WebSocket.

using System;
using System.Collections.Generic;
using System.IO;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using Demo;

namespace ZinxCluster.Client.Tests
{
    /// <summary>Where the demo listens (environment set by test.sh).</summary>
    sealed class DemoEnv
    {
        /// <summary>tcp://127.0.0.1:PORT</summary>
        public string Tcp;

        /// <summary>ws://127.0.0.1:PORT/</summary>
        public string Ws;
        public string Admin;
        public int IdleTimeoutMs;

        public static DemoEnv FromEnvironment()
        {
            var tcp = Environment.GetEnvironmentVariable("ZINX_TEST_TCP");
            if (string.IsNullOrEmpty(tcp))
            {
                return null;
            }
            int idle;
            int.TryParse(Environment.GetEnvironmentVariable("ZINX_TEST_IDLE_MS") ?? "", out idle);
            return new DemoEnv
            {
                Tcp = tcp,
                Ws = Environment.GetEnvironmentVariable("ZINX_TEST_WS"),
                Admin = Environment.GetEnvironmentVariable("ZINX_TEST_ADMIN"),
                IdleTimeoutMs = idle,
            };
        }

        public string Url(string transport)
        {
            return transport == "ws" ? Ws : Tcp;
        }

        /// <summary>A counter of the gate's /metrics.</summary>
        public long Metric(string name)
        {
            var request = (HttpWebRequest)WebRequest.Create(Admin + "/metrics");
            request.Timeout = 3000;
            using (var response = request.GetResponse())
            using (var reader = new StreamReader(response.GetResponseStream()))
            {
                var text = reader.ReadToEnd();
                var m = Regex.Match(text, "^" + Regex.Escape(name) + "(\\{[^}]*\\})? (\\d+)", RegexOptions.Multiline);
                if (!m.Success)
                {
                    throw new AssertionException("no metric " + name + " at " + Admin + "/metrics");
                }
                return long.Parse(m.Groups[2].Value);
            }
        }
    }

    static class DemoTests
    {
        static int names;

        /// <summary>A user name no other test uses (a second login of a name kicks the first).</summary>
        public static string Name(string who)
        {
            return who + "-" + Environment.TickCount % 100000 + "-" + Interlocked.Increment(ref names);
        }

        public static ZinxOptions Options(string url)
        {
            return new ZinxOptions
            {
                Urls = new List<string> { url },
                HeartbeatIntervalMs = 500,
                RequestTimeoutMs = 5000,
                ReconnectMinDelayMs = 50,
                ReconnectMaxDelayMs = 500,
            };
        }

        /// <summary>A client, connected and logged in as <paramref name="name"/>.</summary>
        public static async Task<ZinxClient> LoggedIn(Pump p, string url, string name, Events events = null)
        {
            var c = p.Connect(Options(url), name);
            var answer = await c.Request(Messages.Login, new Login { name = name });
            p.OnPumpThread("a login continuation");
            Assert.True(answer.ok, "login of " + name + ": " + answer.error);
            Assert.Equal(name, answer.name, "logged-in name");
            return c;
        }

        public static void Register(Suite s, DemoEnv env)
        {
            foreach (var transport in new[] { "tcp", "ws" })
            {
                var t = transport;
                var other = t == "tcp" ? "ws" : "tcp";
                var url = env.Url(t);

                s.Add("demo/" + t + ": login with a typed request; the session becomes ready", async p =>
                {
                    var c = p.Connect(Options(url));
                    var ev = new Events(c, p);
                    var name = Name("login");
                    var answer = await c.Request(Messages.Login, new Login { name = name });
                    p.OnPumpThread("the continuation of a typed request");
                    Assert.True(answer.ok, "ok");
                    Assert.Equal(name, answer.name, "name");
                    Assert.Equal(null, answer.error, "no error");
                    Assert.True(ev.Connected != null && c.IsReady, "connected");
                    Assert.Equal(url, ev.Connected.Url, "url");
                });

                s.Add("demo/" + t + ": request/answer: numeric JSON, Reply.As, callback", async p =>
                {
                    var c = p.Connect(Options(url));
                    var name = Name("numeric");
                    var login = await c.Request<Answer>(1, new { name = name });
                    Assert.True(login.ok && login.name == name, "numeric login");
                    var joined = await c.Request(Messages.Join.WithAnswer<Reply>(), new Join { room = "r-" + name }).As<Answer>();
                    p.OnPumpThread("the continuation of Reply.As");
                    Assert.True(joined.ok, "join");
                    Answer left = null;
                    c.Request(Messages.Leave, new Leave { room = "r-" + name }, a =>
                    {
                        p.OnPumpThread("a request callback");
                        left = a;
                    });
                    await p.Until(() => left != null, "the leave answer");
                    Assert.True(left.ok, "leave");
                    var stats = await c.Request<Stats>(21, null);
                    Assert.True(stats.node == "im-1" || stats.node == "im-2", "stats from an im node: " + stats.node);
                });

                s.Add("demo/" + t + ": a push from a client on " + other + " to one on " + t + ", and a broadcast", async p =>
                {
                    var aliceName = Name("alice");
                    var bobName = Name("bob");
                    var bob = await LoggedIn(p, url, bobName);
                    var alice = await LoggedIn(p, env.Url(other), aliceName);
                    var deliveries = new List<Delivery>();
                    bob.On(Messages.Delivery, d =>
                    {
                        p.OnPumpThread("a typed push handler");
                        deliveries.Add(d);
                    });
                    var shouted = new List<string>();
                    bob.On(Messages.Shouted, x => shouted.Add("bob:" + x.from + ":" + x.text));
                    alice.On(Messages.Shouted, x => shouted.Add("alice:" + x.from + ":" + x.text));
                    var answer = await alice.Request(Messages.Chat, new Chat { to = bobName, text = "hi bob" });
                    Assert.True(answer.ok, "send: " + answer.error);
                    await p.Until(() => deliveries.Count == 1, "bob's delivery");
                    Assert.Equal(aliceName, deliveries[0].from, "from");
                    Assert.Equal("hi bob", deliveries[0].text, "text");
                    var offline = await alice.Request(Messages.Chat, new Chat { to = Name("nobody"), text = "?" });
                    Assert.True(!offline.ok && offline.error.Contains("not online"), "a user offline: " + offline.error);
                    alice.Send(Messages.Shout, new Shout { text = "all" });
                    await p.Until(() => shouted.Contains("bob:" + aliceName + ":all") && shouted.Contains("alice:" + aliceName + ":all"),
                        "the broadcast on both clients");
                });

                s.Add("demo/" + t + ": error frames: bad_payload and unknown_msg_id fail the request with their code", async p =>
                {
                    var c = p.Connect(Options(url));
                    var ev = new Events(c, p);
                    var bad = await Assert.Fails(c.Request<Answer>(1, Encoding.UTF8.GetBytes("not json")), "login with a bad payload");
                    p.OnPumpThread("the continuation of a failed request");
                    Assert.Equal("bad_payload", bad.Code, "code");
                    Assert.Equal(1u, bad.MsgId, "msg id");
                    var unknown = await Assert.Fails(c.Request(12345, new byte[] { 1 }), "an unknown msg id");
                    Assert.Equal("unknown_msg_id", unknown.Code, "code");
                    Assert.Equal(12345u, unknown.MsgId, "msg id");
                    var internalOnly = await Assert.Fails(c.Request(20, new byte[0]), "an internal msg id");
                    Assert.Equal("unknown_msg_id", internalOnly.Code, "internal code");
                    c.Send(12346, new byte[] { 2 });
                    await p.Until(() => ev.Errors.Count == 1, "the error of a Send on the Error event");
                    Assert.Equal("unknown_msg_id", ev.Errors[0].Code, "Send's error");
                    Assert.Equal(12346u, ev.Errors[0].MsgId, "Send's error msg id");
                    var fine = await c.Request<Answer>(1, new Login { name = Name("after-errors") });
                    Assert.True(fine.ok, "the connection still serves after error answers");
                });

                s.Add("demo/" + t + ": raw payloads echo byte for byte (gate 5, im 6), large ones too", async p =>
                {
                    var c = p.Connect(Options(url));
                    var all = new byte[256];
                    for (var i = 0; i < all.Length; i++)
                    {
                        all[i] = (byte)i;
                    }
                    Assert.Bytes(all, await c.Request(5, all), "gate echo");
                    Assert.Bytes(all, await c.Request(6, all), "im echo");
                    Assert.Bytes(new byte[0], await c.Request(5, new byte[0]), "empty echo");
                    var big = new byte[60000];
                    new Random(5).NextBytes(big);
                    var echoes = new List<Task<byte[]>>();
                    for (var i = 0; i < 4; i++)
                    {
                        echoes.Add(c.Request(5, big));
                    }
                    foreach (var e in echoes)
                    {
                        Assert.Bytes(big, await e, "60000-byte echo");
                    }
                    byte[] viaCallback = null;
                    c.Request(6, all, d => viaCallback = d);
                    await p.Until(() => viaCallback != null, "the raw callback");
                    Assert.Bytes(all, viaCallback, "raw callback");
                });
            }

            s.Add("demo/tcp: heartbeats reach the gate (zinx_heartbeats_in_total grows)", async p =>
            {
                var before = env.Metric("zinx_heartbeats_in_total");
                var o = Options(env.Tcp);
                o.HeartbeatIntervalMs = 50;
                var c = p.Connect(o);
                var ev = new Events(c, p);
                await p.Until(() => ev.Connected != null, "Connected");
                await p.Delay(400);
                var after = env.Metric("zinx_heartbeats_in_total");
                Assert.True(after - before >= 4, "heartbeats counted by the gate: " + (after - before));
            });

            if (env.IdleTimeoutMs > 0)
            {
                foreach (var transport in new[] { "tcp", "ws" })
                {
                    var url = env.Url(transport);
                    s.Add("demo/" + transport + ": heartbeats keep a client past the gate's idle timeout; a silent one is dropped", async p =>
                    {
                        var quietOptions = Options(url);
                        quietOptions.HeartbeatIntervalMs = 0;
                        var quiet = p.Connect(quietOptions, "quiet");
                        var quietEvents = new Events(quiet, p);
                        var beating = p.Connect(Options(url), "beating");
                        var beatingEvents = new Events(beating, p);
                        var clock = System.Diagnostics.Stopwatch.StartNew();
                        await p.Until(() => quietEvents.Connected != null && beatingEvents.Connected != null, "both connected");
                        await p.Until(() => quietEvents.Reconnecting.Count > 0, "the silent client dropped", env.IdleTimeoutMs + 3000);
                        // Both connected at the same moment: a gate that ignored the
                        // heartbeats would drop the other one within its sweep period.
                        await p.Delay(1000);
                        Assert.Equal(0, beatingEvents.Reconnecting.Count,
                            "drops of the client sending a heartbeat every 500 ms"
                            + (beatingEvents.Reconnecting.Count > 0 ? " (" + beatingEvents.Reconnecting[0].Reason + ")" : "")
                            + "; it sent " + beating.HeartbeatsSent + " heartbeats in " + clock.ElapsedMilliseconds
                            + " ms, the gate's idle timeout is " + env.IdleTimeoutMs + " ms");
                        await p.Until(() => quietEvents.Failed != null || quietEvents.Resumed != null, "the silent client back");
                        Assert.Bytes(new byte[] { 7 }, await quiet.Request(5, new byte[] { 7 }), "served after reconnecting");
                    }, 20000);
                }
            }

            s.Add("demo/tcp: every callback, continuation and event runs on the thread that calls Poll()", async p =>
            {
                var threads = new List<int>();
                Action note = () => threads.Add(Thread.CurrentThread.ManagedThreadId);
                var name = Name("affinity");
                var c = p.Connect(Options(env.Tcp));
                c.Connected += i => note();
                c.Error += e => note();
                c.Closed += i => note();
                c.On(Messages.Delivery, d => note());
                var login = await c.Request(Messages.Login, new Login { name = name });
                note();
                Assert.True(login.ok, "login");
                c.Request(Messages.Login, new Login { name = name }, a => note());
                await c.Request(Messages.Chat, new Chat { to = name, text = "to myself" });
                note();
                c.Send(55555, new byte[0]);
                await p.Until(() => threads.Count >= 6, "the callbacks");
                c.Close();
                await p.Until(() => threads.Count >= 7, "Closed");
                foreach (var id in threads)
                {
                    Assert.Equal(p.ThreadId, id, "thread of a callback");
                }
            });
        }
    }
}
