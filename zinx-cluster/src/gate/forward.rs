//! Forwarding a client message from a gate to a live node of the owning
//! group: tracked per session (so a lost link answers it `node_lost`, and
//! shutdown waits for it), retried once on a link that
//! failed at the pick.

use std::sync::Arc;

use tracing::{debug, warn};

use super::Gate;
use crate::envelope::{Envelope, Kind};
use crate::error::ErrorCode;
use crate::frame::Frame;
use crate::metrics::Outcome;
use crate::peer::LinkError;
use crate::session::Session;
use crate::trace::TraceContext;

/// Forwards a client message to a live node of group `g` (with the gate's
/// trace context, when tracing). A pick that lands on a link failing at
/// that very moment (its writer died, its reader has not removed it yet)
/// tries the next live node once, so a dying node does not turn into
/// `no_live_node` while another lives. Returns the outcome for the metrics
/// (the client has been answered when it is an error).
pub(super) fn forward(
    gate: &Arc<Gate>,
    session: &Arc<Session>,
    g: usize,
    frame: Frame,
    trace: Option<TraceContext>,
) -> Outcome {
    let node = gate.node();
    let group = node.routing().group_at(g);
    let m = node.metrics();
    let msg_id = frame.msg_id;
    // One forward in FORWARD_SAMPLE is timed (with metrics on): a clock
    // read per message is a cost the hot path does not pay.
    let timed = (node.labelled().enabled() && crate::metrics::sample_forward()).then_some(g);
    let mut env = Envelope::new(Kind::Forward);
    env.msg_id = msg_id;
    env.node = node.id();
    env.session = session.id.0;
    env.uid = session.uid_wire();
    env.payload = frame.data;
    env.trace = trace;
    let mut failed = None;
    let (code, why, outcome) = loop {
        let peer = node
            .choose(group, session.route_key(), failed)
            .and_then(|target| node.links().get(target));
        let Some(peer) = peer else {
            m.no_live_node.add(1);
            break (
                ErrorCode::NoLiveNode,
                format!("no live node in group {:?}", group.name),
                Outcome::NoLiveNode,
            );
        };
        // Tracked and counted before the send: the answer may come back
        // before `send` returns.
        let number = session.track_forward(peer.id, msg_id, timed);
        env.request = number;
        let Err((e, back)) = peer.send_or_return(env) else {
            m.forwards.add(1);
            if session.mark_served(peer.id) {
                debug!(node = peer.id, "session now served by node");
            }
            return Outcome::Forwarded;
        };
        if !session.untrack_forward(number) {
            // The link died between the pick and the send, and its
            // `node_lost` answer went out already.
            return Outcome::NoLiveNode;
        }
        match e {
            LinkError::Down if failed.is_none() => {
                m.forward_retries.add(1);
                debug!(session = %session.id, msg_id, node = peer.id, "link failed at the pick: trying another node");
                failed = Some(peer.id);
                env = back;
            }
            LinkError::Down => {
                m.no_live_node.add(1);
                break (
                    ErrorCode::NoLiveNode,
                    format!(
                        "node {} of group {:?} is unreachable",
                        peer.name, group.name
                    ),
                    Outcome::NoLiveNode,
                );
            }
            LinkError::Full => {
                m.link_queue_full.add(1);
                break (
                    ErrorCode::Overloaded,
                    format!("link to node {} is congested", peer.name),
                    Outcome::Overloaded,
                );
            }
        }
    };
    warn!(session = %session.id, msg_id, "{why}");
    gate.answer_error(session.id, msg_id, code, &why);
    outcome
}
