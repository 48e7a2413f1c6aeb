// The client: connect, request/answer, pushes, events; everything the
// application sees is delivered inside Poll().

using System;
using System.Collections.Generic;
using System.Threading.Tasks;
using ZinxCluster.Client.Session;
using ZinxCluster.Client.Transport;

namespace ZinxCluster.Client
{
    /// <summary>
    /// A connection to a zinx-cluster gate (or any zinx server): requests
    /// matched to their answers, pushes, heartbeats, reconnects and session
    /// resume.
    /// </summary>
    /// <remarks>
    /// <para>
    /// <b>Threads.</b> Sockets are served by background threads, which never
    /// run application code. Answers, pushes, events, request callbacks and
    /// the completion of the returned tasks all happen inside
    /// <see cref="Poll"/>, on the thread that calls it: in Unity, call it from
    /// <c>Update()</c>. Do not block that thread on a returned task
    /// (<c>.Result</c>, <c>.Wait()</c>): it completes only in Poll. The
    /// calls that send (<c>Request</c>, <c>Send</c>, <c>On</c>,
    /// <see cref="Close"/>) may be made from any thread.
    /// </para>
    /// <para>
    /// <b>Matching.</b> zinx frames carry no correlation id: a frame on a msg id
    /// answers the oldest request of that msg id still waiting; with none
    /// waiting it is a push, delivered to the <c>On</c> handlers of its msg
    /// id. An error frame (<see cref="ZinxOptions.ErrorMsgId"/>, JSON
    /// <c>{"msg_id","code","error"}</c>) fails the oldest waiting request of
    /// its <c>msg_id</c> with a <see cref="ZinxException"/>. So use
    /// <c>Request</c> only for messages the server answers, and <c>Send</c>
    /// for the others.
    /// </para>
    /// </remarks>
    public sealed class ZinxClient : IDisposable
    {
        readonly ZinxOptions options;
        readonly SessionLoop session;
        readonly object handlersLock = new object();
        readonly Dictionary<uint, List<Action<byte[]>>> handlers = new Dictionary<uint, List<Action<byte[]>>>();

        ZinxClient(ZinxOptions options, string[] urls)
        {
            this.options = options;
            session = new SessionLoop(this, options, urls);
        }

        /// <summary>
        /// Starts connecting and returns at once. Messages sent before the
        /// session is ready wait in a queue; <see cref="Connected"/> is raised
        /// (in <see cref="Poll"/>) when it is.
        /// </summary>
        /// <exception cref="ArgumentException">No URL, or one that is not tcp://, ws:// or wss://.</exception>
        public static ZinxClient Connect(ZinxOptions options)
        {
            if (options == null)
            {
                throw new ArgumentNullException("options");
            }
            if (options.Urls == null || options.Urls.Count == 0)
            {
                throw new ArgumentException("ZinxOptions.Urls is empty");
            }
            if (options.Json == null)
            {
                throw new ArgumentException("ZinxOptions.Json is null");
            }
            var urls = new string[options.Urls.Count];
            options.Urls.CopyTo(urls, 0);
            foreach (var url in urls)
            {
                Transports.Check(url);
            }
            var client = new ZinxClient(options, urls);
            client.session.Start();
            return client;
        }

        /// <summary><see cref="Connect(ZinxOptions)"/> with default options.</summary>
        public static ZinxClient Connect(params string[] urls)
        {
            var options = new ZinxOptions();
            foreach (var url in urls)
            {
                options.Urls.Add(url);
            }
            return Connect(options);
        }

        // ---- events (raised inside Poll) ----

        /// <summary>The first session is ready.</summary>
        public event Action<ConnectedInfo> Connected;

        /// <summary>The connection was lost (or the gate sent MOVE); the client tries again.</summary>
        public event Action<ReconnectingInfo> Reconnecting;

        /// <summary>The gate asked the client to move (it drains); a reconnect to the next URL follows at once.</summary>
        public event Action<MovedInfo> Moved;

        /// <summary>Reconnected and the session resumed: nothing was lost, waiting requests still wait.</summary>
        public event Action<ResumedInfo> Resumed;

