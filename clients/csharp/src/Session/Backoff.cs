// Reconnect delays: exponential with a cap, and jitter so that the clients
// of a restarted gate do not all come back in the same millisecond.

using System;

namespace ZinxCluster.Client.Session
{
    /// <summary>Delays between connection attempts.</summary>
    internal static class Backoff
    {
        /// <summary>
        /// The delay before attempt <paramref name="attempt"/> (1, 2, ...):
        /// <c>min(cap, minMs * 2^(attempt-1))</c>, of which the upper half is
        /// random ("equal jitter"): between half and all of it.
        /// </summary>
        internal static int Delay(int attempt, int minMs, int capMs, Random random)
        {
            if (minMs <= 0 || attempt <= 0)
            {
                return 0;
            }
            var full = (double)minMs * Math.Pow(2, Math.Min(attempt - 1, 30));
            var ceiling = (int)Math.Min(Math.Max(capMs, minMs), full);
            var half = ceiling / 2;
            return half + random.Next(ceiling - half + 1);
        }
    }
}
