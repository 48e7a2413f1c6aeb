//! `settings.json`: its values, its mistakes, the files it names; and the
//! environment variables that override it (`ZINX_CLUSTER_SECRET`,
//! `ZINX_REDIS_URL`), read in a child process: the environment is the
//! process's, shared by every test running beside.

use std::path::Path;

use zinx_cluster::config::{Balance, ClusterConfig, ErrorReply, REDIS_URL_ENV, SECRET_ENV};

use crate::{DINX, ROUTE, assert_only, load_ok, problems};

#[test]
fn settings_are_read_when_present() {
    let config = load_ok(
        DINX,
        ROUTE,
        Some(
            r#"{
              // larger frames for the demo
              "max_frame_len": 1048576,
              "balance": {"im": "round_robin"},
              "error_reply": "none",
              "error_msg_id": 3
            }"#,
        ),
    );
    assert_eq!(config.settings.max_frame_len, 1_048_576);
    assert_eq!(config.settings.balance_of("im"), Balance::RoundRobin);
    assert_eq!(config.settings.error_reply, ErrorReply::None);
    // Unlisted keys keep their defaults.
    assert_eq!(config.settings.session_queue, 1024);
    assert_eq!(config.settings.session_queue_bytes, 1 << 20);
}

#[test]
fn settings_file_is_optional_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dinx.json"), DINX).unwrap();
    std::fs::write(dir.path().join("route.json"), ROUTE).unwrap();
    let config = ClusterConfig::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.settings, zinx_cluster::Settings::default());

    std::fs::write(
        dir.path().join("settings.json"),
        r#"{"idle_timeout_ms": 0}"#,
    )
    .unwrap();
    let config = ClusterConfig::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.settings.idle_timeout_ms, 0);
}

#[test]
fn settings_syntax_error_names_line_and_column() {
    let p = problems(DINX, ROUTE, Some("{\n  \"max_frame_len\": 10,,\n}"));
    assert_only(
        &p,
        "conf/settings.json: line 2, column 23: JSON syntax error: key must be a string",
    );
}

#[test]
fn settings_unknown_key_names_line_and_column() {
    let p = problems(DINX, ROUTE, Some("{\n  \"max_fram_len\": 10\n}"));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with(
            "conf/settings.json: line 2, column 16: unknown field `max_fram_len`, expected one of"
        ),
        "{p:#?}"
    );
}

#[test]
fn settings_wrong_type_names_line_and_column() {
    let p = problems(DINX, ROUTE, Some("{\"session_queue\": \"big\"}"));
    assert_only(
        &p,
        r#"conf/settings.json: line 1, column 23: invalid type: string "big", expected usize"#,
    );
    let p = problems(DINX, ROUTE, Some("{\"balance\": {\"im\": \"fastest\"}}"));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("conf/settings.json: line 1, column 28: unknown variant `fastest`"),
        "{p:#?}"
    );
}

#[test]
fn settings_values_that_would_break_the_runtime() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"max_frame_len": 0}"#,
            "conf/settings.json: max_frame_len: 0 is not allowed: every frame with data would be refused",
        ),
        (
            r#"{"session_queue": 0}"#,
            "conf/settings.json: session_queue: 0 is not allowed: no frame could be queued towards a client",
        ),
        (
            r#"{"session_queue_bytes": 0}"#,
            "conf/settings.json: session_queue_bytes: 0 is not allowed: no byte could be queued towards a client",
        ),
        (
            r#"{"link_queue": 0}"#,
            "conf/settings.json: link_queue: 0 is not allowed: no message could be queued on a link",
        ),
        (
            r#"{"node_session_queue": 0}"#,
            "conf/settings.json: node_session_queue: 0 is not allowed: no message could be queued for a session",
        ),
        (
            r#"{"heartbeat_interval_ms": 0}"#,
            "conf/settings.json: heartbeat_interval_ms: 0 is not allowed: links would send heartbeats without pause",
        ),
        (
            r#"{"heartbeat_interval_ms": 1000, "heartbeat_timeout_ms": 1000}"#,
            "conf/settings.json: heartbeat_timeout_ms: 1000 must be greater than heartbeat_interval_ms (1000), or a quiet link is declared dead before its heartbeat is due",
        ),
        (
            r#"{"heartbeat_timeout_ms": 100}"#,
            "conf/settings.json: heartbeat_timeout_ms: 100 must be greater than heartbeat_interval_ms (500), or a quiet link is declared dead before its heartbeat is due",
        ),
        (
            r#"{"reconnect_min_ms": 0}"#,
            "conf/settings.json: reconnect_min_ms: 0 is not allowed: a dead peer would be redialled without pause",
        ),
        (
            r#"{"reconnect_min_ms": 3000}"#,
            "conf/settings.json: reconnect_min_ms: 3000 is greater than reconnect_max_ms (2000)",
        ),
        (
            r#"{"balance": {"im": "random", "chat": "random"}}"#,
            r#"conf/settings.json: balance: group "chat" is not in conf/dinx.json"#,
        ),
        (
            r#"{"directory_ttl_ms": 2999}"#,
            "conf/settings.json: directory_ttl_ms: 2999 is below the minimum of 3000: a live gate's bindings would expire between its refreshes",
        ),
    ];
    for (settings, expected) in cases {
        let p = problems(DINX, ROUTE, Some(settings));
        assert_only(&p, expected);
    }
}

