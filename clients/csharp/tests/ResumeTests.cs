// Session resume against the real demo, through a TCP proxy the test cuts.
// Run with ZINX_RESUME=1 (test.sh skips them loudly otherwise): they need
// the gate side of resume (PROTOCOL.md, "Session resume"). Against a gate
// without it they fail: its HELLO answer is an unknown_msg_id error.

using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using Demo;

namespace ZinxCluster.Client.Tests
{
    static class ResumeTests
    {
        static readonly string[] GateReasons = { "expired", "unknown", "overflow", "disabled" };

        static ZinxOptions ViaProxy(TcpProxy proxy, int reconnectMinMs)
        {
            var o = DemoTests.Options(proxy.Url);
            o.ReconnectMinDelayMs = reconnectMinMs;
            return o;
        }

        static void ExpectResumable(Events ev)
        {
            Assert.True(ev.Connected.Resumable,
                "the gate must answer HELLO with a token (session resume); this gate does not speak it");
        }

        public static void Register(Suite s, DemoEnv env, bool enabled)
        {
            const string one = "resume/demo: a connection cut mid-stream resumes with 0 lost pushes, in order, none twice";
            const string two = "resume/demo: a refused resume (forged token) is a fresh session: ResumeFailed, session_lost, log in again";
            if (!enabled)
            {
                const string why = "set ZINX_RESUME=1 to run the session-resume tests against the demo (they need the gate side of resume)";
                s.Skip(one, why);
                s.Skip(two, why);
                return;
            }
            var gate = new Uri(env.Tcp);
            var host = gate.Host;
            var port = gate.Port;

            s.Add(one, async p =>
            {
                using (var proxy = new TcpProxy(host, port))
                {
                    var aliceName = DemoTests.Name("alice");
                    var alice = p.Connect(ViaProxy(proxy, 50), "alice");
                    var ev = new Events(alice, p);
                    var lines = new List<string>();
                    alice.On(Messages.Delivery, d => lines.Add(d.text));
                    var login = await alice.Request(Messages.Login, new Login { name = aliceName });
                    ExpectResumable(ev);
                    Assert.True(login.ok, "alice's login");
                    var bob = await DemoTests.LoggedIn(p, env.Tcp, DemoTests.Name("bob"));
                    const int total = 300;
                    var cutAt = -1;
                    for (var i = 0; i < total; i++)
                    {
                        bob.Send(Messages.Chat, new Chat { to = aliceName, text = "m" + i });
                        if (i % 20 == 19)
                        {
                            // Paced by bob's own answers: the lines stream while the cut happens.
                            await p.Until(() => lines.Count > i - 40 || cutAt >= 0, "alice keeping up", 5000);
                        }
                        if (cutAt < 0 && lines.Count >= 60)
                        {
                            cutAt = lines.Count;
                            proxy.Cut();
                        }
                    }
                    Assert.True(cutAt >= 0, "the proxy was cut while lines arrived");
                    // Until all arrived, or none for 3 s (then say which are missing).
                    var seen = -1;
                    var quiet = System.Diagnostics.Stopwatch.StartNew();
                    await p.Until(() =>
                    {
                        if (lines.Count != seen)
                        {
                            seen = lines.Count;
                            quiet.Restart();
                        }
                        return lines.Count >= total || quiet.ElapsedMilliseconds > 3000;
                    }, "lines at alice", 20000);
                    await p.Delay(300);
                    for (var i = 0; i < Math.Min(total, lines.Count); i++)
                    {
                        if (lines[i] != "m" + i)
                        {
                            var expected = new HashSet<string>(Enumerable.Range(0, total).Select(k => "m" + k));
                            expected.ExceptWith(lines);
                            throw new AssertionException("line " + i + " is " + lines[i] + ", not m" + i + " (the cut was after "
                                                         + cutAt + " lines; missing: " + string.Join(" ", expected.Take(20))
                                                         + (expected.Count > 20 ? " ..." : "") + ")");
                        }
                    }
                    Assert.Equal(total, lines.Count, "lines at alice (the cut was after " + cutAt + " lines; more means duplicates)");
                    Assert.True(ev.Reconnecting.Count >= 1, "alice reconnected");
                    Assert.True(ev.Resumed != null, "alice's session was resumed");
                    Assert.Equal(null, ev.Failed, "no failed resume");
                    Assert.True(proxy.Accepted >= 2, "a second connection through the proxy");
                    Assert.True(cutAt < total, "the cut happened before the last line (" + cutAt + ")");
                }
            }, 40000);

            s.Add(two, async p =>
            {
                using (var proxy = new TcpProxy(host, port))
                {
                    var aliceName = DemoTests.Name("alice");
                    var bobName = DemoTests.Name("bob");
                    var bob = await DemoTests.LoggedIn(p, env.Tcp, bobName);
                    var alice = p.Connect(ViaProxy(proxy, 400), "alice");
                    var ev = new Events(alice, p);
                    var login = await alice.Request(Messages.Login, new Login { name = aliceName });
                    ExpectResumable(ev);
                    Assert.True(login.ok, "alice's login");
                    proxy.ForgeTokens = true;
                    proxy.Cut();
                    await p.Until(() => ev.Reconnecting.Count >= 1, "Reconnecting");
                    var queued = alice.Request(Messages.Chat, new Chat { to = bobName, text = "queued while away" });
                    await p.Until(() => ev.Failed != null, "ResumeFailed", 10000);
                    Assert.True(GateReasons.Contains(ev.Failed.Reason), "a reason of the protocol: " + ev.Failed.Reason);
                    Assert.Equal(null, ev.Resumed, "not resumed");
                    var lost = await Assert.Fails(queued, "the request queued while away");
                    Assert.Equal(ZinxException.SessionLost, lost.Code, "code");
                    var anonymous = await alice.Request(Messages.Chat, new Chat { to = bobName, text = "who am I" });
                    Assert.True(!anonymous.ok, "the fresh session is not logged in");
                    var again = await alice.Request(Messages.Login, new Login { name = aliceName });
                    Assert.True(again.ok, "logging in again");
                    var delivered = new List<string>();
                    bob.On(Messages.Delivery, d => delivered.Add(d.from + ":" + d.text));
                    var sent = await alice.Request(Messages.Chat, new Chat { to = bobName, text = "back" });
                    Assert.True(sent.ok, "a line on the fresh session");
                    await p.Until(() => delivered.Contains(aliceName + ":back"), "bob gets it");
                    Assert.True(!delivered.Contains(aliceName + ":queued while away"), "the queued line was dropped");
                }
            }, 30000);
        }
    }
}
