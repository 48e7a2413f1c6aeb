// zinx over WebSocket (System.Net.WebSockets.ClientWebSocket, in .NET
// Framework 4.5+ and .NET Standard 2.0): each frame we send is one binary
// message; what the gate sends is read as a byte stream, so a frame may span
// messages and a message may hold several frames.

using System;
using System.IO;
using System.Net.WebSockets;
using System.Threading;

namespace ZinxCluster.Client.Transport
{
    internal sealed class WebSocketTransport : ITransport
    {
        readonly ClientWebSocket socket;

        WebSocketTransport(string url, ClientWebSocket socket)
        {
            Url = url;
            this.socket = socket;
        }

        public string Url { get; private set; }

        internal static WebSocketTransport Open(string url, Uri uri, int timeoutMs)
        {
            var socket = new ClientWebSocket();
            try
            {
                using (var cts = new CancellationTokenSource(timeoutMs))
                {
                    var connect = socket.ConnectAsync(uri, cts.Token);
                    if (!connect.Wait(timeoutMs + 1000))
                    {
                        throw new TimeoutException("no connection to " + url + " within " + timeoutMs + " ms");
                    }
                }
                return new WebSocketTransport(url, socket);
            }
            catch (AggregateException e)
            {
                socket.Dispose();
                throw new IOException("cannot connect to " + url + ": " + e.InnerException.Message, e.InnerException);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        public int Read(byte[] buf, int offset, int count)
        {
            while (true)
            {
                var result = socket.ReceiveAsync(new ArraySegment<byte>(buf, offset, count), CancellationToken.None)
                    .GetAwaiter().GetResult();
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return 0;
                }
                if (result.Count > 0)
                {
                    return result.Count;
                }
                // An empty message: nothing to decode, read on.
            }
        }

        public void Write(byte[] frame)
        {
            socket.SendAsync(new ArraySegment<byte>(frame), WebSocketMessageType.Binary, true, CancellationToken.None)
                .GetAwaiter().GetResult();
        }

        public void ShutdownSend()
        {
            using (var cts = new CancellationTokenSource(1000))
            {
                socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", cts.Token).GetAwaiter().GetResult();
            }
        }

        public void Close()
        {
            try
            {
                socket.Abort();
                socket.Dispose();
            }
            catch (Exception)
            {
                // Closing a socket that already failed: nothing left to do.
            }
        }
    }
}
