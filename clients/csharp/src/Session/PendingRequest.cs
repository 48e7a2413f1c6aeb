// Requests waiting for their answer, matched by msg id in order (zinx has
// no correlation id; the gate keeps each session's order).

using System;
using System.Collections.Generic;

namespace ZinxCluster.Client.Session
{
    /// <summary>One request waiting for its answer.</summary>
    internal sealed class PendingRequest
    {
        internal PendingRequest(uint msgId, long deadline, Action<byte[]> onAnswer, Action<ZinxException> onError)
        {
            MsgId = msgId;
            Deadline = deadline;
            OnAnswer = onAnswer;
            OnError = onError;
        }

        /// <summary>The msg id its answer comes on.</summary>
        internal readonly uint MsgId;

        /// <summary>Clock.Now past which it fails with <c>timeout</c>; 0: never.</summary>
        internal readonly long Deadline;

        /// <summary>Runs inside Poll with the answer's data.</summary>
        internal readonly Action<byte[]> OnAnswer;

        /// <summary>Runs inside Poll with the failure.</summary>
        internal readonly Action<ZinxException> OnError;

        /// <summary>
        /// Handed to the transport: an answer may come. Until then it waits in
        /// the outbox and no frame can be its answer.
        /// </summary>
        internal bool Written;

        /// <summary>
        /// Timed out after it was written: it stays first in line so that its
        /// late answer is swallowed instead of answering the next request.
        /// </summary>
        internal bool Abandoned;

        /// <summary>Timed out or failed before it was written: the writer skips it.</summary>
        internal bool Cancelled;
    }

    /// <summary>The requests waiting for an answer, one FIFO per msg id.</summary>
    internal sealed class PendingTable
    {
        readonly Dictionary<uint, LinkedList<PendingRequest>> byMsgId = new Dictionary<uint, LinkedList<PendingRequest>>();

        /// <summary>Appends a request at the end of its msg id's line.</summary>
        internal void Add(PendingRequest r)
        {
            LinkedList<PendingRequest> line;
            if (!byMsgId.TryGetValue(r.MsgId, out line))
            {
                line = new LinkedList<PendingRequest>();
                byMsgId.Add(r.MsgId, line);
            }
            line.AddLast(r);
        }

        /// <summary>
        /// Takes the oldest written request of <paramref name="msgId"/>, the
        /// one a frame on it answers; null when none was written.
        /// </summary>
        internal PendingRequest TakeOldestWritten(uint msgId)
        {
            LinkedList<PendingRequest> line;
            if (!byMsgId.TryGetValue(msgId, out line) || line.Count == 0 || !line.First.Value.Written)
            {
                return null;
            }
            var r = line.First.Value;
            line.RemoveFirst();
            return r;
        }

        /// <summary>
        /// Marks the requests whose deadline passed: written ones become
        /// abandoned, unwritten ones are cancelled and removed. Returns them.
        /// </summary>
        internal List<PendingRequest> Expire(long now)
        {
            List<PendingRequest> expired = null;
            foreach (var line in byMsgId.Values)
            {
                var node = line.First;
                while (node != null)
                {
                    var next = node.Next;
                    var r = node.Value;
                    if (r.Deadline > 0 && now >= r.Deadline && !r.Abandoned)
                    {
                        if (r.Written)
                        {
                            r.Abandoned = true;
                        }
                        else
                        {
                            r.Cancelled = true;
                            line.Remove(node);
                        }
                        if (expired == null)
                        {
                            expired = new List<PendingRequest>();
                        }
                        expired.Add(r);
                    }
                    node = next;
                }
            }
            return expired;
        }

        /// <summary>Removes every request; returns those still waiting (not abandoned).</summary>
        internal List<PendingRequest> Clear()
        {
            var waiting = new List<PendingRequest>();
            foreach (var line in byMsgId.Values)
            {
                foreach (var r in line)
                {
                    r.Cancelled = true;
                    if (!r.Abandoned)
                    {
                        waiting.Add(r);
                    }
                }
            }
            byMsgId.Clear();
            return waiting;
        }

        /// <summary>Removes one request (a failed enqueue).</summary>
        internal void Remove(PendingRequest r)
        {
            LinkedList<PendingRequest> line;
            if (byMsgId.TryGetValue(r.MsgId, out line))
            {
                line.Remove(r);
            }
        }

        /// <summary>Requests waiting (abandoned ones included).</summary>
        internal int Count
        {
            get
            {
                var n = 0;
                foreach (var line in byMsgId.Values)
                {
                    n += line.Count;
                }
                return n;
            }
        }
    }
}
