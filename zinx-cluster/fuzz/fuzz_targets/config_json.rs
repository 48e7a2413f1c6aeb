//! The config loader over arbitrary *JSON*: the `config` target feeds raw
//! text, which rarely gets past the JSON parser; this one builds JSON
//! values from the fuzzer's bytes, with the keys, group names and numbers
//! that the validator looks at, so the fuzzer explores validation itself.
//! Never a panic; what loads is consistent (unique node ids, a gate).
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use zinx_cluster::config::ClusterConfig;

const KEYS: &[&str] = &[
    "ID",
    "id",
    "Name",
    "name",
    "Type",
    "type",
    "IP",
    "ip",
    "Port",
    "port",
    "IsPass",
    "MsgID",
    "msgid",
    "gate",
    "im",
    "calc",
    "",
    "max_frame_len",
    "max_sessions",
    "idle_timeout_ms",
    "session_queue",
    "link_queue",
    "heartbeat_interval_ms",
    "heartbeat_timeout_ms",
    "balance",
    "default_balance",
    "error_reply",
    "error_msg_id",
    "secret",
    "redis_url",
    "directory_prefix",
];
const STRINGS: &[&str] = &[
    "127.0.0.1",
    "::1",
    "0.0.0.0",
    "localhost",
    "gate-1",
    "im-1",
    "im",
    "gate",
    "",
    "round_robin",
    "sticky",
    "random",
    "frame",
    "none",
    "redis://127.0.0.1/0",
    "x\u{0}y",
    "é",
];
const NUMBERS: &[i64] = &[
    0,
    1,
    2,
    3,
    5,
    65535,
    65536,
    99999,
    -1,
    4_294_967_295,
    4_294_967_296,
];

fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let pick = if depth == 0 {
        u.int_in_range(0..=4)?
    } else {
        u.int_in_range(0..=6)?
    };
    Ok(match pick {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(*u.choose(NUMBERS)?),
        3 => {
            if u.arbitrary()? {
                Value::from(u.arbitrary::<i64>()?)
            } else {
                serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number)
            }
        }
        4 => {
            if u.arbitrary()? {
                Value::from(*u.choose(STRINGS)?)
            } else {
                Value::from(u.arbitrary::<String>()?)
            }
        }
        5 => {
            let n = u.int_in_range(0..=5)?;
            Value::Array((0..n).map(|_| value(u, depth - 1)).collect::<Result<_>>()?)
        }
        _ => {
            let n = u.int_in_range(0..=6)?;
            let mut m = Map::new();
            for _ in 0..n {
                let k = if u.arbitrary()? {
                    u.choose(KEYS)?.to_string()
                } else {
                    u.arbitrary()?
                };
                m.insert(k, value(u, depth - 1)?);
            }
            Value::Object(m)
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let (Ok(dinx), Ok(route), Ok(with_settings)) =
        (value(&mut u, 4), value(&mut u, 4), u.arbitrary::<bool>())
    else {
        return;
    };
    let settings = if with_settings {
        value(&mut u, 3).ok().map(|v| v.to_string())
    } else {
        None
    };
    if let Ok(config) = ClusterConfig::from_strs(
        "fuzz",
        &dinx.to_string(),
        &route.to_string(),
        settings.as_deref(),
    ) {
        let mut ids: Vec<_> = config.nodes.iter().map(|n| n.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), config.nodes.len(), "duplicate node ids loaded");
        assert!(config.gates().count() > 0, "a config without a gate loaded");
    }
});
