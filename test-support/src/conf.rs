//! Configuration folders: `dinx.json`, `route.json` and `settings.json` in
//! one directory, as `demo --conf DIR` and `ClusterConfig::load` read them.

use std::io;
use std::path::Path;

use serde_json::json;

use crate::ports::free_ports;

/// The demo's own `conf/route.json`, as shipped: tests and the bench tool
/// use the file the demo ships, not a copy.
pub const DEMO_ROUTES: &str = include_str!("../../conf/route.json");

/// Fast link heartbeats so that a killed node is noticed well within a
/// test's patience; a secret so that startup does not warn.
pub const SETTINGS: &str = r#"{
  "secret": "demo-test-secret",
  "heartbeat_interval_ms": 200,
  "heartbeat_timeout_ms": 1000,
  "reconnect_min_ms": 50,
  "reconnect_max_ms": 300,
  "shutdown_grace_ms": 1000
}"#;

/// The demo's topology on 127.0.0.1: gate-1 (ID 1), im-1 (ID 2), im-2
/// (ID 3) on `ports`, in that order.
pub fn demo_dinx(ports: [u16; 3]) -> String {
    json!({
        "gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": ports[0]}],
        "im": [
            {"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": ports[1]},
            {"ID": 3, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": ports[2]}
        ]
    })
    .to_string()
}

/// [`demo_dinx`] with gate-1 also on a WebSocket port and an admin port
/// (metrics, health, the demo's chat page).
pub fn demo_dinx_web(ports: [u16; 3], ws_port: u16, admin_port: u16) -> String {
    json!({
        "gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": ports[0],
                  "WsPort": ws_port, "AdminPort": admin_port}],
        "im": [
            {"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": ports[1]},
            {"ID": 3, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": ports[2]}
        ]
    })
    .to_string()
}

/// Writes the three files into `dir` (created if missing).
pub fn write_conf(dir: &Path, dinx: &str, route: &str, settings: &str) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in [
        ("dinx.json", dinx),
        ("route.json", route),
        ("settings.json", settings),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
    }
    Ok(())
}

/// A temporary configuration directory: the demo's topology (gate-1, im-1,
/// im-2) on free loopback ports. Removed on drop.
pub struct Conf {
    dir: tempfile::TempDir,
    /// Ports of gate-1 (ID 1), im-1 (ID 2), im-2 (ID 3).
    pub ports: [u16; 3],
    /// gate-1's WebSocket port (listening only with [`Conf::with_web`]).
    pub ws_port: u16,
    /// gate-1's admin port (metrics, health, the demo's chat page;
    /// listening only with [`Conf::with_web`]).
    pub admin_port: u16,
}

impl Conf {
    /// The shipped routes, test settings ([`SETTINGS`]).
    pub fn new() -> Conf {
        Conf::with_files(DEMO_ROUTES, SETTINGS)
    }

    /// Another route.json, test settings.
    pub fn with_routes(route_json: &str) -> Conf {
        Conf::with_files(route_json, SETTINGS)
    }

    /// The shipped routes, another settings.json.
    pub fn with_settings(settings_json: &str) -> Conf {
        Conf::with_files(DEMO_ROUTES, settings_json)
    }

    /// The shipped routes and test settings, with gate-1 also on a
    /// WebSocket port and an admin port.
    pub fn with_web() -> Conf {
        Conf::build(DEMO_ROUTES, SETTINGS, true)
    }

    /// Both files given.
    pub fn with_files(route_json: &str, settings_json: &str) -> Conf {
        Conf::build(route_json, settings_json, false)
    }

    fn build(route_json: &str, settings_json: &str, web: bool) -> Conf {
        let p = free_ports(5).expect("free ports");
        let ports = [p[0], p[1], p[2]];
        let (ws_port, admin_port) = (p[3], p[4]);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let dinx = if web {
            demo_dinx_web(ports, ws_port, admin_port)
        } else {
            demo_dinx(ports)
        };
        write_conf(dir.path(), &dinx, route_json, settings_json)
            .expect("writing the test configuration");
        Conf {
            dir,
            ports,
            ws_port,
            admin_port,
        }
    }

    /// The directory to pass as `--conf`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where clients connect.
    pub fn gate_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }
}

impl Default for Conf {
    fn default() -> Conf {
        Conf::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_routes_are_the_demo_contract() {
        let route: serde_json::Value = serde_json::from_str(DEMO_ROUTES).unwrap();
        assert_eq!(route["gate"][2]["MsgID"], 5);
        assert_eq!(route["im"][2]["MsgID"], 6);
    }

    #[test]
    fn a_conf_folder_holds_three_files_on_distinct_ports() {
        let conf = Conf::new();
        for f in ["dinx.json", "route.json", "settings.json"] {
            assert!(conf.path().join(f).is_file(), "{f}");
        }
        let [a, b, c] = conf.ports;
        assert!(a != b && b != c && a != c);
        assert_eq!(conf.gate_addr(), format!("127.0.0.1:{a}"));
    }
}
