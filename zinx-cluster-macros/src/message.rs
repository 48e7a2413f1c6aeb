//! `#[derive(Message)]` with `#[message(id = N, codec = "..")]`: checks the
//! attribute and the type, and generates the `Message` impl and the type's
//! `inventory` registration.
//!
//! The output is one anonymous `const _: () = { .. };` block. The codec's
//! work is done by generic functions of `zinx_cluster::__private::codec`,
//! called with spans of the user's type, so that a type without the codec's
//! traits (serde's, prost's) is reported at that type.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, ExprLit, Fields, Lit, LitStr, Member, Token};

use crate::Errors;
use crate::args::{self, MsgId};

/// What `#[message]` accepts, for messages.
const ACCEPTED: &str =
    "`#[message]` accepts `id = <u32>` and `codec = \"json\" | \"protobuf\" | \"raw\"`";

/// The keys of `#[message]`, for "did you mean" hints.
const KEYS: [&str; 2] = ["id", "codec"];

/// The wire formats.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Codec {
    Json,
    Protobuf,
    Raw,
}

impl Codec {
    fn variant(self) -> TokenStream {
        match self {
            Codec::Json => quote!(Json),
            Codec::Protobuf => quote!(Protobuf),
            Codec::Raw => quote!(Raw),
        }
    }
}

/// The single field of a raw message: how to name it, and its type.
type RawField<'a> = (Member, &'a syn::Type);

/// The parsed `#[message(..)]` attributes.
struct Attr {
    id: MsgId,
    codec: Codec,
}

/// `#[derive(Message)]` on `item` → the impl and registration; on any
/// error, the `compile_error!`s alone (a derive adds to the item, it never
/// replaces it).
pub(crate) fn derive(item: TokenStream) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(item) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    match check(&input) {
        Ok((attr, raw_field)) => generate(&input, &attr, raw_field),
        Err(e) => e.to_compile_error(),
    }
}

/// The attribute and, for `codec = "raw"`, the wrapped field with its type.
fn check(input: &DeriveInput) -> Result<(Attr, Option<RawField<'_>>), syn::Error> {
    let mut errors = Errors::default();
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.generics,
            "a message type cannot be generic: it travels on one msg_id and is registered once",
        ));
    }
    let attr = match parse_attrs(input) {
        Ok(attr) => Some(attr),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let mut raw_field = None;
    if let Some(Attr {
        codec: Codec::Raw, ..
    }) = attr
    {
        match raw_newtype_field(input) {
            Ok(field) => raw_field = Some(field),
            Err(e) => errors.push(e),
        }
    }
    if let Data::Union(u) = &input.data {
        errors.push(syn::Error::new_spanned(
            u.union_token,
            "a message type is a struct or an enum, not a union",
        ));
    }
    errors.finish()?;
    match attr {
        Some(attr) => Ok((attr, raw_field)),
        // Unreachable: a failed attribute pushed an error above.
        None => Err(syn::Error::new_spanned(
            &input.ident,
            "invalid `#[message]`",
        )),
    }
}

/// Reads every `#[message(..)]` attribute of the type.
fn parse_attrs(input: &DeriveInput) -> Result<Attr, syn::Error> {
    let mut id: Option<MsgId> = None;
    let mut id_seen = false;
    let mut codec: Option<Codec> = None;
    let mut codec_seen = false;
    let mut attr_seen = false;
    let mut complete = true;
    let mut errors = Errors::default();

    for attr in input.attrs.iter().filter(|a| a.path().is_ident("message")) {
        attr_seen = true;
        let list = match &attr.meta {
            syn::Meta::List(list) => list,
            other => {
                errors.push(syn::Error::new_spanned(
                    other,
                    "expected `#[message(id = <u32>)]`, e.g. `#[message(id = 3)]`",
                ));
                complete = false;
                continue;
            }
        };
        let parser = syn::meta::parser(|meta| {
            let path = &meta.path;
            if path.is_ident("id") {
                if !meta.input.peek(Token![=]) {
                    return Err(meta.error("expected `id = <u32>`, e.g. `#[message(id = 3)]`"));
                }
                let value: Expr = meta.value()?.parse()?;
                if id_seen {
                    errors.push(syn::Error::new_spanned(
                        path,
                        "duplicate key `id`: a message type travels on exactly one msg_id",
                    ));
                } else {
                    id_seen = true;
                    match args::parse_msg_id(value, "id") {
                        Ok(m) => id = Some(m),
                        Err(e) => errors.push(e),
                    }
                }
            } else if path.is_ident("codec") {
                if !meta.input.peek(Token![=]) {
                    return Err(meta.error(
                        "expected `codec = \"json\"`, `codec = \"protobuf\"` or `codec = \"raw\"`",
                    ));
                }
                let value: Expr = meta.value()?.parse()?;
                if codec_seen {
                    errors.push(syn::Error::new_spanned(path, "duplicate key `codec`"));
                } else {
                    codec_seen = true;
                    match parse_codec(value) {
                        Ok(c) => codec = Some(c),
                        Err(e) => errors.push(e),
                    }
                }
            } else {
                args::skip_value(&meta)?;
                let key = quote!(#path).to_string().replace(' ', "");
                errors.push(syn::Error::new_spanned(
                    path,
                    format!(
                        "unknown key `{key}`; {}{ACCEPTED}",
                        args::did_you_mean(&key, &KEYS)
                    ),
                ));
            }
            Ok(())
        });
        if let Err(e) = parser.parse2(list.tokens.clone()) {
            errors.push(e);
            complete = false;
        }
    }

    if !attr_seen {
        errors.push(syn::Error::new_spanned(
            &input.ident,
            "missing `#[message(id = <u32>)]`: a message type says its msg_id once, on the \
             type, e.g. `#[derive(Message)] #[message(id = 3)] struct Chat { .. }`",
        ));
    } else if complete && !id_seen {
        errors.push(syn::Error::new_spanned(
            &input.ident,
            "missing `id` in `#[message(..)]`: write `#[message(id = <u32>)]`, e.g. \
             `#[message(id = 3)]`",
        ));
    }
    errors.finish()?;
    match id {
        Some(id) => Ok(Attr {
            id,
            codec: codec.unwrap_or(Codec::Json),
        }),
        // Unreachable: a missing or invalid id pushed an error above.
        None => Err(syn::Error::new(
            Span::call_site(),
            "`#[message]` needs `id`",
        )),
    }
}

fn parse_codec(value: Expr) -> Result<Codec, syn::Error> {
    const EXPECTED: &str = "`codec` is \"json\" (the default), \"protobuf\" (a `prost::Message`) or \"raw\" (a \
         newtype over `Bytes`, `Vec<u8>` or `String`)";
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => match s.value().as_str() {
            "json" => Ok(Codec::Json),
            "protobuf" => Ok(Codec::Protobuf),
            "raw" => Ok(Codec::Raw),
            other => Err(syn::Error::new_spanned(
                &s,
                format!("unknown codec {other:?}: {EXPECTED}"),
            )),
        },
        other => Err(syn::Error::new_spanned(
            &other,
            format!("`codec` must be a string literal: {EXPECTED}"),
        )),
    }
}

