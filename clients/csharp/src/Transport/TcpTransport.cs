// zinx over plain TCP: the frames are the stream.

using System;
using System.IO;
using System.Net.Sockets;

namespace ZinxCluster.Client.Transport
{
    internal sealed class TcpTransport : ITransport
    {
        readonly TcpClient client;
        readonly NetworkStream stream;

        TcpTransport(string url, TcpClient client)
        {
            Url = url;
            this.client = client;
            stream = client.GetStream();
        }

        public string Url { get; private set; }

        internal static TcpTransport Open(string url, string host, int port, int timeoutMs)
        {
            var client = new TcpClient();
            try
            {
                client.NoDelay = true;
                var connect = client.ConnectAsync(host, port);
                if (!connect.Wait(timeoutMs))
                {
                    throw new TimeoutException("no connection to " + url + " within " + timeoutMs + " ms");
                }
                return new TcpTransport(url, client);
            }
            catch (AggregateException e)
            {
                client.Close();
                throw new IOException("cannot connect to " + url + ": " + e.InnerException.Message, e.InnerException);
            }
            catch
            {
                client.Close();
                throw;
            }
        }

        public int Read(byte[] buf, int offset, int count)
        {
            return stream.Read(buf, offset, count);
        }

        public void Write(byte[] frame)
        {
            stream.Write(frame, 0, frame.Length);
        }

        public void ShutdownSend()
        {
            client.Client.Shutdown(SocketShutdown.Send);
        }

        public void Close()
        {
            try
            {
                client.Close();
            }
            catch (Exception)
            {
                // Closing a socket that already failed: nothing left to do.
            }
        }
    }
}