        /// <summary>
        /// Reconnected to a fresh session (not logged in): requests of the lost
        /// session failed with <c>session_lost</c>. Log in again.
        /// </summary>
        public event Action<ResumeFailedInfo> ResumeFailed;

        /// <summary>The client is closed for good.</summary>
        public event Action<ClosedInfo> Closed;

        /// <summary>
        /// A failure nobody else handles: an error frame that answers no
        /// request, a push that cannot be decoded, a failed request whose
        /// callback has no error handler.
        /// </summary>
        public event Action<ZinxException> Error;

        /// <summary>A push no <c>On</c> handler listens to (msg id, data).</summary>
        public event Action<uint, byte[]> Unhandled;

        /// <summary>Diagnostics: dropped messages, a gate without resume, ...</summary>
        public event Action<string> Log;

        // ---- state ----

        /// <summary>Connected and the handshake done (false while reconnecting).</summary>
        public bool IsReady
        {
            get { return session.IsReady; }
        }

        /// <summary>Closed, or closing.</summary>
        public bool IsClosed
        {
            get { return session.IsClosed; }
        }

        /// <summary>The options it was made with.</summary>
        public ZinxOptions Options
        {
            get { return options; }
        }

        /// <summary>The current resume token; null when the session cannot be resumed.</summary>
        public string ResumeToken
        {
            get { return session.Token; }
        }

        /// <summary>Heartbeats written since the client was made (diagnostics).</summary>
        public long HeartbeatsSent
        {
            get { return session.HeartbeatsSent; }
        }

        /// <summary>Frames received on this session that count for resume (N of the protocol).</summary>
        public long ReceivedCount
        {
            get { return session.Received; }
        }

        // ---- the dispatch pump ----

        /// <summary>
        /// Delivers what arrived since the last call: answers (callbacks, task
        /// completions), pushes, events, timeouts. Call it regularly (Unity:
        /// every <c>Update()</c>) from one thread. Returns how many items it
        /// delivered. An exception thrown by a handler propagates; the rest is
        /// delivered by the next call.
        /// </summary>
        public int Poll()
        {
            session.ExpireRequests();
            var max = session.InboxCount;
            var n = 0;
            Action item;
            while (n < max && session.TryDequeue(out item))
            {
                n++;
                item();
            }
            return n;
        }

        // ---- numeric API ----

        /// <summary>
        /// Sends <paramref name="payload"/> on <paramref name="msgId"/> (JSON;
        /// a <c>byte[]</c> as it is) and completes with the answer decoded as
        /// <typeparamref name="T"/> (JSON; <c>byte[]</c> or <see cref="Reply"/>: as it is).
        /// Fails with a <see cref="ZinxException"/>.
        /// </summary>
        public Task<T> Request<T>(uint msgId, object payload)
        {
            var tcs = new TaskCompletionSource<T>();
            Enqueue(msgId, payload, Codec.Json, true,
                data => Complete(tcs, () => Payload.Decode<T>(data, Codec.Json, true, options, msgId)),
                e => tcs.TrySetException(e));
            return tcs.Task;
        }

        /// <summary>Sends raw bytes; completes with the raw answer.</summary>
        public Task<byte[]> Request(uint msgId, byte[] payload)
        {
            return Request<byte[]>(msgId, (object)payload);
        }

        /// <summary>
        /// <see cref="Request{T}(uint, object)"/> with callbacks (run inside
        /// Poll). Without <paramref name="onError"/>, a failure goes to <see cref="Error"/>.
        /// </summary>
        public void Request<T>(uint msgId, object payload, Action<T> onAnswer, Action<ZinxException> onError = null)
        {
            if (onAnswer == null)
            {
                throw new ArgumentNullException("onAnswer");
            }
            Enqueue(msgId, payload, Codec.Json, true,
                data => Deliver(onAnswer, onError, () => Payload.Decode<T>(data, Codec.Json, true, options, msgId)),
                e => Failed(onError, e));
        }

        /// <summary>Raw bytes with callbacks.</summary>
        public void Request(uint msgId, byte[] payload, Action<byte[]> onAnswer, Action<ZinxException> onError = null)
        {
            Request<byte[]>(msgId, (object)payload, onAnswer, onError);
        }

