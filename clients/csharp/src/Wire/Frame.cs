// The zinx TLV frame: u32 msg_id big-endian, u32 len big-endian, data.

using System;

namespace ZinxCluster.Client.Wire
{
    /// <summary>One zinx frame: a msg id and its data.</summary>
    public struct Frame
    {
        /// <summary>Size of the header: msg_id and len, both u32 big-endian.</summary>
        public const int HeaderLength = 8;

        /// <summary>The msg id.</summary>
        public readonly uint MsgId;

        /// <summary>The data (never null; may be empty).</summary>
        public readonly byte[] Data;

        /// <summary>A frame of <paramref name="msgId"/> holding <paramref name="data"/>.</summary>
        public Frame(uint msgId, byte[] data)
        {
            MsgId = msgId;
            Data = data ?? new byte[0];
        }

        /// <summary>The frame's bytes on the wire.</summary>
        public static byte[] Encode(uint msgId, byte[] data)
        {
            var len = data == null ? 0 : data.Length;
            var buf = new byte[HeaderLength + len];
            WriteU32(buf, 0, msgId);
            WriteU32(buf, 4, (uint)len);
            if (len > 0)
            {
                Buffer.BlockCopy(data, 0, buf, HeaderLength, len);
            }
            return buf;
        }

        internal static void WriteU32(byte[] buf, int at, uint v)
        {
            buf[at] = (byte)(v >> 24);
            buf[at + 1] = (byte)(v >> 16);
            buf[at + 2] = (byte)(v >> 8);
            buf[at + 3] = (byte)v;
        }

        internal static uint ReadU32(byte[] buf, int at)
        {
            return ((uint)buf[at] << 24) | ((uint)buf[at + 1] << 16) | ((uint)buf[at + 2] << 8) | buf[at + 3];
        }
    }
}
