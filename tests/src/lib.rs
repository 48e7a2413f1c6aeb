//! Cross-crate integration tests live in `tests/tests/`; this library is
//! empty. The harness shared by the workspace's tests (free ports, config
//! folders, demo child processes, in-process clusters, raw zinx probes, RSS,
//! a throwaway redis-server) is the `zinx-test-support` crate in
//! `test-support/`.

/// The Rust snippets of the README, the guide (`docs/`) and the published
/// crates' READMEs, compiled (and run, unless marked `no_run`) as doc tests
/// of this crate, so that none of them drifts from the API:
/// `cargo test --doc -p zinx-cluster-tests`.
#[cfg(doctest)]
pub mod docs {
    #[doc = include_str!("../../README.md")]
    pub struct Readme;
    #[doc = include_str!("../../docs/getting-started.md")]
    pub struct GettingStarted;
    #[doc = include_str!("../../docs/handlers.md")]
    pub struct Handlers;
    #[doc = include_str!("../../docs/operations.md")]
    pub struct Operations;
    #[doc = include_str!("../../zinx-cluster/README.md")]
    pub struct ZinxClusterReadme;
    #[doc = include_str!("../../zinx-cluster-macros/README.md")]
    pub struct MacrosReadme;
    #[doc = include_str!("../../zinx-cluster-client/README.md")]
    pub struct ClientReadme;
}
