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
    /// The server reset the connection to make room for a newer one (the
    /// admin endpoint, at its connection cap).
    #[error("reset to make room for a newer connection")]
    Evicted,
}

/// Most headers a request may carry; more is a malformed request.
const MAX_HEADERS: usize = 64;

/// Reads one request head. Returns it with whatever the peer sent after it
/// (for a WebSocket, the first frames may follow at once).
///
/// The head is parsed by `httparse` once its blank line has arrived: a peer
/// that sends its head a byte at a time costs one scan of each new byte,
/// not one parse per byte.
pub(crate) async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<(Request, BytesMut), HttpError> {
    let mut buf = BytesMut::with_capacity(1024);
    let read = async {
        // Where the search for the head's end goes on.
        let mut scanned = 0;
        loop {
            while let Some(end) = blank_line(&buf, &mut scanned) {
                if end > MAX_HEAD {
                    return Err(HttpError::TooLarge);
                }
                if let Some((request, len)) = parse_head(&buf[..end])? {
                    let _ = buf.split_to(len);
                    return Ok((request, buf));
                }
                // Empty lines before the request line: look further.
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

/// The end of the next empty line (`\n\n` or `\n\r\n`: the end of a head)
/// from `*scanned` on. `*scanned` moves past what was searched, so a head
/// sent a byte at a time costs one look at each byte.
fn blank_line(buf: &[u8], scanned: &mut usize) -> Option<usize> {
    for (i, _) in buf
        .iter()
        .enumerate()
        .skip(*scanned)
        .filter(|(_, b)| **b == b'\n')
    {
        match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\n'), _) => {
                *scanned = i + 1;
                return Some(i + 2);
            }
            (Some(b'\r'), Some(b'\n')) => {
                *scanned = i + 1;
                return Some(i + 3);
            }
            // The line end may be completed by the next read: look again.
            (None, _) | (Some(b'\r'), None) => {
                *scanned = i;
                return None;
            }
            _ => {}
        }
    }
    *scanned = buf.len();
    None
}

/// Parses a head with `httparse`: the request and the head's length, or
/// `None` when more is needed (an empty line before the request line).
fn parse_head(bytes: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Malformed(malformed(e))),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Ok(None);
    };
    let path = target.split('?').next().unwrap_or(target);
    let headers = req
        .headers
        .iter()
        .map(|h| {
            let value = std::str::from_utf8(h.value)
                .map_err(|_| HttpError::Malformed("header value not UTF-8"))?;
            Ok((h.name.to_string(), value.trim().to_string()))
        })
        .collect::<Result<Vec<_>, HttpError>>()?;
    let request = Request {
        method: method.to_string(),
        path: path.to_string(),
        version: format!("HTTP/1.{minor}"),
        headers,
    };
    Ok(Some((request, len)))
}

/// What `httparse` found wrong, in words.
fn malformed(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "bad header name",
        httparse::Error::HeaderValue => "bad header value",
        httparse::Error::NewLine => "bad line ending",
        httparse::Error::Status => "bad status",
        httparse::Error::Token => "bad request line",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "not HTTP/1.x",
    }
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
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        500 => "Internal Server Error",
        501 => "Not Implemented",
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
    async fn a_head_a_byte_at_a_time_or_with_odd_line_ends() {
        let head = b"GET /healthz HTTP/1.0\r\nHost: a\r\n\r\n";
        let (mut a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for byte in head {
                b.write_all(&[*byte]).await.unwrap();
                tokio::task::yield_now().await;
            }
            b
        });
        let (req, rest) = read_request(&mut a, Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("GET", "/healthz")
        );
        assert_eq!(req.version, "HTTP/1.0");
        assert!(rest.is_empty());
        drop(writer.await.unwrap());

        // Bare line feeds, and empty lines before the request line, all in
        // one read: the head is found without waiting for more.
        for text in [
            &b"GET /a HTTP/1.1\nHost: b\n\n"[..],
            b"\r\n\r\nGET /a HTTP/1.1\r\nHost: b\r\n\r\n",
        ] {
            let (mut a, mut b) = tokio::io::duplex(1024);
            b.write_all(text).await.unwrap();
            let (req, _) = read_request(&mut a, Duration::from_secs(1)).await.unwrap();
            assert_eq!((req.path.as_str(), req.header("host")), ("/a", Some("b")));
        }
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
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        let (mut a, mut b) = tokio::io::duplex(16 * 1024);
        b.write_all(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes())
            .await
            .unwrap();
        assert!(matches!(
            read_request(&mut a, Duration::from_secs(1)).await,
            Err(HttpError::Malformed("too many headers"))
        ));
        // A head whose end arrives past the limit, in one read.
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(MAX_HEAD));
        let (mut a, mut b) = tokio::io::duplex(32 * 1024);
        b.write_all(long.as_bytes()).await.unwrap();
        assert!(matches!(
            read_request(&mut a, Duration::from_secs(1)).await,
            Err(HttpError::TooLarge)
        ));
    }
}
