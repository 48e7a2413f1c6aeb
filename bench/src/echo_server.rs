//! `bench echo-server`: the baseline.
//!
//! A plain tokio server that decodes every frame with the same
//! [`FrameCodec`] the gate uses and writes it back unchanged. It is meant to
//! show what the hardware and tokio give, so it is written the way a careful
//! hand-tuned server would be, not as a strawman:
//!
//! - one task per connection, on the multi-threaded runtime;
//! - it waits for readability before it owns a read buffer, so an idle
//!   connection holds no buffer at all;
//! - it reads whatever is available, decodes every whole frame in it, encodes
//!   all the replies into one write buffer and writes that with as few
//!   syscalls as possible (the "feed, then flush when nothing more is
//!   buffered" pattern, without the extra readiness probe `Framed` needs).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder};
use zinx_cluster::wire::FrameCodec;

/// Bytes reserved for a read when the buffer is short of space.
const READ_CHUNK: usize = 16 * 1024;

/// What the server counted, printed when it stops.
#[derive(Debug, Default)]
struct Counters {
    /// Connections accepted.
    accepted: AtomicU64,
    /// Frames echoed.
    frames: AtomicU64,
    /// Connections closed because of a bad frame or an I/O error.
    failed: AtomicU64,
}

/// Serves on `addr` until SIGINT or SIGTERM.
pub(crate) async fn run(addr: &str, max_frame_len: usize) -> Result<()> {
    // As many sessions as this process may hold; `bench idle` tells the
    // user when that is fewer than it was asked to open.
    let nofile = crate::sys::raise_nofile(1 << 20).context("raising RLIMIT_NOFILE")?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    eprintln!(
        "echo-server listening on {local} (RLIMIT_NOFILE {}: at most ~{} connections)",
        nofile.soft,
        crate::sys::sessions_within(nofile)
    );
    let counters = Arc::new(Counters::default());
    tokio::select! {
        () = accept_loop(listener, max_frame_len, counters.clone()) => {}
        r = shutdown_signal() => r?,
    }
    eprintln!(
        "echo-server stopping: {} connections, {} frames echoed, {} connections failed",
        counters.accepted.load(Ordering::Relaxed),
        counters.frames.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed),
    );
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
#[cfg(unix)]
async fn shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// Resolves on Ctrl-C (there is no SIGTERM here).
#[cfg(not(unix))]
async fn shutdown_signal() -> Result<()> {
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
}

/// Serves `listener` until the future is dropped (for tests).
#[cfg(test)]
pub(crate) async fn serve(listener: TcpListener, max_frame_len: usize) {
    accept_loop(listener, max_frame_len, Arc::default()).await
}

async fn accept_loop(listener: TcpListener, max_frame_len: usize, counters: Arc<Counters>) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                let counters = counters.clone();
                tokio::spawn(async move {
                    if serve_conn(stream, FrameCodec::new(max_frame_len), &counters)
                        .await
                        .is_err()
                    {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors or similar: back off instead of
                // spinning; the connection waits in the backlog.
                eprintln!("echo-server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Echoes frames on one connection until the peer closes it.
async fn serve_conn(
    mut stream: TcpStream,
    mut codec: FrameCodec,
    counters: &Counters,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    loop {
        stream.readable().await?;
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            rbuf.reserve(READ_CHUNK);
        }
        match stream.try_read_buf(&mut rbuf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
        let mut n = 0;
        while let Some(frame) = codec.decode(&mut rbuf).map_err(io::Error::other)? {
            codec.encode(frame, &mut wbuf).map_err(io::Error::other)?;
            n += 1;
        }
        if n > 0 {
            counters.frames.fetch_add(n, Ordering::Relaxed);
            stream.write_all_buf(&mut wbuf).await?;
        }
        if rbuf.is_empty() && rbuf.capacity() > 4 * READ_CHUNK {
            // A burst of large frames grew the buffer: give it back.
            rbuf = BytesMut::new();
        }
    }
}
