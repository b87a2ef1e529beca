//! The node's transfer bookkeeping ([`Registry`]): running and recent transfers, waiting
//! offers, what received manifests cost, partial files in use, and the vouches and verdicts of
//! relayed sends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use tokio_util::sync::CancellationToken;

use super::error::Direction;
use super::hooks::Faults;
use super::progress::TransferView;
use super::{budget, cancels, offers, resume, space, wire};
use crate::identity::PeerId;
use crate::node::lock;

pub(super) struct Active {
    pub(super) cancel: CancellationToken,
    /// Raised when another peer of a relay chain re-attaches us to this transfer.
    pub(super) supersede: CancellationToken,
    /// Raised when the transfer's context is gone (its partial files released).
    pub(super) gone: CancellationToken,
    /// Raised when the peer says, over its control connection, that it cancelled this
    /// transfer (a cancel it could not tell over the transfer's own connection).
    pub(super) peer_cancel: CancellationToken,
    /// The context this entry belongs to (see `Ctx::serial`).
    pub(super) serial: u64,
    pub(super) view: TransferView,
}

/// The node's transfer bookkeeping: running transfers (for cancel and snapshots), recently
/// finished ones, offers awaiting an answer, partial files in use.
#[derive(Default)]
pub(crate) struct Registry {
    pub(super) active: Mutex<HashMap<String, Active>>,
    pub(super) recent: Mutex<VecDeque<TransferView>>,
    pub(super) offers: offers::Offers,
    /// What received manifests cost, against the node's budget for them.
    pub(super) budget: budget::Budget,
    pub(super) answerers: AtomicUsize,
    pub(super) partials: Mutex<HashSet<String>>,
    /// Held while placing a file by rename (where hard links are unavailable).
    pub(super) placing: Mutex<()>,
    /// What tests make the next data stream on this node do.
    pub(super) faults: Faults,
    /// Disk space promised to running receives.
    pub(super) space: space::Space,
    /// Offers of relayed transfers taken lately, as (transfer id, digest of the offer): the
    /// same offer again (re-attached by another peer of the chain) is taken without asking.
    pub(super) accepted: Mutex<VecDeque<(String, [u8; 32])>>,
    /// Vouches from senders of relayed transfers, as (sender, transfer id, digest of its offer).
    pub(super) vouches: Mutex<VecDeque<(PeerId, String, [u8; 32])>>,
    pub(super) vouched: tokio::sync::Notify,
    /// Relayed sends this node is making now, by transfer id: what they offer, to whom, and
    /// where their recipients' own verdicts go.
    pub(crate) sending: Mutex<HashMap<String, RelayedSend>>,
    /// Paused sends waiting for their peer, by transfer id.
    pub(super) paused: Mutex<HashMap<String, resume::Paused>>,
    /// Cancels made here that a peer may not have heard yet, told again when it is back.
    pub(crate) cancels: cancels::Untold,
}

/// A relayed send this node started, as the control connections see it: a recipient that lost
/// our vouch asks again (and only its recipients get one), and each recipient's verdict comes
/// back over its own connection.
pub(crate) struct RelayedSend {
    pub digest: [u8; 32],
    pub recipients: Vec<PeerId>,
    pub verdicts: tokio::sync::mpsc::Sender<(PeerId, wire::Report)>,
}

/// Relayed offers remembered for a re-attach.
pub(super) const ACCEPTED_KEPT: usize = 256;

impl Registry {
    /// Running transfers per peer (for the peers list's busy mark).
    pub fn running_per_peer(&self) -> HashMap<PeerId, u32> {
        let mut out = HashMap::new();
        for a in lock(&self.active).values() {
            *out.entry(a.view.peer.clone()).or_default() += 1;
        }
        out
    }

    pub(super) fn remember_accepted(&self, id: &str, digest: [u8; 32]) {
        let mut a = lock(&self.accepted);
        if a.iter().any(|(i, d)| i == id && *d == digest) {
            return;
        }
        if a.len() >= ACCEPTED_KEPT {
            a.pop_front();
        }
        a.push_back((id.to_string(), digest));
    }

