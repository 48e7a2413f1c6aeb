//! A gate and a backend with typed messages: log in on the gate, send a
//! line to another user through the backend, which pushes it to them on
//! whichever gate holds them.
//!
//! ```sh
//! cargo run -p zinx-cluster --example chat       # gate on 127.0.0.1:10000, backend on :20000
//! cargo run -p zinx-cluster --example chat -- --port 7000 --backend-port 7001
//! ```
//!
//! | msg_id | group | the client sends | it gets back |
//! |---|---|---|---|
//! | 1 | gate | `{"name":"alice"}` | `{"name":"alice"}` |
//! | 2 | chat | `{"to":"bob","text":"hi"}` | `{"delivered":true}`; bob gets `{"from":"alice","text":"hi"}` on 3 |

use std::time::Duration;

use serde::{Deserialize, Serialize};
use zinx_cluster::config::ClusterConfig;
use zinx_cluster::prelude::*;
use zinx_cluster::{Cluster, Select};

/// 1, client → gate: log in under a name.
#[derive(Message, Serialize, Deserialize)]
#[message(id = 1)]
struct Login {
    name: String,
}

/// 1, gate → client: logged in.
#[derive(Message, Serialize, Deserialize)]
#[message(id = 1)]
struct Welcome {
    name: String,
}

/// 2, client → backend: a line to a user.
#[derive(Message, Serialize, Deserialize)]
#[message(id = 2)]
struct Say {
    to: String,
    text: String,
}

/// 2, backend → client: whether the user was online.
#[derive(Message, Serialize, Deserialize)]
#[message(id = 2)]
struct Sent {
    delivered: bool,
}

/// 3, pushed to the addressee.
#[derive(Message, Serialize, Deserialize)]
#[message(id = 3)]
struct Line {
    from: String,
    text: String,
}

/// Runs on the gate: binds the session to the name (a second login under
/// the same name closes the older session).
#[handler(group = "gate")]
async fn login(ctx: &mut Ctx, login: Login) -> Result<Welcome, HandlerError> {
    ctx.bind(&login.name).await?;
    Ok(Welcome { name: login.name })
}

/// Runs on the backend (the gate forwards it): the uid bound on the gate
/// travels with the message.
#[handler(group = "chat")]
async fn say(ctx: &mut Ctx, say: Say) -> Result<Sent, HandlerError> {
    let Some(from) = ctx.uid().map(str::to_string) else {
        return Err(HandlerError::new(ErrorCode::NotLoggedIn, "log in first"));
    };
    let line = Line {
        from,
        text: say.text,
    };
    match ctx.push_to_uid(&say.to, &line).await {
        Ok(()) => Ok(Sent { delivered: true }),
        Err(SendError::NotOnline { .. }) => Ok(Sent { delivered: false }),
        Err(e) => Err(e.into()), // keeps its code (`directory`, `stopped`, ..)
    }
}

const DINX: &str = r#"{
  "gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": GATE_PORT}],
  "chat": [{"ID": 2, "Name": "chat-1", "Type": 2, "IP": "127.0.0.1", "Port": BACKEND_PORT}]
}"#;
const ROUTE: &str = r#"{
  "gate": [{"MsgID": 1, "Name": "login"}],
  "chat": [{"MsgID": 2, "Name": "say"}]
}"#;
const SETTINGS: &str = r#"{"secret": "an example secret: set your own"}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gate_port = port_arg("--port", 10000)?;
    let backend_port = port_arg("--backend-port", 20000)?;
    let dinx = DINX
        .replace("GATE_PORT", &gate_port.to_string())
        .replace("BACKEND_PORT", &backend_port.to_string());
    let config = ClusterConfig::from_strs("chat", &dinx, ROUTE, Some(SETTINGS))?;

    // `start` returns once the nodes run (`run` would also wait for Ctrl-C):
    // both nodes in this process, linked through in-memory queues.
    let running = Cluster::new(config).start(Select::All).await?;
    if !running.wait_links(Duration::from_secs(5)).await {
        eprintln!("chat: the gate and the backend did not link within 5 s");
    }
    println!("chat: serving on 127.0.0.1:{gate_port}");
    tokio::signal::ctrl_c().await?;
    running.shutdown().await; // answers in flight reach their clients first
    Ok(())
}

/// The value after `flag` on the command line, else `default`.
fn port_arg(flag: &str, default: u16) -> Result<u16, std::num::ParseIntError> {
    let mut args = std::env::args().skip_while(|a| a != flag).skip(1);
    args.next().map_or(Ok(default), |p| p.parse())
}
