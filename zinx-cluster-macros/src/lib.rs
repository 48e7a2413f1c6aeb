//! The `#[handler]` attribute and `#[derive(Message)]` of zinx-cluster. Use
//! them through `zinx_cluster::{handler, Message}` (or
//! `zinx_cluster::prelude::*`): the expansions name everything through
//! `::zinx_cluster`, so a crate of handlers depends on zinx-cluster alone.
//!
//! The logic lives in functions over `proc_macro2::TokenStream`
//! (`expand::handler`, `message::derive`), so that unit tests can snapshot
//! the expansions.
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod args;
mod expand;
mod message;
#[cfg(test)]
mod tests;

#[doc = include_str!("../handler.md")]
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::handler(args.into(), item.into()).into()
}

#[doc = include_str!("../message.md")]
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(item: TokenStream) -> TokenStream {
    message::derive(item.into()).into()
}

/// Several `syn::Error`s reported together (`syn::Error::combine`).
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds an error to the report.
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// `Err` with every error pushed, if any.
    fn finish(self) -> Result<(), syn::Error> {
        match self.0 {
            Some(all) => Err(all),
            None => Ok(()),
        }
    }
}
