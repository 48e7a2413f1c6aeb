// The reader side of SessionLoop: one thread per connection decodes the
// gate's frames; under the session's lock it answers waiting requests in
// order, counts frames for resume, and settles the handshake (HELLO answer,
// an error answer from a gate without resume, MOVE). It only enqueues for
// Poll().

using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using ZinxCluster.Client.Wire;

namespace ZinxCluster.Client.Session
{
    internal sealed partial class SessionLoop
    {
        // ---- the reader thread of each connection ----

        void ReadLoop(Connection conn)
        {
            var buf = new byte[64 * 1024];
            var frames = new List<Frame>();
            var decoder = new FrameDecoder(options.MaxFrameLength);
            var reason = "closed by the gate";
            try
            {
                while (true)
                {
                    var n = conn.Transport.Read(buf, 0, buf.Length);
                    if (n <= 0)
                    {
                        break;
                    }
                    decoder.Feed(buf, 0, n, frames);
                    if (frames.Count > 0)
                    {
                        OnFrames(conn, frames);
                        frames.Clear();
                    }
                }
            }
            catch (Exception e)
            {
                reason = Describe(e);
            }
            lock (sync)
            {
                if (!conn.Lost)
                {
                    conn.Lost = true;
                    conn.LostReason = reason;
                }
                Monitor.PulseAll(sync);
            }
            conn.ReaderDone.Set();
        }

        void OnFrames(Connection conn, List<Frame> frames)
        {
            lock (sync)
            {
                foreach (var f in frames)
                {
                    if (conn != current)
                    {
                        return;
                    }
                    OnFrame(conn, f);
                }
                // Poll is behind: stop reading until it catches up.
                while (inbox.Count >= MaxInbox && conn == current && !conn.Lost)
                {
                    Monitor.Wait(sync, 100);
                }
            }
        }

        /// <summary>One frame of the current connection, under the lock.</summary>
        void OnFrame(Connection conn, Frame f)
        {
            var id = f.MsgId;
            if (id == Control.Heartbeat)
            {
                return;
            }
            if (id == Control.Hello)
            {
                if (helloPending)
                {
                    OnHelloAnswer(conn, f.Data);
                }
                return;
            }
            if (id == Control.Move)
            {
                moveReason = ReadString(f.Data, "reason") ?? "move";
                PostEvent(client.RaiseMoved, new MovedInfo(moveReason));
                Monitor.PulseAll(sync);
                return;
            }
            if (!Control.Counts(id))
            {
                return;
            }
            if (id == options.ErrorMsgId)
            {
                OnErrorFrame(conn, f.Data);
                return;
            }
            Count();
            var r = pending.TakeOldestWritten(id);
            if (r == null)
            {
                var data = f.Data;
                Post(() => client.DispatchPush(id, data));
            }
            else if (r.Abandoned)
            {
                PostLog("msg " + id + ": a late answer to a request that timed out, dropped");
            }
            else
            {
                var data = f.Data;
                Post(() => r.OnAnswer(data));
            }
        }

        void OnErrorFrame(Connection conn, byte[] data)
        {
            uint msgId = 0;
            string code = "error";
            string text = Encoding.UTF8.GetString(data);
            var known = false;
            try
            {
                var obj = MiniJson.Parse(text) as Dictionary<string, object>;
                object v;
                if (obj != null && obj.TryGetValue("msg_id", out v) && v is long && (long)v >= 0 && (long)v <= uint.MaxValue)
                {
                    msgId = (uint)(long)v;
                    known = true;
                    if (obj.TryGetValue("code", out v) && v is string)
                    {
                        code = (string)v;
                    }
                    if (obj.TryGetValue("error", out v) && v is string)
                    {
                        text = (string)v;
                    }
                }
            }
            catch (FormatException)
            {
                // Not the framework's JSON: report the text as it is.
            }

            if (known && msgId == Control.Hello && helloPending)
            {
                // A gate without session resume: HELLO is an unknown msg id to it.
                // Such a gate counts nothing, this frame included.
                PostLog("the gate at " + conn.Transport.Url + " does not speak session resume (" + code + ")");
                Handshake(conn, HelloKind.Unsupported, null, null, 0);
                return;
            }
            Count();
            var ex = new ZinxException(code, text, msgId);
            var r = known ? pending.TakeOldestWritten(msgId) : null;
            if (r == null)
            {
                Post(() => client.RaiseError(ex));
            }
            else if (r.Abandoned)
            {
                PostLog("msg " + msgId + ": a late error answer (" + code + ") to a request that timed out, dropped");
            }
            else
            {
                Post(() => r.OnError(ex));
            }
        }

