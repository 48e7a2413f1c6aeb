//! The little HTTP/1.1 a gate and the admin endpoint need: reading one
//! request head (bounded in size and time) and writing a small response.
//!
//! Two users: the WebSocket upgrade of a gate's `WsPort`
//! (`transport::ws`) and the admin endpoint (`admin`).
//! Neither needs bodies, chunked encoding or keep-alive, so none of it is
//! here: a request is its head, a response closes the connection.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head accepted (request line and headers).
pub(crate) const MAX_HEAD: usize = 8 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// `GET`, `POST`, ..
    pub(crate) method: String,
    /// The path, without the query string.
    pub(crate) path: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub(crate) version: String,
    /// Headers in order, names as sent.
    pub(crate) headers: Vec<(String, String)>,
}

impl Request {
    /// The value of header `name` (case-insensitive); the first if repeated.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether header `name` holds `token` in its comma-separated list
    /// (case-insensitive), as `Connection: keep-alive, Upgrade` does.
    pub(crate) fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// Why no request could be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// The peer closed before a whole head arrived.
    #[error("connection closed before a whole request head arrived")]
    Closed,
    /// The head did not arrive in time.
    #[error("no whole request head within {0:?}")]
    Timeout(Duration),
    /// The head is larger than [`MAX_HEAD`].
    #[error("request head over {MAX_HEAD} bytes")]
    TooLarge,
    /// Not HTTP/1.x.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one request head. Returns it with whatever the peer sent after it
/// (for a WebSocket, the first frames may follow at once).
pub(crate) async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<(Request, BytesMut), HttpError> {
    let mut buf = BytesMut::with_capacity(1024);
    let read = async {
        loop {
            if let Some(end) = find_head_end(&buf) {
                let head = buf.split_to(end);
                return parse_head(&head).map(|r| (r, buf));
            }
            if buf.len() >= MAX_HEAD {
                return Err(HttpError::TooLarge);
            }
            buf.reserve(1024);
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(HttpError::Closed);
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| HttpError::Timeout(timeout))?
}

/// The length of the head including its blank line, once it is all there.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn parse_head(head: &[u8]) -> Result<Request, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| HttpError::Malformed("not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(HttpError::Malformed("empty"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed("bad request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed("not HTTP/1.x"));
    }
    let path = target.split('?').next().unwrap_or(target);
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or(HttpError::Malformed("header without a colon"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        version: version.to_string(),
        headers,
    })
}

/// Writes a whole response that closes the connection.
pub(crate) async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    content_type: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in extra_headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut wire = out.into_bytes();
    wire.extend_from_slice(body);
    stream.write_all(&wire).await?;
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}

/// The reason phrase of the statuses we send.
fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_a_head_and_keeps_what_follows() {
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            // In small pieces, like a slow client.
            for piece in [
                &b"GET /chat?x=1 HTTP/1.1\r\nHo"[..],
                b"st: a\r\nUpgrade: websocket\r\n",
                b"Connection: keep-alive, Upgrade\r\n\r\nrest",
            ] {
                b.write_all(piece).await.unwrap();
            }
        });
        let (req, rest) = read_request(&mut a, Duration::from_secs(1)).await.unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/chat");
        assert_eq!(req.header("host"), Some("a"));
        assert!(req.header_has_token("connection", "upgrade"));
        assert!(!req.header_has_token("connection", "close"));
        assert_eq!(&rest[..], b"rest");
    }

    #[tokio::test]
    async fn refuses_bad_heads() {
        let (mut a, mut b) = tokio::io::duplex(16 * 1024);
        b.write_all(b"HELLO\r\n\r\n").await.unwrap();
        assert!(matches!(
            read_request(&mut a, Duration::from_secs(1)).await,
            Err(HttpError::Malformed(_))
        ));
        let (mut a, mut b) = tokio::io::duplex(16 * 1024);
        b.write_all(&[b'x'; MAX_HEAD + 10]).await.unwrap();
        assert!(matches!(
            read_request(&mut a, Duration::from_secs(1)).await,
            Err(HttpError::TooLarge)
        ));
        let (mut a, _b) = tokio::io::duplex(64);
        assert!(matches!(
            read_request(&mut a, Duration::from_millis(20)).await,
            Err(HttpError::Timeout(_))
        ));
    }
}
