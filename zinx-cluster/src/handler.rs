//! What a handler takes and returns: payload extractors, reply conversion,
//! handler errors, and the type-erased entry point the `#[handler]` macro
//! generates.
//!
//! A handler is `async fn(ctx: &mut Ctx[, payload: P]) -> R` where `P`
//! implements [`FromPayload`] (a [`Message`](crate::Message), `Bytes`,
//! `String`, `Json<T>`) and `R` implements [`IntoReply`] (`()`, a message,
//! `Bytes`, `String`, `Json<T>`, `Result<R, E>`).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::error::ErrorCode;
pub use crate::error::PayloadError;
use crate::message::{Codec, Message, MessageError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A boxed, `Send` future: what a type-erased handler entry returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Turns a message's raw bytes into a handler argument.
///
/// Implemented for [`Bytes`] (as received), [`String`] (UTF-8 checked),
/// `Vec<u8>` and [`Json<T>`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler payload",
    label = "this payload type does not implement `FromPayload`",
    note = "a handler's payload argument must be a `#[derive(Message)]` type, `Bytes`, `String`, `Vec<u8>` or `Json<T>` with `T: serde::de::DeserializeOwned`, or a type that implements `zinx_cluster::FromPayload`"
)]
pub trait FromPayload: Sized {
    /// Builds the argument from the payload bytes.
    fn from_payload(data: Bytes) -> Result<Self, PayloadError>;
}

impl FromPayload for Bytes {
    fn from_payload(data: Bytes) -> Result<Self, PayloadError> {
        Ok(data)
    }
}

impl FromPayload for Vec<u8> {
    fn from_payload(data: Bytes) -> Result<Self, PayloadError> {
        Ok(data.to_vec())
    }
}

impl FromPayload for String {
    fn from_payload(data: Bytes) -> Result<Self, PayloadError> {
        String::from_utf8(data.to_vec()).map_err(|e| PayloadError {
            expected: "UTF-8 text".into(),
            reason: e.utf8_error().to_string(),
        })
    }
}

/// JSON payload or reply: `Json<T>` decodes with serde_json on the way in and
/// encodes on the way out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromPayload for Json<T> {
    fn from_payload(data: Bytes) -> Result<Self, PayloadError> {
        serde_json::from_slice(&data)
            .map(Json)
            .map_err(|e| PayloadError {
                expected: format!("JSON {}", short_type_name::<T>()),
                reason: e.to_string(),
            })
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    // `demo::im::Chat` -> `Chat`; generic arguments are kept as they are.
    let head = full.split('<').next().unwrap_or(full);
    match head.rfind("::") {
        Some(i) => &full[i + 2..],
        None => full,
    }
}

