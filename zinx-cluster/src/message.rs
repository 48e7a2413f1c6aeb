//! Typed messages: a type that says its msg_id once, and how it travels.
//!
//! `#[derive(Message)]` with `#[message(id = N)]` implements [`Message`] for
//! a type: its msg_id ([`Message::ID`]), its wire format ([`Codec`]) and the
//! conversion to and from the frame's bytes. A handler whose payload is a
//! message takes its msg_id from the type; a handler that returns one
//! replies with its bytes; `Ctx`'s typed operations send on `M::ID`.
//!
//! | codec | for | bytes |
//! |---|---|---|
//! | `json` (the default) | `serde::Serialize + Deserialize` types | serde_json |
//! | `protobuf` (feature `protobuf`) | `prost::Message + Default` types | protobuf |
//! | `raw` | a newtype over `Bytes`, `Vec<u8>` or `String` | as they are (a `String` is checked for UTF-8 on the way in) |
//!
//! Every derived message also registers a [`MessageType`] with `inventory`,
//! so that the startup check sees every message type of the binary
//! ([`registered_messages`], `registry::validate_messages`).
//!
//! Several types may share a msg_id (a request and the push it causes, as
//! zinx replies on the request's msg_id); they must then share a codec,
//! since a client tells frames apart by msg_id alone.

use std::fmt;

use bytes::Bytes;

/// A type that travels as the payload of one msg_id, in one wire format.
///
/// Derive it: `#[derive(Message, Serialize, Deserialize)]` with
/// `#[message(id = 3)]` (JSON), `#[message(id = 3, codec = "protobuf")]` on a
/// `prost::Message`, or `#[message(id = 3, codec = "raw")]` on a newtype over
/// `Bytes`, `Vec<u8>` or `String`. A hand-written implementation works too,
/// but is not seen by the startup check (the derive registers the type).
///
/// The methods are named `to_bytes` / `from_bytes`, not `encode` /
/// `decode`, so that a type deriving both `prost::Message` and this trait
/// has no ambiguous method.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a zinx-cluster message",
    label = "`{Self}` does not implement `zinx_cluster::Message`",
    note = "derive it on the type: `#[derive(Message, Serialize, Deserialize)]` with `#[message(id = <u32>)]`",
    note = "a `#[handler]` without `msg_id = ..` takes its msg_id from its payload, which must then be a message"
)]
pub trait Message: Sized {
    /// The msg_id this type travels on.
    const ID: u32;
    /// How it is turned into bytes.
    const CODEC: Codec;
    /// The frame payload for this value.
    fn to_bytes(&self) -> Result<Bytes, MessageError>;
    /// The value a frame payload holds.
    fn from_bytes(data: Bytes) -> Result<Self, MessageError>;
}

/// The wire format of a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// serde_json (`codec = "json"`, the default).
    Json,
    /// protobuf through prost (`codec = "protobuf"`, feature `protobuf`).
    Protobuf,
    /// The bytes as they are (`codec = "raw"`).
    Raw,
}

impl Codec {
    /// The name `#[message(codec = "..")]` uses: `json`, `protobuf`, `raw`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::Protobuf => "protobuf",
            Codec::Raw => "raw",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way a [`MessageError`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecDirection {
    /// Value to bytes.
    Encode,
    /// Bytes to value.
    Decode,
}

/// A message that could not be encoded, or bytes that are not the message.
///
/// Small on purpose: the type, the codec, which way, and the codec's own
/// words. A decode failure of a handler's payload becomes a
/// [`PayloadError`](crate::PayloadError) (code `bad_payload`); other failures convert into
/// [`HandlerError`](crate::HandlerError) with code `bad_payload` (decode) or `encode_failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError {
    /// The message type, e.g. `Chat`.
    pub message: &'static str,
    /// Its codec.
    pub codec: Codec,
    /// Encoding or decoding.
    pub direction: CodecDirection,
    /// What the codec said.
    pub reason: String,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = match self.direction {
            CodecDirection::Encode => "encode",
            CodecDirection::Decode => "decode",
        };
        write!(
            f,
            "cannot {direction} {} ({}): {}",
            self.message, self.codec, self.reason
        )
    }
}

impl std::error::Error for MessageError {}

impl MessageError {
    /// `bad_payload` for bytes that do not decode, `encode_failed` for a
    /// value that does not encode.
    pub fn code(&self) -> crate::error::ErrorCode {
        match self.direction {
            CodecDirection::Encode => crate::error::ErrorCode::EncodeFailed,
            CodecDirection::Decode => crate::error::ErrorCode::BadPayload,
        }
    }
}

