//! `State<S>` arguments: anywhere after the context, before or after the
//! payload, several of them; each is registered for the start check.

use std::sync::Arc;

use zinx_cluster::prelude::*;
use zinx_cluster::registry::registered;

#[derive(Default)]
struct Stats {
    handled: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
struct Config {
    motd: &'static str,
}

#[handler(msg_id = 1, group = "im")]
async fn count(_ctx: &mut Ctx, State(stats): State<Arc<Stats>>) -> String {
    let n = stats.handled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    n.to_string()
}

#[handler(msg_id = 2, group = "im")]
async fn greet(
    _ctx: &Ctx,
    State(config): State<Config>,
    name: String,
    zinx_cluster::State(stats): zinx_cluster::State<Arc<Stats>>,
) -> String {
    let _ = &stats;
    format!("{} {name}", config.motd)
}

fn main() {
    let ids: Vec<u32> = registered().map(|r| r.msg_id).collect();
    assert!(ids.contains(&1) && ids.contains(&2), "{ids:?}");
}
