// How a client connects: URLs, resume, timers, limits, the JSON layer.

using System.Collections.Generic;

namespace ZinxCluster.Client
{
    /// <summary>Settings of <see cref="ZinxClient.Connect(ZinxOptions)"/>. Every field has a default but <see cref="Urls"/>.</summary>
    public sealed class ZinxOptions
    {
        /// <summary>A new set of defaults.</summary>
        public ZinxOptions()
        {
            Urls = new List<string>();
            Resume = true;
            HeartbeatIntervalMs = 10000;
            RequestTimeoutMs = 10000;
            ErrorMsgId = 0;
            ConnectTimeoutMs = 5000;
            HelloTimeoutMs = 5000;
            Reconnect = true;
            ReconnectMinDelayMs = 200;
            ReconnectMaxDelayMs = 10000;
            MaxReconnectAttempts = 0;
            AckIntervalMs = 1000;
            AckEveryFrames = 64;
            MaxFrameLength = 16 * 1024 * 1024;
            MaxQueuedMessages = 1024;
            Json = MiniJson.Instance;
        }

        /// <summary>
        /// Gates to connect to, tried in order: <c>tcp://host:port</c>,
        /// <c>ws://host:port/path</c>, <c>wss://host:port/path</c>. A failed
        /// attempt and a MOVE go on to the next one (round robin); a lost
        /// connection is first retried on the same one.
        /// </summary>
        public IList<string> Urls { get; set; }

        /// <summary>
        /// Session resume (default true): HELLO on every connection; a lost
        /// connection is resumed with nothing lost (PROTOCOL.md). A gate that
        /// does not speak it still works, without resume.
        /// </summary>
        public bool Resume { get; set; }

        /// <summary>A zinx heartbeat (msg 99999) this often; 0: none. Default 10000.</summary>
        public int HeartbeatIntervalMs { get; set; }

        /// <summary>A request without an answer this long fails with <c>timeout</c>; 0: never. Default 10000.</summary>
        public int RequestTimeoutMs { get; set; }

        /// <summary>msg id of the gate's error answers (its setting <c>error_msg_id</c>). Default 0.</summary>
        public uint ErrorMsgId { get; set; }

        /// <summary>A connection attempt gives up after this long. Default 5000.</summary>
        public int ConnectTimeoutMs { get; set; }

        /// <summary>
        /// A HELLO without an answer this long: the gate does not speak
        /// resume (it answers nothing). Default 5000.
        /// </summary>
        public int HelloTimeoutMs { get; set; }

        /// <summary>Reconnect after a lost connection (default true); false: the client closes.</summary>
        public bool Reconnect { get; set; }

        /// <summary>First reconnect delay; doubles each failed attempt, with jitter. Default 200.</summary>
        public int ReconnectMinDelayMs { get; set; }

        /// <summary>Cap of the reconnect delay. Default 10000.</summary>
        public int ReconnectMaxDelayMs { get; set; }

        /// <summary>Failed connection attempts in a row before the client closes; 0: never. Default 0.</summary>
        public int MaxReconnectAttempts { get; set; }

        /// <summary>An ACK of the received frames at least this often (when any arrived). Default 1000.</summary>
        public int AckIntervalMs { get; set; }

        /// <summary>An ACK as soon as this many frames arrived unacknowledged. Default 64.</summary>
        public int AckEveryFrames { get; set; }

        /// <summary>A frame from the gate longer than this closes the connection. Default 16 MiB.</summary>
        public int MaxFrameLength { get; set; }

        /// <summary>
        /// Messages waiting to be sent (while connecting) at most; beyond it a
        /// request fails with <c>queue_full</c> and a send is dropped. Default 1024.
        /// </summary>
        public int MaxQueuedMessages { get; set; }

        /// <summary>The JSON layer. Default <see cref="MiniJson.Instance"/>.</summary>
        public IJsonSerializer Json { get; set; }

        /// <summary>
        /// Encoder of messages whose descriptor says <see cref="Codec.Protobuf"/>;
        /// none by default (such messages then fail to encode).
        /// </summary>
        public IProtobufCodec Protobuf { get; set; }
    }
}
