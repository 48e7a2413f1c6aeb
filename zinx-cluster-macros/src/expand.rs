//! Checks the handler's signature and generates its entry point and
//! registration.
//!
//! The output is the user's function, unchanged, followed by one anonymous
//! `const _: () = { .. };` block holding everything generated: the
//! type-erased entry point, the `inventory` registration and, for a literal
//! msg_id, a link symbol named after the msg_id. Nothing is added to the
//! user's namespace.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Signature, Type};

use crate::Errors;
use crate::args::{self, Args, MsgId};

/// The accepted signature forms, for messages.
const FORMS: &str = "`async fn name(ctx: &mut Ctx)` or `async fn name(ctx: &mut Ctx, payload: P)` \
                     where `P` is a `#[derive(Message)]` type, `Bytes`, `String`, `Vec<u8>`, \
                     `Json<T>` or another `FromPayload` type";

/// Prefix of the per-msg_id link symbol. Two handlers of one msg_id define
/// the same symbol: in one crate rustc refuses it ("symbol
/// `zinx_cluster_handler_for_msg_id_3` is already defined"), across crates
/// the linker does ("duplicate symbol").
pub(crate) const CLAIM_SYMBOL_PREFIX: &str = "zinx_cluster_handler_for_msg_id_";

/// An argument after the context.
enum Extra<'a> {
    /// `State<S>`: a clone of application state, taken from the context.
    State(&'a Type),
    /// The payload extractor.
    Payload(&'a Type),
}

/// Whether a type is written `State<..>` (any path ending so): an
/// application state argument. Decided by the spelling, as axum's
/// extractors are by position: the compiler then checks it is ours.
fn is_state(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().is_some_and(|s| {
            s.ident == "State" && matches!(s.arguments, syn::PathArguments::AngleBracketed(_))
        }),
        _ => false,
    }
}

/// The types of a valid handler signature.
struct Handler<'a> {
    /// The first argument's type (the context; the compiler checks it).
    ctx: &'a Type,
    /// The arguments after the context, in order.
    extras: Vec<Extra<'a>>,
    /// The payload extractor's type, when the handler takes a payload.
    payload: Option<&'a Type>,
    /// The return type, `None` for `()`.
    ret: Option<&'a Type>,
}

/// `#[handler(args)] item` → the item plus its entry point and registration;
/// on any error, the item unchanged plus `compile_error!`s, so the rest of
/// the file still type-checks and the IDE keeps working.
pub(crate) fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let parsed = syn::parse2::<ItemFn>(item.clone());
    // Without a payload no message type can give the msg_id. (When the
    // item is no fn, say what a handler needs anyway.)
    let has_payload = parsed.as_ref().is_ok_and(|f| {
        f.sig
            .inputs
            .iter()
            .skip(1)
            .any(|a| matches!(a, FnArg::Typed(t) if !is_state(&t.ty)))
    });
    let args = match args::parse(args, !has_payload) {
        Ok(args) => Some(args),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let func = match parsed {
        Ok(func) => Some(func),
        Err(_) => {
            errors.push(syn::Error::new(
                Span::call_site(),
                format!("`#[handler]` goes on a free `async fn`: {FORMS}"),
            ));
            None
        }
    };
    let handler = func.as_ref().and_then(|f| match check_signature(&f.sig) {
        Ok(h) => Some(h),
        Err(e) => {
            errors.push(e);
            None
        }
    });
    match (errors.finish(), args, &func, handler) {
        (Ok(()), Some(args), Some(func), Some(handler)) => {
            let generated = generate(&args, func, &handler);
            quote! {
                #item
                #generated
            }
        }
        (result, ..) => {
            let errors = result.err().map(|e| e.to_compile_error());
            quote! {
                #item
                #errors
            }
        }
    }
}

