//! The `#[handler]` attribute of zinx-cluster.
use proc_macro::TokenStream;

/// Registers an async fn as the handler of a msg_id.
#[proc_macro_attribute]
pub fn handler(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
