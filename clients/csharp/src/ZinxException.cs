// Why a request failed: the gate's error answer, or the client's own reason.

using System;

namespace ZinxCluster.Client
{
    /// <summary>
    /// A failed request. <see cref="Code"/> is the gate's code from its error
    /// answer (<c>bad_payload</c>, <c>unknown_msg_id</c>, <c>no_live_node</c>,
    /// ...) or one of the client's own codes (the constants of this class).
    /// </summary>
    [Serializable]
    public class ZinxException : Exception
    {
        /// <summary>No answer within <see cref="ZinxOptions.RequestTimeoutMs"/>.</summary>
        public const string Timeout = "timeout";

        /// <summary>
        /// The session the request was sent on is gone (the reconnect got a
        /// fresh session: resume failed, unsupported or off). Log in again.
        /// </summary>
        public const string SessionLost = "session_lost";

        /// <summary>The client is closed (<see cref="ZinxClient.Close"/>, or reconnecting gave up).</summary>
        public const string Closed = "closed";

        /// <summary>More than <see cref="ZinxOptions.MaxQueuedMessages"/> messages wait to be sent.</summary>
        public const string QueueFull = "queue_full";

        /// <summary>The answer arrived but could not be decoded into the asked type.</summary>
        public const string DecodeError = "decode_error";

        /// <summary>A failure with a code, a reason, and the msg id it concerns.</summary>
        public ZinxException(string code, string message, uint msgId)
            : this(code, message, msgId, null)
        {
        }

        /// <summary>A failure with a code, a reason, the msg id it concerns and its cause.</summary>
        public ZinxException(string code, string message, uint msgId, Exception inner)
            : base(message, inner)
        {
            Code = code;
            MsgId = msgId;
        }

        /// <summary>A short machine-readable code.</summary>
        public string Code { get; private set; }

        /// <summary>The msg id of the request (or message) that failed.</summary>
        public uint MsgId { get; private set; }

        /// <inheritdoc />
        public override string ToString()
        {
            return "ZinxException(" + Code + ", msg " + MsgId + "): " + Message;
        }
    }
}
