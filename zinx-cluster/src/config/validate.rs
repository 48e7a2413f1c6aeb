//! Parsing and checking of the three files behind
//! [`ClusterConfig::load`](super::ClusterConfig::load).
//!
//! Everything is checked before anything is refused: each file is parsed as
//! far as it goes, each entry is checked on its own, then against the other
//! entries and files; every problem becomes one [`ConfigError`]. Checks that
//! need another file (a route's group in `dinx.json`, a route on the error
//! msg_id of `settings.json`) are skipped when that file could not be read,
//! so one mistake is reported once, not once per consequence.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::path::Path;

use serde_json::error::Category;
use serde_json::{Map, Value};

mod dinx;
mod routes;

use dinx::{Dinx, RawNode, parse_dinx};
use routes::{Known, RawRoute, parse_routes};

use super::jsonc;
use super::{ClusterConfig, ConfigError, ConfigErrors, DINX_FILE, ROUTE_FILE, SETTINGS_FILE};
use crate::settings::Settings;

/// Smallest accepted `directory_ttl_ms`: a live gate's bindings must not
/// expire between two of its refreshes.
pub(super) const MIN_DIRECTORY_TTL_MS: u64 = 3_000;

/// The three files' contents, or why one could not be read (already a
/// problem to report). `settings` is `Ok(None)` when the file is absent.
pub(super) struct Inputs<'a> {
    pub(super) dinx: Result<&'a str, ConfigError>,
    pub(super) route: Result<&'a str, ConfigError>,
    pub(super) settings: Result<Option<&'a str>, ConfigError>,
}

