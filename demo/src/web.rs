//! The browser chat page (`demo/static/`), served by the demo on its gate's
//! admin port at `/chat/`: `chat.html`, its module `chat.js`, and the
//! TypeScript SDK's browser build `zinx-cluster-client.js` that `chat.js`
//! imports. No build step here: the SDK's build (`npm run build` in
//! `clients/typescript`) writes `zinx-cluster-client.js` into `static/`,
//! where it is checked in, and a test of the SDK fails when it is stale.
//!
//! The page finds the gate's WebSocket through a `<meta name="zinx-ws">`
//! tag filled in here from `dinx.json` (`:WsPort/WsPath`, on the host the
//! page was loaded from); `?ws=ws://host:port/path` overrides it.

use zinx_cluster::admin::Page;

/// The page's HTML, with the `{{ZINX_WS}}` placeholder.
pub const CHAT_HTML: &str = include_str!("../static/chat.html");
/// The page's script (an ES module).
pub const CHAT_JS: &str = include_str!("../static/chat.js");
/// The TypeScript SDK's browser build (one ES module, no dependencies),
/// generated from `clients/typescript/src`.
pub const SDK_JS: &str = include_str!("../static/zinx-cluster-client.js");

/// The pages to serve for a gate whose WebSocket is on `ws_port` at
/// `ws_path`: `/chat/`, `/chat/index.html`, `/chat/chat.js`,
/// `/chat/zinx-cluster-client.js`, and `/chat` (the same HTML; its scripts
/// are then looked up at `/chat.js` and `/zinx-cluster-client.js` too).
pub fn chat_pages(ws_port: u16, ws_path: &str) -> Vec<Page> {
    let html = CHAT_HTML.replace("{{ZINX_WS}}", &format!(":{ws_port}{ws_path}"));
    let html_type = "text/html; charset=utf-8";
    let js_type = "text/javascript; charset=utf-8";
    vec![
        Page::new("/chat/", html_type, html.clone()),
        Page::new("/chat/index.html", html_type, html.clone()),
        Page::new("/chat", html_type, html),
        Page::new("/chat/chat.js", js_type, CHAT_JS),
        Page::new("/chat.js", js_type, CHAT_JS),
        Page::new("/chat/zinx-cluster-client.js", js_type, SDK_JS),
        Page::new("/zinx-cluster-client.js", js_type, SDK_JS),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_learns_where_the_gate_listens() {
        let pages = chat_pages(9000, "/ws");
        let html = std::str::from_utf8(&pages[0].body).unwrap();
        assert!(html.contains(r#"<meta name="zinx-ws" content=":9000/ws">"#));
        assert!(html.contains(r#"<script type="module" src="chat.js">"#));
        assert!(pages.iter().any(|p| p.path == "/chat/chat.js"));
    }

    #[test]
    fn the_page_is_served_with_the_sdk_it_imports() {
        let pages = chat_pages(9000, "/");
        let js = |path: &str| {
            let page = pages.iter().find(|p| p.path == path).unwrap();
            assert!(page.content_type.starts_with("text/javascript"));
            std::str::from_utf8(&page.body).unwrap().to_string()
        };
        assert!(js("/chat/chat.js").contains(r#"from "./zinx-cluster-client.js""#));
        let sdk = js("/chat/zinx-cluster-client.js");
        assert!(sdk.contains("export {") && sdk.contains("ZinxClient"));
        assert_eq!(sdk, js("/zinx-cluster-client.js"));
    }
}
