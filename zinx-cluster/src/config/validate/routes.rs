//! `route.json`: the msg_ids of each group.

use std::collections::HashMap;

use serde_json::Value;

use super::{
    describe, error, first_seen, int_field, name_suffix, optional_bool_field, parse_json,
    string_field, take,
};
use crate::config::{ConfigError, RouteConfig};
use crate::frame::ZINX_HEARTBEAT_MSG_ID;
use crate::settings::{ErrorReply, Settings};
use zinx_cluster_client::wire::is_control;

use super::dinx::Dinx;

/// One entry of `route.json`, with whatever of it is valid.
pub(super) struct RawRoute {
    pub(super) group: String,
    /// Position in its group, from 1: names the entry when its MsgID is bad.
    pub(super) index: usize,
    pub(super) msg_id: Option<u32>,
    pub(super) name: Option<String>,
    /// `Internal`, `false` when absent.
    pub(super) internal: Option<bool>,
}

impl RawRoute {
    /// `group "im", route MsgID 3 ("send")`, or `route #2` when the MsgID is
    /// unusable.
    pub(super) fn label(&self) -> String {
        let name = name_suffix(self.name.as_deref());
        match self.msg_id {
            Some(id) => format!("group {:?}, route MsgID {id}{name}", self.group),
            None => format!("group {:?}, route #{}{name}", self.group, self.index),
        }
    }

    pub(super) fn build(self) -> Option<RouteConfig> {
        Some(RouteConfig {
            msg_id: self.msg_id?,
            name: self.name?,
            internal: self.internal?,
            group: self.group,
        })
    }
}

/// What the route checks may rely on from the other files (`None`: that
/// file could not be read, skip the checks that need it).
pub(super) struct Known<'a> {
    pub(super) dinx_file: &'a str,
    pub(super) dinx: Option<&'a Dinx>,
    pub(super) settings: Option<&'a Settings>,
}

pub(super) fn parse_routes(
    file: &str,
    text: &str,
    known: &Known<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<Vec<RawRoute>> {
    let value = parse_json(file, text, errors)?;
    let Value::Object(groups) = value else {
        errors.push(error(
            file,
            None,
            format!(
                "expected an object of group name -> list of routes, found {}",
                describe(&value)
            ),
        ));
        return None;
    };

    let mut routes: Vec<RawRoute> = Vec::new();
    // Index into routes of the first route with a MsgID.
    let mut by_msg_id: HashMap<u32, usize> = HashMap::new();
    for (group, list) in &groups {
        let group_entry = Some(format!("group {group:?}"));
        if group.is_empty() {
            errors.push(error(file, group_entry.clone(), "empty group name"));
        }
        if let Some(dinx) = known.dinx {
            if !dinx.has_group(group) {
                errors.push(error(
                    file,
                    group_entry.clone(),
                    format!(
                        "no such group in {}: no node could serve its routes",
                        known.dinx_file
                    ),
                ));
            }
        }
        let Value::Array(list) = list else {
            errors.push(error(
                file,
                group_entry,
                format!("expected a list of routes, found {}", describe(list)),
            ));
            continue;
        };
        if list.is_empty() {
            errors.push(error(file, group_entry, "no routes (the list is empty)"));
        }
        for (i, value) in list.iter().enumerate() {
            let route = parse_route(file, group, i + 1, value, known.settings, errors);
            if let Some(msg_id) = route.msg_id {
                if let Some(first) = first_seen(&mut by_msg_id, msg_id, routes.len()) {
                    let also = routes[first].label();
                    let message = format!("duplicate MsgID {msg_id} (also {also})");
                    errors.push(error(file, Some(route.label()), message));
                }
            }
            routes.push(route);
        }
    }
    Some(routes)
}

pub(super) fn parse_route(
    file: &str,
    group: &str,
    index: usize,
    value: &Value,
    settings: Option<&Settings>,
    errors: &mut Vec<ConfigError>,
) -> RawRoute {
    let mut route = RawRoute {
        group: group.to_string(),
        index,
        msg_id: None,
        name: None,
        internal: None,
    };
    let Value::Object(obj) = value else {
        errors.push(error(
            file,
            Some(route.label()),
            format!(
                r#"expected an object like {{"MsgID": 3, "Name": "send"}}, found {}"#,
                describe(value)
            ),
        ));
        return route;
    };

    let mut problems = Vec::new();
    let msg_id = int_field(obj, "MsgID").and_then(|id| {
        u32::try_from(id).map_err(|_| format!("MsgID {id} is out of range 0..={}", u32::MAX))
    });
    take(msg_id, &mut route.msg_id, &mut problems);
    // Name is only a label: it must be there (a misspelt key is a likely
    // mistake) but may be empty.
    take(string_field(obj, "Name"), &mut route.name, &mut problems);
    take(
        optional_bool_field(obj, "Internal"),
        &mut route.internal,
        &mut problems,
    );

    if route.msg_id == Some(ZINX_HEARTBEAT_MSG_ID) {
        problems.push(format!(
            "MsgID {ZINX_HEARTBEAT_MSG_ID} is the zinx heartbeat: zinx clients send it to keep \
             their connection alive and gates never route it"
        ));
    } else if let Some(id) = route.msg_id.filter(|id| is_control(*id)) {
        problems.push(format!(
            "MsgID {id} is reserved for session resume's control frames (99990-99998): \
             gates never route it"
        ));
    }
    if let (Some(msg_id), Some(settings)) = (route.msg_id, settings) {
        if settings.error_reply == ErrorReply::Frame && msg_id == settings.error_msg_id {
            problems.push(format!(
                "MsgID {msg_id} is reserved for error frames (settings: error_msg_id {msg_id}, \
                 error_reply \"frame\"); use another MsgID or change error_msg_id"
            ));
        }
    }

    let label = route.label();
    errors.extend(
        problems
            .into_iter()
            .map(|message| error(file, Some(label.clone()), message)),
    );
    route
}
