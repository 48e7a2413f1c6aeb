//! The configuration the suite writes for the demo. (Its child processes
//! are `zinx_test_support::process::Server`s.)

use std::path::Path;

use anyhow::{Context, Result, bail};
use zinx_test_support::conf::{DEMO_ROUTES, demo_dinx, write_conf as write_files};

/// The demo's settings.json for the suite: no idle timeout (the idle
/// scenario holds silent sessions), room for many sessions.
pub(super) const SETTINGS_JSON: &str =
    r#"{"idle_timeout_ms":0,"max_sessions":200000,"secret":"bench-suite-secret"}"#;

/// [`SETTINGS_JSON`] for a demo whose nodes link over TCP though they run
/// in one process, as nodes of separate processes do.
pub(super) const SETTINGS_TCP_LINKS_JSON: &str = r#"{"idle_timeout_ms":0,"max_sessions":200000,"secret":"bench-suite-secret","local_links":false}"#;

/// [`SETTINGS_JSON`] for a demo whose gate speaks TLS on its `Port` and
/// WSS on its `WsPort`, with the certificate [`write_tls_conf`] writes
/// beside it (relative paths: relative to the configuration directory).
pub(super) const SETTINGS_TLS_JSON: &str = r#"{"idle_timeout_ms":0,"max_sessions":200000,"secret":"bench-suite-secret","tls_cert":"gate.pem","tls_key":"gate.key"}"#;

/// Writes a demo configuration: gate-1 and im-1, im-2 on `ports`, gate-1
/// also on WebSocket port `ws_port` (path `/`) if given, the demo's own
/// `conf/route.json`, and [`SETTINGS_JSON`]. Returns the `dinx.json` text.
pub(super) fn write_conf(dir: &Path, ports: &[u16], ws_port: Option<u16>) -> Result<String> {
    write_conf_with(dir, ports, ws_port, SETTINGS_JSON)
}

/// [`write_conf`] with `settings` as settings.json.
pub(super) fn write_conf_with(
    dir: &Path,
    ports: &[u16],
    ws_port: Option<u16>,
    settings: &str,
) -> Result<String> {
    let &[gate, im1, im2] = ports else {
        bail!("write_conf needs three ports");
    };
    let mut dinx = demo_dinx([gate, im1, im2]);
    if let Some(ws_port) = ws_port {
        dinx = with_ws_port(&dinx, ws_port)?;
    }
    write_files(dir, &dinx, DEMO_ROUTES, settings)
        .with_context(|| format!("writing the configuration in {}", dir.display()))?;
    Ok(dinx)
}

/// [`write_conf`] for a TLS gate: [`SETTINGS_TLS_JSON`], and a self-signed
/// certificate for `localhost` and `127.0.0.1` (as `bench cert` makes)
/// written into `dir`. Returns the `dinx.json` text and the certificate
/// files (`cert` is what clients trust).
pub(super) fn write_tls_conf(
    dir: &Path,
    ports: &[u16],
    ws_port: Option<u16>,
) -> Result<(String, crate::cert::CertFiles)> {
    let dinx = write_conf_with(dir, ports, ws_port, SETTINGS_TLS_JSON)?;
    let files = crate::cert::write_self_signed(dir)?;
    Ok((dinx, files))
}

/// `dinx` with its first gate node also on WebSocket port `ws_port`, path
/// `/`.
fn with_ws_port(dinx: &str, ws_port: u16) -> Result<String> {
    let mut v: serde_json::Value =
        serde_json::from_str(dinx).context("the demo's dinx.json is not JSON")?;
    let Some(gate) = v
        .get_mut("gate")
        .and_then(|g| g.get_mut(0))
        .and_then(serde_json::Value::as_object_mut)
    else {
        bail!("the demo's dinx.json has no gate node to give a WsPort");
    };
    gate.insert("WsPort".into(), ws_port.into());
    gate.insert("WsPath".into(), "/".into());
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_conf_matches_the_demo_contract() {
        let dir = tempfile::tempdir().unwrap();
        write_conf(dir.path(), &[4001, 4002, 4003], None).unwrap();
        let read = |name: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(name)).unwrap()).unwrap()
        };
        let dinx = read("dinx.json");
        assert_eq!(dinx["gate"][0]["ID"], 1);
        assert_eq!(dinx["gate"][0]["Type"], 1);
        assert_eq!(dinx["gate"][0]["Port"], 4001);
        assert_eq!(dinx["im"][1]["Name"], "im-2");
        assert_eq!(dinx["im"][1]["Port"], 4003);
        let route = read("route.json");
        assert_eq!(route["gate"][2]["MsgID"], 5);
        assert_eq!(route["im"][2]["MsgID"], 6);
        let settings = read("settings.json");
        assert_eq!(settings["idle_timeout_ms"], 0);
        assert_eq!(settings["max_sessions"], 200000);
        assert!(dinx["gate"][0].get("WsPort").is_none());
        assert!(write_conf(dir.path(), &[1, 2], None).is_err());
    }

    #[test]
    fn a_tls_conf_names_the_certificate_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (text, files) = write_tls_conf(dir.path(), &[4001, 4002, 4003], Some(4004)).unwrap();
        assert!(text.contains("4004"), "{text}");
        let config = zinx_cluster::config::ClusterConfig::load(dir.path()).unwrap();
        let named = config.settings.tls_files(dir.path()).unwrap();
        assert_eq!(named, (files.cert.clone(), files.key.clone()));
        assert!(files.cert.is_file() && files.key.is_file());
        assert!(zinx_cluster::tls::load_server_config(&files.cert, &files.key).is_ok());
    }

    #[test]
    fn a_ws_port_goes_to_the_gate_only() {
        let dir = tempfile::tempdir().unwrap();
        let text = write_conf(dir.path(), &[4001, 4002, 4003], Some(4004)).unwrap();
        let dinx: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("dinx.json")).unwrap())
                .unwrap();
        assert_eq!(text, dinx.to_string());
        assert_eq!(dinx["gate"][0]["WsPort"], 4004);
        assert_eq!(dinx["gate"][0]["WsPath"], "/");
        assert_eq!(dinx["gate"][0]["Port"], 4001);
        assert!(dinx["im"][0].get("WsPort").is_none());
        assert!(dinx["im"][1].get("WsPort").is_none());
        assert!(with_ws_port(r#"{"im":[]}"#, 1).is_err());
        assert!(with_ws_port("not json", 1).is_err());
    }
}