        /// <summary>Sends <paramref name="payload"/> (JSON; a <c>byte[]</c> as it is), no answer expected.</summary>
        public void Send(uint msgId, object payload)
        {
            CheckMsgId(msgId);
            session.Enqueue(msgId, Payload.Encode(payload, Codec.Json, true, options), null);
        }

        /// <summary>
        /// Calls <paramref name="handler"/> (inside Poll) with every push of
        /// <paramref name="msgId"/>, JSON-decoded (<c>byte[]</c>: as it is).
        /// Dispose the result to stop.
        /// </summary>
        public IDisposable On<T>(uint msgId, Action<T> handler)
        {
            if (handler == null)
            {
                throw new ArgumentNullException("handler");
            }
            return AddHandler(msgId, data => DeliverPush(handler, () => Payload.Decode<T>(data, Codec.Json, true, options, msgId)));
        }

        /// <summary>Every push of <paramref name="msgId"/>, raw.</summary>
        public IDisposable On(uint msgId, Action<byte[]> handler)
        {
            return On<byte[]>(msgId, handler);
        }

        // ---- typed API (generated descriptors) ----

        /// <summary>
        /// Sends a typed message and completes with its typed answer:
        /// <c>Answer a = await client.Request(Messages.Login, new Login { name = "alice" });</c>
        /// (an answer type <see cref="Reply"/>: the answer undecoded).
        /// </summary>
        public Task<TAnswer> Request<T, TAnswer>(MessageType<T, TAnswer> type, T value)
        {
            var tcs = new TaskCompletionSource<TAnswer>();
            var msgId = type.Id;
            Enqueue(msgId, value, type.Codec, false,
                data => Complete(tcs, () => Payload.Decode<TAnswer>(data, type.AnswerCodec, true, options, msgId)),
                e => tcs.TrySetException(e));
            return tcs.Task;
        }

        /// <summary>A typed request with callbacks (run inside Poll). Without <paramref name="onError"/>, a failure goes to <see cref="Error"/>.</summary>
        public void Request<T, TAnswer>(
            MessageType<T, TAnswer> type, T value, Action<TAnswer> onAnswer, Action<ZinxException> onError = null)
        {
            if (onAnswer == null)
            {
                throw new ArgumentNullException("onAnswer");
            }
            var msgId = type.Id;
            Enqueue(msgId, value, type.Codec, false,
                data => Deliver(onAnswer, onError, () => Payload.Decode<TAnswer>(data, type.AnswerCodec, true, options, msgId)),
                e => Failed(onError, e));
        }

        /// <summary>Sends a typed message, no answer expected.</summary>
        public void Send<T, TAnswer>(MessageType<T, TAnswer> type, T value)
        {
            CheckMsgId(type.Id);
            session.Enqueue(type.Id, Payload.Encode(value, type.Codec, false, options), null);
        }

        /// <summary>Every push of the message <paramref name="type"/>, decoded with its codec.</summary>
        public IDisposable On<T, TAnswer>(MessageType<T, TAnswer> type, Action<T> handler)
        {
            if (handler == null)
            {
                throw new ArgumentNullException("handler");
            }
            var msgId = type.Id;
            return AddHandler(msgId, data => DeliverPush(handler, () => Payload.Decode<T>(data, type.Codec, false, options, msgId)));
        }

        // ---- closing ----

        /// <summary>
        /// Ends the session: sends what is queued, then BYE (the gate keeps no
        /// resume window), and closes the connection. Blocks at most about two
        /// seconds; <see cref="Closed"/> is raised by the next Poll, and
        /// waiting requests fail with <c>closed</c>.
        /// </summary>
        public void Close()
        {
            session.Close();
        }

        /// <summary>Same as <see cref="Close"/>.</summary>
        public void Dispose()
        {
            Close();
        }

        // ---- internals ----

        void Enqueue(uint msgId, object payload, Codec codec, bool bytesAsRaw, Action<byte[]> onAnswer, Action<ZinxException> onError)
        {
            CheckMsgId(msgId);
            var data = Payload.Encode(payload, codec, bytesAsRaw, options);
            var deadline = options.RequestTimeoutMs > 0 ? Clock.Now + options.RequestTimeoutMs : 0;
            session.Enqueue(msgId, data, new PendingRequest(msgId, deadline, onAnswer, onError));
        }