/// Parses and checks everything; the configuration, or every problem found.
pub(super) fn check(dir: &Path, inputs: Inputs<'_>) -> Result<ClusterConfig, ConfigErrors> {
    let dinx_file = dir.join(DINX_FILE).display().to_string();
    let route_file = dir.join(ROUTE_FILE).display().to_string();
    let settings_file = dir.join(SETTINGS_FILE).display().to_string();
    let mut errors = Vec::new();

    // Settings first: route checks depend on them. Their problems are
    // reported last, after the two main files.
    let mut settings_errors = Vec::new();
    let settings = match inputs.settings {
        Ok(None) => Some(Settings::default()),
        Ok(Some(text)) => parse_settings(&settings_file, text, &mut settings_errors),
        Err(e) => {
            settings_errors.push(e);
            None
        }
    };

    let dinx = match inputs.dinx {
        Ok(text) => parse_dinx(&dinx_file, text, &mut errors),
        Err(e) => {
            errors.push(e);
            None
        }
    };

    let routes = match inputs.route {
        Ok(text) => {
            let known = Known {
                dinx_file: &dinx_file,
                dinx: dinx.as_ref(),
                settings: settings.as_ref(),
            };
            parse_routes(&route_file, text, &known, &mut errors)
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };

    if let Some(settings) = &settings {
        check_settings(
            &settings_file,
            settings,
            &dinx_file,
            dinx.as_ref(),
            &mut settings_errors,
        );
    }
    errors.append(&mut settings_errors);

    match (dinx, routes, settings) {
        (Some(dinx), Some(routes), Some(settings)) if errors.is_empty() => Ok(ClusterConfig {
            dir: dir.to_path_buf(),
            nodes: dinx.nodes.into_iter().filter_map(RawNode::build).collect(),
            routes: routes.into_iter().filter_map(RawRoute::build).collect(),
            settings,
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

fn error(file: &str, entry: Option<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        entry,
        message: message.into(),
    }
}

/// Parses `text` as JSON (with `//` comments); a syntax error is reported
/// with its line and column.
fn parse_json(file: &str, text: &str, errors: &mut Vec<ConfigError>) -> Option<Value> {
    let text = jsonc::strip_line_comments(text);
    match serde_json::from_str(&text) {
        Ok(value) => Some(value),
        Err(e) => {
            errors.push(json_error(file, &text, &e));
            None
        }
    }
}

/// A serde_json error as `file: line L, column C: message`, the column
/// counted in characters like an editor does.
fn json_error(file: &str, text: &str, e: &serde_json::Error) -> ConfigError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    let message = match e.classify() {
        Category::Syntax | Category::Eof => format!("JSON syntax error: {message}"),
        Category::Data | Category::Io => message.to_string(),
    };
    // serde_json says column 0 for the end of a file that ends with a line
    // break: name the line alone then.
    let entry = match (e.line(), e.column()) {
        (0, _) => None,
        (line, 0) => Some(format!("line {line}")),
        (line, column) => Some(format!(
            "line {line}, column {}",
            jsonc::char_column(text, line, column)
        )),
    };
    error(file, entry, message)
}

fn parse_settings(file: &str, text: &str, errors: &mut Vec<ConfigError>) -> Option<Settings> {
    let text = jsonc::strip_line_comments(text);
    match serde_json::from_str(&text) {
        Ok(settings) => Some(settings),
        Err(e) => {
            errors.push(json_error(file, &text, &e));
            None
        }
    }
}

/// A short description of a JSON value for "expected X, found Y".
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            let head: String = s.chars().take(40).collect();
            format!("string {head:?}...")
        }
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// The value of `key` in `obj`, matched ASCII-case-insensitively like Go's
/// `encoding/json`; of several matching keys the last one wins, as in Go.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a Value, String> {
    obj.iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
        .ok_or_else(|| format!("missing key \"{key}\""))
}

/// An integer field (Go's `int`: a JSON number without fraction or
/// exponent), unchecked for range.
fn int_field(obj: &Map<String, Value>, key: &str) -> Result<i128, String> {
    let v = field(obj, key)?;
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
        .ok_or_else(|| format!("\"{key}\": expected an integer, found {}", describe(v)))
}

fn string_field(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    match field(obj, key)? {
        Value::String(s) => Ok(s.clone()),
        v => Err(format!(
            "\"{key}\": expected a string, found {}",
            describe(v)
        )),
    }
}

/// An optional boolean field: `false` when absent.
fn optional_bool_field(obj: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match field(obj, key) {
        Err(_) => Ok(false),
        Ok(Value::Bool(b)) => Ok(*b),
        Ok(v) => Err(format!(
            "\"{key}\": expected true or false, found {}",
            describe(v)
        )),
    }
}

/// Stores the `Ok` value in `slot`, or the message in `problems`.
fn take<T>(result: Result<T, String>, slot: &mut Option<T>, problems: &mut Vec<String>) {
    match result {
        Ok(v) => *slot = Some(v),
        Err(message) => problems.push(message),
    }
}

/// Like [`take`] for an optional value: `Ok(None)` leaves `slot` alone.
fn take_optional<T>(
    result: Result<Option<T>, String>,
    slot: &mut Option<T>,
    problems: &mut Vec<String>,
) {
    match result {
        Ok(v) => *slot = v,
        Err(message) => problems.push(message),
    }
}

/// `" (\"name\")"` for labels, or nothing when the name is unknown or empty.
fn name_suffix(name: Option<&str>) -> String {
    match name {
        Some(n) if !n.trim().is_empty() => format!(" ({n:?})"),
        _ => String::new(),
    }
}

/// One entry of `dinx.json`, with whatever of it is valid.
/// Values that parse but would break the runtime.
fn check_settings(
    file: &str,
    s: &Settings,
    dinx_file: &str,
    dinx: Option<&Dinx>,
    errors: &mut Vec<ConfigError>,
) {
    let mut problem = |key: &str, message: String| {
        errors.push(error(file, Some(key.to_string()), message));
    };
    let at_least_one = [
        (
            "max_frame_len",
            s.max_frame_len == 0,
            "every frame with data would be refused",
        ),
        (
            "session_queue",
            s.session_queue == 0,
            "no frame could be queued towards a client",
        ),
        (
            "session_queue_bytes",
            s.session_queue_bytes == 0,
            "no byte could be queued towards a client",
        ),
        (
            "link_queue",
            s.link_queue == 0,
            "no message could be queued on a link",
        ),
        (
            "node_session_queue",
            s.node_session_queue == 0,
            "no message could be queued for a session",
        ),
        (
            "heartbeat_interval_ms",
            s.heartbeat_interval_ms == 0,
            "links would send heartbeats without pause",
        ),
        (
            "reconnect_min_ms",
            s.reconnect_min_ms == 0,
            "a dead peer would be redialled without pause",
        ),
        (
            "trace_every",
            s.trace_every == 0,
            "write 1 to trace every message (tracing is off without otlp_endpoint)",
        ),
    ];
    for (key, is_zero, why) in at_least_one {
        if is_zero {
            problem(key, format!("0 is not allowed: {why}"));
        }
    }
    if s.heartbeat_interval_ms > 0 && s.heartbeat_timeout_ms <= s.heartbeat_interval_ms {
        problem(
            "heartbeat_timeout_ms",
            format!(
                "{} must be greater than heartbeat_interval_ms ({}), or a quiet link is declared \
                 dead before its heartbeat is due",
                s.heartbeat_timeout_ms, s.heartbeat_interval_ms
            ),
        );
    }
    if s.reconnect_min_ms > s.reconnect_max_ms {
        problem(
            "reconnect_min_ms",
            format!(
                "{} is greater than reconnect_max_ms ({})",
                s.reconnect_min_ms, s.reconnect_max_ms
            ),
        );
    }
    if s.directory_ttl_ms < MIN_DIRECTORY_TTL_MS {
        problem(
            "directory_ttl_ms",
            format!(
                "{} is below the minimum of {MIN_DIRECTORY_TTL_MS}: a live gate's bindings would \
                 expire between its refreshes",
                s.directory_ttl_ms
            ),
        );
    }
    if let Some(url) = &s.otlp_endpoint {
        if let Err(e) = crate::trace::check_endpoint(url) {
            problem("otlp_endpoint", format!("{url:?}: {}", e.why));
        }
    }
    match (&s.tls_cert, &s.tls_key) {
        (Some(_), None) => problem(
            "tls_cert",
            "tls_cert without tls_key: TLS needs both PEM files".to_string(),
        ),
        (None, Some(_)) => problem(
            "tls_key",
            "tls_key without tls_cert: TLS needs both PEM files".to_string(),
        ),
        _ => {}
    }
    check_admin_token(s, &mut problem);
    if let Some(dinx) = dinx {
        for group in s.balance.keys() {
            if !dinx.has_group(group) {
                problem("balance", format!("group {group:?} is not in {dinx_file}"));
            }
        }
    }
}

/// `admin_token` / `admin_token_env`: one of them, a token an
/// `Authorization` header can carry, and the variable set.
fn check_admin_token(s: &Settings, problem: &mut impl FnMut(&str, String)) {
    // Visible ASCII, no spaces: what a bearer token is sent as.
    let bad_token = |t: &str| t.bytes().any(|b| !b.is_ascii_graphic());
    match (&s.admin_token, &s.admin_token_env) {
        (Some(_), Some(_)) => problem(
            "admin_token",
            "set either admin_token or admin_token_env, not both".to_string(),
        ),
        (Some(t), None) if t.is_empty() => problem(
            "admin_token",
            "empty: write a token, or remove the key to leave the admin endpoint open".to_string(),
        ),
        (Some(t), None) if bad_token(t) => problem(
            "admin_token",
            "a token of visible ASCII characters without spaces is needed (it is sent as \
             `Authorization: Bearer <token>`)"
                .to_string(),
        ),
        (None, Some(name)) if name.trim().is_empty() => problem(
            "admin_token_env",
            "empty: name the environment variable that holds the admin token".to_string(),
        ),
        (None, Some(name)) => match s.effective_admin_token() {
            Err(why) => problem("admin_token_env", why),
            Ok(Some(t)) if bad_token(&t) => problem(
                "admin_token_env",
                format!(
                    "environment variable {name}: a token of visible ASCII characters without \
                     spaces is needed (it is sent as `Authorization: Bearer <token>`)"
                ),
            ),
            Ok(_) => {}
        },
        _ => {}
    }
}

/// Records that `key` is first seen at index `at`; when it was seen before,
/// returns that earlier index instead (for "duplicate ... (also ...)").
fn first_seen<K: Eq + Hash, V: Copy>(seen: &mut HashMap<K, V>, key: K, at: V) -> Option<V> {
    match seen.entry(key) {
        Entry::Occupied(first) => Some(*first.get()),
        Entry::Vacant(slot) => {
            slot.insert(at);
            None
        }
    }
}
