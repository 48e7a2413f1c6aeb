//! Free TCP ports on 127.0.0.1.
//!
//! A port handed out here is bound by its user a little later (a node, a
//! child process). In between, anybody may take it. The kernel's choice for
//! `bind(0)` comes from the ephemeral range, the same range every outgoing
//! connection takes its source port from, so with tests connecting clients
//! in parallel a freshly released ephemeral port is soon someone's source
//! port. So ports are picked at random below the ephemeral range (where no
//! connection's source port lands), checked by binding them, and never
//! handed out twice by one process; `bind(0)` is the fallback.

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::TcpListener;
use std::sync::Mutex;

/// Where ports are picked: below Linux's default ephemeral range
/// (32768–60999) and above the usual well-known services.
const PICK_FROM: u16 = 15_000;
/// See [`PICK_FROM`].
const PICK_TO: u16 = 32_000;

/// Ports this process has handed out.
static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The first port of the kernel's ephemeral range (Linux; elsewhere the
/// IANA range's start, 49152).
fn ephemeral_start() -> u16 {
    #[cfg(target_os = "linux")]
    if let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        && let Some(low) = text.split_whitespace().next().and_then(|v| v.parse().ok())
    {
        return low;
    }
    49_152
}

/// A random number (std's hasher keys are random per `RandomState`).
fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// `n` ports nobody listens on right now, all distinct and never handed
/// out before by this process. (A port may still be taken by another
/// process before the caller binds it; below the ephemeral range that
/// takes someone binding it on purpose.)
pub fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let to = PICK_TO.min(ephemeral_start());
    let mut held: Vec<TcpListener> = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    let mut tries = 0;
    while ports.len() < n && to > PICK_FROM && tries < 100 * n {
        tries += 1;
        let port = PICK_FROM + (random() % u64::from(to - PICK_FROM)) as u16;
        if given.contains(&port) {
            continue;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            given.insert(port);
            ports.push(port);
            held.push(l);
        }
    }
    // Fallback: the kernel's choice, all held at once so they differ.
    while ports.len() < n {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        if given.insert(port) {
            ports.push(port);
        }
        held.push(l);
    }
    Ok(ports)
}

/// One free port; panics when none can be had (a test helper).
pub fn free_port() -> u16 {
    free_ports(1).expect("a free port")[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_never_given_twice() {
        let a = free_ports(8).unwrap();
        let b = free_ports(8).unwrap();
        let mut all: Vec<u16> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 16);
        for p in all {
            assert_ne!(p, 0);
            TcpListener::bind(("127.0.0.1", p)).expect("the port is free");
        }
    }

    #[test]
    fn ports_come_from_below_the_ephemeral_range() {
        let start = ephemeral_start();
        if start > PICK_FROM {
            for p in free_ports(4).unwrap() {
                assert!(p < start, "{p} is in the ephemeral range from {start}");
            }
        }
    }
}
