//! The demo's browser chat page (`demo/static/`) in a real headless
//! Chromium, driven through WebDriver (Debian's `chromium` and
//! `chromium-driver`).
//!
//! Without a browser the tests say so and pass, unless
//! `ZINX_REQUIRE_BROWSER=1` (as `.ci/run` sets), where that is a failure.

use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use zinx_test_support::webdriver::{Driver, browser_paths};

/// The browser, or `None` (after saying why) when the test cannot run here.
fn driver() -> Option<Driver> {
    match browser_paths() {
        Some((chromium, driver)) => Some(Driver::start(chromium, driver)),
        None if std::env::var("ZINX_REQUIRE_BROWSER").is_ok_and(|v| v == "1") => {
            panic!("ZINX_REQUIRE_BROWSER=1 but chromium / chromedriver are not installed")
        }
        None => {
            eprintln!("skipped: install chromium and chromium-driver to run the browser tests");
            None
        }
    }
}

fn frame(msg_id: u32, body: &Value) -> Vec<u8> {
    let data = body.to_string().into_bytes();
    let mut f = Vec::with_capacity(8 + data.len());
    f.extend_from_slice(&msg_id.to_be_bytes());
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(&data);
    f
}

/// The page against a scripted WebSocket peer: the page's framing, not the
/// cluster. The peer answers a login with two frames batched in one
/// message, then sends one frame split over two messages; the page must
/// show all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_page_reads_frames_batched_and_split_across_messages() {
    let Some(driver) = driver() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let mut seen = Vec::new();
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Binary(b) = msg else { continue };
            let msg_id = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
            assert_eq!(b.len(), 8 + len, "one frame per message from the page");
            let body: Value = serde_json::from_slice(&b[8..]).unwrap();
            seen.push((msg_id, body.clone()));
            if msg_id == 1 {
                let mut two = frame(1, &json!({"ok": true, "name": body["name"]}));
                two.extend(frame(4, &json!({"from": "bob", "text": "batched"})));
                ws.send(Message::Binary(two.into())).await.unwrap();
                let split = frame(3, &json!({"from": "carol", "text": "split in two"}));
                ws.send(Message::Binary(split[..5].to_vec().into()))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                ws.send(Message::Binary(split[5..].to_vec().into()))
                    .await
                    .unwrap();
            }
            if msg_id == 3 {
                break;
            }
        }
        seen
    });

    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("static/chat.html");
    let url = format!("file://{}?ws=ws://127.0.0.1:{port}/", page.display());
    let seen = tokio::task::spawn_blocking(move || {
        let b = driver.session();
        b.goto(&url);
        b.wait_for(
            "the socket to open",
            "return !document.getElementById('login').disabled",
        );
        b.type_into(&b.find("#name"), "alice");
        b.click(&b.find("#login"));
        b.wait_for(
            "three lines",
            "return document.querySelectorAll('#log li').length >= 3",
        );
        let log = b.text(&b.find("#log"));
        assert!(log.contains("logged in as alice"), "{log}");
        assert!(log.contains("bob: batched"), "{log}");
        assert!(log.contains("carol: split in two"), "{log}");
        assert_eq!(
            b.eval("return document.querySelector('#log li.private').dataset.from"),
            json!("carol"),
            "a line on msg 3 is private"
        );
        b.type_into(&b.find("#to"), "bob");
        b.type_into(&b.find("#text"), "hi bob");
        b.click(&b.find("#send"));
    })
    .await;
    seen.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), peer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        seen,
        [
            (1, json!({"name": "alice"})),
            (3, json!({"to": "bob", "text": "hi bob"})),
        ]
    );
}
