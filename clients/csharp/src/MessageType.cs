// Typed messages: descriptors of the Rust `#[derive(Message)]` types (the
// generated files declare them), the answer of a typed request, and the
// payload codecs.

using System;
using System.Text;
using System.Threading.Tasks;

namespace ZinxCluster.Client
{
    /// <summary>How a message's payload is encoded (Rust: <c>#[message(codec = "..")]</c>).</summary>
    public enum Codec
    {
        /// <summary>JSON through <see cref="ZinxOptions.Json"/> (the Rust default).</summary>
        Json,

        /// <summary>Protobuf through <see cref="ZinxOptions.Protobuf"/> (none built in).</summary>
        Protobuf,

        /// <summary>The bytes as they are: <c>byte[]</c>, or <c>string</c> as UTF-8.</summary>
        Raw,
    }

    /// <summary>Encoder of <see cref="Codec.Protobuf"/> messages, e.g. over Google.Protobuf.</summary>
    public interface IProtobufCodec
    {
        /// <summary>The bytes of <paramref name="message"/>.</summary>
        byte[] Encode(object message);

        /// <summary>A message of <paramref name="type"/> from its bytes.</summary>
        object Decode(Type type, byte[] data);
    }

    /// <summary>What every message descriptor says, whatever its types.</summary>
    public interface IMessageType
    {
        /// <summary>The msg id it travels on.</summary>
        uint Id { get; }

        /// <summary>The Rust type's name.</summary>
        string Name { get; }

        /// <summary>How its payload is encoded.</summary>
        Codec Codec { get; }

        /// <summary>How the answer to a request of its msg id is encoded.</summary>
        Codec AnswerCodec { get; }

        /// <summary>The C# type of its payload.</summary>
        Type PayloadType { get; }

        /// <summary>The C# type of the answer to a request of its msg id (<see cref="Reply"/>: not known).</summary>
        Type AnswerType { get; }
    }

    /// <summary>
    /// A message type: msg id, name and codec of one Rust
    /// <c>#[derive(Message)]</c> type whose payload is a <typeparamref name="T"/>,
    /// and <typeparamref name="TAnswer"/>, the answer a request of its msg id
    /// gets (what the server's handler of that msg id returns;
    /// <see cref="Reply"/> when not known). Generated files declare one per
    /// message (<c>Messages.Login</c>); the typed calls of
    /// <see cref="ZinxClient"/> take them:
    /// <c>Answer a = await client.Request(Messages.Login, new Login { name = "alice" });</c>
    /// </summary>
    public sealed class MessageType<T, TAnswer> : IMessageType
    {
        /// <summary>A descriptor whose answer is JSON (generated code calls this).</summary>
        public MessageType(uint id, string name, Codec codec)
            : this(id, name, codec, Codec.Json)
        {
        }

        /// <summary>A descriptor whose answer has its own codec (generated code calls this).</summary>
        public MessageType(uint id, string name, Codec codec, Codec answerCodec)
        {
            Id = id;
            Name = name;
            Codec = codec;
            AnswerCodec = answerCodec;
        }

        /// <inheritdoc />
        public uint Id { get; private set; }

        /// <inheritdoc />
        public string Name { get; private set; }

        /// <inheritdoc />
        public Codec Codec { get; private set; }

        /// <inheritdoc />
        public Codec AnswerCodec { get; private set; }

        /// <inheritdoc />
        public Type PayloadType
        {
            get { return typeof(T); }
        }

        /// <inheritdoc />
        public Type AnswerType
        {
            get { return typeof(TAnswer); }
        }

        /// <summary>
        /// The same message with another answer type, JSON-decoded (or
        /// <c>byte[]</c> / <see cref="Reply"/> as they are):
        /// <c>Messages.Join.WithAnswer&lt;Reply&gt;()</c>.
        /// </summary>
        public MessageType<T, TOther> WithAnswer<TOther>()
        {
            return new MessageType<T, TOther>(Id, Name, Codec, Codec.Json);
        }

        /// <inheritdoc />
        public override string ToString()
        {
            return Name + " (msg " + Id + ", " + Codec + ")";
        }
    }

    /// <summary>An answer not yet decoded: its bytes, decodable on demand.</summary>
    public sealed class Reply
    {
        readonly ZinxOptions options;

        internal Reply(uint msgId, byte[] data, ZinxOptions options)
        {
            MsgId = msgId;
            Data = data;
            this.options = options;
        }