/// One message type of the binary, as `#[derive(Message)]` registers it.
#[derive(Debug, Clone, Copy)]
pub struct MessageType {
    /// Its msg_id.
    pub id: u32,
    /// Its codec.
    pub codec: Codec,
    /// The type's name.
    pub name: &'static str,
    /// `module_path!()` where it was declared.
    pub module: &'static str,
    /// `file!()` where it was declared.
    pub file: &'static str,
    /// `line!()` of the `#[derive]`.
    pub line: u32,
}

impl MessageType {
    /// `module::Name (file:line)`, for messages.
    pub fn location(&self) -> String {
        format!(
            "{}::{} ({}:{})",
            self.module, self.name, self.file, self.line
        )
    }
}

inventory::collect!(MessageType);

/// Every message type derived in this binary, in no particular order.
pub fn registered_messages() -> impl Iterator<Item = &'static MessageType> {
    inventory::iter::<MessageType>.into_iter()
}

/// The codecs the derive's expansion calls: one trait per codec, with a
/// blanket implementation for the types the codec can carry. The expansion
/// calls them as `<Type as Codec>::..`, spanned to the user's type, so that
/// a type the codec cannot carry gets one error, at the type, with our
/// message.
#[doc(hidden)]
#[doc(hidden)]
pub mod codec {
    use bytes::Bytes;
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::{Codec, CodecDirection, MessageError};

    fn error(
        message: &'static str,
        codec: Codec,
        direction: CodecDirection,
        reason: String,
    ) -> MessageError {
        MessageError {
            message,
            codec,
            direction,
            reason,
        }
    }

