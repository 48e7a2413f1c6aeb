//! The routes that `#[handler]` registers at compile time, their validation
//! against `route.json`, and the table the runtime dispatches with.
//!
//! Every `#[handler(msg_id = N, group = "g")]` submits a [`Route`] through
//! `inventory`; [`registered`] lists them. Before it binds any port the
//! runtime calls [`validate_handlers`], which compares them with the
//! configuration and either refuses to start, naming every problem at once
//! ([`RegistryErrors`]), or returns the [`HandlerTable`] it dispatches with.
//! [`check_handlers`] runs the same checks for every group, for a user's own
//! `#[test]`.
//!
//! A crate of handlers that nothing in the binary names is never linked, and
//! its registrations vanish with it; that shows up here as a served group
//! with routes but no handler at all, and is reported as such.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::api::Ctx;
use crate::config::{ClusterConfig, RouteConfig};
use crate::frame::ZINX_HEARTBEAT_MSG_ID;
pub use crate::handler::{BoxFuture, HandlerFailure};
use crate::message::{MessageType, registered_messages};
use crate::settings::ErrorReply;
pub use crate::state::MissingState;
use bytes::Bytes;

/// The type-erased entry point generated beside every `#[handler]` fn.
///
/// It decodes the payload with the handler's extractor, runs the handler and
/// converts its return value: `Ok(Some(bytes))` is a reply on the same msg_id,
/// `Ok(None)` no reply.
pub type HandlerFn =
    for<'a> fn(&'a mut Ctx, Bytes) -> BoxFuture<'a, Result<Option<Bytes>, HandlerFailure>>;

/// One registered handler: what `#[handler]` submits.
#[derive(Clone, Copy)]
pub struct Route {
    /// The msg_id it serves.
    pub msg_id: u32,
    /// The group it belongs to (must match `route.json`).
    pub group: &'static str,
    /// The handler function's name.
    pub name: &'static str,
    /// `#[handler(.., internal)]`: only `call`/`cast` from other nodes reach
    /// it, never a client. route.json must say the same (`"Internal": true`).
    pub internal: bool,
    /// `module_path!()` where it was declared.
    pub module: &'static str,
    /// `file!()` where it was declared.
    pub file: &'static str,
    /// `line!()` where it was declared (the line of the `#[handler]`
    /// attribute).
    pub line: u32,
    /// The type-erased entry point.
    pub entry: HandlerFn,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("msg_id", &self.msg_id)
            .field("group", &self.group)
            .field("name", &self.name)
            .field("internal", &self.internal)
            .field("module", &self.module)
            .field("file", &self.file)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

impl Route {
    /// `module::name (file:line)`, for messages.
    pub fn location(&self) -> String {
        format!(
            "{}::{} ({}:{})",
            self.module, self.name, self.file, self.line
        )
    }
}

inventory::collect!(Route);

/// Every route registered in this binary, in no particular order.
///
/// Only handlers of crates and modules that are linked into the binary are
/// here: see [`RegistryError::GroupNotLinked`].
pub fn registered() -> impl Iterator<Item = &'static Route> {
    inventory::iter::<Route>.into_iter()
}

/// The handlers a process runs, by msg_id: built once at start, looked up
/// for every message.
///
/// msg_ids are arbitrary `u32`s, so the table is a sorted array searched by
/// binary search: a handful of comparisons over one contiguous `Vec<u32>`,
/// no hashing and no allocation per lookup.
#[derive(Clone, Default)]
pub struct HandlerTable {
    /// The msg_ids, sorted and unique: what [`HandlerTable::get`] searches.
    ids: Vec<u32>,
    /// The route of `ids[i]` at `routes[i]`.
    routes: Vec<&'static Route>,
}

impl HandlerTable {
    /// A table of exactly these routes, without checking them against any
    /// configuration (tests, or a runtime built by hand). Fails only when
    /// two routes share a msg_id.
    pub fn from_routes(
        routes: impl IntoIterator<Item = &'static Route>,
    ) -> Result<Self, RegistryErrors> {
        let routes = sorted(routes);
        let mut errors = Vec::new();
        push_duplicates(&routes, &mut errors);
        if !errors.is_empty() {
            return Err(RegistryErrors(errors));
        }
        Ok(HandlerTable {
            ids: routes.iter().map(|r| r.msg_id).collect(),
            routes,
        })
    }

