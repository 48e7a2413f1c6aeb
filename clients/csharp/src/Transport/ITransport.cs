// What the session needs from a connection: a byte stream in, whole frames
// out. TCP and WebSocket implement it.

using System;

namespace ZinxCluster.Client.Transport
{
    /// <summary>
    /// One connection to a gate. <see cref="Read"/> is called by one reader
    /// thread; <see cref="Write"/> and <see cref="ShutdownSend"/> by one
    /// writer thread; <see cref="Close"/> by either, possibly concurrently.
    /// </summary>
    internal interface ITransport
    {
        /// <summary>The URL it was opened with.</summary>
        string Url { get; }

        /// <summary>Reads into <paramref name="buf"/>; 0 when the peer closed.</summary>
        int Read(byte[] buf, int offset, int count);

        /// <summary>Writes one frame (one binary message on WebSocket).</summary>
        void Write(byte[] frame);

        /// <summary>No more writes: FIN on TCP, a close message on WebSocket.</summary>
        void ShutdownSend();

        /// <summary>Closes at once; a blocked <see cref="Read"/> fails or returns 0.</summary>
        void Close();
    }

    /// <summary>Opens a transport for a URL.</summary>
    internal static class Transports
    {
        /// <summary>
        /// Opens <c>tcp://host:port</c>, <c>ws://host:port/path</c> or
        /// <c>wss://host:port/path</c> within <paramref name="timeoutMs"/>.
        /// </summary>
        /// <exception cref="ArgumentException">An unsupported or malformed URL.</exception>
        internal static ITransport Open(string url, int timeoutMs)
        {
            Uri uri;
            if (!Uri.TryCreate(url, UriKind.Absolute, out uri))
            {
                throw new ArgumentException("not a URL: " + url);
            }
            switch (uri.Scheme)
            {
                case "tcp":
                    if (uri.Port <= 0)
                    {
                        throw new ArgumentException("a tcp URL needs a port: " + url);
                    }
                    return TcpTransport.Open(url, uri.Host, uri.Port, timeoutMs);
                case "ws":
                case "wss":
                    return WebSocketTransport.Open(url, uri, timeoutMs);
                default:
                    throw new ArgumentException("unsupported URL scheme '" + uri.Scheme + "' (tcp, ws, wss): " + url);
            }
        }

        /// <summary>Checks a URL without opening it.</summary>
        internal static void Check(string url)
        {
            Uri uri;
            if (url == null || !Uri.TryCreate(url, UriKind.Absolute, out uri))
            {
                throw new ArgumentException("not a URL: " + url);
            }
            if (uri.Scheme != "tcp" && uri.Scheme != "ws" && uri.Scheme != "wss")
            {
                throw new ArgumentException("unsupported URL scheme '" + uri.Scheme + "' (tcp, ws, wss): " + url);
            }
            if (uri.Scheme == "tcp" && uri.Port <= 0)
            {
                throw new ArgumentException("a tcp URL needs a port: " + url);
            }
        }
    }
}