/// An error a handler returns: a machine-readable code, a human message, and
/// the error it came from.
///
/// The code travels to the client in the error frame's `code` field (with
/// `error_reply: "frame"`), the message in its `error` field; both are
/// logged with the msg_id.
///
/// Any error converts with `?`: every `std::error::Error + Send + Sync +
/// 'static` (your own error types, `std::io::Error`, `serde_json::Error`,
/// `anyhow::Error`, ..), and `&str` / `String` for a message. The
/// framework's own errors keep their code ([`SendError::code`],
/// [`CallError::code`], [`PayloadError`] and [`MessageError`] give
/// `bad_payload`); anything else gets the code `handler_error`. Give a code
/// of your own with [`HandlerError::new`]:
///
/// ```
/// use zinx_cluster::HandlerError;
///
/// fn check(items: usize) -> Result<(), HandlerError> {
///     if items > 10 {
///         return Err(HandlerError::new("quota", "at most 10 items"));
///     }
///     let _n: u32 = "12".parse()?; // a ParseIntError: code `handler_error`
///     Ok(())
/// }
/// assert_eq!(check(11).unwrap_err().code(), "quota");
/// ```
///
/// Like `anyhow::Error`, `HandlerError` does not implement
/// `std::error::Error` itself: that is what lets every error convert into
/// it.
///
/// [`SendError::code`]: crate::SendError::code
/// [`CallError::code`]: crate::CallError::code
/// [`MessageError`]: crate::message::MessageError
pub struct HandlerError {
    /// Machine-readable, e.g. `quota` or `not_online`: the error frame's
    /// `code`.
    code: ErrorCode,
    /// For people: the error frame's `error`, and the log line.
    message: String,
    /// What it was converted from, for logs and callers that downcast.
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl HandlerError {
    /// An error with a code (e.g. `"quota"`, `"not_logged_in"`: short,
    /// snake_case, stable, for clients to match on) and a message for
    /// people.
    pub fn new(code: impl Into<ErrorCode>, message: impl Into<String>) -> Self {
        HandlerError {
            code: code.into(),
            message: message.into(),
            source: None,
        }
    }

    /// An error with the code `handler_error` and this message (what `?` on
    /// a `&str` or `String` gives too).
    pub fn msg(message: impl Into<String>) -> Self {
        HandlerError::new(ErrorCode::HandlerError, message)
    }

    /// Keeps `source` as the error this one comes from.
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The machine-readable code.
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error this one was converted from, if any (for a `&str` or
    /// `String`, that text as an error). Downcast it to get the original
    /// type back.
    pub fn source(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

/// Every error converts, keeping it as the source: `std::error::Error`
/// types, `&str` and `String` (what `Box<dyn Error + Send + Sync>` converts
/// from). The framework's errors keep their code.
impl<E> From<E> for HandlerError
where
    E: Into<Box<dyn StdError + Send + Sync + 'static>>,
{
    fn from(error: E) -> Self {
        let source: Box<dyn StdError + Send + Sync + 'static> = error.into();
        HandlerError {
            code: known_code(&*source).unwrap_or(ErrorCode::HandlerError),
            message: source.to_string(),
            source: Some(source),
        }
    }
}

/// The code of one of the framework's errors.
fn known_code(error: &(dyn StdError + 'static)) -> Option<ErrorCode> {
    if let Some(e) = error.downcast_ref::<crate::SendError>() {
        Some(e.code())
    } else if let Some(e) = error.downcast_ref::<crate::CallError>() {
        Some(e.code())
    } else if let Some(e) = error.downcast_ref::<crate::message::MessageError>() {
        Some(e.code())
    } else if error.is::<PayloadError>() {
        Some(ErrorCode::BadPayload)
    } else {
        None
    }
}

impl From<MessageError> for PayloadError {
    fn from(e: MessageError) -> Self {
        let codec = match e.codec {
            Codec::Json => "JSON",
            Codec::Protobuf => "protobuf",
            Codec::Raw => "raw",
        };
        PayloadError {
            expected: format!("{codec} {}", e.message),
            reason: e.reason,
        }
    }
}

/// A message is a payload: it decodes with its codec.
impl<M: Message> FromPayload for M {
    fn from_payload(data: Bytes) -> Result<Self, PayloadError> {
        M::from_bytes(data).map_err(PayloadError::from)
    }
}

/// A message is a reply: it goes back on the request's msg_id (zinx's
/// convention), encoded with its codec.
impl<M: Message> IntoReply for M {
    fn into_reply(self) -> Result<Option<Bytes>, HandlerError> {
        self.to_bytes().map(Some).map_err(HandlerError::from)
    }
}

/// Turns a handler's return value into the reply.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from a handler",
    label = "this return type does not implement `IntoReply`",
    note = "a handler may return `()`, a `#[derive(Message)]` type, `Bytes`, `String`, `Vec<u8>`, `&'static str`, `Json<T>` with `T: serde::Serialize`, `Option` of those, or `Result<R, E>` where `R` is one of those and `E: Into<zinx_cluster::HandlerError>` (any error type, `&str` or `String`)"
)]
pub trait IntoReply {
    /// `Ok(Some(bytes))`: reply on the message's msg_id; `Ok(None)`: no reply.
    fn into_reply(self) -> Result<Option<Bytes>, HandlerError>;
}

impl IntoReply for () {
    fn into_reply(self) -> Result<Option<Bytes>, HandlerError> {
        Ok(None)
    }
}

impl IntoReply for Bytes {
    fn into_reply(self) -> Result<Option<Bytes>, HandlerError> {
        Ok(Some(self))
    }
}

impl IntoReply for Vec<u8> {
    fn into_reply(self) -> Result<Option<Bytes>, HandlerError> {
        Ok(Some(Bytes::from(self)))
    }
}

impl IntoReply for String {
    fn into_reply(self) -> Result<Option<Bytes>, HandlerError> {
        Ok(Some(Bytes::from(self)))
    }
}

impl IntoReply for &'static str {
    fn into_reply(self) -> Result<Option<Bytes>, HandlerError> {
        Ok(Some(Bytes::from_static(self.as_bytes())))
    }
}

impl<T: Serialize> IntoReply for Json<T> {
    fn into_reply(self) -> Result<Option<Bytes>, HandlerError> {
        serde_json::to_vec(&self.0)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|e| {
                HandlerError::new(
                    ErrorCode::EncodeFailed,
                    format!("reply does not encode as JSON: {e}"),
                )
            })
    }
}

impl<T: IntoReply> IntoReply for Option<T> {
    fn into_reply(self) -> Result<Option<Bytes>, HandlerError> {
        match self {
            Some(t) => t.into_reply(),
            None => Ok(None),
        }
    }
}

impl<T: IntoReply, E: Into<HandlerError>> IntoReply for Result<T, E> {
    fn into_reply(self) -> Result<Option<Bytes>, HandlerError> {
        match self {
            Ok(t) => t.into_reply(),
            Err(e) => Err(e.into()),
        }
    }
}

/// The payload of a `Failed` answer between nodes (a call, a cast's
/// refusal, a gate's answer to a bind or kick): `{"code":..,"error":..}`,
/// so that the caller's error keeps the code of the callee's.
pub(crate) fn encode_failure(code: &ErrorCode, message: &str) -> Bytes {
    let body = serde_json::json!({ "code": code, "error": message });
    Bytes::from(body.to_string())
}

/// The code and message of a `Failed` answer; a payload that is not
/// [`encode_failure`]'s (a node of an older build) is a message with the
/// code `handler_error`.
pub(crate) fn decode_failure(payload: &[u8]) -> (ErrorCode, String) {
    #[derive(serde::Deserialize)]
    struct Failure {
        code: ErrorCode,
        error: String,
    }
    match serde_json::from_slice::<Failure>(payload) {
        Ok(f) => (f.code, f.error),
        Err(_) => (
            ErrorCode::HandlerError,
            String::from_utf8_lossy(payload).into_owned(),
        ),
    }
}

/// Why a handler invocation produced no normal result.
#[derive(Debug)]
pub enum HandlerFailure {
    /// The payload did not decode; the handler was not called.
    Payload(PayloadError),
    /// The handler ran and returned an error.
    Handler(HandlerError),
}

impl HandlerFailure {
    /// The machine-readable code of the error answer: `bad_payload`, or the
    /// handler error's [`code`](HandlerError::code).
    pub fn code(&self) -> ErrorCode {
        match self {
            HandlerFailure::Payload(_) => ErrorCode::BadPayload,
            HandlerFailure::Handler(e) => e.code().clone(),
        }
    }