        /// <summary>The client speaks the reserved ids itself (heartbeat, resume).</summary>
        static void CheckMsgId(uint msgId)
        {
            if (msgId >= Wire.Control.FirstReserved && msgId <= Wire.Control.Heartbeat)
            {
                throw new ArgumentException("msg ids 99990-99999 are reserved (heartbeat, session resume): " + msgId);
            }
        }

        static void Complete<T>(TaskCompletionSource<T> tcs, Func<T> decode)
        {
            T value;
            try
            {
                value = decode();
            }
            catch (ZinxException e)
            {
                tcs.TrySetException(e);
                return;
            }
            tcs.TrySetResult(value);
        }

        void Deliver<T>(Action<T> onAnswer, Action<ZinxException> onError, Func<T> decode)
        {
            T value;
            try
            {
                value = decode();
            }
            catch (ZinxException e)
            {
                Failed(onError, e);
                return;
            }
            onAnswer(value);
        }

        void Failed(Action<ZinxException> onError, ZinxException e)
        {
            if (onError != null)
            {
                onError(e);
            }
            else
            {
                RaiseError(e);
            }
        }

        void DeliverPush<T>(Action<T> handler, Func<T> decode)
        {
            T value;
            try
            {
                value = decode();
            }
            catch (ZinxException e)
            {
                RaiseError(e);
                return;
            }
            handler(value);
        }

        IDisposable AddHandler(uint msgId, Action<byte[]> handler)
        {
            lock (handlersLock)
            {
                List<Action<byte[]>> list;
                if (!handlers.TryGetValue(msgId, out list))
                {
                    list = new List<Action<byte[]>>();
                    handlers.Add(msgId, list);
                }
                list.Add(handler);
            }
            return new Subscription(() =>
            {
                lock (handlersLock)
                {
                    List<Action<byte[]>> list;
                    if (handlers.TryGetValue(msgId, out list))
                    {
                        list.Remove(handler);
                    }
                }
            });
        }

        /// <summary>A push, inside Poll.</summary>
        internal void DispatchPush(uint msgId, byte[] data)
        {
            Action<byte[]>[] targets = null;
            lock (handlersLock)
            {
                List<Action<byte[]>> list;
                if (handlers.TryGetValue(msgId, out list) && list.Count > 0)
                {
                    targets = list.ToArray();
                }
            }
            if (targets == null)
            {
                var unhandled = Unhandled;
                if (unhandled != null)
                {
                    unhandled(msgId, data);
                }
                return;
            }
            foreach (var h in targets)
            {
                h(data);
            }
        }

        internal void RaiseConnected(ConnectedInfo info)
        {
            var h = Connected;
            if (h != null)
            {
                h(info);
            }
        }

        internal void RaiseReconnecting(ReconnectingInfo info)
        {
            var h = Reconnecting;
            if (h != null)
            {
                h(info);
            }
        }

        internal void RaiseMoved(MovedInfo info)
        {
            var h = Moved;
            if (h != null)
            {
                h(info);
            }
        }

        internal void RaiseResumed(ResumedInfo info)
        {
            var h = Resumed;
            if (h != null)
            {
                h(info);
            }
        }

        internal void RaiseResumeFailed(ResumeFailedInfo info)
        {
            var h = ResumeFailed;
            if (h != null)
            {
                h(info);
            }
        }

        internal void RaiseClosed(ClosedInfo info)
        {
            var h = Closed;
            if (h != null)
            {
                h(info);
            }
        }

        internal void RaiseError(ZinxException e)
        {
            var h = Error;
            if (h != null)
            {
                h(e);
            }
            else
            {
                RaiseLog("unhandled: " + e);
            }
        }

        internal void RaiseLog(string line)
        {
            var h = Log;
            if (h != null)
            {
                h(line);
            }
        }

        sealed class Subscription : IDisposable
        {
            Action dispose;

            internal Subscription(Action dispose)
            {
                this.dispose = dispose;
            }

            public void Dispose()
            {
                var d = dispose;
                dispose = null;
                if (d != null)
                {
                    d();
                }
            }
        }
    }
}
