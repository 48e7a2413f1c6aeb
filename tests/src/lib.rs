//! Cross-crate integration tests live in `tests/tests/`; this library is
//! empty. The harness shared by the workspace's tests (free ports, config
//! folders, demo child processes, in-process clusters, raw zinx probes, RSS,
//! a throwaway redis-server) is the `zinx-test-support` crate in
//! `test-support/`.