    /// The handler of `msg_id`, if this table has one.
    #[inline]
    pub fn get(&self, msg_id: u32) -> Option<&'static Route> {
        let i = self.ids.binary_search(&msg_id).ok()?;
        self.routes.get(i).copied()
    }

    /// Whether this table has a handler for `msg_id`.
    #[inline]
    pub fn contains(&self, msg_id: u32) -> bool {
        self.ids.binary_search(&msg_id).is_ok()
    }

    /// The number of handlers.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no handler (e.g. a gate that only forwards).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every handler, by increasing msg_id.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'static Route> + '_ {
        self.routes.iter().copied()
    }
}

impl fmt::Debug for HandlerTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.routes.iter().map(|r| (r.msg_id, r.location())))
            .finish()
    }
}

/// Checks the registered handlers against `route.json` and builds the table
/// of the handlers of `served_groups`, the groups whose nodes this process
/// runs. Call it before binding any port; on error, refuse to start and
/// print the error, which lists every problem.
///
/// Every handler is checked, served or not: its msg_id must be in
/// `route.json`, under the group the handler names, and no other handler may
/// serve it. Every route of a served group must have a handler. Routes of
/// groups this process does not serve need none (a gate forwards them).
///
/// `routes` is usually [`registered()`]; tests may pass their own.
///
/// ```
/// use zinx_cluster::prelude::*;
/// use zinx_cluster::config::RouteConfig;
/// use zinx_cluster::registry::{registered, validate_handlers};
///
/// #[handler(msg_id = 7301, group = "doc")]
/// async fn hello(_ctx: &mut Ctx) -> &'static str {
///     "hi"
/// }
///
/// let hello = RouteConfig { msg_id: 7301, name: "hello".into(), group: "doc".into(), internal: false };
/// let route_json = [hello.clone()];
/// let handlers = registered().filter(|r| r.group == "doc");
/// let table = validate_handlers(handlers, &route_json, &["doc"])?;
/// assert_eq!(table.get(7301).map(|r| r.name), Some("hello"));
///
/// // A route without a handler: refused, with a message naming it.
/// let route_json = [
///     hello,
///     RouteConfig { msg_id: 7302, name: "bye".into(), group: "doc".into(), internal: false },
/// ];
/// let handlers = registered().filter(|r| r.group == "doc");
/// let errors = validate_handlers(handlers, &route_json, &["doc"]).unwrap_err();
/// assert!(errors.to_string().contains("route MsgID 7302 (\"bye\") has no handler"));
/// # let _ = hello;
/// # Ok::<(), zinx_cluster::registry::RegistryErrors>(())
/// ```
pub fn validate_handlers(
    routes: impl IntoIterator<Item = &'static Route>,
    config_routes: &[RouteConfig],
    served_groups: &[&str],
) -> Result<HandlerTable, RegistryErrors> {
    let routes = sorted(routes);
    let mut errors = Vec::new();
    push_duplicates(&routes, &mut errors);

    // route.json by msg_id; a msg_id listed twice is the config loader's
    // error, so the first entry is enough here.
    let mut config: BTreeMap<u32, &RouteConfig> = BTreeMap::new();
    for route in config_routes {
        config.entry(route.msg_id).or_insert(route);
    }

    for &handler in &routes {
        if zinx_cluster_client::wire::is_control(handler.msg_id) {
            errors.push(RegistryError::ReservedMsgId { handler });
            continue;
        }
        match config.get(&handler.msg_id) {
            None => errors.push(RegistryError::UnknownMsgId { handler }),
            Some(route) if route.group != handler.group => errors.push(RegistryError::WrongGroup {
                handler,
                route: (*route).clone(),
            }),
            Some(route) if route.internal != handler.internal => {
                errors.push(RegistryError::InternalMismatch {
                    handler,
                    route: (*route).clone(),
                })
            }
            Some(_) => {}
        }
    }

    let handled: BTreeSet<u32> = routes.iter().map(|r| r.msg_id).collect();
    let mut seen = BTreeSet::new();
    for &group in served_groups {
        if !seen.insert(group) {
            continue;
        }
        let group_routes: Vec<&RouteConfig> =
            config_routes.iter().filter(|r| r.group == group).collect();
        let missing: Vec<&RouteConfig> = group_routes
            .iter()
            .copied()
            .filter(|r| !handled.contains(&r.msg_id))
            .collect();
        if !group_routes.is_empty() && missing.len() == group_routes.len() {
            errors.push(RegistryError::GroupNotLinked {
                group: group.to_owned(),
                routes: missing.into_iter().cloned().collect(),
            });
        } else {
            errors.extend(
                missing
                    .into_iter()
                    .map(|route| RegistryError::MissingHandler {
                        route: route.clone(),
                    }),
            );
        }
    }

    if !errors.is_empty() {
        return Err(RegistryErrors(errors));
    }
    let served: Vec<&'static Route> = routes
        .into_iter()
        .filter(|r| served_groups.contains(&r.group))
        .collect();
    HandlerTable::from_routes(served)
}

