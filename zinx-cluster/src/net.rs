//! The accept loop shared by a gate's client port and a backend's link
//! port: accept until told to stop, and back off instead of spinning when
//! accepting fails (EMFILE and friends).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Accepts connections on `listener` until `stop` is cancelled, handing
/// each to `on_accept`. `what` names the connections in the log.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    stop: &CancellationToken,
    what: &'static str,
    backoff: Duration,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                on_accept(stream, addr);
            }
            Err(e) => {
                warn!(error = %e, "accepting a {what} failed");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}
