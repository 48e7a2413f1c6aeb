#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![forbid(unsafe_code)]

// Lets the `#[handler]` expansion name `::zinx_cluster` inside this crate too
// (the registry's tests define handlers); unused in a normal build.
#[allow(unused_extern_crates)]
extern crate self as zinx_cluster;

mod admin;
mod balance;
mod client;
mod cluster;
mod config;
mod directory;
mod envelope;
mod error;
mod frame;
mod gate;
mod handler;
mod http;
mod macro_support;
mod message;
mod metrics;
mod net;
mod node;
mod peer;
mod registry;
mod rooms;
mod session;
mod settings;
mod state;
pub mod trace;
mod transport;

pub use admin::Page;
pub use client::{Client, ClientError, ClientTls};
pub use cluster::{Cluster, RunningCluster, Select, StartError};
pub use config::{
    ClusterConfig, ConfigError, ConfigErrors, DINX_FILE, NodeConfig, NodeId, NodeType, ROUTE_FILE,
    RouteConfig, SETTINGS_FILE,
};
pub use envelope::{ENVELOPE_HEADER_LEN, ENVELOPE_OVERHEAD, FLAG_TRACED, LINK_PROTOCOL_VERSION};
#[cfg(feature = "internals")]
pub use envelope::{Envelope, EnvelopeError, Kind, Status};
pub use error::{CallError, SendError};
pub use frame::{
    DEFAULT_MAX_FRAME_LEN, Frame, FrameCodec, FrameError, HEADER_LEN, ZINX_HEARTBEAT_MSG_ID,
};
pub use handler::{
    BoxFuture, FromPayload, HANDLER_ERROR_CODE, HandlerError, HandlerFailure, IntoReply, Json,
    PayloadError,
};
pub use message::{Codec, CodecDirection, Message, MessageError, MessageType, registered_messages};
pub use metrics::MetricsSnapshot;
pub use node::{ClusterHandle, Ctx, KickTarget, SessionClosed, SessionHook};
/// The prost version the `protobuf` codec uses (feature `protobuf`).
#[cfg(feature = "protobuf")]
pub use prost;
pub use registry::{
    HandlerFn, HandlerTable, RegistryError, RegistryErrors, Route, check_handlers, registered,
    validate_handlers, validate_messages,
};
pub use session::SessionId;
pub use settings::{Balance, DEFAULT_SECRET, ErrorReply, REDIS_URL_ENV, SECRET_ENV, Settings};
pub use state::{MissingState, State, StateUse};
pub use transport::tls::{TlsConfigError, load_server_config};
/// `#[derive(Message)]`: see [`Message`](trait@Message) and the handler
/// guide ([`handler`]).
pub use zinx_cluster_macros::Message;
pub use zinx_cluster_macros::handler;

/// Everything a handler module needs: `use zinx_cluster::prelude::*;`.
pub mod prelude {
    pub use crate::{
        CallError, ClusterHandle, Ctx, HandlerError, Json, Message, SendError, SessionId, State,
        handler,
    };
    pub use bytes::Bytes;
}

/// Re-exports used by the `#[handler]` expansion. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::macro_support::{
        CtxArg, EntryFuture, MessageIdOf, NotAMessage, boxed, into_reply,
    };
    pub use crate::message::codec;
    pub use crate::state::FromState;
    pub use bytes::Bytes;
    pub use inventory;
}
