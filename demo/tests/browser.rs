//! The demo's browser chat page (`demo/static/`) in a real headless
//! Chromium, driven through WebDriver (Debian's `chromium` and
//! `chromium-driver`).
//!
//! Without a browser the tests say so and pass, unless
//! `ZINX_REQUIRE_BROWSER=1` (as `.ci/run` sets), where that is a failure.

use std::path::Path;
use std::time::Duration;

use zinx_test_support::T;
use zinx_test_support::chat::wait_ready;
use zinx_test_support::conf::Conf;
use zinx_test_support::process::Proc;
use zinx_test_support::webdriver::{Browser, Driver, browser_paths};

/// The demo server built for this test run.
const DEMO: &str = env!("CARGO_BIN_EXE_demo");
/// The chat client built for this test run.
const DEMO_CLIENT: &str = env!("CARGO_BIN_EXE_demo-client");
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// The browser, or `None` after a loud notice (on stderr, which the test
/// harness does not capture) when the test cannot run here; a failure
/// under `ZINX_REQUIRE_BROWSER=1`.
fn driver(test: &str) -> Option<Driver> {
    match browser_paths() {
        Some((chromium, driver)) => Some(Driver::start(chromium, driver)),
        None => {
            zinx_test_support::skip::skip(
                "ZINX_REQUIRE_BROWSER",
                "chromium with chromedriver",
                &format!("the browser test {test}"),
                "apt-get install chromium chromium-driver",
            );
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

/// Session resume's HELLO (PROTOCOL.md); 99990 to 99999 are the SDK's
/// control frames and the heartbeat.
const HELLO: u32 = 99990;

/// Serves `pages` over HTTP/1.1 on a free loopback port (one request per
/// connection), as the demo's admin port does; returns the port.
async fn serve_pages(pages: Vec<zinx_cluster::admin::Page>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let pages = std::sync::Arc::new(pages);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let pages = pages.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let target = head.split(' ').nth(1).unwrap_or("/");
                let path = target.split('?').next().unwrap_or("/");
                let reply = match pages.iter().find(|p| p.path == path) {
                    Some(p) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            p.content_type,
                            p.body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(&p.body);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = tcp.write_all(&reply).await;
            });
        }
    });
    port
}

/// The page against a scripted WebSocket peer: the page's framing, not the
/// cluster. The peer answers a login with two frames batched in one
/// message, then sends one frame split over two messages; the page must
/// show all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_page_reads_frames_batched_and_split_across_messages() {
    let Some(driver) = driver("chat_page_reads_frames_batched_and_split_across_messages") else {
        return;
    };
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
            // The SDK's own frames, not the chat's: HELLO (answered as a
            // gate with session resume does), ACK, heartbeats.
            if msg_id == HELLO {
                let answer = frame(HELLO, &json!({"token": "t1", "window_ms": 30000}));
                ws.send(Message::Binary(answer.into())).await.unwrap();
                continue;
            }
            if msg_id >= HELLO {
                continue;
            }
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

    // The page is an ES module: served over HTTP (browsers refuse module
    // scripts from file://), as the demo serves it.
    let http_port = serve_pages(demo::web::chat_pages(port, "/")).await;
    let url = format!("http://127.0.0.1:{http_port}/chat/?ws=ws://127.0.0.1:{port}/");
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

/// Logs a browser in on the demo's chat page.
fn open_chat(b: &Browser<'_>, url: &str, name: &str) {
    b.goto(url);
    b.wait_for(
        "the socket to open",
        "return !document.getElementById('login').disabled",
    );
    b.type_into(&b.find("#name"), name);
    b.click(&b.find("#login"));
    b.wait_for(
        "the login",
        &format!("return document.getElementById('status').textContent === 'logged in as {name}'"),
    );
}

/// Waits until the page's log shows a line from `from` with `text`.
fn wait_line(b: &Browser<'_>, from: &str, text: &str) {
    let script = format!(
        "return [...document.querySelectorAll('#log li')].some(li => li.dataset.from === {from:?} && li.dataset.text === {text:?})"
    );
    b.wait_for(&format!("{from}: {text}"), &script);
}

fn send(b: &Browser<'_>, to: &str, text: &str) {
    b.type_into(&b.find("#to"), to);
    b.type_into(&b.find("#text"), text);
    b.click(&b.find("#send"));
}

fn broadcast(b: &Browser<'_>, text: &str) {
    b.type_into(&b.find("#shout"), text);
    b.click(&b.find("#broadcast"));
}

/// The real thing: the demo serves its page, two browsers and a TCP
/// demo-client chat through the cluster (the browsers over WebSocket).
/// With `ZINX_SCREENSHOTS=DIR`, both windows are saved there as PNG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_and_a_tcp_client_chat_through_the_demo() {
    let Some(driver) = driver("two_browsers_and_a_tcp_client_chat_through_the_demo") else {
        return;
    };
    let conf = Conf::with_web();
    let mut demo = Proc::demo(DEMO, "demo", &conf, &[]);
    wait_ready(&conf.gate_addr()).await;
    let url = format!("http://127.0.0.1:{}/chat/", conf.admin_port);
    let mut carol = Proc::client(DEMO_CLIENT, "carol", &conf.gate_addr(), conf.path());
    carol.wait_line("* logged in as carol", T);

    let (carol, shots) = tokio::task::spawn_blocking(move || {
        let alice = driver.session();
        let bob = driver.session();
        open_chat(&alice, &url, "alice");
        open_chat(&bob, &url, "bob");

        send(&alice, "bob", "hi bob, from a browser");
        wait_line(&bob, "alice", "hi bob, from a browser");
        broadcast(&bob, "hello everybody");
        wait_line(&alice, "bob", "hello everybody");
        wait_line(&bob, "bob", "hello everybody");
        carol.wait_line("[all] bob: hello everybody", T);

        carol.say("/to alice hi alice, from a terminal");
        wait_line(&alice, "carol", "hi alice, from a terminal");
        send(&alice, "carol", "hi carol, from a browser");
        carol.wait_line("[alice] hi carol, from a browser", T);
        send(&bob, "dave", "anyone?");
        b_wait_error(&bob, "dave is not online");
        (carol, [alice.screenshot(), bob.screenshot()])
    })
    .await
    .unwrap();
    if let Ok(dir) = std::env::var("ZINX_SCREENSHOTS") {
        for (name, png) in ["alice", "bob"].iter().zip(shots) {
            std::fs::write(Path::new(&dir).join(format!("chat-{name}.png")), png).unwrap();
        }
    }
    drop(carol);
    demo.interrupt();
    assert_eq!(demo.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

fn b_wait_error(b: &Browser<'_>, text: &str) {
    let script = format!(
        "return [...document.querySelectorAll('#log li.error')].some(li => li.dataset.text === {text:?})"
    );
    b.wait_for(text, &script);
}
