//! What a handler takes and returns: payload extractors, reply conversion,
//! handler errors, and the type-erased entry point the `#[handler]` macro
//! generates.
//!
//! A handler is `async fn(ctx: &mut Ctx[, payload: P]) -> R` where `P`
//! implements [`FromPayload`] (`Bytes`, `String`, `Json<T>`) and `R` implements
//! [`IntoReply`] (`()`, `Bytes`, `String`, `Json<T>`, `Result<R, E>`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A boxed, `Send` future: what a type-erased handler entry returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A payload that could not be turned into the handler's argument type.
///
/// The handler is not called; the client gets the configured error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad payload: expected {expected}: {reason}")]
pub struct PayloadError {
    /// What the extractor wanted, e.g. `UTF-8 text` or `JSON Chat`.
    pub expected: String,
    /// Why the bytes did not qualify.
    pub reason: String,
}

/// Turns a message's raw bytes into a handler argument.
///
/// Implemented for [`Bytes`] (as received), [`String`] (UTF-8 checked),
/// `Vec<u8>` and [`Json<T>`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler payload",
    label = "this payload type does not implement `FromPayload`",
    note = "a handler's payload argument must be `Bytes`, `String`, `Vec<u8>` or `Json<T>` with `T: serde::de::DeserializeOwned`, or a type that implements `zinx_cluster::FromPayload`"
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

/// An error a handler returns. It is logged with the msg_id and answered to
/// the client per the configured error policy.
#[derive(Debug)]
pub struct HandlerError {
    /// Shown in the log and in the error answer.
    message: String,
}

impl HandlerError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandlerError {}

impl From<String> for HandlerError {
    fn from(message: String) -> Self {
        HandlerError { message }
    }
}

impl From<&str> for HandlerError {
    fn from(message: &str) -> Self {
        HandlerError::new(message)
    }
}

macro_rules! handler_error_from {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for HandlerError {
            fn from(e: $t) -> Self {
                HandlerError::new(e.to_string())
            }
        }
    )*};
}

handler_error_from!(
    serde_json::Error,
    std::io::Error,
    PayloadError,
    Box<dyn std::error::Error + Send + Sync>,
);

/// Turns a handler's return value into the reply.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from a handler",
    label = "this return type does not implement `IntoReply`",
    note = "a handler may return `()`, `Bytes`, `String`, `Vec<u8>`, `&'static str`, `Json<T>` with `T: serde::Serialize`, `Option` of those, or `Result<R, E>` where `R` is one of those and `E: Into<zinx_cluster::HandlerError>`"
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
            .map_err(|e| HandlerError::new(format!("reply does not encode as JSON: {e}")))
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

/// Why a handler invocation produced no normal result.
#[derive(Debug, thiserror::Error)]
pub enum HandlerFailure {
    /// The payload did not decode; the handler was not called.
    #[error("{0}")]
    Payload(#[from] PayloadError),
    /// The handler ran and returned an error.
    #[error("handler error: {0}")]
    Handler(#[from] HandlerError),
}

impl HandlerFailure {
    /// A short machine-readable code for the error answer and the counters.
    pub fn code(&self) -> &'static str {
        match self {
            HandlerFailure::Payload(_) => "bad_payload",
            HandlerFailure::Handler(_) => "handler_error",
        }
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
}
