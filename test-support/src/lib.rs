//! The one harness of this workspace's tests, also used by the bench tool.
//!
//! | module | gives |
//! |---|---|
//! | [`ports`] | free loopback ports, several at once and distinct |
//! | [`conf`] | configuration folders (`dinx.json`, `route.json`, `settings.json`) |
//! | [`process`] | child processes (the demo, its chat client) killed on drop, signals |
//! | [`chat`] | a client speaking the demo's chat protocol, and its whole check |
//! | [`cluster`] | nodes of one configuration running in this process; waits on their counters and session closes; error answers, closes, probes |
//! | [`child`] | one node of a test's cluster in a child process (to kill, freeze, or give its own environment) |
//! | [`wire`] | raw zinx request/echo over a `TcpStream` (probes, samples) |
//! | [`pipeline`] | pipelined echo load accounting for every request, per fault phase |
//! | [`rss`] | the resident memory of a process (Linux `/proc`) |
//! | [`redis`] | a throwaway `redis-server`, or a loud SKIPPED when none |
//! | [`skip`] | a loud skip when a tool is missing, a failure under `ZINX_REQUIRE_*` |
//! | [`logs`] | the timestamp of a tracing log line; a capture of a test's own log lines to wait on |
//!
//! It does not know where the demo binaries are: tests in `demo/tests` pass
//! `env!("CARGO_BIN_EXE_demo")`, the bench tool the binary it found.
//!
//! Test helpers here panic with a message on a broken test environment;
//! the pieces the bench tool uses ([`ports::free_ports`],
//! [`conf::write_conf`], [`wire`], [`pipeline`], [`rss::RssReader`],
//! [`process::send_signal`]) return errors instead.

#![warn(missing_docs)]

pub mod chat;
pub mod child;
pub mod cluster;
pub mod conf;
pub mod logs;
pub mod pipeline;
pub mod ports;
pub mod process;
pub mod redis;
pub mod rss;
pub mod skip;
pub mod webdriver;
pub mod wire;

use std::time::Duration;

pub use ports::{free_port, free_ports};

/// How long one expected frame may take.
pub const T: Duration = Duration::from_secs(5);
