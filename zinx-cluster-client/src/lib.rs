//! The Rust client SDK of [zinx-cluster](https://crates.io/crates/zinx-cluster):
//! bots, tests, load tools and Rust game clients.
//!
//! - [`wire`]: the zinx wire format — a frame is `msg_id: u32 BE`,
//!   `len: u32 BE`, then `len` bytes — with a streaming codec that refuses
//!   oversize frames before allocating them, and the reserved msg ids of
//!   the heartbeat and of session resume. Always available; the runtime
//!   uses it too.
//! - [`Client`] (feature `net`, on by default): one connection to a gate
//!   (or any zinx server) over TCP, TLS, WebSocket or WSS, speaking
//!   exactly what a Go zinx client speaks: send frames, receive frames.
//!
//! ```rust,no_run
//! use std::time::Duration;
//! use zinx_cluster_client::Client;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut c = Client::connect("127.0.0.1:10000").await?;
//! let answer = c.request(1, r#"{"name":"alice"}"#, Duration::from_secs(5)).await?;
//! println!("{} {}", answer.msg_id, String::from_utf8_lossy(&answer.data));
//! # Ok(()) }
//! ```

#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![forbid(unsafe_code)]

pub mod wire;

#[cfg(feature = "net")]
mod client;

#[cfg(feature = "net")]
pub use client::{Client, ClientError, ClientTls, TlsError};
pub use wire::Frame;
