//! Choosing a node of a group for a message.
//!
//! Only live nodes are candidates. `sticky` uses rendezvous hashing of the
//! session id over the live nodes: a session stays on its node while that
//! node lives, only the sessions of a dead node move, and they move back
//! when it returns. No allocation per choice.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::settings::Balance;

/// Picks a live node of `nodes` for `key` (the session id, or a request
/// counter when there is no session). `None` when no node is live.
pub(crate) fn pick(
    policy: Balance,
    nodes: &[u16],
    key: u64,
    rr: &AtomicUsize,
    is_live: impl Fn(u16) -> bool,
) -> Option<u16> {
    match policy {
        Balance::Sticky => nodes
            .iter()
            .copied()
            .filter(|n| is_live(*n))
            .max_by_key(|n| mix(key ^ (u64::from(*n) << 32 | u64::from(*n)))),
        Balance::RoundRobin => nth_live(nodes, rr.fetch_add(1, Ordering::Relaxed), is_live),
        Balance::Random => nth_live(nodes, rand::random::<u32>() as usize, is_live),
    }
}

/// The `i`-th (modulo their number) live node: an even spread over the
/// live nodes only.
fn nth_live(nodes: &[u16], i: usize, is_live: impl Fn(u16) -> bool) -> Option<u16> {
    let live = nodes.iter().filter(|n| is_live(**n)).count();
    if live == 0 {
        return None;
    }
    nodes.iter().copied().filter(|n| is_live(*n)).nth(i % live)
}

/// A 64-bit finaliser (splitmix64): spreads nearby session ids evenly.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_keeps_sessions_and_moves_only_the_dead_nodes_share() {
        let rr = AtomicUsize::new(0);
        let nodes = [2, 3, 4];
        let before: Vec<_> = (0..1000u64)
            .map(|k| pick(Balance::Sticky, &nodes, k, &rr, |_| true).unwrap())
            .collect();
        // Every node gets a fair share.
        for n in nodes {
            let share = before.iter().filter(|x| **x == n).count();
            assert!((250..420).contains(&share), "node {n} got {share}");
        }
        let after: Vec<_> = (0..1000u64)
            .map(|k| pick(Balance::Sticky, &nodes, k, &rr, |n| n != 3).unwrap())
            .collect();
        for (b, a) in before.iter().zip(&after) {
            assert_ne!(*a, 3);
            if *b != 3 {
                assert_eq!(a, b, "a session of a live node moved");
            }
        }
    }

    #[test]
    fn no_live_node_is_none_for_every_policy() {
        let rr = AtomicUsize::new(0);
        for p in [Balance::Sticky, Balance::RoundRobin, Balance::Random] {
            assert_eq!(pick(p, &[2, 3], 1, &rr, |_| false), None);
            assert_eq!(pick(p, &[], 1, &rr, |_| true), None);
        }
    }

    #[test]
    fn round_robin_alternates_over_live_nodes() {
        let rr = AtomicUsize::new(0);
        let got: Vec<_> = (0..6)
            .map(|_| pick(Balance::RoundRobin, &[2, 3, 4], 0, &rr, |n| n != 4).unwrap())
            .collect();
        assert_eq!(got.iter().filter(|n| **n == 2).count(), 3, "{got:?}");
        assert_eq!(got.iter().filter(|n| **n == 3).count(), 3, "{got:?}");
    }

    #[test]
    fn random_only_picks_live_nodes() {
        let rr = AtomicUsize::new(0);
        for _ in 0..100 {
            assert_eq!(
                pick(Balance::Random, &[2, 3, 4], 0, &rr, |n| n == 3),
                Some(3)
            );
        }
    }
}
