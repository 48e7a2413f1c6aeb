// Cuts a byte stream (TCP reads, WebSocket messages) into zinx frames: a
// frame may arrive one byte at a time, several may arrive in one read.

using System;
using System.Collections.Generic;

namespace ZinxCluster.Client.Wire
{
    /// <summary>
    /// A stateful decoder of zinx frames from a byte stream. Never buffers
    /// more than one frame: a header announcing more than the limit fails.
    /// </summary>
    public sealed class FrameDecoder
    {
        readonly int maxDataLength;
        readonly byte[] header = new byte[Frame.HeaderLength];
        int headerFill;
        uint msgId;
        byte[] data;
        int dataFill;

        /// <summary>A decoder refusing frames whose data is longer than <paramref name="maxDataLength"/>.</summary>
        public FrameDecoder(int maxDataLength)
        {
            this.maxDataLength = maxDataLength;
        }

        /// <summary>
        /// Feeds bytes; appends every frame they complete to <paramref name="frames"/>.
        /// </summary>
        /// <exception cref="System.IO.InvalidDataException">A frame is longer than the limit.</exception>
        public void Feed(byte[] buf, int offset, int count, List<Frame> frames)
        {
            var end = offset + count;
            while (offset < end)
            {
                if (data == null)
                {
                    var take = Math.Min(Frame.HeaderLength - headerFill, end - offset);
                    Buffer.BlockCopy(buf, offset, header, headerFill, take);
                    headerFill += take;
                    offset += take;
                    if (headerFill < Frame.HeaderLength)
                    {
                        return;
                    }
                    msgId = Frame.ReadU32(header, 0);
                    var len = Frame.ReadU32(header, 4);
                    if (len > (uint)maxDataLength)
                    {
                        throw new System.IO.InvalidDataException(
                            "a frame of msg " + msgId + " announces " + len + " bytes, over the limit of " + maxDataLength);
                    }
                    data = new byte[len];
                    dataFill = 0;
                }
                var want = Math.Min(data.Length - dataFill, end - offset);
                Buffer.BlockCopy(buf, offset, data, dataFill, want);
                dataFill += want;
                offset += want;
                if (dataFill == data.Length)
                {
                    frames.Add(new Frame(msgId, data));
                    data = null;
                    headerFill = 0;
                }
            }
        }
    }
}