    /// The JSON codec: every serde type.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is a JSON message (the default codec) but is not serde's `Serialize` and `Deserialize`",
        label = "derive `Serialize` and `Deserialize` on `{Self}`",
        note = "write `#[derive(Message, Serialize, Deserialize)]`, or choose another codec: `#[message(id = .., codec = \"protobuf\")]` for a prost message, `codec = \"raw\"` for a newtype over bytes"
    )]
    pub trait JsonCodec: Sized {
        /// serde_json encoding.
        fn encode_json(&self, name: &'static str) -> Result<Bytes, MessageError>;
        /// serde_json decoding.
        fn decode_json(data: &[u8], name: &'static str) -> Result<Self, MessageError>;
    }

    impl<T: Serialize + DeserializeOwned> JsonCodec for T {
        fn encode_json(&self, name: &'static str) -> Result<Bytes, MessageError> {
            serde_json::to_vec(self)
                .map(Bytes::from)
                .map_err(|e| error(name, Codec::Json, CodecDirection::Encode, e.to_string()))
        }

        fn decode_json(data: &[u8], name: &'static str) -> Result<Self, MessageError> {
            serde_json::from_slice(data)
                .map_err(|e| error(name, Codec::Json, CodecDirection::Decode, e.to_string()))
        }
    }

    /// The protobuf codec: every prost message.
    #[cfg(feature = "protobuf")]
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is a protobuf message (`codec = \"protobuf\"`) but is not a `prost::Message`",
        label = "derive `prost::Message` on `{Self}`",
        note = "write `#[derive(Clone, PartialEq, prost::Message, zinx_cluster::Message)]` with `#[prost(..)]` on each field, or generate the type with prost-build"
    )]
    pub trait ProtobufCodec: Sized {
        /// protobuf encoding.
        fn encode_protobuf(&self, name: &'static str) -> Result<Bytes, MessageError>;
        /// protobuf decoding.
        fn decode_protobuf(data: Bytes, name: &'static str) -> Result<Self, MessageError>;
    }

    #[cfg(feature = "protobuf")]
    impl<T: prost::Message + Default> ProtobufCodec for T {
        fn encode_protobuf(&self, _name: &'static str) -> Result<Bytes, MessageError> {
            // Encoding into a Vec of the exact length cannot fail.
            Ok(Bytes::from(self.encode_to_vec()))
        }

        fn decode_protobuf(data: Bytes, name: &'static str) -> Result<Self, MessageError> {
            T::decode(data)
                .map_err(|e| error(name, Codec::Protobuf, CodecDirection::Decode, e.to_string()))
        }
    }

    /// The protobuf codec while the `protobuf` feature is off: implemented
    /// by nothing, so that `codec = "protobuf"` fails saying so.
    #[cfg(not(feature = "protobuf"))]
    #[diagnostic::on_unimplemented(
        message = "`codec = \"protobuf\"` needs the `protobuf` feature of zinx-cluster",
        label = "this message uses the protobuf codec",
        note = "enable it: `zinx-cluster = {{ version = \"..\", features = [\"protobuf\"] }}`"
    )]
    pub trait ProtobufCodec: Sized {
        /// protobuf encoding.
        fn encode_protobuf(&self, name: &'static str) -> Result<Bytes, MessageError>;
        /// protobuf decoding.
        fn decode_protobuf(data: Bytes, name: &'static str) -> Result<Self, MessageError>;
    }

    /// The raw codec: what a `codec = "raw"` newtype may wrap.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be the field of a `codec = \"raw\"` message",
        label = "a raw message wraps `Bytes`, `Vec<u8>` or `String`",
        note = "`codec = \"raw\"` is for a newtype such as `struct Blob(Bytes);`; use the default JSON codec for other types"
    )]
    pub trait RawField: Sized {
        /// The payload: a cheap clone for `Bytes`, a copy otherwise.
        fn encode_raw(&self) -> Result<Bytes, MessageError>;
        /// The field from a payload.
        fn decode_raw(data: Bytes, name: &'static str) -> Result<Self, MessageError>;
    }

    impl RawField for Bytes {
        fn encode_raw(&self) -> Result<Bytes, MessageError> {
            Ok(self.clone())
        }
        fn decode_raw(data: Bytes, _name: &'static str) -> Result<Self, MessageError> {
            Ok(data)
        }
    }

    impl RawField for Vec<u8> {
        fn encode_raw(&self) -> Result<Bytes, MessageError> {
            Ok(Bytes::copy_from_slice(self))
        }
        fn decode_raw(data: Bytes, _name: &'static str) -> Result<Self, MessageError> {
            Ok(data.to_vec())
        }
    }

    impl RawField for String {
        fn encode_raw(&self) -> Result<Bytes, MessageError> {
            Ok(Bytes::copy_from_slice(self.as_bytes()))
        }
        fn decode_raw(data: Bytes, name: &'static str) -> Result<Self, MessageError> {
            String::from_utf8(data.to_vec()).map_err(|e| {
                let reason = format!("not UTF-8: {}", e.utf8_error());
                error(name, Codec::Raw, CodecDirection::Decode, reason)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;
    use crate::handler::{FromPayload, IntoReply};

    #[derive(Message, serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    #[message(id = 4_000_000_101)]
    struct Chat {
        to: String,
        text: String,
    }

    #[derive(Message, Debug, PartialEq)]
    #[message(id = 4_000_000_102, codec = "raw")]
    struct Blob(Bytes);

    #[derive(Message, Debug, PartialEq)]
    #[message(id = 4_000_000_103, codec = "raw")]
    struct Text {
        text: String,
    }

    #[test]
    fn json_round_trip_and_errors() {
        assert_eq!(Chat::ID, 4_000_000_101);
        assert_eq!(Chat::CODEC, Codec::Json);
        let chat = Chat {
            to: "bob".into(),
            text: "hi".into(),
        };
        let bytes = chat.to_bytes().unwrap();
        assert_eq!(&bytes[..], br#"{"to":"bob","text":"hi"}"#);
        assert_eq!(Chat::from_bytes(bytes).unwrap(), chat);
        let err = Chat::from_bytes(Bytes::from_static(b"{}")).unwrap_err();
        assert_eq!(err.message, "Chat");
        assert_eq!(err.direction, CodecDirection::Decode);
        assert_eq!(err.code(), "bad_payload");
        assert!(
            err.to_string()
                .starts_with("cannot decode Chat (json): missing field `to`"),
            "{err}"
        );
        let payload = Chat::from_payload(Bytes::from_static(b"[")).unwrap_err();
        assert_eq!(payload.expected, "JSON Chat");
    }

    #[test]
    fn raw_newtypes_keep_the_bytes() {
        let blob = Blob(Bytes::from_static(b"\x00\xff"));
        assert_eq!(&blob.to_bytes().unwrap()[..], b"\x00\xff");
        assert_eq!(
            Blob::from_bytes(Bytes::from_static(b"\x01")).unwrap().0,
            &b"\x01"[..]
        );
        let text = Text { text: "hé".into() };
        assert_eq!(Text::from_bytes(text.to_bytes().unwrap()).unwrap(), text);
        let err = Text::from_bytes(Bytes::from_static(b"\xff")).unwrap_err();
        assert_eq!(err.codec, Codec::Raw);
        assert!(err.reason.starts_with("not UTF-8"), "{}", err.reason);
    }

    #[test]
    fn a_message_reply_is_its_bytes() {
        let reply = Blob(Bytes::from_static(b"x")).into_reply().unwrap();
        assert_eq!(reply.as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn derived_messages_are_registered() {
        let chat = registered_messages()
            .find(|m| m.id == Chat::ID)
            .expect("Chat is registered");
        assert_eq!(chat.name, "Chat");
        assert_eq!(chat.codec, Codec::Json);
        assert_eq!(chat.module, "zinx_cluster::message::tests");
        let blob = registered_messages().find(|m| m.id == Blob::ID).unwrap();
        assert_eq!((blob.name, blob.codec), ("Blob", Codec::Raw));
    }
}