/// Checks every registered handler against the configuration, as if this
/// process served every group that has routes, and every registered message
/// type ([`validate_messages`]): the check for a user's own `#[test]`, so
/// that a mismatch fails `cargo test` rather than a start.
///
/// ```no_run
/// #[test]
/// fn handlers_match_route_json() {
///     let config = zinx_cluster::config::ClusterConfig::load("conf").unwrap();
///     // On failure, prints every problem, one per line.
///     zinx_cluster::check_handlers(&config).unwrap();
/// }
/// ```
pub fn check_handlers(config: &ClusterConfig) -> Result<(), RegistryErrors> {
    let mut groups: Vec<&str> = Vec::new();
    for route in &config.routes {
        if !groups.contains(&route.group.as_str()) {
            groups.push(&route.group);
        }
    }
    let mut errors = match validate_handlers(registered(), &config.routes, &groups) {
        Ok(_) => Vec::new(),
        Err(RegistryErrors(errors)) => errors,
    };
    if let Err(RegistryErrors(more)) = validate_messages(registered_messages(), config) {
        errors.extend(more);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RegistryErrors(errors))
    }
}

/// Checks the message types (`#[derive(Message)]`) against each other and
/// the configuration: no message on the heartbeat msg_id or on the error
/// frames' msg_id, and one codec per msg_id (a client tells frames apart by
/// msg_id alone, so two types on one msg_id must share their wire format).
///
/// `messages` is usually [`registered_messages()`]; tests may pass their
/// own.
pub fn validate_messages(
    messages: impl IntoIterator<Item = &'static MessageType>,
    config: &ClusterConfig,
) -> Result<(), RegistryErrors> {
    let mut messages: Vec<&'static MessageType> = messages.into_iter().collect();
    messages.sort_by_key(|m| (m.id, m.file, m.line, m.module, m.name));
    let settings = &config.settings;
    let mut errors = Vec::new();
    for &message in &messages {
        if message.id == ZINX_HEARTBEAT_MSG_ID {
            errors.push(RegistryError::ReservedMessageId {
                message,
                why: "the zinx client heartbeat, which the gate answers itself",
            });
        } else if zinx_cluster_client::wire::is_control(message.id) {
            errors.push(RegistryError::ReservedMessageId {
                message,
                why: "a control frame of session resume (99990-99998), which the gate handles itself",
            });
        } else if settings.error_reply == ErrorReply::Frame && message.id == settings.error_msg_id {
            errors.push(RegistryError::ReservedMessageId {
                message,
                why: "the msg_id of error frames (settings: error_msg_id, error_reply \"frame\")",
            });
        }
    }
    for same in messages.chunk_by(|a, b| a.id == b.id) {
        if let [first, rest @ ..] = same {
            errors.extend(
                rest.iter()
                    .filter(|second| second.codec != first.codec)
                    .map(|&second| RegistryError::MessageCodecs { first, second }),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RegistryErrors(errors))
    }
}

/// Sorted by msg_id, then by place, so that messages come out in the same
/// order every time (inventory's order is unspecified).
fn sorted(routes: impl IntoIterator<Item = &'static Route>) -> Vec<&'static Route> {
    let mut routes: Vec<&'static Route> = routes.into_iter().collect();
    routes.sort_by_key(|r| (r.msg_id, r.file, r.line, r.module, r.name));
    routes
}

/// One [`RegistryError::Duplicate`] for every route after the first of a
/// msg_id. `routes` must be sorted by msg_id.
fn push_duplicates(routes: &[&'static Route], errors: &mut Vec<RegistryError>) {
    for same in routes.chunk_by(|a, b| a.msg_id == b.msg_id) {
        if let [first, rest @ ..] = same {
            errors.extend(
                rest.iter()
                    .map(|&second| RegistryError::Duplicate { first, second }),
            );
        }
    }
}

/// One disagreement between the registered handlers and `route.json`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RegistryError {
    /// A route of a served group that no handler serves.
    MissingHandler {
        /// The route, as `route.json` has it.
        route: RouteConfig,
    },
    /// A served group with routes of which none has a handler: the crate or
    /// module of its handlers was most likely never linked. A crate that
    /// nothing in the binary names is dropped by the linker, and the
    /// `inventory` registrations of its handlers with it.
    GroupNotLinked {
        /// The group.
        group: String,
        /// Its routes, in `route.json` order.
        routes: Vec<RouteConfig>,
    },
    /// A handler whose msg_id `route.json` does not list.
    UnknownMsgId {
        /// The handler.
        handler: &'static Route,
    },
    /// A handler that names another group than the one `route.json` routes
    /// its msg_id to.
    WrongGroup {
        /// The handler.
        handler: &'static Route,
        /// The route, as `route.json` has it.
        route: RouteConfig,
    },
    /// Two handlers for one msg_id.
    Duplicate {
        /// The one declared first (by file, then line).
        first: &'static Route,
        /// Another one.
        second: &'static Route,
    },
    /// A handler on a msg_id the runtime keeps for itself (the zinx client
    /// heartbeat, [`ZINX_HEARTBEAT_MSG_ID`]): it could never run.
    ReservedMsgId {
        /// The handler.
        handler: &'static Route,
    },
    /// A handler declared `internal` whose route is not, or the other way
    /// round: either clients could reach a handler meant for other nodes
    /// only, or a handler meant for clients could never be reached by them.
    InternalMismatch {
        /// The handler.
        handler: &'static Route,
        /// The route, as `route.json` has it.
        route: RouteConfig,
    },
    /// A message type on a msg_id the runtime keeps for itself.
    ReservedMessageId {
        /// The message type.
        message: &'static MessageType,
        /// What the msg_id is kept for.
        why: &'static str,
    },
    /// Two message types share a msg_id but not a codec.
    MessageCodecs {
        /// The one declared first (by file, then line).
        first: &'static MessageType,
        /// Another one.
        second: &'static MessageType,
    },
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::MissingHandler { route } => write!(
                f,
                "route.json: group {:?}: route MsgID {} ({:?}) has no handler \
                 — is the crate/module that defines it linked (named by the binary)?",
                route.group, route.msg_id, route.name
            ),
            RegistryError::GroupNotLinked { group, routes } => {
                write!(
                    f,
                    "route.json: group {group:?}: none of its {} route(s) has a handler in this \
                     binary (",
                    routes.len()
                )?;
                for (i, route) in routes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "MsgID {} ({:?})", route.msg_id, route.name)?;
                }
                f.write_str(
                    ") — the crate or module of its handlers was probably never linked: \
                     a crate of handlers that nothing in the binary names is dropped by the \
                     linker, and its #[handler] registrations vanish with it; declare the \
                     module (`mod ..;`) or name the crate from the binary (`use my_handlers as _;`)",
                )
            }
            RegistryError::UnknownMsgId { handler } => write!(
                f,
                "handler {}: msg_id {} (group {:?}) is not in route.json \
                 — add it to group {:?} there, or fix the handler's msg_id",
                handler.location(),
                handler.msg_id,
                handler.group,
                handler.group
            ),
            RegistryError::WrongGroup { handler, route } => write!(
                f,
                "handler {}: declared for group {:?}, but route.json routes MsgID {} ({:?}) \
                 to group {:?}",
                handler.location(),
                handler.group,
                route.msg_id,
                route.name,
                route.group
            ),
            RegistryError::Duplicate { first, second } => write!(
                f,
                "msg_id {} has two handlers: {} and {}",
                first.msg_id,
                first.location(),
                second.location()
            ),
            RegistryError::InternalMismatch { handler, route } if handler.internal => write!(
                f,
                "handler {}: declared `internal`, but route.json does not mark MsgID {} ({:?}) \
                 internal, so clients could reach it — add \"Internal\": true to the route, or \
                 remove `internal` from the #[handler]",
                handler.location(),
                route.msg_id,
                route.name
            ),
            RegistryError::InternalMismatch { handler, route } => write!(
                f,
                "handler {}: route.json marks MsgID {} ({:?}) internal, but the handler is not \
                 declared `internal` — add `internal` to its #[handler], or remove \
                 \"Internal\": true from the route",
                handler.location(),
                route.msg_id,
                route.name
            ),
            RegistryError::ReservedMessageId { message, why } => write!(
                f,
                "message {}: id {} is {why}: no message can use it",
                message.location(),
                message.id
            ),
            RegistryError::MessageCodecs { first, second } => write!(
                f,
                "msg_id {} has two wire formats: message {} is {} but message {} is {} — a \
                 client tells frames apart by msg_id, so messages sharing one must share a codec",
                first.id,
                first.location(),
                first.codec,
                second.location(),
                second.codec
            ),
            RegistryError::ReservedMsgId { handler } => write!(
                f,
                "handler {}: msg_id {} is {}, which the gate answers itself: no handler can \
                 serve it",
                handler.location(),
                handler.msg_id,
                if handler.msg_id == ZINX_HEARTBEAT_MSG_ID {
                    "the zinx client heartbeat"
                } else {
                    "a control frame of session resume (99990-99998)"
                }
            ),
        }
    }
}

