//! The routing table: where each msg_id goes, decided once at start, and
//! the groups a node can send work to.
//!
//! Built from `route.json`, `dinx.json` and the handler table; never
//! rebuilt per message. A lookup is a binary search over a sorted vector.

use std::sync::atomic::AtomicUsize;

use crate::balance;
use crate::config::{ClusterConfig, NodeType};
use crate::registry::{HandlerTable, Route};
use crate::settings::Balance;

/// Where a msg_id goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dest {
    /// A handler of this node's group, run here.
    Local(&'static Route),
    /// Forward to a node of backend group `groups[i]`.
    Group(usize),
    /// A route of another gate group: gates do not forward to gates.
    OtherGate(usize),
}

/// A group as the balancer sees it.
#[derive(Debug)]
pub(crate) struct Group {
    /// `Group` in `dinx.json`.
    pub(crate) name: String,
    /// Gate or backend (every node of a group has one type).
    pub(crate) node_type: NodeType,
    /// Its node ids, in `dinx.json` order.
    pub(crate) nodes: Vec<u16>,
    /// How a node of it is chosen.
    balance: Balance,
    /// Round-robin cursor.
    rr: AtomicUsize,
}

/// msg_id → destination, and the groups, for one node.
#[derive(Debug)]
pub(crate) struct Routing {
    /// Sorted by msg_id for binary search.
    dests: Vec<(u32, Dest)>,
    /// Every group of the cluster.
    groups: Vec<Group>,
    /// The internal msg_ids, sorted: only for the log line of a client
    /// that sends one (its answer is an unknown msg_id's).
    internal: Vec<u32>,
}

impl Routing {
    /// The table of a node of group `my_group`, whose handlers are
    /// `handlers`.
    pub(crate) fn new(config: &ClusterConfig, my_group: &str, handlers: &HandlerTable) -> Routing {
        let mut groups: Vec<Group> = Vec::new();
        for n in &config.nodes {
            match groups.iter_mut().find(|g| g.name == n.group) {
                Some(g) => g.nodes.push(n.id),
                None => groups.push(Group {
                    name: n.group.clone(),
                    node_type: n.node_type,
                    nodes: vec![n.id],
                    balance: config.settings.balance_of(&n.group),
                    rr: AtomicUsize::new(0),
                }),
            }
        }
        let mut dests = Vec::new();
        // Internal routes are for `call`/`cast` only, which do not look
        // here: leaving them out makes a client's internal msg_id exactly
        // an unknown one (same answer, same counter, no handler).
        for r in config.routes.iter().filter(|r| !r.internal) {
            let dest = if r.group == my_group {
                match handlers.get(r.msg_id) {
                    Some(route) => Dest::Local(route),
                    // Validation refuses to start without it; skip defensively.
                    None => continue,
                }
            } else {
                match groups.iter().position(|g| g.name == r.group) {
                    Some(i) if groups[i].node_type == NodeType::Backend => Dest::Group(i),
                    Some(i) => Dest::OtherGate(i),
                    None => continue,
                }
            };
            dests.push((r.msg_id, dest));
        }
        dests.sort_by_key(|(id, _)| *id);
        let mut internal: Vec<u32> = config
            .routes
            .iter()
            .filter(|r| r.internal)
            .map(|r| r.msg_id)
            .collect();
        internal.sort_unstable();
        Routing {
            dests,
            groups,
            internal,
        }
    }

    /// Where a client's `msg_id` goes; `None` when no route names it or
    /// the route is internal.
    pub(crate) fn dest(&self, msg_id: u32) -> Option<Dest> {
        self.dests
            .binary_search_by_key(&msg_id, |(id, _)| *id)
            .ok()
            .map(|i| self.dests[i].1)
    }

    /// Whether route.json marks `msg_id` internal (for logs: a client gets
    /// no [`Dest`] for it).
    pub(crate) fn is_internal(&self, msg_id: u32) -> bool {
        self.internal.binary_search(&msg_id).is_ok()
    }

    /// Group `i` of a [`Dest`].
    pub(crate) fn group_at(&self, i: usize) -> &Group {
        &self.groups[i]
    }

    /// A group by name.
    pub(crate) fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
}

impl Group {
    /// A live node of this group for `key` (a session id, or a request
    /// counter), by the group's balancing; `None` when none is live.
    pub(crate) fn choose(&self, key: u64, is_live: impl Fn(u16) -> bool) -> Option<u16> {
        balance::pick(self.balance, &self.nodes, key, &self.rr, is_live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterConfig;

    fn config() -> ClusterConfig {
        let dinx = r#"{
          "gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 10001}],
          "im": [
            {"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 10002},
            {"ID": 3, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": 10003}
          ],
          "lobby": [{"ID": 4, "Name": "lobby-1", "Type": 1, "IP": "127.0.0.1", "Port": 10004}]
        }"#;
        let route = r#"{
          "gate": [{"MsgID": 1, "Name": "login"}],
          "im": [{"MsgID": 3, "Name": "send"}, {"MsgID": 6, "Name": "echo"},
                 {"MsgID": 20, "Name": "stats", "Internal": true}],
          "lobby": [{"MsgID": 40, "Name": "lobby"}]
        }"#;
        ClusterConfig::from_strs("test", dinx, route, None).expect("valid test config")
    }

    #[test]
    fn other_groups_forward_and_gate_groups_do_not() {
        let routing = Routing::new(&config(), "gate", &HandlerTable::default());
        // The gate's own route has no handler in an empty table: skipped.
        assert!(routing.dest(1).is_none());
        match routing.dest(3) {
            Some(Dest::Group(i)) => {
                let g = routing.group_at(i);
                assert_eq!(g.name, "im");
                assert_eq!(g.nodes, vec![2, 3]);
            }
            other => panic!("msg 3 should forward to im, got {other:?}"),
        }
        assert!(matches!(routing.dest(40), Some(Dest::OtherGate(_))));
        assert!(routing.dest(99).is_none());
        // Internal: as unknown as 99, for a client.
        assert!(routing.dest(20).is_none());
        assert!(routing.is_internal(20));
        assert!(!routing.is_internal(3));
        assert!(routing.group("lobby").is_some());
    }

    #[test]
    fn choose_skips_dead_nodes() {
        let routing = Routing::new(&config(), "gate", &HandlerTable::default());
        let im = routing.group("im").expect("im group");
        assert_eq!(im.choose(7, |n| n == 3), Some(3));
        assert_eq!(im.choose(7, |_| false), None);
    }
}
