// A scripted gate for the protocol unit tests: a loopback TcpListener whose
// connections record the frames they receive and send what the test says.
// It knows nothing of resume by itself: each test plays the gate's part of
// PROTOCOL.md step by step. (The real gate is tested in DemoTests and
// ResumeTests; this one exists because the gate side of resume is not
// built yet, and because some steps - MOVE, a chosen HELLO answer - are
// the gate's decision.)

using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using ZinxCluster.Client.Wire;

namespace ZinxCluster.Client.Tests
{
    sealed class FakeGate : IDisposable
    {
        readonly TcpListener listener;
        readonly List<FakeConn> conns = new List<FakeConn>();
        readonly Thread acceptor;
        volatile bool stopped;

        public FakeGate()
        {
            listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            Port = ((IPEndPoint)listener.LocalEndpoint).Port;
            acceptor = new Thread(Accept) { IsBackground = true, Name = "fake-gate" };
            acceptor.Start();
        }

        public int Port { get; private set; }

        public string Url
        {
            get { return "tcp://127.0.0.1:" + Port; }
        }

        /// <summary>Drop every connection as soon as it is accepted (a gate refusing clients).</summary>
        public volatile bool DropOnAccept;

        /// <summary>Connections accepted so far, in order.</summary>
        public int Count
        {
            get
            {
                lock (conns)
                {
                    return conns.Count;
                }
            }
        }

        public FakeConn this[int i]
        {
            get
            {
                lock (conns)
                {
                    return conns[i];
                }
            }
        }

        void Accept()
        {
            while (!stopped)
            {
                TcpClient c;
                try
                {
                    c = listener.AcceptTcpClient();
                }
                catch (Exception)
                {
                    return;
                }
                c.NoDelay = true;
                var conn = new FakeConn(c);
                if (DropOnAccept)
                {
                    lock (conns)
                    {
                        conns.Add(conn);
                    }
                    conn.Close();
                    continue;
                }
                lock (conns)
                {
                    conns.Add(conn);
                }
                conn.Start();
            }
        }

        public void Dispose()
        {
            stopped = true;
            listener.Stop();
            lock (conns)
            {
                foreach (var c in conns)
                {
                    c.Close();
                }
            }
        }
    }

    /// <summary>One client connection of the fake gate.</summary>
    sealed class FakeConn
    {
        readonly TcpClient client;
        readonly NetworkStream stream;
        readonly List<Frame> received = new List<Frame>();
        volatile bool eof;

        public FakeConn(TcpClient client)
        {
            this.client = client;
            stream = client.GetStream();
        }

        public void Start()
        {
            new Thread(Read) { IsBackground = true, Name = "fake-conn" }.Start();
        }

        void Read()
        {
            var decoder = new FrameDecoder(1 << 24);
            var buf = new byte[65536];
            var frames = new List<Frame>();
            try
            {
                while (true)
                {
                    var n = stream.Read(buf, 0, buf.Length);
                    if (n <= 0)
                    {
                        break;
                    }
                    decoder.Feed(buf, 0, n, frames);
                    lock (received)
                    {
                        received.AddRange(frames);
                    }
                    frames.Clear();
                }
            }
            catch (Exception)
            {
                // Closed by the test: same as end of stream.
            }
            eof = true;
            // Like a gate: the client's end of stream closes the connection.
            Close();
        }

        /// <summary>The client closed its side (or the test closed the connection).</summary>
        public bool Eof
        {
            get { return eof; }
        }

        /// <summary>A copy of the frames received so far.</summary>
        public List<Frame> Frames
        {
            get
            {
                lock (received)
                {
                    return new List<Frame>(received);
                }
            }
        }

        /// <summary>The frames of one msg id received so far.</summary>
        public List<Frame> Of(uint msgId)
        {
            return Frames.FindAll(f => f.MsgId == msgId);
        }

        /// <summary>Whether a frame of <paramref name="msgId"/> arrived.</summary>
        public bool Has(uint msgId)
        {
            return Of(msgId).Count > 0;
        }

        /// <summary>The text of the first frame of <paramref name="msgId"/>.</summary>
        public string Text(uint msgId)
        {
            var of = Of(msgId);
            return of.Count == 0 ? null : Encoding.UTF8.GetString(of[0].Data);
        }

        public void Send(uint msgId, string text)
        {
            Send(msgId, Encoding.UTF8.GetBytes(text));
        }

        public void Send(uint msgId, byte[] data)
        {
            var f = Frame.Encode(msgId, data);
            stream.Write(f, 0, f.Length);
        }

        /// <summary>Writes raw bytes (parts of frames, several frames).</summary>
        public void SendBytes(byte[] bytes, int offset, int count)
        {
            stream.Write(bytes, offset, count);
        }

        /// <summary>Drops the connection (as a network failure would).</summary>
        public void Close()
        {
            try
            {
                client.Client.LingerState = new LingerOption(true, 0);
                client.Close();
            }
            catch (Exception)
            {
                // Already closed.
            }
        }
    }
}
