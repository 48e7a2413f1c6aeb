// The reserved msg ids of the zinx heartbeat and of session resume
// (PROTOCOL.md, "Session resume").

namespace ZinxCluster.Client.Wire
{
    /// <summary>Reserved msg ids the client speaks itself.</summary>
    public static class Control
    {
        /// <summary>The zinx heartbeat: sent periodically, ignored when received.</summary>
        public const uint Heartbeat = 99999;

        /// <summary>HELLO: client → gate <c>{}</c> or <c>{"token":T,"received":N}</c>; the gate answers on it.</summary>
        public const uint Hello = 99990;

        /// <summary>ACK, client → gate: <c>{"received":N}</c>.</summary>
        public const uint Ack = 99991;

        /// <summary>MOVE, gate → client: reconnect to any gate and resume.</summary>
        public const uint Move = 99992;

        /// <summary>BYE, client → gate: end the session now.</summary>
        public const uint Bye = 99993;

        /// <summary>First msg id reserved for control frames.</summary>
        public const uint FirstReserved = 99990;

        /// <summary>Last msg id reserved for control frames.</summary>
        public const uint LastReserved = 99998;

        /// <summary>
        /// Whether the gate counts a frame of this msg id in the received
        /// count <c>N</c>: every frame but heartbeats and control frames.
        /// </summary>
        public static bool Counts(uint msgId)
        {
            return msgId != Heartbeat && (msgId < FirstReserved || msgId > LastReserved);
        }
    }
}
