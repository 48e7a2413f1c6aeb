//! The configuration the suite writes for the demo. (Its child processes
//! are `zinx_test_support::process::Server`s.)

use std::path::Path;

use anyhow::{Context, Result, bail};
use zinx_test_support::conf::{DEMO_ROUTES, demo_dinx, write_conf as write_files};

/// The demo's settings.json for the suite: no idle timeout (the idle
/// scenario holds silent sessions), room for many sessions.
pub(super) const SETTINGS_JSON: &str =
    r#"{"idle_timeout_ms":0,"max_sessions":200000,"secret":"bench-suite-secret"}"#;

/// Writes a demo configuration: gate-1 and im-1, im-2 on `ports`, the
/// demo's own `conf/route.json`, and [`SETTINGS_JSON`]. Returns the
/// `dinx.json` text.
pub(super) fn write_conf(dir: &Path, ports: &[u16]) -> Result<String> {
    let &[gate, im1, im2] = ports else {
        bail!("write_conf needs three ports");
    };
    let dinx = demo_dinx([gate, im1, im2]);
    write_files(dir, &dinx, DEMO_ROUTES, SETTINGS_JSON)
        .with_context(|| format!("writing the configuration in {}", dir.display()))?;
    Ok(dinx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_conf_matches_the_demo_contract() {
        let dir = tempfile::tempdir().unwrap();
        write_conf(dir.path(), &[4001, 4002, 4003]).unwrap();
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
        assert!(write_conf(dir.path(), &[1, 2]).is_err());
    }
}
