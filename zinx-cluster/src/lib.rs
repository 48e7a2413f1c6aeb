#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![forbid(unsafe_code)]

// Lets the `#[handler]` expansion name `::zinx_cluster` inside this crate too.
extern crate self as zinx_cluster;

mod balance;
mod client;
mod cluster;
mod config;
mod ctx;
mod directory;
mod envelope;
mod error;
mod frame;
mod gate;
mod handler;
mod metrics;
mod node;
mod peer;
mod redis_directory;
mod registry;
mod session;
mod settings;

pub use config::{
    ClusterConfig, ConfigError, ConfigErrors, DINX_FILE, NodeConfig, NodeId, NodeType, ROUTE_FILE,
    RouteConfig, SETTINGS_FILE,
};
pub use client::{Client, ClientError};
pub use cluster::{Cluster, RunningCluster, Select, StartError};
pub use ctx::{Ctx, KickTarget};
pub use envelope::{ENVELOPE_HEADER_LEN, ENVELOPE_OVERHEAD, Envelope, EnvelopeError, Kind, Status};
pub use error::{CallError, SendError};
pub use metrics::MetricsSnapshot;
pub use node::{SessionClosed, SessionHook};
pub use session::SessionId;
pub use frame::{
    DEFAULT_MAX_FRAME_LEN, Frame, FrameCodec, FrameError, HEADER_LEN, ZINX_HEARTBEAT_MSG_ID,
};
pub use handler::{
    BoxFuture, FromPayload, HandlerError, HandlerFailure, HandlerFn, IntoReply, Json, PayloadError,
};
pub use registry::{HandlerTable, RegistryErrors, Route, registered, validate};
pub use settings::{Balance, DEFAULT_SECRET, ErrorReply, REDIS_URL_ENV, SECRET_ENV, Settings};
pub use zinx_cluster_macros::handler;

/// Everything a handler module needs: `use zinx_cluster::prelude::*;`.
pub mod prelude {
    pub use crate::{CallError, Ctx, HandlerError, Json, SendError, SessionId, handler};
    pub use bytes::Bytes;
}

/// Re-exports used by the `#[handler]` expansion. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use bytes::Bytes;
    pub use inventory;
}
