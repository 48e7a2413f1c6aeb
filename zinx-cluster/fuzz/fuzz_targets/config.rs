//! The config loader over arbitrary text in each of the three files: never a
//! panic, whatever the JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zinx_cluster::config::ClusterConfig;

fuzz_target!(|input: (String, String, Option<String>)| {
    let (dinx, route, settings) = input;
    let _ = ClusterConfig::from_strs("fuzz", &dinx, &route, settings.as_deref());
});