/// The single field of a raw message, or why the type is not a newtype.
fn raw_newtype_field(input: &DeriveInput) -> Result<RawField<'_>, syn::Error> {
    const NEWTYPE: &str = "`codec = \"raw\"` is for a newtype over `Bytes`, `Vec<u8>` or \
                           `String`, e.g. `struct Blob(Bytes);`";
    let fields = match &input.data {
        Data::Struct(s) => &s.fields,
        _ => return Err(syn::Error::new_spanned(&input.ident, NEWTYPE)),
    };
    let mut iter = fields.iter();
    match (iter.next(), iter.next()) {
        (Some(field), None) => {
            let member = match (&field.ident, fields) {
                (Some(ident), Fields::Named(_)) => Member::Named(ident.clone()),
                _ => Member::Unnamed(syn::Index::from(0usize)),
            };
            Ok((member, &field.ty))
        }
        _ => Err(syn::Error::new_spanned(&input.ident, NEWTYPE)),
    }
}

fn generate(input: &DeriveInput, attr: &Attr, raw_field: Option<RawField<'_>>) -> TokenStream {
    let ident = &input.ident;
    let name = LitStr::new(&ident.unraw().to_string(), ident.span());
    let id = match &attr.id {
        MsgId::Literal { lit, .. } => quote!(#lit),
        MsgId::Const(expr) => quote!(#expr),
    };
    let codec = attr.codec.variant();
    let data = Ident::new("__zinx_data", Span::mixed_site());
    // The codec calls are spanned to the type (or the raw field's type), so
    // that a missing serde / prost / raw trait is reported there.
    let span = ident.span();
    let codec_path = quote!(::zinx_cluster::__private::codec);
    let (to_bytes, from_bytes) = match (attr.codec, raw_field) {
        (Codec::Json, _) => {
            let json = quote_spanned! {span=> <#ident as #codec_path::JsonCodec> };
            (
                quote! { #json::encode_json(self, #name) },
                quote! { #json::decode_json(&#data, #name) },
            )
        }
        (Codec::Protobuf, _) => {
            let protobuf = quote_spanned! {span=> <#ident as #codec_path::ProtobufCodec> };
            (
                quote! { #protobuf::encode_protobuf(self, #name) },
                quote! { #protobuf::decode_protobuf(#data, #name) },
            )
        }
        (Codec::Raw, Some((member, ty))) => {
            let raw = quote_spanned! {ty.span()=> <#ty as #codec_path::RawField> };
            (
                quote! { #raw::encode_raw(&self.#member) },
                quote! {
                    ::core::result::Result::map(
                        #raw::decode_raw(#data, #name),
                        |field| Self { #member: field },
                    )
                },
            )
        }
        // Unreachable: `check` found the field of every raw message.
        (Codec::Raw, None) => {
            return syn::Error::new_spanned(ident, "a raw message needs one field")
                .to_compile_error();
        }
    };

    quote! {
        const _: () = {
            impl ::zinx_cluster::Message for #ident {
                const ID: u32 = #id;
                const CODEC: ::zinx_cluster::__private::Codec = ::zinx_cluster::__private::Codec::#codec;

                fn to_bytes(
                    &self,
                ) -> ::core::result::Result<
                    ::zinx_cluster::__private::Bytes,
                    ::zinx_cluster::__private::MessageError,
                > {
                    #to_bytes
                }

                fn from_bytes(
                    #data: ::zinx_cluster::__private::Bytes,
                ) -> ::core::result::Result<Self, ::zinx_cluster::__private::MessageError> {
                    #from_bytes
                }
            }

            ::zinx_cluster::__private::inventory::submit!(::zinx_cluster::__private::MessageType {
                id: <#ident as ::zinx_cluster::Message>::ID,
                codec: ::zinx_cluster::__private::Codec::#codec,
                name: #name,
                module: ::core::module_path!(),
                file: ::core::file!(),
                line: ::core::line!(),
            });
        };
    }
}
