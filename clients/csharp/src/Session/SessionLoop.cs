// One logical session over a series of connections: its state, the
// supervisor thread (connecting and reconnecting with backoff over the URLs,
// writing HELLO, the outbox, ACKs, heartbeats and BYE), and the inbox that
// Poll() drains. The reader side (frames in, matching, the handshake's
// outcome) is in SessionLoop.Receive.cs.
//
// Threads: one supervisor thread per client does every write (outbox,
// HELLO, ACK, heartbeats, BYE) and the connection lifecycle; one reader
// thread per connection decodes frames. Both only change state under `sync`
// and enqueue closures into the inbox; user code runs only when
// ZinxClient.Poll() drains the inbox, on the thread that calls it.

using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using ZinxCluster.Client.Transport;
using ZinxCluster.Client.Wire;

namespace ZinxCluster.Client.Session
{
    internal sealed partial class SessionLoop
    {
        /// <summary>
        /// Dispatch items waiting for Poll at most; beyond it the reader stops
        /// reading (the gate then holds, or closes, the session) until Poll catches up.
        /// </summary>
        internal const int MaxInbox = 100000;

        /// <summary>How long Close() waits for the BYE to be written and the socket closed.</summary>
        const int CloseWaitMs = 2000;

        /// <summary>A connection lost sooner than this after its handshake counts as a failed attempt.</summary>
        const int StableAfterMs = 1000;

        /// <summary>After BYE, how long the gate has to close its side.</summary>
        const int ByeLingerMs = 1000;

        /// <summary>The heartbeat's payload (any text does; zinx clients send one).</summary>
        static readonly byte[] HeartbeatPayload = Encoding.UTF8.GetBytes("ping");

        readonly ZinxClient client;
        readonly ZinxOptions options;
        readonly string[] urls;
        readonly Random random = new Random();
        readonly Thread supervisor;
        readonly ManualResetEvent finished = new ManualResetEvent(false);

        // Everything below is guarded by `sync`.
        readonly object sync = new object();

        /// <summary>Closures for Poll: answers, pushes, failures, events, in order.</summary>
        readonly Queue<Action> inbox = new Queue<Action>();

        /// <summary>Frames to write once the session is ready, in call order.</summary>
        Queue<Outgoing> outbox = new Queue<Outgoing>();

        /// <summary>Requests waiting for an answer.</summary>
        readonly PendingTable pending = new PendingTable();

        /// <summary>The connection frames are taken from; null between connections.</summary>
        Connection current;

        /// <summary>The handshake of <see cref="current"/> is done: the outbox may be written.</summary>
        bool ready;

        /// <summary>A HELLO was written on <see cref="current"/> and its answer is awaited.</summary>
        bool helloPending;

        /// <summary>A session existed before: a new handshake is a reconnect.</summary>
        bool hadSession;

        /// <summary>Close() was called.</summary>
        bool closeRequested;

        /// <summary>The loop ended; nothing will be sent any more.</summary>
        bool closed;

        /// <summary>Non-null: the gate sent MOVE on <see cref="current"/>, with this reason.</summary>
        string moveReason;

        /// <summary>The resume token of the session; null when it cannot be resumed.</summary>
        string token;

        /// <summary>Frames received on this session that the gate counts (N).</summary>
        long received;

        /// <summary>The N of the last ACK written.</summary>
        long acked;

        /// <summary>An ACK is due now (AckEveryFrames arrived).</summary>
        bool ackNow;

        /// <summary>Heartbeats written (diagnostics; Interlocked).</summary>
        long heartbeatsSent;

        internal SessionLoop(ZinxClient client, ZinxOptions options, string[] urls)
        {
            this.client = client;
            this.options = options;
            this.urls = urls;
            supervisor = new Thread(Run) { IsBackground = true, Name = "zinx-session" };
        }

        internal void Start()
        {
            supervisor.Start();
        }

        /// <summary>Whether the session is ready (connected, handshake done).</summary>
        internal bool IsReady
        {
            get
            {
                lock (sync)
                {
                    return ready;
                }
            }
        }

        /// <summary>Whether the client is closed or closing.</summary>
        internal bool IsClosed
        {
            get
            {
                lock (sync)
                {
                    return closed || closeRequested;
                }
            }
        }

        /// <summary>The resume token (tests and diagnostics).</summary>
        internal string Token
        {
            get
            {
                lock (sync)
                {
                    return token;
                }
            }
        }

        /// <summary>Heartbeats written so far (diagnostics).</summary>
        internal long HeartbeatsSent
        {
            get { return Interlocked.Read(ref heartbeatsSent); }
        }

        /// <summary>Frames received that the gate counts (tests and diagnostics).</summary>
        internal long Received
        {
            get
            {
                lock (sync)
                {
                    return received;
                }
            }
        }

