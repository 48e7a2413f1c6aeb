//! Application state: values given to [`Cluster::with_state`] and reached
//! by handlers through the [`State`] extractor or [`Ctx::state`], and by
//! any other code through [`ClusterHandle::state`].
//!
//! The values are kept in a type map built once at start ([`States`]) and
//! shared by every node of the process: a lookup is one hash of a
//! `TypeId`, no lock. A handler that takes `State<S>` declares it at
//! compile time (a [`StateUse`], collected like the routes); `start`
//! refuses to run when a served handler wants a type the cluster was not
//! given, naming the handler and the type — never a failure at the first
//! message.
//!
//! [`Cluster::with_state`]: crate::Cluster::with_state
//! [`Ctx::state`]: crate::Ctx::state
//! [`ClusterHandle::state`]: crate::ClusterHandle::state

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A handler argument that hands the handler a clone of the application
/// state of type `S` (usually an `Arc<..>`, a pool, a channel sender):
///
/// ```rust
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use zinx_cluster::prelude::*;
///
/// #[derive(Default)]
/// struct Stats { handled: AtomicU64 }
///
/// #[handler(msg_id = 9, group = "im")]
/// async fn say(ctx: &mut Ctx, State(stats): State<Arc<Stats>>, text: String) -> String {
///     stats.handled.fetch_add(1, Ordering::Relaxed);
///     text
/// }
/// # fn main() {
/// // Cluster::from_dir("conf")?.with_state(Arc::new(Stats::default())) ..
/// # }
/// ```
///
/// The cluster must have been given an `S` with
/// [`Cluster::with_state`](crate::Cluster::with_state); otherwise it
/// refuses to start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State<S>(pub S);

/// What a `State<S>` handler argument is to the `#[handler]` expansion:
/// the type it registers (for the start check) and how it is taken from
/// the context. Not a public API.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an application state argument",
    label = "state arguments are `State<S>`",
    note = "a handler takes `State<S>` for a type `S: Clone + Send + Sync + 'static` given to `Cluster::with_state`"
)]
pub trait FromState: Sized {
    /// `TypeId` of the state type.
    fn state_type_id() -> TypeId;
    /// Name of the state type.
    fn state_type_name() -> &'static str;
    /// A clone of the state out of the context; a `missing_state` failure
    /// when the cluster was not given one (`start` refuses that for every
    /// registered handler, so only a handler run by hand meets it).
    fn from_ctx(ctx: &crate::Ctx) -> Result<Self, crate::handler::HandlerFailure>;
}

impl<S: Clone + Send + Sync + 'static> FromState for State<S> {
    fn state_type_id() -> TypeId {
        TypeId::of::<S>()
    }

    fn state_type_name() -> &'static str {
        std::any::type_name::<S>()
    }

    fn from_ctx(ctx: &crate::Ctx) -> Result<Self, crate::handler::HandlerFailure> {
        match ctx.state::<S>() {
            Some(s) => Ok(State(s.clone())),
            None => Err(crate::handler::HandlerFailure::Handler(
                crate::HandlerError::new(
                    crate::error::ErrorCode::MissingState,
                    format!(
                        "the cluster was not given a {} (Cluster::with_state)",
                        std::any::type_name::<S>()
                    ),
                ),
            )),
        }
    }
}

/// A handler's use of a state type, registered by `#[handler]` for each
/// `State<S>` argument and checked by `Cluster::start`. Not written by
/// hand.
#[derive(Clone, Copy)]
pub struct StateUse {
    /// The group of the handler (only handlers of served groups count).
    pub group: &'static str,
    /// The handler function's name.
    pub handler: &'static str,
    /// `module_path!()` of the handler.
    pub module: &'static str,
    /// `file!()` of the handler.
    pub file: &'static str,
    /// `line!()` of the handler.
    pub line: u32,
    /// `TypeId::of::<S>` (a function: `TypeId::of` is not const).
    pub type_id: fn() -> TypeId,
    /// `type_name::<S>`, for the error message.
    pub type_name: fn() -> &'static str,
}

impl fmt::Debug for StateUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateUse")
            .field("group", &self.group)
            .field("handler", &self.handler)
            .field("type", &(self.type_name)())
            .finish_non_exhaustive()
    }
}

inventory::collect!(StateUse);

/// A handler that wants a state type the cluster was not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingState {
    /// `module::handler (file:line)`.
    pub handler: String,
    /// The type it asks for.
    pub type_name: &'static str,
}

impl fmt::Display for MissingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "handler {} takes State<{}>, but the cluster was not given one: add .with_state(..) of that type",
            self.handler, self.type_name
        )
    }
}

/// The application state of a process: one value per type.
#[derive(Clone, Default)]
pub(crate) struct States {
    /// `TypeId` of the value → the value.
    map: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    /// The types held, for `Debug`.
    names: Vec<&'static str>,
}

impl fmt::Debug for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.names).finish()
    }
}

impl States {
    /// Adds (or replaces) the value of type `S`.
    pub(crate) fn insert<S: Send + Sync + 'static>(&mut self, value: S) {
        let name = std::any::type_name::<S>();
        if self
            .map
            .insert(TypeId::of::<S>(), Arc::new(value))
            .is_none()
        {
            self.names.push(name);
        }
    }

    /// The value of type `S`, if the cluster was given one.
    pub(crate) fn get<S: Send + Sync + 'static>(&self) -> Option<&S> {
        self.map.get(&TypeId::of::<S>())?.downcast_ref()
    }

    /// Whether a value of this type is held.
    fn contains(&self, id: TypeId) -> bool {
        self.map.contains_key(&id)
    }

    /// The uses by handlers of `served` groups of types not held here.
    pub(crate) fn missing<'a>(
        &self,
        uses: impl IntoIterator<Item = &'a StateUse>,
        served: &[&str],
    ) -> Vec<MissingState> {
        let mut missing: Vec<MissingState> = uses
            .into_iter()
            .filter(|u| served.contains(&u.group) && !self.contains((u.type_id)()))
            .map(|u| MissingState {
                handler: format!("{}::{} ({}:{})", u.module, u.handler, u.file, u.line),
                type_name: (u.type_name)(),
            })
            .collect();
        missing.sort_by(|a, b| (&a.handler, a.type_name).cmp(&(&b.handler, b.type_name)));
        missing.dedup();
        missing
    }
}

/// Every `State<S>` use the handlers linked into the binary declared.
pub(crate) fn registered_uses() -> impl Iterator<Item = &'static StateUse> {
    inventory::iter::<StateUse>.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pool(u32);

    fn use_of<S: 'static>(group: &'static str) -> StateUse {
        StateUse {
            group,
            handler: "h",
            module: "m",
            file: "f.rs",
            line: 1,
            type_id: TypeId::of::<S>,
            type_name: std::any::type_name::<S>,
        }
    }

    #[test]
    fn values_are_found_by_type() {
        let mut s = States::default();
        s.insert(Pool(3));
        s.insert(Arc::new(7u64));
        assert_eq!(s.get::<Pool>().map(|p| p.0), Some(3));
        assert_eq!(s.get::<Arc<u64>>().map(|v| **v), Some(7));
        assert!(s.get::<u64>().is_none());
    }

    #[test]
    fn missing_types_of_served_groups_are_named() {
        let mut s = States::default();
        s.insert(Pool(1));
        let uses = [
            use_of::<Pool>("im"),
            use_of::<String>("im"),
            use_of::<u8>("other"),
        ];
        let missing = s.missing(&uses, &["im"]);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].type_name, "alloc::string::String");
        assert!(missing[0].to_string().contains("m::h (f.rs:1)"));
    }
}
