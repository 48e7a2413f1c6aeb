//! The arguments of `#[handler(msg_id = .., group = "..", internal)]`, and
//! the msg_id values both attributes share.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::Parser;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitInt, LitStr, Token, UnOp};

use crate::Errors;

/// The msg_id the zinx client heartbeat uses. A gate answers it itself and
/// never routes it, so a handler for it could never run.
const ZINX_HEARTBEAT_MSG_ID: u32 = 99999;

/// What the keys of the message say to the user when one is unknown.
const ACCEPTED: &str = "`#[handler]` accepts `msg_id = <u32>`, `group = \"<name>\"` and `internal`";

/// The keys `#[handler]` knows, for "did you mean" hints.
const KEYS: [&str; 3] = ["msg_id", "group", "internal"];

/// The parsed arguments.
pub(crate) struct Args {
    /// `None` when the payload's message type gives it.
    pub(crate) msg_id: Option<MsgId>,
    pub(crate) group: LitStr,
    /// `internal`: only other nodes may run the handler.
    pub(crate) internal: bool,
}

/// `msg_id = ..`: a literal, checked here, or a const the compiler checks.
pub(crate) enum MsgId {
    /// `msg_id = 3`: known now, so the expansion can also claim a per-msg_id
    /// link symbol that makes a duplicate a build error.
    Literal { value: u32, lit: LitInt },
    /// `msg_id = ids::LOGIN` or `msg_id = Msg::Login as u32`: evaluated by
    /// the compiler as a `u32` const; a duplicate is only found at startup.
    Const(Expr),
}

/// Parses the attribute's arguments, reporting every problem at once.
///
/// `msg_id_required`: the handler takes no payload, so no message type can
/// give its msg_id.
pub(crate) fn parse(tokens: TokenStream, msg_id_required: bool) -> Result<Args, syn::Error> {
    let mut msg_id: Option<MsgId> = None;
    let mut group: Option<LitStr> = None;
    // A key that was given but whose value was wrong: not also "missing".
    let mut msg_id_seen = false;
    let mut group_seen = false;
    let mut internal: Option<&'static str> = None;
    let mut errors = Errors::default();

    let parser = syn::meta::parser(|meta| {
        let path = &meta.path;
        if path.is_ident("msg_id") {
            if !meta.input.peek(Token![=]) {
                return Err(meta.error("expected `msg_id = <u32>`, e.g. `msg_id = 3`"));
            }
            let value: Expr = meta.value()?.parse()?;
            if msg_id_seen {
                errors.push(syn::Error::new_spanned(
                    path,
                    "duplicate key `msg_id`: a handler serves exactly one msg_id",
                ));
            } else {
                msg_id_seen = true;
                match parse_msg_id(value, "msg_id") {
                    Ok(m) => msg_id = Some(m),
                    Err(e) => errors.push(e),
                }
            }
        } else if path.is_ident("group") {
            if !meta.input.peek(Token![=]) {
                return Err(meta.error("expected `group = \"<name>\"`, e.g. `group = \"im\"`"));
            }
            let value: Expr = meta.value()?.parse()?;
            if group_seen {
                errors.push(syn::Error::new_spanned(
                    path,
                    "duplicate key `group`: a handler belongs to exactly one group",
                ));
            } else {
                group_seen = true;
                match parse_group(value) {
                    Ok(g) => group = Some(g),
                    Err(e) => errors.push(e),
                }
            }
        } else if path.is_ident("internal") {
            if meta.input.peek(Token![=]) || (!meta.input.is_empty() && !meta.input.peek(Token![,]))
            {
                skip_value(&meta)?;
                errors.push(syn::Error::new_spanned(
                    path,
                    "`internal` is a flag: write `#[handler(msg_id = .., group = \"..\", internal)]`",
                ));
            } else if internal.is_some() {
                errors.push(syn::Error::new_spanned(path, "duplicate key `internal`"));
            } else {
                internal = Some("internal");
            }
        } else {
            skip_value(&meta)?;
            let key = path.to_token_stream().to_string().replace(' ', "");
            errors.push(syn::Error::new_spanned(
                path,
                format!(
                    "unknown key `{key}`; {}{ACCEPTED}",
                    did_you_mean(&key, &KEYS)
                ),
            ));
        }
        Ok(())
    });

    let complete = match parser.parse2(tokens) {
        Ok(()) => true,
        Err(e) => {
            errors.push(e);
            false
        }
    };
    // After a syntax error the rest was not read: a key may well be there.
    if complete {
        if !msg_id_seen && msg_id_required {
            errors.push(syn::Error::new(
                Span::call_site(),
                "missing `msg_id`: write `#[handler(msg_id = <u32>, group = \"<name>\")]`, or \
                 take a payload whose type derives `Message` (its id is then the msg_id)",
            ));
        }
        if !group_seen {
            errors.push(syn::Error::new(
                Span::call_site(),
                "missing `group`: write `#[handler(msg_id = <u32>, group = \"<name>\")]`; \
                 the group must be the one route.json lists the msg_id under",
            ));
        }
    }
    errors.finish()?;
    match group {
        Some(group) => Ok(Args {
            msg_id,
            group,
            internal: internal.is_some(),
        }),
        // Unreachable: a missing or invalid key has pushed an error above.
        None => Err(syn::Error::new(
            Span::call_site(),
            "`#[handler]` needs `group`",
        )),
    }
}