/// Checks everything about the signature that can be checked without types,
/// reporting every problem at once. Argument and return types are left to
/// the compiler, which checks them against `CtxArg`, `FromPayload` and
/// `IntoReply` at the user's spans.
fn check_signature(sig: &Signature) -> Result<Handler<'_>, syn::Error> {
    let mut errors = Errors::default();
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "a handler cannot be a `const fn`",
        ));
    }
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            format!("a handler must be an `async fn`: {FORMS}"),
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "a handler cannot be `unsafe`: the runtime calls it with no safety contract",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a handler cannot have an `extern` ABI",
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a handler cannot have generic parameters (types, consts or lifetimes): \
             the runtime calls one concrete function per msg_id",
        ));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "a handler cannot have a `where` clause: it cannot be generic",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a handler cannot be variadic",
        ));
    }

    let mut typed = Vec::with_capacity(2);
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                format!("a handler is a free function, not a method: remove `self`; {FORMS}"),
            )),
            FnArg::Typed(pat_type) => {
                if let Type::ImplTrait(_) = &*pat_type.ty {
                    errors.push(syn::Error::new_spanned(
                        &pat_type.ty,
                        "a handler argument cannot be `impl Trait` (that makes the handler \
                         generic): name the type",
                    ));
                }
                typed.push(&*pat_type.ty);
            }
        }
    }
    if sig.inputs.is_empty() {
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("a handler takes the context as its first argument: {FORMS}"),
        ));
    }
    // After the context: `State<S>` arguments and at most one payload.
    let payloads: Vec<&FnArg> = sig
        .inputs
        .iter()
        .skip(1)
        .filter(|a| matches!(a, FnArg::Typed(t) if !is_state(&t.ty)))
        .collect();
    if payloads.len() > 1 {
        let extra = &payloads[1..];
        errors.push(syn::Error::new_spanned(
            quote!(#(#extra),*),
            "a handler takes the context, `State<S>` arguments and at most one payload: \
             decode several values with one `Json<T>` of a struct",
        ));
    }
    errors.finish()?;

    let ret = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(t) if t.elems.is_empty() => None,
            ty => Some(ty),
        },
    };
    match typed.split_first() {
        Some((ctx, rest)) => {
            let extras: Vec<Extra<'_>> = rest
                .iter()
                .map(|ty| {
                    if is_state(ty) {
                        Extra::State(ty)
                    } else {
                        Extra::Payload(ty)
                    }
                })
                .collect();
            let payload = extras.iter().find_map(|e| match e {
                Extra::Payload(ty) => Some(*ty),
                Extra::State(_) => None,
            });
            Ok(Handler {
                ctx,
                extras,
                payload,
                ret,
            })
        }
        // Unreachable: no argument was reported above.
        None => Err(syn::Error::new_spanned(
            &sig.inputs,
            format!("unexpected arguments: {FORMS}"),
        )),
    }
}