    /// A peer vouches for the offer of a relayed transfer it started.
    pub(crate) fn vouch(&self, from: &PeerId, transfer: String, digest: &[u8]) {
        let Ok(digest) = <[u8; 32]>::try_from(digest) else {
            return;
        };
        {
            let mut v = lock(&self.vouches);
            if v.len() >= crate::limits::VOUCHES_KEPT {
                v.pop_front();
            }
            v.push_back((from.clone(), transfer, digest));
        }
        self.vouched.notify_waiters();
    }

    /// The digest to vouch for to `asker`: only to a recipient of a relayed send this node is
    /// making now (anyone else asking is a relay trying to bring in a peer of its own).
    pub(crate) fn vouch_for(&self, transfer: &str, asker: &PeerId) -> Option<[u8; 32]> {
        lock(&self.sending)
            .get(transfer)
            .filter(|s| s.recipients.contains(asker))
            .map(|s| s.digest)
    }

    /// A recipient's own word on how our relayed send `transfer` ended with it. Counted only
    /// from a recipient of that send, for the offer we made; one that floods is not heard.
    pub(crate) fn verdict(&self, from: &PeerId, transfer: &str, digest: &[u8], report: wire::Report) {
        let sending = lock(&self.sending);
        let Some(s) = sending.get(transfer) else {
            return;
        };
        if !s.recipients.contains(from) || s.digest.as_slice() != digest {
            tracing::info!(
                "transfer {transfer}: ignored a verdict from {}, not a recipient of this offer",
                from.short()
            );
            return;
        }
        let _ = s.verdicts.try_send((from.clone(), wire::bounded_report(report)));
    }

    /// What `from` vouched for as transfer `transfer`, waiting for it a little (and asking
    /// `from` again when it is not here yet: a vouch can be lost with a replaced connection).
    pub(super) async fn vouch_of(
        &self,
        from: &PeerId,
        transfer: &str,
        ask: Option<tokio::sync::mpsc::Sender<crate::net::wire::ControlMsg>>,
    ) -> Option<[u8; 32]> {
        let find = || {
            lock(&self.vouches)
                .iter()
                .rev()
                .find(|(f, t, _)| f == from && t == transfer)
                .map(|(_, _, d)| *d)
        };
        if find().is_none()
            && let Some(tx) = ask
        {
            let _ = tx.try_send(crate::net::wire::ControlMsg::VouchRequest {
                transfer: transfer.to_string(),
            });
        }
        let wait = async {
            loop {
                let notified = self.vouched.notified();
                if let Some(d) = find() {
                    return d;
                }
                notified.await;
            }
        };
        tokio::time::timeout(crate::limits::VOUCH_WAIT, wait).await.ok()
    }

    pub(super) fn was_accepted(&self, id: &str, digest: &[u8; 32]) -> bool {
        lock(&self.accepted).iter().any(|(i, d)| i == id && d == digest)
    }

    /// A receive of `id` already running is told to stop (a re-attach takes its place); the
    /// token is raised once it is gone.
    pub(super) fn supersede(&self, id: &str) -> Option<CancellationToken> {
        let active = lock(&self.active);
        let a = active.get(id).filter(|a| a.view.direction == Direction::Receive)?;
        a.supersede.cancel();
        Some(a.gone.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    pub(super) fn vouches_and_verdicts_are_for_the_recipients_of_that_offer_only() {
        let reg = Registry::default();
        let id = || Identity::generate().unwrap().id().clone();
        let (carol, mallory) = (id(), id());
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        lock(&reg.sending).insert(
            "00000000000000aa".into(),
            RelayedSend {
                digest: [7; 32],
                recipients: vec![carol.clone()],
                verdicts: tx,
            },
        );
        assert_eq!(reg.vouch_for("00000000000000aa", &carol), Some([7; 32]));
        assert_eq!(reg.vouch_for("00000000000000aa", &mallory), None);
        assert_eq!(reg.vouch_for("00000000000000bb", &carol), None);
        let verified = || wire::Report::Finished {
            files: 1,
            bytes: 45,
            failed: 0,
            reason: None,
            saved_as: Vec::new(),
        };
        // A non-recipient's word, and a recipient's on another offer, are not heard.
        reg.verdict(&mallory, "00000000000000aa", &[7; 32], verified());
        reg.verdict(&carol, "00000000000000aa", &[8; 32], verified());
        assert!(rx.try_recv().is_err());
        reg.verdict(&carol, "00000000000000aa", &[7; 32], verified());
        assert_eq!(rx.try_recv().ok(), Some((carol, verified())));
    }
}