/// Skips a key's value (`= expr`, or `(..)`), so that the keys after it are
/// still checked.
pub(crate) fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        let _: TokenTree = meta.input.parse()?;
    }
    Ok(())
}

/// "did you mean `internal`? " when `key` is one or two edits away from a
/// known key, or nothing.
pub(crate) fn did_you_mean(key: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!("did you mean `{k}`? "))
        .unwrap_or_default()
}

/// Levenshtein distance, over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Parses a msg_id given as `key = value` (`msg_id` of `#[handler]`, `id`
/// of `#[message]`).
pub(crate) fn parse_msg_id(value: Expr, key: &str) -> Result<MsgId, syn::Error> {
    let expected = format!(
        "`{key}` must be a u32 literal (e.g. `{key} = 3`) \
         or the path of a `u32` const (e.g. `{key} = ids::LOGIN`)"
    );
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => {
            match lit.suffix() {
                "" | "u32" => {}
                other => {
                    return Err(syn::Error::new_spanned(
                        &lit,
                        format!("`{key}` is a u32: remove the `{other}` suffix"),
                    ));
                }
            }
            let value = lit.base10_parse::<u32>().map_err(|_| {
                syn::Error::new_spanned(
                    &lit,
                    format!(
                        "`{key}` {} does not fit in a u32 (0..={})",
                        lit.base10_digits(),
                        u32::MAX
                    ),
                )
            })?;
            if value == ZINX_HEARTBEAT_MSG_ID {
                return Err(syn::Error::new_spanned(
                    &lit,
                    "msg_id 99999 is the zinx client heartbeat: the gate answers it \
                     itself and never routes it to a handler",
                ));
            }
            Ok(MsgId::Literal { value, lit })
        }
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => Err(syn::Error::new_spanned(
            &value,
            format!("`{key}` is a u32 (0..={}): it cannot be negative", u32::MAX),
        )),
        Expr::Path(ref p) if p.qself.is_none() => Ok(MsgId::Const(value)),
        Expr::Cast(ref cast) if is_const_path(&cast.expr) && is_u32(&cast.ty) => {
            Ok(MsgId::Const(value))
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(ref s),
            ..
        }) => {
            let hint = match s.value().trim().parse::<u32>() {
                Ok(n) => format!(": write `{key} = {n}`"),
                Err(_) => String::new(),
            };
            Err(syn::Error::new_spanned(
                &value,
                format!("{expected}, not a string{hint}"),
            ))
        }
        _ => Err(syn::Error::new_spanned(&value, expected)),
    }
}

fn is_const_path(expr: &Expr) -> bool {
    matches!(expr, Expr::Path(p) if p.qself.is_none())
}

fn is_u32(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none() && p.path.is_ident("u32"))
}

fn parse_group(value: Expr) -> Result<LitStr, syn::Error> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            if s.value().trim().is_empty() {
                Err(syn::Error::new_spanned(
                    &s,
                    "`group` cannot be empty: name the group route.json lists the msg_id under, \
                     e.g. `group = \"im\"`",
                ))
            } else {
                Ok(s)
            }
        }
        other => Err(syn::Error::new_spanned(
            &other,
            "`group` must be a string literal, e.g. `group = \"im\"`",
        )),
    }
}
