#![doc = include_str!("guide.md")]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![forbid(unsafe_code)]

// Lets the `#[handler]` expansion name `::zinx_cluster` inside this crate too
// (the registry's tests define handlers); unused in a normal build.
#[allow(unused_extern_crates)]
extern crate self as zinx_cluster;

mod api;
mod backend;
mod balance;
mod cluster;
mod directory;
mod envelope;
mod error;
mod frame;
mod gate;
mod handler;
mod http;
mod macro_support;
mod net;
mod node;
mod peer;
mod rooms;
mod session;
mod settings;
mod state;
mod transport;

pub mod admin;
pub mod config;
pub mod message;
pub mod metrics;
pub mod registry;
pub mod trace;

pub use api::{Call, ClusterHandle, Ctx, KickTarget, Outgoing};
pub use cluster::{Cluster, RunningCluster, Select, StartError};
pub use error::{CallError, ErrorCode, SendError};
pub use frame::Frame;
pub use handler::{FromPayload, HandlerError, IntoReply, Json, PayloadError};
pub use message::Message;
pub use node::SessionClosed;
pub use registry::check_handlers;
pub use session::SessionId;
pub use settings::Settings;
pub use state::State;
/// `#[derive(Message)]`: see [`Message`](trait@Message) and the handler
/// guide ([`handler`]).
pub use zinx_cluster_macros::Message;
pub use zinx_cluster_macros::handler;

/// The zinx wire format a gate's clients speak (shared with the client SDK,
/// `zinx-cluster-client`).
pub mod wire {
    pub use crate::frame::{
        DEFAULT_MAX_FRAME_LEN, Frame, FrameCodec, FrameError, HEADER_LEN, ZINX_HEARTBEAT_MSG_ID,
    };
}

/// TLS for gates (`tls_cert` / `tls_key` in `settings.json`).
pub mod tls {
    pub use crate::transport::tls::{TlsConfigError, load_server_config};
}

/// The protobuf codec's prost version (feature `protobuf`), for
/// `#[derive(prost::Message)]` types sent with `codec = "protobuf"`.
#[cfg(feature = "protobuf")]
pub use prost;

/// Everything a handler module needs: `use zinx_cluster::prelude::*;`.
pub mod prelude {
    pub use crate::{
        CallError, ClusterHandle, Ctx, ErrorCode, Frame, HandlerError, Json, Message, SendError,
        SessionId, State, handler,
    };
    pub use bytes::Bytes;
}

/// The internal wire types, for the fuzz targets and the codec benchmark
/// (feature `internals`). Not a stable API.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::envelope::{
        ENVELOPE_HEADER_LEN, ENVELOPE_OVERHEAD, Envelope, EnvelopeError, FLAG_TRACED, Kind,
        LINK_PROTOCOL_VERSION, Status,
    };
    pub use crate::transport::fuzz_ws_frames;
}

/// Re-exports used by the `#[handler]` and `#[derive(Message)]` expansions.
/// Not a public API: names and shapes may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::handler::{BoxFuture, HandlerFailure};
    pub use crate::macro_support::{
        CtxArg, EntryFuture, MessageIdOf, NotAMessage, boxed, into_reply,
    };
    pub use crate::message::{Codec, MessageError, MessageType, codec};
    pub use crate::registry::{HandlerFn, Route};
    pub use crate::state::{FromState, StateUse};
    pub use bytes::Bytes;
    pub use inventory;
}