/// The `const _: () = { .. };` block beside the user's function.
fn generate(args: &Args, func: &ItemFn, handler: &Handler<'_>) -> TokenStream {
    let ident = &func.sig.ident;
    let name = ident.unraw().to_string();
    let group = &args.group;
    // Generated locals are hygienic and oddly named, so that they can clash
    // neither with the user's names nor with a const the user has in scope.
    let ctx = format_ident!("__zinx_ctx", span = Span::mixed_site());
    let payload = format_ident!("__zinx_payload", span = Span::mixed_site());
    let error = format_ident!("__zinx_error", span = Span::mixed_site());
    let entry = format_ident!("__zinx_entry");

    // Each conversion is spanned to the user's type, so that a type without
    // the trait is reported there, with the trait's `on_unimplemented` note.
    let ctx_ty = handler.ctx;
    let ctx_arg = quote_spanned! {ctx_ty.span()=>
        <#ctx_ty as ::zinx_cluster::__private::CtxArg<'_>>::from_ctx(#ctx)
    };
    let (payload_param, decode) = match handler.payload {
        None => (quote!(_), quote!()),
        Some(ty) => {
            let from_payload = quote_spanned! {ty.span()=>
                <#ty as ::zinx_cluster::FromPayload>::from_payload(#payload)
            };
            let decode = quote! {
                let #payload = match #from_payload {
                    ::core::result::Result::Ok(#payload) => #payload,
                    ::core::result::Result::Err(#error) => {
                        return ::core::result::Result::Err(
                            ::zinx_cluster::__private::HandlerFailure::Payload(#error),
                        );
                    }
                };
            };
            (quote!(#payload), decode)
        }
    };
    // `State<S>` arguments: cloned out of the context before the call (the
    // call then borrows the context for the handler), each registered for
    // the start-time check that the cluster was given an `S`.
    let mut states = Vec::new();
    let mut state_uses = Vec::new();
    let mut call_args = vec![ctx_arg];
    for (i, extra) in handler.extras.iter().enumerate() {
        match extra {
            Extra::Payload(_) => call_args.push(quote!(#payload)),
            Extra::State(ty) => {
                let var = format_ident!("__zinx_state_{}", i, span = Span::mixed_site());
                let from_state = quote_spanned! {ty.span()=>
                    <#ty as ::zinx_cluster::__private::FromState>
                };
                states.push(quote! {
                    let #var = match #from_state::from_ctx(&*#ctx) {
                        ::core::result::Result::Ok(#var) => #var,
                        ::core::result::Result::Err(#error) => {
                            return ::core::result::Result::Err(#error);
                        }
                    };
                });
                state_uses.push(quote! {
                    ::zinx_cluster::__private::inventory::submit!(::zinx_cluster::__private::StateUse {
                        group: #group,
                        handler: #name,
                        module: ::core::module_path!(),
                        file: ::core::file!(),
                        line: ::core::line!(),
                        type_id: #from_state::state_type_id,
                        type_name: #from_state::state_type_name,
                    });
                });
                call_args.push(quote!(#var));
            }
        }
    }
    let call = quote!(#ident(#(#call_args),*));
    let decode = quote! {
        #decode
        #(#states)*
    };
    let run = match handler.ret {
        None => quote! {
            #call.await;
            ::core::result::Result::Ok(::core::option::Option::None)
        },
        Some(ty) => {
            // rustc blames the argument of a call whose bound fails, and maps
            // any span of the expansion's own context to the attribute: this
            // binding is placed at the return type, in the user's context.
            let reply = Ident::new("__zinx_reply", ty.span());
            let convert = quote_spanned! {ty.span()=>
                ::zinx_cluster::__private::into_reply(#reply)
            };
            quote! {
                let #reply = #call.await;
                #convert
            }
        }
    };
    // A handler future that is not `Send` fails the `Send` bound of
    // `boxed`. rustc reports that at the attribute whatever the spans, but
    // with these its note names the user's `async fn` and the value held
    // across an `.await`.
    let async_span = func.sig.asyncness.map_or_else(Span::call_site, |a| a.span);
    let boxed = quote_spanned! {async_span=> ::zinx_cluster::__private::boxed };

    // The whole block, braces included, at `async` (see above).
    let body = quote_spanned! {async_span=>
        async move {
            #decode
            #run
        }
    };

    let (msg_id, claim) = match &args.msg_id {
        Some(MsgId::Literal { value, lit }) => {
            let symbol = format!("{CLAIM_SYMBOL_PREFIX}{value}");
            // The static is spanned to the literal, so that rustc's "symbol
            // .. is already defined" points at the second handler's msg_id.
            let item = quote_spanned! {lit.span()=> static __ZINX_MSG_ID_CLAIM: u8 = 0; };
            let claim = quote! {
                #[unsafe(export_name = #symbol)]
                #[used]
                #item
            };
            (quote!(#lit), claim)
        }
        Some(MsgId::Const(expr)) => (quote!(#expr), quote!()),
        // From the payload's message type; `args::parse` required `msg_id`
        // when there is no payload. Spanned to the type, so that a payload
        // that is no message is reported there.
        None => match handler.payload {
            Some(ty) => (
                quote_spanned! {ty.span()=> <#ty as ::zinx_cluster::Message>::ID },
                quote!(),
            ),
            None => (quote!(0), quote!()),
        },
    };
    let agree = match (&args.msg_id, handler.payload) {
        (Some(given), Some(ty)) => msg_id_agrees(given, ty),
        _ => quote!(),
    };
    let internal = args.internal;

    quote! {
        const _: () = {
            fn #entry(
                #ctx: &mut ::zinx_cluster::Ctx,
                #payload_param: ::zinx_cluster::__private::Bytes,
            ) -> ::zinx_cluster::__private::EntryFuture<'_> {
                #boxed(#body)
            }

            const __ZINX_ROUTE: ::zinx_cluster::__private::Route = ::zinx_cluster::__private::Route {
                msg_id: #msg_id,
                group: #group,
                name: #name,
                internal: #internal,
                module: ::core::module_path!(),
                file: ::core::file!(),
                line: ::core::line!(),
                entry: #entry,
            };
            ::zinx_cluster::__private::inventory::submit!(__ZINX_ROUTE);
            #(#state_uses)*

            #agree
            #claim
        };
    }
}

/// A const that fails to evaluate when the handler's `msg_id = ..` and its
/// payload's message id differ, spanned to the msg_id in the attribute.
/// A payload that is no message has no id to disagree with.
fn msg_id_agrees(given: &MsgId, ty: &Type) -> TokenStream {
    let (value, span) = match given {
        MsgId::Literal { lit, .. } => (quote!(#lit), lit.span()),
        MsgId::Const(expr) => (quote!(#expr), expr.span()),
    };
    let shown = |tokens: TokenStream| tokens.to_string().replace(' ', "");
    let message = format!(
        "`msg_id = {}` disagrees with the payload type `{}`, a message whose \
         `#[message(id = ..)]` is another msg_id: remove `msg_id = ..` (the handler then \
         serves the message's id) or make the two agree",
        shown(value.clone()),
        shown(quote!(#ty)),
    )
    // A format string: the braces of a type must not be read as arguments.
    .replace('{', "{{")
    .replace('}', "}}");
    let id = format_ident!("__zinx_id", span = Span::mixed_site());
    quote_spanned! {span=>
        const _: () = {
            #[allow(unused_imports)]
            use ::zinx_cluster::__private::NotAMessage as _;
            if let ::core::option::Option::Some(#id) =
                ::zinx_cluster::__private::MessageIdOf::<#ty>::ID
            {
                if #id != #value {
                    ::core::panic!(#message);
                }
            }
        };
    }
}
