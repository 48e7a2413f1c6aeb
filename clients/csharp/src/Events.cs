// What the client's events carry. Every event is raised inside Poll().

namespace ZinxCluster.Client
{
    /// <summary>The first session is ready (<see cref="ZinxClient.Connected"/>).</summary>
    public sealed class ConnectedInfo
    {
        internal ConnectedInfo(string url, bool resumable)
        {
            Url = url;
            Resumable = resumable;
        }

        /// <summary>The gate it connected to.</summary>
        public string Url { get; private set; }

        /// <summary>
        /// Whether the session can be resumed: resume is on and the gate
        /// answered the HELLO with a token.
        /// </summary>
        public bool Resumable { get; private set; }
    }

    /// <summary>The connection is gone; the client tries again (<see cref="ZinxClient.Reconnecting"/>).</summary>
    public sealed class ReconnectingInfo
    {
        internal ReconnectingInfo(int attempt, int delayMs, string url, string reason)
        {
            Attempt = attempt;
            DelayMs = delayMs;
            Url = url;
            Reason = reason;
        }

        /// <summary>1 for the first attempt after a loss, counting up while they fail.</summary>
        public int Attempt { get; private set; }

        /// <summary>How long the client waits before this attempt.</summary>
        public int DelayMs { get; private set; }

        /// <summary>The URL it will try.</summary>
        public string Url { get; private set; }

        /// <summary>Why: the lost connection's error, the failed attempt's error, or <c>move: REASON</c>.</summary>
        public string Reason { get; private set; }
    }

    /// <summary>The session survived a lost connection (<see cref="ZinxClient.Resumed"/>).</summary>
    public sealed class ResumedInfo
    {
        internal ResumedInfo(string url, int replayed)
        {
            Url = url;
            Replayed = replayed;
        }

        /// <summary>The gate it reconnected to.</summary>
        public string Url { get; private set; }

        /// <summary>Frames the gate sent again: those the lost connection did not deliver.</summary>
        public int Replayed { get; private set; }
    }

    /// <summary>The gate asked the client to move (<see cref="ZinxClient.Moved"/>).</summary>
    public sealed class MovedInfo
    {
        internal MovedInfo(string reason)
        {
            Reason = reason;
        }

        /// <summary>The gate's reason (<c>draining</c>).</summary>
        public string Reason { get; private set; }
    }

    /// <summary>
    /// The reconnect got a fresh session, not logged in (<see cref="ZinxClient.ResumeFailed"/>):
    /// requests of the lost session failed with <c>session_lost</c>, what was
    /// queued to send was dropped. Log in again.
    /// </summary>
    public sealed class ResumeFailedInfo
    {
        /// <summary>The client has resume off, or the gate does not speak it.</summary>
        public const string NotResumable = "not_resumable";

        internal ResumeFailedInfo(string url, string reason, int rejected, int dropped)
        {
            Url = url;
            Reason = reason;
            Rejected = rejected;
            Dropped = dropped;
        }

        /// <summary>The gate it reconnected to.</summary>
        public string Url { get; private set; }

        /// <summary>
        /// The gate's reason (<c>expired</c>, <c>unknown</c>, <c>overflow</c>,
        /// <c>disabled</c>), or <see cref="NotResumable"/>.
        /// </summary>
        public string Reason { get; private set; }

        /// <summary>Requests of the lost session that failed with <c>session_lost</c>.</summary>
        public int Rejected { get; private set; }

        /// <summary>Queued messages (sends) of the lost session that were dropped.</summary>
        public int Dropped { get; private set; }
    }

    /// <summary>The client is closed for good (<see cref="ZinxClient.Closed"/>).</summary>
    public sealed class ClosedInfo
    {
        internal ClosedInfo(string reason, bool byClient)
        {
            Reason = reason;
            ByClient = byClient;
        }

        /// <summary>Why.</summary>
        public string Reason { get; private set; }

        /// <summary>True after <see cref="ZinxClient.Close"/>; false when reconnecting gave up.</summary>
        public bool ByClient { get; private set; }
    }
}