#[test]
fn settings_at_the_limits_are_accepted() {
    let config = load_ok(
        DINX,
        ROUTE,
        Some(
            r#"{"heartbeat_interval_ms": 1, "heartbeat_timeout_ms": 2,
                "reconnect_min_ms": 5, "reconnect_max_ms": 5, "directory_ttl_ms": 3000}"#,
        ),
    );
    assert_eq!(config.settings.directory_ttl_ms, 3000);
}

#[test]
fn a_broken_settings_file_skips_checks_that_need_it() {
    // The route on 0 may or may not clash with error_msg_id: settings.json
    // is unreadable, so only its own problem is reported.
    let p = problems(
        DINX,
        r#"{"gate": [{"MsgID": 0, "Name": "zero"}]}"#,
        Some("{"),
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].starts_with("conf/settings.json: line 1, column 1: JSON syntax error"));
}

#[test]
fn tls_needs_both_files_and_resolves_them_against_the_conf_dir() {
    let p = problems(DINX, ROUTE, Some(r#"{"tls_cert": "gate.pem"}"#));
    assert_only(
        &p,
        "conf/settings.json: tls_cert: tls_cert without tls_key: TLS needs both PEM files",
    );
    let config = load_ok(
        DINX,
        ROUTE,
        Some(r#"{"tls_cert": "certs/gate.pem", "tls_key": "/etc/gate.key"}"#),
    );
    let (cert, key) = config.settings.tls_files(Path::new("conf")).unwrap();
    assert_eq!(cert, Path::new("conf/certs/gate.pem"));
    assert_eq!(key, Path::new("/etc/gate.key"));
    assert!(
        load_ok(DINX, ROUTE, None)
            .settings
            .tls_files(Path::new("conf"))
            .is_none()
    );
}

#[test]
fn otlp_endpoint_must_be_plain_http() {
    let p = problems(
        DINX,
        ROUTE,
        Some(r#"{"otlp_endpoint": "https://collector:4318", "trace_every": 0}"#),
    );
    assert_eq!(
        p,
        [
            "conf/settings.json: trace_every: 0 is not allowed: write 1 to trace every message (tracing is off without otlp_endpoint)",
            r#"conf/settings.json: otlp_endpoint: "https://collector:4318": only http:// endpoints are supported"#,
        ]
    );
    let config = load_ok(
        DINX,
        ROUTE,
        Some(r#"{"otlp_endpoint": "http://127.0.0.1:4318"}"#),
    );
    assert_eq!(config.settings.trace_every, 1);
}

#[test]
fn debug_of_a_cluster_shows_neither_secret_nor_redis_password() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let mut config = ClusterConfig::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    config.settings.secret = Some("s3cret-cluster-key".into());
    config.settings.redis_url = Some("redis://user:hunter2@10.0.0.5:6379/0".into());
    let shown = format!("{:?}", zinx_cluster::Cluster::new(config));
    assert!(!shown.contains("s3cret-cluster-key"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("redis://***@10.0.0.5:6379/0"), "{shown}");
}

/// The settings a child of [`secret_and_redis_url_from_the_environment`]
/// reads, in this variable.
const CHILD_SETTINGS: &str = "ZINX_TEST_CONFIG_SETTINGS";

/// Not a test: prints what the settings in [`CHILD_SETTINGS`] resolve to
/// under this process's environment, for the test that starts it.
#[test]
#[ignore = "not a test: run in a child process by secret_and_redis_url_from_the_environment"]
fn child_effective_settings() {
    let settings = std::env::var(CHILD_SETTINGS)
        .expect("not a test: run by secret_and_redis_url_from_the_environment");
    let config = load_ok(DINX, ROUTE, Some(&settings));
    let (secret, insecure) = config.settings.effective_secret();
    let redis = config.settings.effective_redis_url();
    println!("EFFECTIVE secret={secret} insecure={insecure} redis={redis:?}");
}

/// What `settings` resolve to with `env` set (the rest of the two
/// variables unset), from a child process.
fn effective(settings: &str, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--ignored", "--exact", "settings::child_effective_settings"])
        .args(["--nocapture", "--test-threads", "1"])
        .env_remove(SECRET_ENV)
        .env_remove(REDIS_URL_ENV)
        .env(CHILD_SETTINGS, settings)
        .envs(env.iter().copied())
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the child failed:\n{stdout}");
    stdout
        .lines()
        .find_map(|l| l.split_once("EFFECTIVE ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no EFFECTIVE line in:\n{stdout}"))
        .to_string()
}

#[test]
fn secret_and_redis_url_from_the_environment() {
    let settings = r#"{"secret": "from-file", "redis_url": "redis://127.0.0.1:1/0"}"#;
    assert_eq!(
        effective(settings, &[]),
        r#"secret=from-file insecure=false redis=Some("redis://127.0.0.1:1/0")"#
    );
    let env = [
        (SECRET_ENV, "from-env"),
        (REDIS_URL_ENV, "redis://127.0.0.1:2/1"),
    ];
    assert_eq!(
        effective(settings, &env),
        r#"secret=from-env insecure=false redis=Some("redis://127.0.0.1:2/1")"#
    );
    // Set but empty: as if unset.
    assert_eq!(
        effective(settings, &[(SECRET_ENV, ""), (REDIS_URL_ENV, "")]),
        r#"secret=from-file insecure=false redis=Some("redis://127.0.0.1:1/0")"#
    );
    // Neither: the well-known default secret, said to be insecure (the
    // start warns loudly), and no Redis.
    let default = effective("{}", &[]);
    assert!(default.ends_with(" insecure=true redis=None"), "{default}");
    assert!(
        effective("{}", &[(SECRET_ENV, "from-env")]).starts_with("secret=from-env insecure=false"),
    );
}
