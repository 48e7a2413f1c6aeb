//! The admin endpoint as an operator and an attacker meet it: where it
//! listens (`AdminIP`), who may use it (`admin_token`), and that nobody can
//! starve `/healthz` (slowloris connections, one address's cap, malformed
//! heads). Real sockets on loopback; one gate node per test.
//!
//! The figures of the design (16 served connections per address, 1 s for a
//! head, 100 ms for a busy connection's head) are documented in
//! `docs/admin.md`; `bench slowloris` measures the latency these tests only
//! bound.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use zinx_cluster::config::ClusterConfig;
use zinx_cluster::prelude::*;
use zinx_cluster::{Cluster, RunningCluster, Select};

use zinx_test_support::T;
use zinx_test_support::conf::write_conf;
use zinx_test_support::ports::free_ports;

#[handler(msg_id = 5, group = "gate")]
async fn echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

const ROUTE: &str = r#"{"gate": [{"MsgID": 5, "Name": "echo"}]}"#;
const SECRET: &str = r#""secret": "admin-test-secret""#;

/// Served connections one source address may hold (see `docs/admin.md`).
const PER_ADDRESS: usize = 16;

/// `dinx.json` of one gate on `ip`, with an admin port and `extra` keys.
fn dinx(ip: &str, port: u16, admin_port: u16, extra: &str) -> String {
    format!(
        r#"{{"gate": [{{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "{ip}", "Port": {port},
                       "AdminPort": {admin_port}{extra}}}]}}"#
    )
}

/// Starts the gate of `dinx` with `settings` (a JSON object body).
async fn start(dinx: &str, settings: &str) -> RunningCluster {
    let settings = format!("{{{SECRET}{settings}}}");
    let config = ClusterConfig::from_strs("test-conf", dinx, ROUTE, Some(&settings))
        .unwrap_or_else(|e| panic!("{e}"));
    Cluster::new(config)
        .start(Select::Id(1))
        .await
        .expect("the gate starts")
}

