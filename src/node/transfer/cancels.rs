//! Cancels told over the control connection. A cancel is said on the transfer's own connection
//! first; when that connection is gone (the link was cut, the peer's node was down, the
//! transfer was paused), the peer would keep its partial data for a resume that never comes, or
//! offer a cancelled send again. So a cancel made here is also told with `ControlMsg::Cancelled`
//! now and once more when the peer's control connection comes back (a message queued on a
//! connection that was already dead is lost with it). Telling it twice is harmless: a peer with
//! no such transfer (running or paused) ignores it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Direction, resume};
use crate::identity::PeerId;
use crate::net::wire::ControlMsg;
use crate::node::Shared;
use crate::node::lock;
use crate::reason::Reason;

/// Cancels kept for peers that may not have heard them (the oldest go first).
const KEPT: usize = 256;
/// How long a cancel waits for its peer to come back.
const KEPT_FOR: Duration = Duration::from_secs(15 * 60);

/// An end made here: (peer, transfer id on the wire, why if not a cancel, when).
type End = (PeerId, String, Option<Reason>, Instant);

/// Ends made here that a peer may not have heard yet.
#[derive(Default)]
pub(crate) struct Untold {
    list: Mutex<VecDeque<End>>,
}

impl Untold {
    fn add(&self, peer: &PeerId, transfer: &str, code: Option<Reason>) {
        let mut list = lock(&self.list);
        list.retain(|(p, t, _, at)| !(p == peer && t == transfer) && at.elapsed() < KEPT_FOR);
        if list.len() >= KEPT {
            list.pop_front();
        }
        list.push_back((peer.clone(), transfer.to_string(), code, Instant::now()));
    }

    /// The ends `peer` is still to hear (taken: each is told once more, on the connection
    /// that just came up).
    fn take(&self, peer: &PeerId) -> Vec<(String, Option<Reason>)> {
        let mut list = lock(&self.list);
        let mut out = Vec::new();
        list.retain(|(p, t, code, at)| {
            if at.elapsed() >= KEPT_FOR {
                return false;
            }
            if p == peer {
                out.push((t.clone(), *code));
                return false;
            }
            true
        });
        out
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.list).len()
    }
}

/// We cancelled `transfer` with `peer` (`code` None), or ended it for good for `code`: tell it
/// now over its control connection (if any), and again when it next connects.
pub(crate) fn tell(shared: &Shared, peer: &PeerId, transfer: &str, code: Option<Reason>) {
    shared.transfers.cancels.add(peer, transfer, code);
    if let Some(tx) = shared.peers().sender(peer) {
        let _ = tx.try_send(ControlMsg::Cancelled {
            transfer: transfer.to_string(),
            code,
        });
    }
}

/// `peer`'s control connection is up: tell it the ends it may have missed.
pub(crate) fn connection_up(shared: &Shared, peer: &PeerId, tx: &tokio::sync::mpsc::Sender<ControlMsg>) {
    for (transfer, code) in shared.transfers.cancels.take(peer) {
        let _ = tx.try_send(ControlMsg::Cancelled { transfer, code });
    }
}

/// `from` says it cancelled `transfer` (or ended it for good for `code`): a transfer with it
/// under that id ends here too, and its partial data goes (running: through its own end, as a
/// cancel by the peer; paused, or a receive that failed keeping its partial data: at once).
/// Only the peer a transfer is with can end it this way.
pub(crate) fn heard(shared: &Arc<Shared>, from: &PeerId, transfer: &str, code: Option<Reason>) {
    let named = |id: &str, group: Option<&str>| id == transfer || group == Some(transfer);
    let running = {
        let active = lock(&shared.transfers.active);
        let mut any = false;
        for a in active
            .values()
            .filter(|a| a.view.peer == *from && named(&a.view.transfer, a.view.group.as_deref()))
        {
            a.peer_cancel.cancel();
            any = true;
        }
        any
    };
    if running {
        tracing::info!("transfer {transfer}: {} cancelled it", from.short());
        return;
    }
    let paused: Vec<String> = lock(&shared.transfers.recent)
        .iter()
        .filter(|v| resume::kept(v) && v.peer == *from && named(&v.transfer, v.group.as_deref()))
        .map(|v| v.transfer.clone())
        .collect();
    for id in paused {
        tracing::info!("transfer {id}: {} cancelled it after it stopped here", from.short());
        resume::cancel_by_peer(shared, &id, code);
    }
}

/// What a cancel from the peer is coded, on our side of a transfer going `direction`.
pub(crate) fn peer_code(direction: Direction) -> crate::reason::Reason {
    super::stream::cancel_code(direction.other())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_is_told_once_more_per_peer_and_the_list_stays_bounded() {
        let untold = Untold::default();
        let (ada, bob) = (
            PeerId::parse("aaaaaaaaaaaaaaaa").unwrap(),
            PeerId::parse("bbbbbbbbbbbbbbbb").unwrap(),
        );
        untold.add(&ada, "t1", None);
        untold.add(&ada, "t1", None);
        untold.add(&bob, "t2", Some(Reason::SourceChanged));
        assert_eq!(untold.take(&ada), vec![("t1".to_string(), None)]);
        assert!(untold.take(&ada).is_empty());
        assert_eq!(untold.len(), 1);
        for k in 0..KEPT + 10 {
            untold.add(&ada, &format!("{k:016x}"), None);
        }
        assert_eq!(untold.len(), KEPT);
        assert!(untold.take(&bob).is_empty(), "the oldest went first");
    }
}