        // ---- called by the client (any thread) ----

        /// <summary>Queues a frame to send; with a request, registers it first.</summary>
        internal void Enqueue(uint msgId, byte[] data, PendingRequest request)
        {
            lock (sync)
            {
                if (closed || closeRequested)
                {
                    if (request != null)
                    {
                        Fail(request, ZinxException.Closed, "the client is closed");
                    }
                    else
                    {
                        PostLog("dropped msg " + msgId + ": the client is closed");
                    }
                    return;
                }
                if (outbox.Count >= options.MaxQueuedMessages)
                {
                    if (request != null)
                    {
                        Fail(request, ZinxException.QueueFull, options.MaxQueuedMessages + " messages already wait to be sent");
                    }
                    else
                    {
                        PostLog("dropped msg " + msgId + ": " + options.MaxQueuedMessages + " messages already wait to be sent");
                    }
                    return;
                }
                if (request != null)
                {
                    pending.Add(request);
                }
                outbox.Enqueue(new Outgoing(msgId, Frame.Encode(msgId, data), request));
                Monitor.PulseAll(sync);
            }
        }

        /// <summary>Takes the next dispatch item, if any.</summary>
        internal bool TryDequeue(out Action item)
        {
            lock (sync)
            {
                if (inbox.Count == 0)
                {
                    item = null;
                    return false;
                }
                item = inbox.Dequeue();
                if (inbox.Count == MaxInbox - 1)
                {
                    Monitor.PulseAll(sync);
                }
                return true;
            }
        }

        /// <summary>Items waiting for Poll.</summary>
        internal int InboxCount
        {
            get
            {
                lock (sync)
                {
                    return inbox.Count;
                }
            }
        }

        /// <summary>Fails the requests whose deadline passed (called by Poll).</summary>
        internal void ExpireRequests()
        {
            lock (sync)
            {
                var expired = pending.Expire(Clock.Now);
                if (expired == null)
                {
                    return;
                }
                foreach (var r in expired)
                {
                    Fail(r, ZinxException.Timeout, "no answer within " + options.RequestTimeoutMs + " ms");
                }
            }
        }

        /// <summary>Asks the loop to send BYE and close; waits a moment for it.</summary>
        internal void Close()
        {
            lock (sync)
            {
                if (closed)
                {
                    return;
                }
                closeRequested = true;
                Monitor.PulseAll(sync);
            }
            if (Thread.CurrentThread != supervisor)
            {
                finished.WaitOne(CloseWaitMs);
            }
        }

        // ---- the supervisor thread ----

        enum End
        {
            /// <summary>The connection failed or was closed by the gate.</summary>
            Lost,

            /// <summary>The gate sent MOVE.</summary>
            Move,

            /// <summary>Close() was called; BYE sent.</summary>
            Closed,
        }

        void Run()
        {
            var urlIndex = 0;
            var failures = 0;
            string finalReason = "closed by the client";
            var byClient = true;
            try
            {
                while (true)
                {
                    lock (sync)
                    {
                        if (closeRequested)
                        {
                            break;
                        }
                    }
                    var url = urls[urlIndex];
                    ITransport transport = null;
                    string error = null;
                    try
                    {
                        transport = Transports.Open(url, options.ConnectTimeoutMs);
                    }
                    catch (Exception e)
                    {
                        error = Describe(e);
                    }

                    var established = false;
                    long readyAt = 0;
                    if (transport != null)
                    {
                        var conn = new Connection(transport);
                        var end = RunConnection(conn, out established);
                        readyAt = conn.ReadyAt;
                        lock (sync)
                        {
                            if (current == conn)
                            {
                                current = null;
                            }
                            ready = false;
                            helloPending = false;
                            moveReason = null;
                        }
                        transport.Close();
                        if (end == End.Closed)
                        {
                            break;
                        }
                        if (end == End.Move)
                        {
                            failures = 0;
                            urlIndex = (urlIndex + 1) % urls.Length;
                            PostEvent(client.RaiseReconnecting, new ReconnectingInfo(1, 0, urls[urlIndex], "move: " + conn.MoveReason));
                            continue;
                        }
                        error = conn.LostReason ?? "connection lost";
                    }

                    if (established && Clock.Now - readyAt >= StableAfterMs)
                    {
                        // A session that worked for a while was lost: retry the same
                        // gate first, from the shortest delay. (One dropped at once,
                        // like a gate refusing clients, counts as a failed attempt.)
                        failures = 0;
                    }
                    else
                    {
                        urlIndex = (urlIndex + 1) % urls.Length;
                    }
                    failures++;
                    if (!options.Reconnect || (options.MaxReconnectAttempts > 0 && failures > options.MaxReconnectAttempts))
                    {
                        finalReason = options.Reconnect
                            ? "gave up after " + options.MaxReconnectAttempts + " attempts: " + error
                            : "connection lost: " + error;
                        byClient = false;
                        break;
                    }
                    var delay = Backoff.Delay(failures, options.ReconnectMinDelayMs, options.ReconnectMaxDelayMs, random);
                    PostEvent(client.RaiseReconnecting, new ReconnectingInfo(failures, delay, urls[urlIndex], error));
                    if (!SleepUnlessClosing(delay))
                    {
                        break;
                    }
                }
            }
            catch (Exception e)
            {
                finalReason = "internal error: " + e;
                byClient = false;
            }
            Finish(finalReason, byClient);
        }

