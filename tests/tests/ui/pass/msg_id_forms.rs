//! Every accepted way to write a msg_id.

use zinx_cluster::prelude::*;

const TOP: u32 = 100;

mod ids {
    pub const LOGIN: u32 = 101;
}

#[repr(u32)]
enum Msg {
    Logout = 102,
}

#[handler(msg_id = TOP, group = "g")]
async fn by_const(_ctx: &mut Ctx) {}

#[handler(msg_id = ids::LOGIN, group = "g")]
async fn by_path(_ctx: &mut Ctx) {}

#[handler(msg_id = Msg::Logout as u32, group = "g")]
async fn by_enum(_ctx: &mut Ctx) {}

#[handler(msg_id = 0x67, group = "g")]
async fn hex(_ctx: &mut Ctx) {}

#[handler(msg_id = 104u32, group = "g")]
async fn suffixed(_ctx: &mut Ctx) {}

#[handler(msg_id = 1_05, group = "g")]
async fn underscored(_ctx: &mut Ctx) {}

#[handler(msg_id = 0, group = "g")]
async fn zero(_ctx: &mut Ctx) {}

#[handler(msg_id = 4294967295, group = "g")]
async fn max(_ctx: &mut Ctx) {}

// Keys in either order; a trailing comma.
#[handler(group = "g", msg_id = 106,)]
async fn reordered(_ctx: &mut Ctx) {}

fn main() {
    let _ = (by_const, by_path, by_enum, hex, suffixed, underscored, zero, max, reordered);
    let mut ids: Vec<u32> = zinx_cluster::registry::registered().map(|r| r.msg_id).collect();
    ids.sort();
    assert_eq!(ids, [0, 100, 101, 102, 103, 104, 105, 106, u32::MAX]);
}