        void Count()
        {
            received++;
            if (token != null && received - acked >= Math.Max(1, options.AckEveryFrames))
            {
                ackNow = true;
                Monitor.PulseAll(sync);
            }
        }

        void OnHelloAnswer(Connection conn, byte[] data)
        {
            Dictionary<string, object> obj = null;
            try
            {
                obj = MiniJson.Parse(Encoding.UTF8.GetString(data)) as Dictionary<string, object>;
            }
            catch (FormatException)
            {
                // Handled below as an answer we do not understand.
            }
            object v;
            var t = obj != null && obj.TryGetValue("token", out v) ? v as string : null;
            if (obj == null || t == null)
            {
                PostLog("a HELLO answer without a token from " + conn.Transport.Url + ": resume off for this session");
                Handshake(conn, HelloKind.Unsupported, null, null, 0);
                return;
            }
            if (!obj.TryGetValue("resumed", out v) || !(v is bool))
            {
                Handshake(conn, HelloKind.New, t, null, 0);
            }
            else if ((bool)v)
            {
                var replayed = obj.TryGetValue("replayed", out v) && v is long ? (int)Math.Min((long)v, int.MaxValue) : 0;
                Handshake(conn, HelloKind.Resumed, t, null, replayed);
            }
            else
            {
                var reason = obj.TryGetValue("reason", out v) && v is string ? (string)v : "unknown";
                Handshake(conn, HelloKind.Failed, t, reason, 0);
            }
        }

        enum HelloKind
        {
            /// <summary>Resume is off: no HELLO was sent.</summary>
            NoHello,

            /// <summary>The gate did not understand HELLO (error answer, or none in time).</summary>
            Unsupported,

            /// <summary>A new resumable session.</summary>
            New,

            /// <summary>The session was resumed.</summary>
            Resumed,

            /// <summary>The session could not be resumed: a fresh one.</summary>
            Failed,
        }

        /// <summary>The outcome of a connection's handshake, under the lock.</summary>
        void Handshake(Connection conn, HelloKind kind, string newToken, string reason, int replayed)
        {
            helloPending = false;
            var resumedNow = kind == HelloKind.Resumed && token != null;
            if (resumedNow)
            {
                token = newToken;
            }
            else
            {
                token = kind == HelloKind.New || (kind == HelloKind.Failed && reason != "disabled") ? newToken : null;
                received = 0;
                acked = 0;
                ackNow = false;
            }
            var url = conn.Transport.Url;
            if (!hadSession)
            {
                hadSession = true;
                PostEvent(client.RaiseConnected, new ConnectedInfo(url, token != null));
            }
            else if (resumedNow)
            {
                PostEvent(client.RaiseResumed, new ResumedInfo(url, replayed));
            }
            else
            {
                int rejected, dropped;
                LoseSession(out rejected, out dropped);
                var why = kind == HelloKind.Failed ? reason : ResumeFailedInfo.NotResumable;
                PostEvent(client.RaiseResumeFailed, new ResumeFailedInfo(url, why, rejected, dropped));
            }
            ready = true;
            conn.ReadyAt = Clock.Now;
            Monitor.PulseAll(sync);
        }

        /// <summary>The session is gone: its requests fail, what waited to be sent is dropped.</summary>
        void LoseSession(out int rejected, out int dropped)
        {
            var lost = pending.Clear();
            foreach (var r in lost)
            {
                Fail(r, ZinxException.SessionLost, "the session was lost: the reconnect got a fresh one; log in again");
            }
            rejected = lost.Count;
            dropped = 0;
            foreach (var o in outbox)
            {
                if (o.Request == null)
                {
                    dropped++;
                }
            }
            outbox.Clear();
            if (dropped > 0)
            {
                PostLog(dropped + " queued message(s) of the lost session dropped");
            }
        }
    }
}