        /// <summary>Handshake and running phase of one connection.</summary>
        End RunConnection(Connection conn, out bool established)
        {
            established = false;
            lock (sync)
            {
                current = conn;
                ready = false;
                moveReason = null;
                helloPending = options.Resume;
                if (!options.Resume)
                {
                    Handshake(conn, HelloKind.NoHello, null, null, 0);
                }
            }
            conn.StartReader(ReadLoop);

            if (options.Resume)
            {
                string hello;
                lock (sync)
                {
                    hello = token == null
                        ? "{}"
                        : "{\"token\":" + MiniJson.Instance.Serialize(token) + ",\"received\":" + received + "}";
                }
                if (!TryWrite(conn, Frame.Encode(Control.Hello, Encoding.UTF8.GetBytes(hello))))
                {
                    return End.Lost;
                }
                var deadline = Clock.Now + options.HelloTimeoutMs;
                lock (sync)
                {
                    while (helloPending && !conn.Lost && !closeRequested)
                    {
                        var left = deadline - Clock.Now;
                        if (left <= 0)
                        {
                            PostLog("no answer to HELLO within " + options.HelloTimeoutMs + " ms from " + conn.Transport.Url
                                    + ": the gate does not speak session resume");
                            Handshake(conn, HelloKind.Unsupported, null, null, 0);
                            break;
                        }
                        Monitor.Wait(sync, (int)Math.Min(left, int.MaxValue));
                    }
                    if (conn.Lost)
                    {
                        established = ready;
                        return End.Lost;
                    }
                }
            }

            var now = Clock.Now;
            var nextHeartbeat = options.HeartbeatIntervalMs > 0 ? now + options.HeartbeatIntervalMs : long.MaxValue;
            var nextAck = now + Math.Max(1, options.AckIntervalMs);
            while (true)
            {
                List<Outgoing> batch = null;
                var sendHeartbeat = false;
                long ackValue = -1;
                bool closing;
                lock (sync)
                {
                    while (true)
                    {
                        established = established || ready;
                        if (conn.Lost)
                        {
                            return End.Lost;
                        }
                        if (moveReason != null)
                        {
                            conn.MoveReason = moveReason;
                            return End.Move;
                        }
                        now = Clock.Now;
                        closing = closeRequested;
                        if (closing || (ready && outbox.Count > 0) || ackNow || now >= nextHeartbeat || now >= nextAck)
                        {
                            break;
                        }
                        Monitor.Wait(sync, (int)Math.Max(1, Math.Min(Math.Min(nextHeartbeat, nextAck) - now, int.MaxValue)));
                    }
                    if (ready && outbox.Count > 0)
                    {
                        batch = new List<Outgoing>(outbox);
                        outbox.Clear();
                        foreach (var o in batch)
                        {
                            if (o.Request != null && !o.Request.Cancelled)
                            {
                                o.Request.Written = true;
                            }
                        }
                    }
                    if (token != null && received > acked && (ackNow || now >= nextAck || closing))
                    {
                        ackValue = received;
                        acked = received;
                    }
                    ackNow = false;
                    if (now >= nextAck)
                    {
                        nextAck = now + Math.Max(1, options.AckIntervalMs);
                    }
                    if (now >= nextHeartbeat)
                    {
                        sendHeartbeat = true;
                        nextHeartbeat = now + options.HeartbeatIntervalMs;
                    }
                }

                if (batch != null)
                {
                    for (var i = 0; i < batch.Count; i++)
                    {
                        var o = batch[i];
                        if (o.Request != null && o.Request.Cancelled)
                        {
                            continue;
                        }
                        if (!TryWrite(conn, o.Frame))
                        {
                            // This one may or may not have left; the rest did not: they
                            // go first when the session is ready again.
                            Requeue(batch, i + 1);
                            return End.Lost;
                        }
                    }
                }
                if (ackValue >= 0
                    && !TryWrite(conn, Frame.Encode(Control.Ack, Encoding.UTF8.GetBytes("{\"received\":" + ackValue + "}"))))
                {
                    return End.Lost;
                }
                if (sendHeartbeat)
                {
                    if (!TryWrite(conn, Frame.Encode(Control.Heartbeat, HeartbeatPayload)))
                    {
                        return End.Lost;
                    }
                    Interlocked.Increment(ref heartbeatsSent);
                }
                if (closing)
                {
                    bool bye;
                    lock (sync)
                    {
                        bye = token != null && ready;
                    }
                    if (bye)
                    {
                        TryWrite(conn, Frame.Encode(Control.Bye, Encoding.UTF8.GetBytes("{}")));
                    }
                    try
                    {
                        conn.Transport.ShutdownSend();
                        conn.ReaderDone.WaitOne(ByeLingerMs);
                    }
                    catch (Exception)
                    {
                        // The gate closed first: nothing to wait for.
                    }
                    return End.Closed;
                }
            }
        }