    /// The failure as the `Failed` answer of a call: its code and message.
    pub(crate) fn to_answer(&self) -> Bytes {
        match self {
            HandlerFailure::Payload(e) => encode_failure(&self.code(), &e.to_string()),
            HandlerFailure::Handler(e) => encode_failure(e.code(), e.message()),
        }
    }
}

impl fmt::Display for HandlerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerFailure::Payload(e) => fmt::Display::fmt(e, f),
            HandlerFailure::Handler(e) => write!(f, "handler error: {e}"),
        }
    }
}

impl StdError for HandlerFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            HandlerFailure::Payload(e) => Some(e),
            HandlerFailure::Handler(e) => e.source().map(|s| s as &(dyn StdError + 'static)),
        }
    }
}

impl From<PayloadError> for HandlerFailure {
    fn from(e: PayloadError) -> Self {
        HandlerFailure::Payload(e)
    }
}

impl From<HandlerError> for HandlerFailure {
    fn from(e: HandlerError) -> Self {
        HandlerFailure::Handler(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
    struct Chat {
        to: String,
    }

    #[test]
    fn json_extractor_names_the_type_and_reason() {
        let err = Json::<Chat>::from_payload(Bytes::from_static(b"{\"to\":1}")).unwrap_err();
        assert_eq!(err.expected, "JSON Chat");
        assert!(err.reason.contains("invalid type"), "{}", err.reason);
        let ok = Json::<Chat>::from_payload(Bytes::from_static(b"{\"to\":\"bob\"}")).unwrap();
        assert_eq!(ok.0.to, "bob");
    }

    #[test]
    fn string_extractor_checks_utf8() {
        assert!(String::from_payload(Bytes::from_static(b"\xff\xfe")).is_err());
        assert_eq!(
            String::from_payload(Bytes::from_static(b"hi")).unwrap(),
            "hi"
        );
    }

    #[test]
    fn replies_convert() {
        assert_eq!(().into_reply().unwrap(), None);
        assert_eq!(
            "x".to_string().into_reply().unwrap(),
            Some(Bytes::from_static(b"x"))
        );
        let j = Json(Chat { to: "a".into() }).into_reply().unwrap().unwrap();
        assert_eq!(&j[..], b"{\"to\":\"a\"}");
        let r: Result<String, &str> = Err("nope");
        assert_eq!(r.into_reply().unwrap_err().message(), "nope");
    }

    #[test]
    fn every_error_converts_with_its_code_and_source() {
        fn fails<E>(e: E) -> Result<(), HandlerError>
        where
            E: Into<Box<dyn StdError + Send + Sync>>,
        {
            Err(e)?
        }
        let e = fails("not logged in").unwrap_err();
        assert_eq!(
            (e.code().as_str(), e.message()),
            ("handler_error", "not logged in")
        );
        let e = fails(format!("{} items", 3)).unwrap_err();
        assert_eq!(e.message(), "3 items");
        let e = fails(std::io::Error::other("disk")).unwrap_err();
        assert_eq!((e.code().as_str(), e.message()), ("handler_error", "disk"));
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::Other));

        // The framework's errors keep their code.
        let e = fails(crate::SendError::NotOnline { uid: "bob".into() }).unwrap_err();
        assert_eq!(
            (e.code().as_str(), e.message()),
            ("not_online", "bob is not online")
        );
        let e = fails(crate::CallError::NoLiveNode {
            group: "rank".into(),
        })
        .unwrap_err();
        assert_eq!(*e.code(), ErrorCode::NoLiveNode);
        let payload = PayloadError {
            expected: "JSON Chat".into(),
            reason: "eof".into(),
        };
        assert_eq!(*fails(payload).unwrap_err().code(), ErrorCode::BadPayload);

        // A code of one's own, with a source.
        let e = HandlerError::new("quota", "at most 10").with_source("over by 2");
        assert_eq!((e.code().as_str(), e.message()), ("quota", "at most 10"));
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("over by 2")
        );
        let failure = HandlerFailure::from(e);
        assert_eq!(failure.code(), "quota");
        assert_eq!(failure.to_string(), "handler error: at most 10");
        assert_eq!(
            HandlerFailure::from(PayloadError {
                expected: "UTF-8 text".into(),
                reason: "bad byte".into()
            })
            .code(),
            "bad_payload"
        );
    }
}
