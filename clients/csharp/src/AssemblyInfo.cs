// Assembly attributes: the test runner sees the internals it unit-tests
// (the backoff, the pending table).

using System.Reflection;
using System.Runtime.CompilerServices;

[assembly: AssemblyTitle("ZinxCluster.Client")]
[assembly: AssemblyDescription("zinx-cluster client SDK for Unity and .NET: requests, pushes, heartbeats, reconnect, session resume")]
[assembly: AssemblyVersion("0.1.0.0")]
[assembly: InternalsVisibleTo("ZinxCluster.Client.Tests")]
