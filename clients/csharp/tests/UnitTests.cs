// Unit tests of the pieces without a network: the JSON layer, the frame
// codec (PROTOCOL.md's test vectors), the backoff, the generated
// descriptors.

using System;
using System.Collections.Generic;
using System.Text;
using ZinxCluster.Client.Session;
using ZinxCluster.Client.Wire;

namespace ZinxCluster.Client.Tests
{
    public class Point
    {
        public int x;
        public int y;
    }

    public class Shape
    {
        public string name;
        public List<Point> points;
        public Point[] corners;
        public Dictionary<string, double> weights;
        public bool closed;
        public ulong big;
        public long? maybe;
        public string Title { get; set; }
    }

    static class UnitTests
    {
        public static void Register(Suite s)
        {
            s.Add("json: objects with fields, properties, lists, arrays and dictionaries round-trip", () =>
            {
                var shape = new Shape
                {
                    name = "tri \"angle\"\n\u00e9\u4e2d",
                    points = new List<Point> { new Point { x = 1, y = -2 }, new Point { x = 3, y = 4 } },
                    corners = new[] { new Point { x = 5, y = 6 } },
                    weights = new Dictionary<string, double> { { "a", 0.5 }, { "b", -1e-3 } },
                    closed = true,
                    big = ulong.MaxValue,
                    maybe = null,
                    Title = "t",
                };
                var json = MiniJson.Instance.Serialize(shape);
                var back = MiniJson.Instance.Deserialize<Shape>(json);
                Assert.Equal(shape.name, back.name, "string with escapes and non-ASCII");
                Assert.Equal(2, back.points.Count, "list length");
                Assert.Equal(-2, back.points[0].y, "nested object in a list");
                Assert.Equal(6, back.corners[0].y, "nested object in an array");
                Assert.Equal(-1e-3, back.weights["b"], "dictionary value");
                Assert.True(back.closed, "bool");
                Assert.Equal(ulong.MaxValue, back.big, "u64 max");
                Assert.Equal(null, back.maybe, "null nullable");
                Assert.Equal("t", back.Title, "property");
            });

            s.Add("json: writes serde's shapes (anonymous types, null, byte[] as numbers)", () =>
            {
                Assert.Equal("{\"name\":\"alice\"}", MiniJson.Instance.Serialize(new { name = "alice" }), "anonymous type");
                Assert.Equal("null", MiniJson.Instance.Serialize(null), "null");
                Assert.Equal("[1,2,255]", MiniJson.Instance.Serialize(new byte[] { 1, 2, 255 }), "bytes");
                Assert.Equal("{\"after_ms\":500,\"text\":\"tea\"}",
                    MiniJson.Instance.Serialize(new Demo.Remind { after_ms = 500, text = "tea" }), "generated DTO");
                Assert.Equal("1.5", MiniJson.Instance.Serialize(1.5), "double, invariant culture");
            });

            s.Add("json: reads what serde writes, skips unknown keys, matches names ignoring case", () =>
            {
                var a = MiniJson.Instance.Deserialize<Demo.Answer>("{\"ok\":false,\"error\":\"bob is not online\",\"extra\":[1,{\"x\":null}]}");
                Assert.Equal(false, a.ok, "ok");
                Assert.Equal("bob is not online", a.error, "error");
                Assert.Equal(null, a.name, "missing Option is null");
                var p = MiniJson.Instance.Deserialize<Point>("{\"X\":7,\"y\":8}");
                Assert.Equal(7, p.x, "case-insensitive match");
                var tree = MiniJson.Instance.Deserialize<object>(" {\"a\":[true,null,\"\\u00e9\\/\"],\"n\":-12.5e1} ") as Dictionary<string, object>;
                Assert.True(tree != null, "object tree");
                Assert.Equal(-125.0, (double)tree["n"], "exponent number");
                Assert.Equal("\u00e9/", (string)((List<object>)tree["a"])[2], "escapes");
            });

            s.Add("json: refuses malformed input and wrong types", () =>
            {
                foreach (var bad in new[] { "", "{", "{\"a\":}", "[1,]", "\"abc", "tru", "{\"a\":1} x", "01x", "{a:1}" })
                {
                    Assert.Throws<FormatException>(() => MiniJson.Parse(bad), "parsing '" + bad + "'");
                }
                Assert.Throws<FormatException>(() => MiniJson.Instance.Deserialize<Point>("{\"x\":\"seven\"}"), "a string for an int");
                Assert.Throws<FormatException>(() => MiniJson.Instance.Deserialize<Point>("[1]"), "an array for an object");
                Assert.Throws<FormatException>(() => MiniJson.Instance.Deserialize<byte>("300"), "overflow");
                var deep = new string('[', MiniJson.MaxDepth + 5) + new string(']', MiniJson.MaxDepth + 5);
                Assert.Throws<FormatException>(() => MiniJson.Parse(deep), "nesting limit");
            });

            s.Add("frames: PROTOCOL.md test vectors encode and decode", () =>
            {
                var vectors = new[]
                {
                    Tuple.Create(4u, "FullSend...", "000000040000000b46756c6c53656e642e2e2e"),
                    Tuple.Create(3u, "Send...", "000000030000000753656e642e2e2e"),
                    Tuple.Create(1u, "", "0000000100000000"),
                };
                foreach (var v in vectors)
                {
                    var bytes = Frame.Encode(v.Item1, Encoding.ASCII.GetBytes(v.Item2));
                    Assert.Equal(v.Item3, Hex(bytes), "encoding msg " + v.Item1);
                }
                var all = new List<byte>();
                foreach (var v in vectors)
                {
                    all.AddRange(Unhex(v.Item3));
                }
                var stream = all.ToArray();
                // All at once, then one byte at a time: the same three frames.
                foreach (var chunk in new[] { stream.Length, 1, 3 })
                {
                    var decoder = new FrameDecoder(1024);
                    var frames = new List<Frame>();
                    for (var i = 0; i < stream.Length; i += chunk)
                    {
                        decoder.Feed(stream, i, Math.Min(chunk, stream.Length - i), frames);
                    }
                    Assert.Equal(3, frames.Count, "frames decoded in chunks of " + chunk);
                    Assert.Equal("FullSend...", Encoding.ASCII.GetString(frames[0].Data), "first frame");
                    Assert.Equal(3u, frames[1].MsgId, "second msg id");
                    Assert.Equal(0, frames[2].Data.Length, "empty frame");
                }
            });

            s.Add("frames: a header announcing more than the limit fails at once", () =>
            {
                var decoder = new FrameDecoder(10);
                var header = Frame.Encode(7, new byte[11]);
                Assert.Throws<System.IO.InvalidDataException>(
                    () => decoder.Feed(header, 0, Frame.HeaderLength, new List<Frame>()), "oversized frame");
            });

            s.Add("backoff: doubles from the minimum up to the cap, with jitter in the upper half", () =>
            {
                var random = new Random(1);
                for (var attempt = 1; attempt <= 12; attempt++)
                {
                    var ceiling = Math.Min(5000, 100 * (1 << (attempt - 1)));
                    for (var i = 0; i < 50; i++)
                    {
                        var d = Backoff.Delay(attempt, 100, 5000, random);
                        Assert.True(d >= ceiling / 2 && d <= ceiling,
                            "attempt " + attempt + ": " + d + " ms not in [" + ceiling / 2 + ", " + ceiling + "]");
                    }
                }
                Assert.Equal(0, Backoff.Delay(1, 0, 5000, random), "no minimum, no delay");
            });

            s.Add("generated: descriptors carry the Rust msg ids, names and codecs", () =>
            {
                Assert.Equal(1u, Demo.Messages.Login.Id, "Login");
                Assert.Equal("Login", Demo.Messages.Login.Name, "Login name");
                Assert.Equal(Codec.Json, Demo.Messages.Login.Codec, "Login codec");
                Assert.Equal(typeof(Demo.Answer), Demo.Messages.Login.AnswerType, "Login is answered with an Answer");
                Assert.Equal(Codec.Json, Demo.Messages.Login.AnswerCodec, "as JSON");
                Assert.Equal(typeof(Demo.Answer), Demo.Messages.Replaced.PayloadType, "Replaced is a newtype over Answer");
                Assert.Equal(typeof(Demo.Stats), Demo.Messages.StatsQuery.AnswerType, "StatsQuery is answered with Stats");
                Assert.Equal(typeof(Reply), Demo.Messages.Login.WithAnswer<Reply>().AnswerType, "WithAnswer");
                Assert.Equal(3u, Demo.Messages.Delivery.Id, "Delivery");
                Assert.Equal(Demo.MsgIds.Say, Demo.Messages.Said.Id, "Said shares Say's id");
                Assert.Equal(21u, Demo.Messages.Stats.Id, "Stats");
                Assert.Equal(20u, Demo.MsgIds.StatsQuery, "StatsQuery");
                Assert.Equal(11u, Demo.Messages.Reminder.Id, "Reminder");
            });

            s.Add("client: refuses reserved msg ids and bad URLs", () =>
            {
                Assert.Throws<ArgumentException>(() => ZinxClient.Connect("http://127.0.0.1:1/"), "http URL");
                Assert.Throws<ArgumentException>(() => ZinxClient.Connect("tcp://127.0.0.1"), "tcp URL without a port");
                Assert.Throws<ArgumentException>(() => ZinxClient.Connect(new ZinxOptions()), "no URL");
                var c = ZinxClient.Connect(new ZinxOptions { Urls = { "tcp://127.0.0.1:9" }, Reconnect = false });
                try
                {
                    Assert.Throws<ArgumentException>(() => c.Send(99990, "{}"), "HELLO by hand");
                    Assert.Throws<ArgumentException>(() => c.Request(99999, new byte[0]), "heartbeat as a request");
                }
                finally
                {
                    c.Close();
                }
            });
        }

        static string Hex(byte[] b)
        {
            var sb = new StringBuilder();
            foreach (var x in b)
            {
                sb.Append(x.ToString("x2"));
            }
            return sb.ToString();
        }

        static byte[] Unhex(string s)
        {
            var b = new byte[s.Length / 2];
            for (var i = 0; i < b.Length; i++)
            {
                b[i] = Convert.ToByte(s.Substring(2 * i, 2), 16);
            }
            return b;
        }
    }
}
