//! Application state and a timer: a clock ticks in the state, a task
//! started by the `on_started` hook publishes every tick to the sessions in
//! the room "ticks" through a `ClusterHandle`, and handlers read the state.
//!
//! ```sh
//! cargo run -p zinx-cluster --example ticker                 # 127.0.0.1:10000, a tick a second
//! cargo run -p zinx-cluster --example ticker -- --port 7000 --every-ms 100
//! ```
//!
//! | msg_id | the client sends | it gets back |
//! |---|---|---|
//! | 1 | anything | `{"tick":N}` on 1, then `{"tick":N}` on 3 at every tick |
//! | 2 | anything | `{"tick":N}` on 2: the clock now |

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zinx_cluster::config::ClusterConfig;
use zinx_cluster::prelude::*;
use zinx_cluster::{Cluster, Select};

/// The application state: shared by every node and handler of the process.
#[derive(Default)]
struct Clock {
    ticks: AtomicU64,
}

/// 1: joined the room, at this tick.
#[derive(Message, Serialize, Deserialize)]
#[message(id = 1)]
struct Subscribed {
    tick: u64,
}

/// 2: the clock now.
#[derive(Message, Serialize, Deserialize)]
#[message(id = 2)]
struct Now {
    tick: u64,
}

/// 3: published to the room at every tick.
#[derive(Message, Serialize, Deserialize)]
#[message(id = 3)]
struct Tick {
    tick: u64,
}

/// Puts this session in the room "ticks" (it leaves when it closes).
#[handler(msg_id = 1, group = "gate")]
async fn subscribe(
    ctx: &mut Ctx,
    State(clock): State<Arc<Clock>>,
) -> Result<Subscribed, HandlerError> {
    ctx.join("ticks").await?;
    Ok(Subscribed {
        tick: clock.ticks.load(Ordering::Relaxed),
    })
}

/// The clock, from the state (a `State<S>` the cluster was not given
/// would stop the start, naming this handler).
#[handler(msg_id = 2, group = "gate")]
async fn now(_ctx: &mut Ctx, State(clock): State<Arc<Clock>>) -> Now {
    Now {
        tick: clock.ticks.load(Ordering::Relaxed),
    }
}

/// The timer: runs until the cluster shuts down. The handle does not keep
/// the node alive: once it stopped, every operation fails with `Stopped`
/// (and `is_running` is false).
async fn tick(handle: ClusterHandle, every: Duration) {
    let Some(clock) = handle.state::<Arc<Clock>>().cloned() else {
        return;
    };
    let mut timer = tokio::time::interval(every);
    timer.tick().await; // the first tick is immediate
    loop {
        timer.tick().await;
        let tick = clock.ticks.fetch_add(1, Ordering::Relaxed) + 1;
        // every member of the room, on every gate, once each
        match handle.publish("ticks", &Tick { tick }) {
            Ok(()) => {}
            Err(SendError::Stopped) => return, // the cluster shut down
            Err(e) => eprintln!("ticker: tick {tick} not published: {e}"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = arg("--port", 10000u16)?;
    let every = Duration::from_millis(arg("--every-ms", 1000u64)?);
    let dinx =
        r#"{"gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": PORT}]}"#;
    let route = r#"{"gate": [{"MsgID": 1, "Name": "subscribe"}, {"MsgID": 2, "Name": "now"}]}"#;
    let config = ClusterConfig::from_strs(
        "ticker",
        &dinx.replace("PORT", &port.to_string()),
        route,
        None,
    )?;
    Cluster::new(config)
        .with_state(Arc::new(Clock::default()))
        .on_started(move |handle| async move {
            // `start` waits for this hook: spawn what runs long
            tokio::spawn(tick(handle, every));
            println!("ticker: serving on 127.0.0.1:{port}");
        })
        .run(Select::All)
        .await?;
    Ok(())
}

/// The value after `flag` on the command line, else `default`.
fn arg<T: std::str::FromStr>(flag: &str, default: T) -> Result<T, T::Err> {
    let mut args = std::env::args().skip_while(|a| a != flag).skip(1);
    args.next().map_or(Ok(default), |v| v.parse())
}