        /// <summary>The msg id it came on.</summary>
        public uint MsgId { get; private set; }

        /// <summary>The payload as received.</summary>
        public byte[] Data { get; private set; }

        /// <summary>The payload as UTF-8 text.</summary>
        public string Text
        {
            get { return Encoding.UTF8.GetString(Data); }
        }

        /// <summary>The payload JSON-decoded (<c>byte[]</c>: as it is).</summary>
        /// <exception cref="ZinxException"><c>decode_error</c>.</exception>
        public T As<T>()
        {
            return Payload.Decode<T>(Data, Codec.Json, true, options, MsgId);
        }

        /// <summary>The payload decoded with <paramref name="codec"/>.</summary>
        /// <exception cref="ZinxException"><c>decode_error</c>.</exception>
        public T As<T>(Codec codec)
        {
            return Payload.Decode<T>(Data, codec, false, options, MsgId);
        }
    }

    /// <summary>Decoding a typed request's answer where it is awaited.</summary>
    public static class ReplyTasks
    {
        /// <summary>
        /// <c>await client.Request(type, value).As&lt;Answer&gt;()</c> for a message
        /// whose answer type is <see cref="Reply"/> (not known): the reply
        /// JSON-decoded. Runs where the reply completes (inside Poll).
        /// </summary>
        public static async Task<T> As<T>(this Task<Reply> reply)
        {
            var r = await reply;
            return r.As<T>();
        }
    }

    /// <summary>Payload bytes from values and back, per codec.</summary>
    internal static class Payload
    {
        static readonly byte[] JsonNull = Encoding.UTF8.GetBytes("null");

        /// <summary>
        /// The bytes of <paramref name="value"/>. With <paramref name="bytesAsRaw"/>
        /// (the numeric API) a <c>byte[]</c> is sent as it is whatever the codec.
        /// </summary>
        internal static byte[] Encode(object value, Codec codec, bool bytesAsRaw, ZinxOptions options)
        {
            var bytes = value as byte[];
            if (bytes != null && (bytesAsRaw || codec == Codec.Raw))
            {
                return bytes;
            }
            switch (codec)
            {
                case Codec.Raw:
                    if (value == null)
                    {
                        return new byte[0];
                    }
                    var text = value as string;
                    if (text != null)
                    {
                        return Encoding.UTF8.GetBytes(text);
                    }
                    throw new ArgumentException("a raw message is a byte[] or a string, not " + value.GetType().Name);
                case Codec.Protobuf:
                    if (options.Protobuf == null)
                    {
                        throw new NotSupportedException("a protobuf message needs ZinxOptions.Protobuf");
                    }
                    return options.Protobuf.Encode(value);
                default:
                    return value == null ? JsonNull : Encoding.UTF8.GetBytes(options.Json.Serialize(value));
            }
        }

        /// <summary>
        /// A <typeparamref name="T"/> from payload bytes. With <paramref name="auto"/>
        /// (the numeric API) <c>byte[]</c> and <see cref="Reply"/> take the bytes as they are.
        /// </summary>
        internal static T Decode<T>(byte[] data, Codec codec, bool auto, ZinxOptions options, uint msgId)
        {
            try
            {
                if (typeof(T) == typeof(byte[]) && (auto || codec == Codec.Raw))
                {
                    return (T)(object)data;
                }
                if (auto && typeof(T) == typeof(Reply))
                {
                    return (T)(object)new Reply(msgId, data, options);
                }
                switch (codec)
                {
                    case Codec.Raw:
                        if (typeof(T) == typeof(string))
                        {
                            return (T)(object)Encoding.UTF8.GetString(data);
                        }
                        throw new ArgumentException("a raw message is a byte[] or a string, not " + typeof(T).Name);
                    case Codec.Protobuf:
                        if (options.Protobuf == null)
                        {
                            throw new NotSupportedException("a protobuf message needs ZinxOptions.Protobuf");
                        }
                        return (T)options.Protobuf.Decode(typeof(T), data);
                    default:
                        return options.Json.Deserialize<T>(Encoding.UTF8.GetString(data));
                }
            }
            catch (Exception e)
            {
                throw new ZinxException(
                    ZinxException.DecodeError,
                    "msg " + msgId + ": cannot decode " + data.Length + " bytes as " + typeof(T).Name + ": " + e.Message,
                    msgId,
                    e);
            }
        }
    }
}