impl std::error::Error for RegistryError {}

/// Every disagreement between the registered handlers and `route.json`.
///
/// `Display` lists one per line. `Debug` shows the same list, so that
/// `check_handlers(&config).unwrap()` in a test and a `main` returning this
/// error print a readable report.
#[derive(Clone)]
pub struct RegistryErrors(pub Vec<RegistryError>);

impl fmt::Display for RegistryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "handlers do not match route.json ({} problem(s)):",
            self.0.len()
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RegistryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for RegistryErrors {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::macro_support::EntryFuture;
    use crate::message::Codec;
    use crate::{Ctx, HandlerError, Json, handler};
    use bytes::Bytes;

    /// An entry point for routes built by hand; the tests never call it.
    fn never_called(_: &mut Ctx, _: Bytes) -> EntryFuture<'_> {
        Box::pin(async { Ok(None) })
    }

    fn route(msg_id: u32, group: &'static str, name: &'static str, line: u32) -> &'static Route {
        Box::leak(Box::new(Route {
            msg_id,
            group,
            name,
            internal: false,
            module: "demo::im",
            file: "demo/src/im.rs",
            line,
            entry: never_called,
        }))
    }

    fn conf(msg_id: u32, name: &str, group: &str) -> RouteConfig {
        RouteConfig {
            msg_id,
            name: name.into(),
            group: group.into(),
            internal: false,
        }
    }

    /// route.json of the demo: two gate routes, three im routes.
    fn demo_conf() -> Vec<RouteConfig> {
        vec![
            conf(1, "login", "gate"),
            conf(2, "logout", "gate"),
            conf(3, "send", "im"),
            conf(4, "join", "im"),
            conf(5, "leave", "im"),
        ]
    }

    fn demo_handlers() -> Vec<&'static Route> {
        vec![
            route(5, "im", "leave", 30),
            route(1, "gate", "login", 10),
            route(3, "im", "send", 20),
            route(2, "gate", "logout", 12),
            route(4, "im", "join", 25),
        ]
    }

    /// Validation that must fail; its messages, one string each.
    fn problems(
        routes: Vec<&'static Route>,
        config: &[RouteConfig],
        served: &[&str],
    ) -> Vec<String> {
        match validate_handlers(routes, config, served) {
            Ok(table) => panic!("expected errors, got {table:?}"),
            Err(errors) => errors.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn matching_handlers_give_the_table_of_the_served_groups() {
        let table = validate_handlers(demo_handlers(), &demo_conf(), &["im"]).unwrap();
        assert_eq!(table.len(), 3);
        assert!(!table.is_empty());
        let ids: Vec<u32> = table.iter().map(|r| r.msg_id).collect();
        assert_eq!(ids, [3, 4, 5], "sorted, im only");
        assert_eq!(table.get(4).map(|r| r.name), Some("join"));
        assert!(table.contains(3));
        // Gate routes are validated but served elsewhere: not in this table.
        assert!(table.get(1).is_none());
        assert!(table.get(6).is_none());

        let both = validate_handlers(demo_handlers(), &demo_conf(), &["gate", "im"]).unwrap();
        assert_eq!(both.len(), 5);
    }

    #[test]
    fn a_gate_that_serves_nothing_gets_an_empty_table() {
        // A group without routes of its own (a forwarding gate) needs no
        // handler.
        let table = validate_handlers(demo_handlers(), &demo_conf(), &["edge"]).unwrap();
        assert!(table.is_empty());
        assert!(table.get(3).is_none());
    }

    #[test]
    fn route_without_handler_names_group_msg_id_and_name() {
        let handlers = demo_handlers()
            .into_iter()
            .filter(|r| r.msg_id != 3)
            .collect();
        assert_eq!(
            problems(handlers, &demo_conf(), &["im"]),
            [
                "route.json: group \"im\": route MsgID 3 (\"send\") has no handler \
              — is the crate/module that defines it linked (named by the binary)?"
            ]
        );
    }

    #[test]
    fn missing_routes_of_unserved_groups_are_fine() {
        let handlers: Vec<_> = demo_handlers()
            .into_iter()
            .filter(|r| r.group != "gate")
            .collect();
        assert!(validate_handlers(handlers.clone(), &demo_conf(), &["im"]).is_ok());
        assert_eq!(
            problems(handlers, &demo_conf(), &["gate"]).len(),
            1,
            "the gate group, served, has none"
        );
    }

    #[test]
    fn handler_whose_msg_id_is_not_in_route_json() {
        let mut handlers = demo_handlers();
        handlers.push(route(7, "im", "kick", 40));
        assert_eq!(
            problems(handlers, &demo_conf(), &["im"]),
            [
                "handler demo::im::kick (demo/src/im.rs:40): msg_id 7 (group \"im\") is not in \
              route.json — add it to group \"im\" there, or fix the handler's msg_id"
            ]
        );
    }

    #[test]
    fn handler_whose_group_differs_from_route_json() {
        let mut handlers = demo_handlers();
        handlers.retain(|r| r.msg_id != 4);
        handlers.push(route(4, "chat", "join", 25));
        // Reported as the wrong group, not also as a missing handler.
        assert_eq!(
            problems(handlers, &demo_conf(), &["im"]),
            [
                "handler demo::im::join (demo/src/im.rs:25): declared for group \"chat\", but \
              route.json routes MsgID 4 (\"join\") to group \"im\""
            ]
        );
    }

    #[test]
    fn duplicates_name_both_places() {
        let mut handlers = demo_handlers();
        handlers.push(route(3, "im", "send_again", 50));
        assert_eq!(
            problems(handlers, &demo_conf(), &["im"]),
            [
                "msg_id 3 has two handlers: demo::im::send (demo/src/im.rs:20) and \
              demo::im::send_again (demo/src/im.rs:50)"
            ]
        );
    }

    #[test]
    fn duplicates_of_an_unserved_group_are_still_errors() {
        let mut handlers = demo_handlers();
        handlers.push(route(1, "gate", "login2", 11));
        handlers.push(route(1, "gate", "login3", 9));
        let found = problems(handlers, &demo_conf(), &["im"]);
        assert_eq!(
            found,
            [
                "msg_id 1 has two handlers: demo::im::login3 (demo/src/im.rs:9) and \
                 demo::im::login (demo/src/im.rs:10)",
                "msg_id 1 has two handlers: demo::im::login3 (demo/src/im.rs:9) and \
                 demo::im::login2 (demo/src/im.rs:11)",
            ]
        );
    }

    #[test]
    fn served_group_without_any_handler_says_it_was_probably_not_linked() {
        let handlers = demo_handlers()
            .into_iter()
            .filter(|r| r.group != "im")
            .collect();
        assert_eq!(
            problems(handlers, &demo_conf(), &["gate", "im"]),
            [
                "route.json: group \"im\": none of its 3 route(s) has a handler in this binary \
              (MsgID 3 (\"send\"), MsgID 4 (\"join\"), MsgID 5 (\"leave\")) — the crate or \
              module of its handlers was probably never linked: a crate of handlers that \
              nothing in the binary names is dropped by the linker, and its #[handler] \
              registrations vanish with it; declare the module (`mod ..;`) or name the crate \
              from the binary (`use my_handlers as _;`)"
            ]
        );
    }

    #[test]
    fn heartbeat_msg_id_is_reserved() {
        let mut handlers = demo_handlers();
        handlers.push(route(ZINX_HEARTBEAT_MSG_ID, "gate", "beat", 60));
        let mut config = demo_conf();
        config.push(conf(ZINX_HEARTBEAT_MSG_ID, "heartbeat", "gate"));
        assert_eq!(
            problems(handlers, &config, &["gate", "im"]),
            [
                "handler demo::im::beat (demo/src/im.rs:60): msg_id 99999 is the zinx client \
              heartbeat, which the gate answers itself: no handler can serve it"
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_one_per_line() {
        let handlers = vec![
            route(1, "gate", "login", 10),
            route(1, "gate", "login_again", 11),
            route(3, "chat", "send", 20),
            route(8, "im", "stray", 30),
        ];
        let errors = validate_handlers(handlers, &demo_conf(), &["gate", "im"]).unwrap_err();
        let text = errors.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "handlers do not match route.json (6 problem(s)):",
                "  - msg_id 1 has two handlers: demo::im::login (demo/src/im.rs:10) and \
                 demo::im::login_again (demo/src/im.rs:11)",
                "  - handler demo::im::send (demo/src/im.rs:20): declared for group \"chat\", \
                 but route.json routes MsgID 3 (\"send\") to group \"im\"",
                "  - handler demo::im::stray (demo/src/im.rs:30): msg_id 8 (group \"im\") is \
                 not in route.json — add it to group \"im\" there, or fix the handler's msg_id",
                "  - route.json: group \"gate\": route MsgID 2 (\"logout\") has no handler \
                 — is the crate/module that defines it linked (named by the binary)?",
                "  - route.json: group \"im\": route MsgID 4 (\"join\") has no handler \
                 — is the crate/module that defines it linked (named by the binary)?",
                "  - route.json: group \"im\": route MsgID 5 (\"leave\") has no handler \
                 — is the crate/module that defines it linked (named by the binary)?",
            ]
        );
        // `unwrap()` in a user's test prints the same readable list.
        assert_eq!(format!("{errors:?}"), text);
    }

    #[test]
    fn table_from_explicit_routes_finds_arbitrary_ids() {
        let table = HandlerTable::from_routes([
            route(u32::MAX, "g", "max", 1),
            route(0, "g", "zero", 2),
            route(1 << 20, "g", "big", 3),
        ])
        .unwrap();
        assert_eq!(table.len(), 3);
        assert_eq!(table.get(0).map(|r| r.name), Some("zero"));
        assert_eq!(table.get(u32::MAX).map(|r| r.name), Some("max"));
        assert_eq!(table.get(1 << 20).map(|r| r.name), Some("big"));
        assert!(table.get(1).is_none());
        assert!(table.get(u32::MAX - 1).is_none());
        assert_eq!(
            format!("{table:?}"),
            "{0: \"demo::im::zero (demo/src/im.rs:2)\", \
             1048576: \"demo::im::big (demo/src/im.rs:3)\", \
             4294967295: \"demo::im::max (demo/src/im.rs:1)\"}"
        );
        assert!(HandlerTable::default().is_empty());
    }

    #[test]
    fn table_from_explicit_routes_refuses_duplicates() {
        let errors =
            HandlerTable::from_routes([route(9, "g", "a", 1), route(9, "g", "b", 2)]).unwrap_err();
        assert_eq!(
            errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            [
                "msg_id 9 has two handlers: demo::im::a (demo/src/im.rs:1) and \
              demo::im::b (demo/src/im.rs:2)"
            ]
        );
    }

    #[test]
    fn internal_must_agree_both_ways() {
        let mut handlers = demo_handlers();
        handlers.push(Box::leak(Box::new(Route {
            internal: true,
            ..*route(20, "im", "stats", 45)
        })));
        let mut config = demo_conf();
        config.push(conf(20, "stats", "im"));
        assert_eq!(
            problems(handlers.clone(), &config, &["im"]),
            [
                "handler demo::im::stats (demo/src/im.rs:45): declared `internal`, but route.json \
                 does not mark MsgID 20 (\"stats\") internal, so clients could reach it — add \
                 \"Internal\": true to the route, or remove `internal` from the #[handler]"
            ]
        );
        // Agreeing: fine, and the table says so.
        config.last_mut().unwrap().internal = true;
        let table = validate_handlers(handlers, &config, &["im"]).unwrap();
        assert!(table.get(20).unwrap().internal);
        assert!(!table.get(3).unwrap().internal);
        // The other way round.
        let mut config = demo_conf();
        config[2].internal = true;
        assert_eq!(
            problems(demo_handlers(), &config, &["gate"]),
            [
                "handler demo::im::send (demo/src/im.rs:20): route.json marks MsgID 3 (\"send\") \
                 internal, but the handler is not declared `internal` — add `internal` to its \
                 #[handler], or remove \"Internal\": true from the route"
            ]
        );
    }

    fn message(id: u32, name: &'static str, codec: Codec, line: u32) -> &'static MessageType {
        Box::leak(Box::new(MessageType {
            id,
            codec,
            name,
            module: "demo",
            file: "demo/src/lib.rs",
            line,
        }))
    }

    fn demo_cluster() -> ClusterConfig {
        ClusterConfig::from_strs(
            "conf",
            r#"{"gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": 1}],
                "im": [{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": 2}]}"#,
            r#"{"gate": [{"MsgID": 1, "Name": "login"}], "im": [{"MsgID": 3, "Name": "send"}]}"#,
            None,
        )
        .unwrap()
    }

    #[test]
    fn messages_sharing_a_msg_id_share_a_codec() {
        let config = demo_cluster();
        let fine = [
            message(3, "Chat", Codec::Json, 10),
            message(3, "Delivery", Codec::Json, 20),
            message(4, "Blob", Codec::Raw, 30),
        ];
        assert!(validate_messages(fine, &config).is_ok());
        let errors = validate_messages(
            [
                message(3, "Delivery", Codec::Protobuf, 20),
                message(3, "Chat", Codec::Json, 10),
            ],
            &config,
        )
        .unwrap_err();
        assert_eq!(
            errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            [
                "msg_id 3 has two wire formats: message demo::Chat (demo/src/lib.rs:10) is json \
                 but message demo::Delivery (demo/src/lib.rs:20) is protobuf — a client tells \
                 frames apart by msg_id, so messages sharing one must share a codec"
            ]
        );
    }

    #[test]
    fn messages_stay_off_reserved_msg_ids() {
        let errors = validate_messages(
            [
                message(0, "Oops", Codec::Json, 1),
                message(ZINX_HEARTBEAT_MSG_ID, "Beat", Codec::Raw, 2),
            ],
            &demo_cluster(),
        )
        .unwrap_err();
        assert_eq!(
            errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            [
                "message demo::Oops (demo/src/lib.rs:1): id 0 is the msg_id of error frames \
                 (settings: error_msg_id, error_reply \"frame\"): no message can use it",
                "message demo::Beat (demo/src/lib.rs:2): id 99999 is the zinx client heartbeat, \
                 which the gate answers itself: no message can use it",
            ]
        );
    }

    // Handlers defined with the macro inside this crate: the expansion names
    // `::zinx_cluster`, which `extern crate self as zinx_cluster` resolves.
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Echo {
        text: String,
    }

    const IN_CRATE_ECHO: u32 = 4_000_000_002;

    const PING_ATTRIBUTE_LINE: u32 = line!() + 1;
    #[handler(msg_id = 4_000_000_001, group = "registry-test")]
    async fn in_crate_ping(_ctx: &mut Ctx) {}

    #[handler(msg_id = IN_CRATE_ECHO, group = "registry-test")]
    async fn in_crate_echo(_ctx: &Ctx, Json(echo): Json<Echo>) -> Result<Json<Echo>, HandlerError> {
        Ok(Json(echo))
    }

    #[test]
    fn registered_finds_handlers_defined_in_this_crate() {
        let ping = registered()
            .find(|r| r.msg_id == 4_000_000_001)
            .expect("in_crate_ping is registered");
        assert_eq!(ping.group, "registry-test");
        assert_eq!(ping.name, "in_crate_ping");
        assert_eq!(ping.module, "zinx_cluster::registry::tests");
        assert_eq!(ping.file, file!());
        assert_eq!(ping.line, PING_ATTRIBUTE_LINE, "the line of `#[handler]`");
        let echo = registered()
            .find(|r| r.msg_id == IN_CRATE_ECHO)
            .expect("in_crate_echo is registered");
        assert_eq!(echo.name, "in_crate_echo");
        assert!(echo.line > ping.line, "{} > {}", echo.line, ping.line);

        // The handlers stay callable as written (the future is only built:
        // there is no Ctx to run it with here).
        let _ = in_crate_ping;
        let _ = in_crate_echo;

        let config = vec![
            conf(4_000_000_001, "ping", "registry-test"),
            conf(IN_CRATE_ECHO, "echo", "registry-test"),
        ];
        let table = validate_handlers(
            registered().filter(|r| r.group == "registry-test"),
            &config,
            &["registry-test"],
        )
        .unwrap();
        assert_eq!(table.len(), 2);
    }

    // A typed payload gives the msg_id; `internal` is recorded.
    #[derive(crate::Message, serde::Deserialize, serde::Serialize)]
    #[message(id = 4_000_000_011)]
    struct Typed {
        n: u32,
    }

    #[handler(group = "registry-typed")]
    async fn in_crate_typed(_ctx: &mut Ctx, typed: Typed) -> Typed {
        Typed { n: typed.n + 1 }
    }

    #[handler(msg_id = 4_000_000_012, group = "registry-typed", internal)]
    async fn in_crate_internal(_ctx: &mut Ctx) {}

    #[test]
    fn typed_payloads_give_the_msg_id_and_internal_is_recorded() {
        let typed = registered()
            .find(|r| r.name == "in_crate_typed")
            .expect("in_crate_typed is registered");
        assert_eq!(typed.msg_id, 4_000_000_011);
        assert!(!typed.internal);
        let internal = registered()
            .find(|r| r.name == "in_crate_internal")
            .expect("in_crate_internal is registered");
        assert!(internal.internal);
        let _ = (in_crate_typed, in_crate_internal);
    }
}
