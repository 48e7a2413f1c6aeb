//! A gate alone: every frame on msg_id 1 comes back as it was sent.
//!
//! ```sh
//! cargo run -p zinx-cluster --example echo                # 127.0.0.1:10000
//! cargo run -p zinx-cluster --example echo -- --port 7000
//! ```
//!
//! Any zinx client works, e.g. `printf '\0\0\0\1\0\0\0\2hi' | nc 127.0.0.1 10000 | xxd`.

use zinx_cluster::config::ClusterConfig;
use zinx_cluster::prelude::*;
use zinx_cluster::{Cluster, Select};

#[handler(msg_id = 1, group = "gate")]
async fn echo(_ctx: &mut Ctx, data: Bytes) -> Bytes {
    data
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .skip_while(|a| a != "--port")
        .nth(1)
        .map_or(Ok(10000), |p| p.parse())?;
    // What conf/dinx.json and conf/route.json hold in an application, which
    // then starts with `Cluster::from_dir("conf")`.
    let dinx =
        r#"{"gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": PORT}]}"#;
    let route = r#"{"gate": [{"MsgID": 1, "Name": "echo"}]}"#;
    let config = ClusterConfig::from_strs(
        "echo",
        &dinx.replace("PORT", &port.to_string()),
        route,
        None,
    )?;
    Cluster::new(config)
        .on_started(move |_| async move { println!("echo: serving on 127.0.0.1:{port}") })
        .run(Select::All) // until Ctrl-C or SIGTERM, then a graceful shutdown
        .await?;
    Ok(())
}