        bool TryWrite(Connection conn, byte[] frame)
        {
            try
            {
                conn.Transport.Write(frame);
                return true;
            }
            catch (Exception e)
            {
                lock (sync)
                {
                    if (!conn.Lost)
                    {
                        conn.Lost = true;
                        conn.LostReason = "write failed: " + Describe(e);
                    }
                    Monitor.PulseAll(sync);
                }
                return false;
            }
        }

        void Requeue(List<Outgoing> batch, int from)
        {
            lock (sync)
            {
                var again = new Queue<Outgoing>();
                for (var i = from; i < batch.Count; i++)
                {
                    if (batch[i].Request != null)
                    {
                        batch[i].Request.Written = false;
                    }
                    again.Enqueue(batch[i]);
                }
                foreach (var o in outbox)
                {
                    again.Enqueue(o);
                }
                outbox = again;
            }
        }

        bool SleepUnlessClosing(int delayMs)
        {
            var until = Clock.Now + delayMs;
            lock (sync)
            {
                while (!closeRequested)
                {
                    var left = until - Clock.Now;
                    if (left <= 0)
                    {
                        return true;
                    }
                    Monitor.Wait(sync, (int)left);
                }
                return false;
            }
        }

        void Finish(string reason, bool byClient)
        {
            lock (sync)
            {
                closed = true;
                current = null;
                ready = false;
                foreach (var r in pending.Clear())
                {
                    Fail(r, ZinxException.Closed, "the client is closed: " + reason);
                }
                outbox.Clear();
                PostEvent(client.RaiseClosed, new ClosedInfo(reason, byClient));
                Monitor.PulseAll(sync);
            }
            finished.Set();
        }

        // ---- posting to Poll (under the lock) ----

        void Post(Action item)
        {
            inbox.Enqueue(item);
        }

        void PostEvent<T>(Action<T> raise, T info)
        {
            inbox.Enqueue(() => raise(info));
        }

        void PostLog(string line)
        {
            inbox.Enqueue(() => client.RaiseLog(line));
        }

        void Fail(PendingRequest r, string code, string message)
        {
            r.Cancelled = r.Cancelled || !r.Written;
            var ex = new ZinxException(code, message, r.MsgId);
            inbox.Enqueue(() => r.OnError(ex));
        }

        static string ReadString(byte[] data, string key)
        {
            try
            {
                var obj = MiniJson.Parse(Encoding.UTF8.GetString(data)) as Dictionary<string, object>;
                object v;
                return obj != null && obj.TryGetValue(key, out v) ? v as string : null;
            }
            catch (FormatException)
            {
                return null;
            }
        }

        static string Describe(Exception e)
        {
            while (e is AggregateException && e.InnerException != null)
            {
                e = e.InnerException;
            }
            return e.GetType().Name + ": " + e.Message;
        }

        // ---- small types ----

        /// <summary>A frame waiting in the outbox.</summary>
        struct Outgoing
        {
            internal Outgoing(uint msgId, byte[] frame, PendingRequest request)
            {
                MsgId = msgId;
                Frame = frame;
                Request = request;
            }

            internal readonly uint MsgId;
            internal readonly byte[] Frame;
            internal readonly PendingRequest Request;
        }

        /// <summary>One transport and its reader thread.</summary>
        sealed class Connection
        {
            internal Connection(ITransport transport)
            {
                Transport = transport;
            }

            internal readonly ITransport Transport;
            internal readonly ManualResetEvent ReaderDone = new ManualResetEvent(false);

            /// <summary>Read or write failed, or the gate closed (under the lock).</summary>
            internal bool Lost;

            /// <summary>Why it was lost.</summary>
            internal string LostReason;

            /// <summary>The reason of the gate's MOVE, when it sent one.</summary>
            internal string MoveReason;

            /// <summary>Clock.Now when its handshake completed.</summary>
            internal long ReadyAt;

            internal void StartReader(Action<Connection> loop)
            {
                var t = new Thread(() => loop(this)) { IsBackground = true, Name = "zinx-reader" };
                t.Start();
            }
        }
    }
}
