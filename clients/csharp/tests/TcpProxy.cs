// A loopback TCP proxy the resume tests put between a client and the real
// gate: Cut() drops every connection through it at once (a network failure
// for both sides); new connections keep being accepted. With ForgeTokens,
// the HELLOs the client sends get an invalid token (a resume the gate must
// refuse).

using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using ZinxCluster.Client.Wire;

namespace ZinxCluster.Client.Tests
{
    sealed class TcpProxy : IDisposable
    {
        readonly TcpListener listener;
        readonly string upstreamHost;
        readonly int upstreamPort;
        readonly List<TcpClient> open = new List<TcpClient>();
        volatile bool stopped;
        int accepted;

        public TcpProxy(string upstreamHost, int upstreamPort)
        {
            this.upstreamHost = upstreamHost;
            this.upstreamPort = upstreamPort;
            listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            Port = ((IPEndPoint)listener.LocalEndpoint).Port;
            new Thread(Accept) { IsBackground = true, Name = "proxy" }.Start();
        }

        public int Port { get; private set; }

        public string Url
        {
            get { return "tcp://127.0.0.1:" + Port; }
        }

        /// <summary>Rewrite the token of every client HELLO into one the gate cannot know.</summary>
        public volatile bool ForgeTokens;

        /// <summary>Connections accepted so far.</summary>
        public int Accepted
        {
            get { return Volatile.Read(ref accepted); }
        }

        void Accept()
        {
            while (!stopped)
            {
                TcpClient down;
                try
                {
                    down = listener.AcceptTcpClient();
                }
                catch (Exception)
                {
                    return;
                }
                TcpClient up;
                try
                {
                    up = new TcpClient();
                    up.NoDelay = true;
                    up.Connect(upstreamHost, upstreamPort);
                }
                catch (Exception)
                {
                    down.Close();
                    continue;
                }
                down.NoDelay = true;
                lock (open)
                {
                    open.Add(down);
                    open.Add(up);
                }
                Interlocked.Increment(ref accepted);
                var d = down;
                var u = up;
                new Thread(() => Upstream(d, u)) { IsBackground = true, Name = "proxy-up" }.Start();
                new Thread(() => Copy(u, d)) { IsBackground = true, Name = "proxy-down" }.Start();
            }
        }

        /// <summary>Client to gate: frame by frame, so that HELLOs can be rewritten.</summary>
        void Upstream(TcpClient from, TcpClient to)
        {
            var decoder = new FrameDecoder(1 << 24);
            var frames = new List<Frame>();
            var buf = new byte[65536];
            try
            {
                var src = from.GetStream();
                var dst = to.GetStream();
                while (true)
                {
                    var n = src.Read(buf, 0, buf.Length);
                    if (n <= 0)
                    {
                        break;
                    }
                    decoder.Feed(buf, 0, n, frames);
                    foreach (var f in frames)
                    {
                        var data = f.Data;
                        if (f.MsgId == Control.Hello && ForgeTokens)
                        {
                            data = Forge(data);
                        }
                        var bytes = Frame.Encode(f.MsgId, data);
                        dst.Write(bytes, 0, bytes.Length);
                    }
                    frames.Clear();
                }
            }
            catch (Exception)
            {
                // Cut, or one side closed.
            }
            Drop(from, to);
        }

        static byte[] Forge(byte[] hello)
        {
            var obj = MiniJson.Parse(Encoding.UTF8.GetString(hello)) as Dictionary<string, object>;
            if (obj == null || !obj.ContainsKey("token"))
            {
                return hello;
            }
            obj["token"] = "forged-" + obj["token"];
            return Encoding.UTF8.GetBytes(MiniJson.Instance.Serialize(obj));
        }

        void Copy(TcpClient from, TcpClient to)
        {
            var buf = new byte[65536];
            try
            {
                var src = from.GetStream();
                var dst = to.GetStream();
                while (true)
                {
                    var n = src.Read(buf, 0, buf.Length);
                    if (n <= 0)
                    {
                        break;
                    }
                    dst.Write(buf, 0, n);
                }
            }
            catch (Exception)
            {
                // Cut, or one side closed.
            }
            Drop(from, to);
        }

        static void Drop(TcpClient a, TcpClient b)
        {
            foreach (var c in new[] { a, b })
            {
                try
                {
                    c.Client.LingerState = new LingerOption(true, 0);
                    c.Close();
                }
                catch (Exception)
                {
                    // Already closed.
                }
            }
        }

        /// <summary>Drops every connection through the proxy, both sides, with a reset.</summary>
        public void Cut()
        {
            TcpClient[] all;
            lock (open)
            {
                all = open.ToArray();
                open.Clear();
            }
            for (var i = 0; i + 1 < all.Length; i += 2)
            {
                Drop(all[i], all[i + 1]);
            }
        }

        public void Dispose()
        {
            stopped = true;
            listener.Stop();
            Cut();
        }
    }
}
