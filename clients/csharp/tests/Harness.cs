// The test runner's own small framework: registered tests, assertions, and
// the Pump, which calls Poll() on the test's thread so that every await in
// a test resumes there (the way a Unity game's main thread would).

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using ZinxCluster.Client;

namespace ZinxCluster.Client.Tests
{
    /// <summary>A failed expectation.</summary>
    sealed class AssertionException : Exception
    {
        public AssertionException(string message) : base(message)
        {
        }
    }

    static class Assert
    {
        public static void True(bool condition, string what)
        {
            if (!condition)
            {
                throw new AssertionException(what);
            }
        }

        public static void Equal<T>(T expected, T actual, string what)
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
            {
                throw new AssertionException(what + ": expected <" + expected + ">, got <" + actual + ">");
            }
        }

        public static void Bytes(byte[] expected, byte[] actual, string what)
        {
            if (actual == null || expected.Length != actual.Length)
            {
                throw new AssertionException(what + ": expected " + expected.Length + " bytes, got "
                                             + (actual == null ? "null" : actual.Length.ToString()));
            }
            for (var i = 0; i < expected.Length; i++)
            {
                if (expected[i] != actual[i])
                {
                    throw new AssertionException(what + ": bytes differ at " + i);
                }
            }
        }

        /// <summary>Awaits a task that must fail with a ZinxException; returns it.</summary>
        public static async Task<ZinxException> Fails(Task task, string what)
        {
            try
            {
                await task;
            }
            catch (ZinxException e)
            {
                return e;
            }
            throw new AssertionException(what + ": expected a ZinxException, the task succeeded");
        }

        public static T Throws<T>(Action action, string what) where T : Exception
        {
            try
            {
                action();
            }
            catch (T e)
            {
                return e;
            }
            throw new AssertionException(what + ": expected " + typeof(T).Name);
        }
    }

    /// <summary>
    /// Drives a test: polls its clients on the test thread, completes its
    /// waits, closes its clients at the end.
    /// </summary>
    sealed class Pump
    {
        readonly List<ZinxClient> clients = new List<ZinxClient>();
        readonly List<Waiter> waiters = new List<Waiter>();
        readonly List<string> log = new List<string>();
        public readonly int ThreadId = Thread.CurrentThread.ManagedThreadId;

        /// <summary>Log lines of the clients, for a failing test's report.</summary>
        public IList<string> ClientLog
        {
            get { return log; }
        }

        /// <summary>Connects a client that this pump polls and closes.</summary>
        public ZinxClient Connect(ZinxOptions options, string name = null)
        {
            var c = ZinxClient.Connect(options);
            var tag = name ?? ("client" + clients.Count);
            c.Log += line => log.Add(tag + ": " + line);
            clients.Add(c);
            return c;
        }

        /// <summary>Fails when called from another thread than the pump's.</summary>
        public void OnPumpThread(string where)
        {
            var now = Thread.CurrentThread.ManagedThreadId;
            Assert.True(now == ThreadId, where + " ran on thread " + now + ", not on the Poll thread " + ThreadId);
        }

        /// <summary>Completes (on the pump's thread) when <paramref name="condition"/> holds.</summary>
        public Task Until(Func<bool> condition, string what, int timeoutMs = 5000)
        {
            var w = new Waiter(condition, what, Stopwatch.StartNew(), timeoutMs);
            if (condition())
            {
                w.Done.SetResult(true);
            }
            else
            {
                waiters.Add(w);
            }
            return w.Done.Task;
        }

        /// <summary>Completes after <paramref name="ms"/>, polling meanwhile.</summary>
        public Task Delay(int ms)
        {
            var clock = Stopwatch.StartNew();
            return Until(() => clock.ElapsedMilliseconds >= ms, "a delay", ms + 60000);
        }

        /// <summary>Polls every client once and checks the waits.</summary>
        public void Step()
        {
            foreach (var c in clients.ToArray())
            {
                c.Poll();
            }
            foreach (var w in waiters.ToArray())
            {
                if (w.Condition())
                {
                    waiters.Remove(w);
                    w.Done.SetResult(true);
                }
                else if (w.Clock.ElapsedMilliseconds > w.TimeoutMs)
                {
                    waiters.Remove(w);
                    w.Done.SetException(new AssertionException("timed out after " + w.TimeoutMs + " ms waiting for " + w.What));
                }
            }
        }

        /// <summary>Runs a test body to its end (bounded), then closes the clients.</summary>
        public void Run(Func<Pump, Task> body, int timeoutMs)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                var task = body(this);
                while (!task.IsCompleted)
                {
                    Step();
                    if (clock.ElapsedMilliseconds > timeoutMs)
                    {
                        throw new AssertionException("the test did not finish within " + timeoutMs + " ms");
                    }
                    Thread.Sleep(1);
                }
                task.GetAwaiter().GetResult();
            }
            finally
            {
                foreach (var c in clients)
                {
                    c.Close();
                }
            }
        }

        sealed class Waiter
        {
            public Waiter(Func<bool> condition, string what, Stopwatch clock, int timeoutMs)
            {
                Condition = condition;
                What = what;
                Clock = clock;
                TimeoutMs = timeoutMs;
            }

            public readonly Func<bool> Condition;
            public readonly string What;
            public readonly Stopwatch Clock;
            public readonly int TimeoutMs;
            public readonly TaskCompletionSource<bool> Done = new TaskCompletionSource<bool>();
        }
    }

    /// <summary>A registered test.</summary>
    sealed class TestCase
    {
        public TestCase(string name, Func<Pump, Task> body, int timeoutMs)
        {
            Name = name;
            Body = body;
            TimeoutMs = timeoutMs;
        }

        public readonly string Name;
        public readonly Func<Pump, Task> Body;
        public readonly int TimeoutMs;

        /// <summary>Non-null: not run, and why (printed loudly).</summary>
        public string SkipReason;
    }

    /// <summary>Collects tests of one group.</summary>
    sealed class Suite
    {
        public readonly List<TestCase> Tests = new List<TestCase>();

        public void Add(string name, Func<Pump, Task> body, int timeoutMs = 15000)
        {
            Tests.Add(new TestCase(name, body, timeoutMs));
        }

        public void Add(string name, Action body)
        {
            Tests.Add(new TestCase(name, p =>
            {
                body();
                return Task.FromResult(true);
            }, 15000));
        }

        public void Skip(string name, string why)
        {
            Tests.Add(new TestCase(name, null, 0) { SkipReason = why });
        }
    }
}
