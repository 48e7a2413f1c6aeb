// The test runner: `mono ZinxCluster.Client.Tests.exe [filter...]` runs the
// unit, protocol and (with test.sh's environment) demo tests whose name
// contains one of the filters; exits 1 when any fails.

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;

namespace ZinxCluster.Client.Tests
{
    static class Program
    {
        static int Main(string[] args)
        {
            var suite = new Suite();
            UnitTests.Register(suite);
            ProtocolTests.Register(suite);
            var env = DemoEnv.FromEnvironment();
            if (env != null)
            {
                DemoTests.Register(suite, env);
                ResumeTests.Register(suite, env, Environment.GetEnvironmentVariable("ZINX_RESUME") == "1");
            }
            else
            {
                suite.Skip("demo/*", "ZINX_TEST_TCP is not set: run through clients/csharp/test.sh, which starts the demo");
            }

            var selected = suite.Tests.Where(t => args.Length == 0 || args.Any(a => t.Name.Contains(a))).ToList();
            var failed = new List<string>();
            var skipped = new List<TestCase>();
            var total = Stopwatch.StartNew();
            foreach (var test in selected)
            {
                if (test.SkipReason != null)
                {
                    skipped.Add(test);
                    continue;
                }
                var clock = Stopwatch.StartNew();
                var pump = new Pump();
                try
                {
                    pump.Run(test.Body, test.TimeoutMs);
                    Console.WriteLine("ok    " + test.Name + " (" + clock.ElapsedMilliseconds + " ms)");
                }
                catch (Exception e)
                {
                    failed.Add(test.Name);
                    Console.WriteLine("FAIL  " + test.Name + " (" + clock.ElapsedMilliseconds + " ms)");
                    Console.WriteLine("      " + (e is AssertionException ? e.Message : e.ToString()).Replace("\n", "\n      "));
                    foreach (var line in pump.ClientLog.Skip(Math.Max(0, pump.ClientLog.Count - 10)))
                    {
                        Console.WriteLine("      | " + line);
                    }
                }
            }
            foreach (var test in skipped)
            {
                Console.Error.WriteLine("SKIPPED  " + test.Name + ": " + test.SkipReason);
            }
            Console.WriteLine();
            Console.WriteLine((selected.Count - skipped.Count - failed.Count) + " passed, " + failed.Count + " failed, "
                              + skipped.Count + " skipped in " + total.ElapsedMilliseconds + " ms");
            foreach (var name in failed)
            {
                Console.WriteLine("  failed: " + name);
            }
            if (selected.Count == 0)
            {
                Console.WriteLine("no test matches " + string.Join(" ", args));
                return 1;
            }
            return failed.Count == 0 ? 0 : 1;
        }
    }
}
