// A monotonic millisecond clock (wall-clock jumps must not fire timers).

using System.Diagnostics;

namespace ZinxCluster.Client.Session
{
    internal static class Clock
    {
        static readonly Stopwatch Watch = Stopwatch.StartNew();

        /// <summary>Milliseconds since the library was loaded.</summary>
        internal static long Now
        {
            get { return Watch.ElapsedMilliseconds; }
        }
    }
}