/// An answer: status, head, body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` (a whole HTTP/1.1 request head) to `addr`, from
/// `source` when given, and reads the whole answer (bounded by `T`).
async fn http_from(source: Option<IpAddr>, addr: SocketAddr, request: &str) -> Answer {
    let exchange = async {
        let mut s = connect_from(source, addr).await?;
        s.write_all(request.as_bytes()).await?;
        // Until the server closes. A server that closes without reading
        // all we sent (a head over its limit) resets the connection after
        // its answer: what arrived before the reset is the answer.
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset && !out.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&out).into_owned())
    };
    let text = tokio::time::timeout(T, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer from {addr} within {T:?} to {request:?}"))
        .unwrap_or_else(|e| panic!("{addr}: {e}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    Answer {
        status: head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}")),
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// `GET path` with `headers` (each ending in `\r\n`) from the kernel's
/// source address.
async fn get(addr: SocketAddr, path: &str, headers: &str) -> Answer {
    http_from(
        None,
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n"),
    )
    .await
}

/// A connection to `addr` from `source` (any port), or the kernel's choice.
async fn connect_from(source: Option<IpAddr>, addr: SocketAddr) -> std::io::Result<TcpStream> {
    match source {
        Some(ip) => {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(addr).await
        }
        None => TcpStream::connect(addr).await,
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Whether connecting to `addr` is refused (nobody listens there).
async fn refused(addr: SocketAddr) -> bool {
    match tokio::time::timeout(T, TcpStream::connect(addr)).await {
        Ok(Err(e)) => e.kind() == ErrorKind::ConnectionRefused,
        Ok(Ok(_)) => false,
        Err(_) => panic!("connecting to {addr} neither failed nor succeeded"),
    }
}

// ------------------------------------------------------------ where it listens

#[tokio::test]
async fn the_admin_port_binds_loopback_whatever_the_nodes_ip() {
    // The node on 127.0.0.2 (a stand-in for 0.0.0.0 or a public address,
    // keeping the test on loopback), loaded from a conf directory.
    let p = free_ports(2).expect("free ports");
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = format!("{{{SECRET}}}");
    write_conf(
        dir.path(),
        &dinx("127.0.0.2", p[0], p[1], ""),
        ROUTE,
        &settings,
    )
    .expect("conf written");
    let cluster = Cluster::from_dir(dir.path()).expect("valid conf");
    // What the startup log line says, and where it listens.
    let admin_addr = format!("127.0.0.1:{}", p[1]);
    assert_eq!(
        cluster.config().node(1).and_then(|n| n.admin_addr()),
        Some(admin_addr.clone())
    );
    let running = cluster.start(Select::Id(1)).await.expect("starts");
    let answer = get(admin_addr.parse().unwrap(), "/healthz", "").await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok\n"));
    assert!(refused(SocketAddr::new(v4(127, 0, 0, 2), p[1])).await);
    // The client port is on the node's IP, as before.
    assert!(TcpStream::connect((v4(127, 0, 0, 2), p[0])).await.is_ok());
    running.shutdown().await;
}

#[tokio::test]
async fn admin_ip_moves_the_admin_port() {
    let p = free_ports(2).expect("free ports");
    let running = start(
        &dinx("127.0.0.1", p[0], p[1], r#", "adminip": "127.0.0.3""#),
        "",
    )
    .await;
    let answer = get(SocketAddr::new(v4(127, 0, 0, 3), p[1]), "/healthz", "").await;
    assert_eq!(answer.status, 200);
    assert!(refused(SocketAddr::new(v4(127, 0, 0, 1), p[1])).await);
    running.shutdown().await;
}

#[test]
fn admin_addresses_as_configured() {
    let load = |ip: &str, extra: &str| {
        ClusterConfig::from_strs("conf", &dinx(ip, 10000, 9100, extra), ROUTE, None)
            .unwrap_or_else(|e| panic!("{e}"))
            .node(1)
            .and_then(|n| n.admin_addr())
    };
    assert_eq!(load("0.0.0.0", ""), Some("127.0.0.1:9100".into()));
    assert_eq!(load("::", ""), Some("127.0.0.1:9100".into()));
    assert_eq!(
        load("0.0.0.0", r#", "AdminIP": "0.0.0.0""#),
        Some("0.0.0.0:9100".into())
    );
    assert_eq!(
        load("127.0.0.1", r#", "AdminIp": "::1""#),
        Some("[::1]:9100".into())
    );
}

/// The problems `ClusterConfig::from_strs` reports, one string each.
fn problems(dinx: &str, settings: Option<&str>) -> Vec<String> {
    match ClusterConfig::from_strs("conf", dinx, ROUTE, settings) {
        Ok(_) => panic!("expected problems with {dinx} / {settings:?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_bad_admin_ip_is_named() {
    let p = problems(
        r#"{"gate": [
            {"ID": 1, "Name": "g1", "Type": 1, "IP": "0.0.0.0", "Port": 10000, "AdminPort": 9100,
             "AdminIP": "localhost"},
            {"ID": 2, "Name": "g2", "Type": 1, "IP": "127.0.0.1", "Port": 10001, "AdminPort": 9101,
             "AdminIP": ""},
            {"ID": 3, "Name": "g3", "Type": 1, "IP": "127.0.0.1", "Port": 10002, "AdminPort": 9102,
             "AdminIP": 127},
            {"ID": 4, "Name": "g4", "Type": 1, "IP": "127.0.0.1", "Port": 10003, "AdminIP": "::1"},
            {"ID": 5, "Name": "g5", "Type": 1, "IP": "127.0.0.1", "Port": 10004, "AdminPort": 10000},
            {"ID": 6, "Name": "g6", "Type": 1, "IP": "127.0.0.1", "Port": 10005, "AdminPort": 10005,
             "AdminIP": "127.0.0.9"}
        ]}"#,
        None,
    );
    assert_eq!(
        p,
        [
            r#"conf/dinx.json: group "gate", node ID 1 ("g1"): AdminIP "localhost" is not an IP address (hostnames are not supported; write an address such as 127.0.0.1 or ::1)"#,
            r#"conf/dinx.json: group "gate", node ID 2 ("g2"): empty AdminIP"#,
            r#"conf/dinx.json: group "gate", node ID 3 ("g3"): "AdminIP": expected a string, found number 127"#,
            r#"conf/dinx.json: group "gate", node ID 4 ("g4"): AdminIP without AdminPort: add the admin port"#,
            // 127.0.0.1:10000 is inside g1's 0.0.0.0:10000.
            r#"conf/dinx.json: group "gate", node ID 5 ("g5"): AdminPort: address 127.0.0.1:10000 is also used by group "gate", node ID 1 ("g1"), on 0.0.0.0:10000"#,
        ],
        "g6's AdminPort equals its Port on another address: fine"
    );
}

#[test]
fn nodes_on_different_hosts_share_an_admin_port_on_loopback() {
    // Every host has its own 127.0.0.1: the usual AdminPort 9100 on every
    // host is fine.
    let hosts = r#"{"gate": [
        {"ID": 1, "Name": "g1", "Type": 1, "IP": "10.0.0.5", "Port": 10000, "AdminPort": 9100},
        {"ID": 2, "Name": "g2", "Type": 1, "IP": "10.0.0.6", "Port": 10000, "AdminPort": 9100}
    ]}"#;
    let config = ClusterConfig::from_strs("conf", hosts, ROUTE, None);
    assert!(config.is_ok(), "{:?}", config.err());
    // One host (the same IP, or loopback IPs): one 127.0.0.1:9100.
    for (ip1, ip2) in [("10.0.0.5", "10.0.0.5"), ("127.0.0.2", "127.0.0.3")] {
        let p = problems(
            &format!(
                r#"{{"gate": [
                {{"ID": 1, "Name": "g1", "Type": 1, "IP": "{ip1}", "Port": 10000, "AdminPort": 9100}},
                {{"ID": 2, "Name": "g2", "Type": 1, "IP": "{ip2}", "Port": 10001, "AdminPort": 9100}}
            ]}}"#
            ),
            None,
        );
        assert_eq!(
            p,
            [
                r#"conf/dinx.json: group "gate", node ID 2 ("g2"): AdminPort: address 127.0.0.1:9100 is also used by group "gate", node ID 1 ("g1") (AdminPort)"#
            ]
        );
    }
}

#[test]
fn bad_admin_token_settings_are_named() {
    let d = dinx("127.0.0.1", 10000, 9100, "");
    let key = |settings: &str| problems(&d, Some(settings));
    let file = "conf/settings.json";
    assert_eq!(
        key(r#"{"admin_token": "a", "admin_token_env": "CARGO_PKG_NAME"}"#),
        [format!(
            "{file}: admin_token: set either admin_token or admin_token_env, not both"
        )]
    );
    assert_eq!(
        key(r#"{"admin_token": ""}"#),
        [format!(
            "{file}: admin_token: empty: write a token, or remove the key to leave the admin \
             endpoint open"
        )]
    );
    assert_eq!(
        key(r#"{"admin_token": "two words"}"#),
        [format!(
            "{file}: admin_token: a token of visible ASCII characters without spaces is needed \
             (it is sent as `Authorization: Bearer <token>`)"
        )]
    );
    assert_eq!(
        key(r#"{"admin_token_env": "ZINX_ADMIN_TEST_NEVER_SET_7F3A"}"#),
        [format!(
            "{file}: admin_token_env: environment variable ZINX_ADMIN_TEST_NEVER_SET_7F3A \
             (admin_token_env) is not set, or not UTF-8"
        )]
    );
}

// ---------------------------------------------------------------- who may use it

#[tokio::test]
async fn the_token_guards_everything_but_health_and_readiness() {
    let p = free_ports(2).expect("free ports");
    let token = "t0ken-for-the-admin-tests";
    let running = start(
        &dinx("127.0.0.1", p[0], p[1], ""),
        &format!(r#", "admin_token": "{token}""#),
    )
    .await;
    let addr = SocketAddr::new(v4(127, 0, 0, 1), p[1]);
    let bearer = format!("Authorization: Bearer {token}\r\n");

    for path in ["/metrics", "/nope", "/drain"] {
        let a = get(addr, path, "").await;
        assert_eq!(a.status, 401, "{path}: {}", a.head);
        assert!(
            a.head
                .contains("WWW-Authenticate: Bearer realm=\"zinx-cluster admin\"")
                && !a.head.contains("invalid_token"),
            "{}",
            a.head
        );
        let a = get(addr, path, "Authorization: Bearer not-the-token\r\n").await;
        assert_eq!(a.status, 401, "{path}");
        assert!(a.head.contains("error=\"invalid_token\""), "{}", a.head);
    }
    let a = get(addr, "/metrics", &bearer).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains(r#"node="gate-1""#), "{}", a.body);
    assert_eq!(get(addr, "/nope", &bearer).await.status, 404);
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get(addr, path, "").await.status, 200, "{path}");
    }

    // POST /drain: behind the token; the node cannot drain yet.
    let post = |headers: &str| format!("POST /drain HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
    assert_eq!(http_from(None, addr, &post("")).await.status, 401);
    let a = http_from(None, addr, &post(&bearer)).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (501, "this node does not support draining\n")
    );
    let a = get(addr, "/drain", &bearer).await;
    assert_eq!(a.status, 405);
    assert!(a.head.contains("Allow: POST"), "{}", a.head);
    running.shutdown().await;
}

#[tokio::test]
async fn the_token_can_come_from_the_environment() {
    // Cargo sets CARGO_PKG_NAME for the tests it runs: a variable this
    // test can read without setting one.
    let Ok(token) = std::env::var("CARGO_PKG_NAME") else {
        eprintln!("SKIPPED: CARGO_PKG_NAME is not set (run this test through cargo)");
        assert!(
            std::env::var_os("ZINX_REQUIRE_CARGO_ENV").is_none(),
            "ZINX_REQUIRE_CARGO_ENV is set"
        );
        return;
    };
    let p = free_ports(2).expect("free ports");
    let running = start(
        &dinx("127.0.0.1", p[0], p[1], ""),
        r#", "admin_token_env": "CARGO_PKG_NAME""#,
    )
    .await;
    let addr = SocketAddr::new(v4(127, 0, 0, 1), p[1]);
    assert_eq!(get(addr, "/metrics", "").await.status, 401);
    let bearer = format!("Authorization: Bearer {token}\r\n");
    assert_eq!(get(addr, "/metrics", &bearer).await.status, 200);
    running.shutdown().await;
}

// ------------------------------------------------------- nobody can starve it

#[tokio::test]
async fn malformed_heads_get_400_and_the_endpoint_keeps_serving() {
    let p = free_ports(2).expect("free ports");
    let running = start(&dinx("127.0.0.1", p[0], p[1], ""), "").await;
    let addr = SocketAddr::new(v4(127, 0, 0, 1), p[1]);
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(9000));
    for request in [
        "garbage\r\n\r\n",
        "GET /healthz HTTP/2.0\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n",
        huge.as_str(),
    ] {
        let a = http_from(None, addr, request).await;
        assert_eq!(a.status, 400, "{request:.40?}: {}", a.head);
    }
    assert_eq!(get(addr, "/healthz", "").await.status, 200);
    running.shutdown().await;
}

/// Opens `n` connections from `source` that send nothing.
async fn hold(source: Option<IpAddr>, addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(connect_from(source, addr).await.expect("connects"));
    }
    held
}

/// Whether every one of `held` is still open (no close or reset seen).
fn all_open(held: &[TcpStream]) -> bool {
    held.iter().all(|s| {
        let mut byte = [0u8; 1];
        matches!(s.try_read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock)
    })
}

#[tokio::test]
async fn one_address_holding_its_share_gets_probes_answered_and_the_rest_503() {
    let p = free_ports(2).expect("free ports");
    let running = start(&dinx("127.0.0.1", p[0], p[1], ""), "").await;
    let addr = SocketAddr::new(v4(127, 0, 0, 1), p[1]);
    let me = Some(v4(127, 0, 0, 1));
    // A round must end before the held connections' 1 s for a head runs
    // out; on a stalled machine it is tried again (3 rounds at most).
    let mut rounds = 0;
    let held = loop {
        rounds += 1;
        let held = hold(me, addr, PER_ADDRESS).await;
        let busy = http_from(me, addr, "GET /metrics HTTP/1.1\r\n\r\n").await;
        let probe = http_from(me, addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
        let other = http_from(
            Some(v4(127, 0, 0, 2)),
            addr,
            "GET /metrics HTTP/1.1\r\n\r\n",
        )
        .await;
        if !all_open(&held) {
            assert!(rounds < 3, "the held connections kept timing out first");
            continue;
        }
        assert_eq!(busy.status, 503, "{}", busy.head);
        assert!(busy.head.contains("Retry-After: 1"), "{}", busy.head);
        assert_eq!((probe.status, probe.body.as_str()), (200, "ok\n"));
        assert_eq!(other.status, 200, "another address is served");
        break held;
    };
    // A connection that sends no head is reset after about a second.
    let started = Instant::now();
    while !held.iter().all(|s| {
        let mut byte = [0u8; 1];
        !matches!(s.try_read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock)
    }) {
        assert!(
            started.elapsed() < T,
            "silent connections were never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Their slots are back: this address is served again.
    assert_eq!(get(addr, "/metrics", "").await.status, 200);
    running.shutdown().await;
}

/// Raises this process's soft `RLIMIT_NOFILE` to at least `wanted` (up to
/// the hard limit); the limit in force.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
fn raise_nofile(wanted: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    let (soft, hard) = (lim.rlim_cur as u64, lim.rlim_max as u64);
    if soft >= wanted {
        return soft;
    }
    lim.rlim_cur = wanted.min(hard) as libc::rlim_t;
    // SAFETY: `lim` is a valid rlimit; setrlimit only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return soft;
    }
    wanted.min(hard)
}

/// One slowloris: holds a connection that never completes a request head
/// (sending nothing, or `drip` a byte every 100 ms), reconnecting as soon
/// as the server closes it, until `stop`.
async fn slowloris(addr: SocketAddr, drip: bool, open: Arc<AtomicUsize>, stop: CancellationToken) {
    const HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut counted = false;
    while !stop.is_cancelled() {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if !counted {
            open.fetch_add(1, Ordering::Relaxed);
            counted = true;
        }
        let mut sent = 0;
        let mut sink = [0u8; 256];
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = s.read(&mut sink) => match r {
                    Ok(n) if n > 0 => {}
                    _ => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(100)), if drip => {
                    let byte = HEAD.get(sent).copied().unwrap_or(b'a');
                    if s.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_answered_while_1000_slowloris_connections_hold_the_port() {
    const ATTACKERS: usize = 1000;
    // Each attacker's socket and the server's end of it live in this
    // process.
    let limit = raise_nofile(2 * ATTACKERS as u64 + 512);
    let attackers = if limit >= 2 * ATTACKERS as u64 + 512 {
        ATTACKERS
    } else {
        let n = (limit.saturating_sub(512) / 2) as usize;
        eprintln!(
            "WARNING: RLIMIT_NOFILE is {limit} and cannot be raised: {n} slowloris connections, \
             not {ATTACKERS}"
        );
        n
    };
    let p = free_ports(2).expect("free ports");
    let running = start(&dinx("127.0.0.1", p[0], p[1], ""), "").await;
    let addr = SocketAddr::new(v4(127, 0, 0, 1), p[1]);
    let stop = CancellationToken::new();
    let open = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..attackers)
        .map(|i| tokio::spawn(slowloris(addr, i % 2 == 1, open.clone(), stop.clone())))
        .collect();
    let started = Instant::now();
    while open.load(Ordering::Relaxed) < attackers {
        assert!(started.elapsed() < 4 * T, "the attackers could not connect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Past the 1 s head timeout: the attack in its steady state.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The issue's target is 100 ms (measured by `bench slowloris`); this
    // test bounds it at 1 s (a Kubernetes probe's default timeout), far
    // from the minutes of the former design, on a loaded debug build.
    let mut took = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let a = get(addr, "/healthz", "").await;
        took.push(t.elapsed());
        assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The rest of the endpoint is turned away at once, not left hanging.
    let t = Instant::now();
    let busy = get(addr, "/metrics", "").await;
    let busy_took = t.elapsed();
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    took.sort();
    eprintln!(
        "/healthz under {attackers} slowloris connections: p50 {:?}, max {:?}; /metrics {} in {busy_took:?}",
        took[took.len() / 2],
        took[took.len() - 1],
        busy.status
    );
    assert!(
        took[took.len() - 1] <= Duration::from_secs(1),
        "/healthz took {took:?}"
    );
    assert_eq!(busy.status, 503, "{}", busy.head);
    assert!(busy_took <= Duration::from_secs(1), "{busy_took:?}");
    running.shutdown().await;
}
