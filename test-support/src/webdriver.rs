//! Just enough of the W3C WebDriver protocol to drive a headless Chromium
//! through Debian's `chromedriver`: sessions, navigation, elements, keys,
//! clicks, text, scripts and screenshots.
//!
//! A few JSON requests over HTTP/1.1 on loopback do not warrant a WebDriver
//! crate (fantoccini brings hyper, url, cookie, time and the webdriver crate
//! into a build that already takes minutes on two cores).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Chromium and chromedriver of Debian's `chromium` and
/// `chromium-driver` packages, if installed.
pub fn browser_paths() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| names.iter().map(PathBuf::from).find(|p| p.exists());
    let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"])?;
    let driver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])?;
    Some((chromium, driver))
}

/// A running chromedriver; killed when dropped.
pub struct Driver {
    child: Child,
    port: u16,
    chromium: PathBuf,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it is ready.
    pub fn start(chromium: PathBuf, driver: PathBuf) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let d = Driver {
            child,
            port,
            chromium,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, v)) = d.request("GET", "/status", None) {
                if v["value"]["ready"] == json!(true) {
                    return d;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A new headless browser session.
    pub fn session(&self) -> Browser<'_> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=720,560",
                ],
            },
        }}});
        let (status, v) = self
            .request("POST", "/session", Some(caps))
            .expect("chromedriver answers");
        assert_eq!(status, 200, "new session refused: {v}");
        let id = v["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Browser { driver: self, id }
    }

    /// One WebDriver request; the status and the JSON answer.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> std::io::Result<(u16, Value)> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        // chromedriver keeps the connection open: read the head, then
        // Content-Length bytes (or chunks until the last one).
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let split = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::Error::other("no HTTP head"));
            }
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let mut body = raw[split + 4..].to_vec();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let chunked = head.contains("transfer-encoding: chunked");
        loop {
            let done = match length {
                Some(n) => body.len() >= n,
                None if chunked => body.windows(5).any(|w| w == b"0\r\n\r\n"),
                None => false,
            };
            if done {
                break;
            }
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        if chunked {
            body = dechunk(&body);
        }
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((status, v))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

/// One browser window; closed when dropped.
pub struct Browser<'d> {
    driver: &'d Driver,
    id: String,
}

/// An element of the page.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser<'_> {
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.id);
        let (status, v) = self
            .driver
            .request(method, &full, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    /// Opens a URL.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// The first element matching a CSS selector (waits up to 10 s for it).
    pub fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let full = format!("/session/{}/element", self.id);
            let body = json!({"using": "css selector", "value": css});
            if let Ok((200, v)) = self.driver.request("POST", &full, Some(body)) {
                if let Some(id) = v["value"][ELEMENT].as_str() {
                    return Element(id.to_string());
                }
            }
            assert!(Instant::now() < deadline, "no element {css:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types into an element.
    pub fn type_into(&self, el: &Element, text: &str) {
        self.cmd("POST", &format!("/element/{}/clear", el.0), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{}/value", el.0),
            Some(json!({ "text": text })),
        );
    }

    /// Clicks an element.
    pub fn click(&self, el: &Element) {
        self.cmd("POST", &format!("/element/{}/click", el.0), Some(json!({})));
    }

    /// The rendered text of an element.
    pub fn text(&self, el: &Element) -> String {
        self.cmd("GET", &format!("/element/{}/text", el.0), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs a script in the page; its return value.
    pub fn eval(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Waits (up to 10 s) until `script` returns true.
    pub fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.eval(script) != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A PNG screenshot of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd("GET", "/screenshot", None);
        base64_decode(b64.as_str().unwrap_or_default())
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self
            .driver
            .request("DELETE", &format!("/session/{}", self.id), None);
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
