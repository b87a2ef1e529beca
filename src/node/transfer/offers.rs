//! Offers waiting for a person: who offers what (the manifest, spooled, paged out to faces), and
//! the one channel that carries the answer back to the receiving transfer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::manifest::ReceivedManifest;
use super::wire::Item;
use crate::identity::PeerId;
use crate::limits::{MAX_NEWCOMER_WAITING_OFFERS, MAX_WAITING_OFFERS, MAX_WAITING_OFFERS_PER_ADDRESS, MAX_WAITING_OFFERS_PER_KEY};
use crate::node::lock;
use crate::node::slots::{Parked, Parking};

/// Why an offer may not wait; the text goes to the sender.
pub(crate) const TOO_MANY_WAITING: &str = "busy: too many offers waiting for an answer";
pub(crate) const TOO_MANY_OF_YOURS: &str = "too many of your offers are waiting";
pub(crate) const TOO_MANY_FROM_ADDRESS: &str = "too many offers from your address are waiting";

/// Names shown with an offer before a face asks for more.
pub const OFFER_NAMES: usize = 10;
/// Manifest entries one page may hold.
pub const MAX_OFFER_PAGE: usize = 1000;

/// An offer as a face draws it. Names are as received: neutralise before showing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferView {
    pub transfer: String,
    pub peer: PeerId,
    pub nick: String,
    pub host: String,
    /// For a relayed send: the nick of the recipient that passed the offer on (the sender
    /// vouched for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Files and folders offered.
    pub files: u32,
    pub bytes: u64,
    /// The first few paths offered ([`OFFER_NAMES`]); the rest through `offer_items`.
    pub names: Vec<String>,
    pub received_ms: u64,
    /// When it counts as rejected if nobody answers.
    pub expires_ms: u64,
}

/// One entry of an offer's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferItem {
    pub path: String,
    pub size: u64,
    pub dir: bool,
}

impl From<Item> for OfferItem {
    fn from(i: Item) -> OfferItem {
        OfferItem {
            path: i.path,
            size: i.size,
            dir: i.dir,
        }
    }
}

struct Pending {
    view: OfferView,
    manifest: Arc<ReceivedManifest>,
    answer: oneshot::Sender<bool>,
    /// Where it came from and whether from a newcomer, for the caps.
    from: Option<Parking>,
    /// Its connection's slot, set aside while it waits; counted again once it is taken out.
    _parked: Option<Parked>,
}

/// The offers waiting for an answer.
#[derive(Default)]
pub(crate) struct Offers {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Offers {
    /// Let the offer wait for a person, within the caps of waiting offers (in all, for
    /// newcomers, per key, per address); its connection's slot (`from`) is set aside meanwhile.
    pub fn insert(
        &self,
        view: OfferView,
        manifest: Arc<ReceivedManifest>,
        answer: oneshot::Sender<bool>,
        from: Option<Parking>,
    ) -> Result<(), &'static str> {
        let mut pending = lock(&self.pending);
        let count = |f: &dyn Fn(&Pending) -> bool| pending.values().filter(|p| f(p)).count();
        let newcomer = from.as_ref().is_some_and(|f| f.newcomer);
        let ip = from.as_ref().and_then(|f| f.ip);
        if count(&|p| p.view.peer == view.peer) >= MAX_WAITING_OFFERS_PER_KEY {
            return Err(TOO_MANY_OF_YOURS);
        }
        if ip.is_some() && count(&|p| p.from.as_ref().and_then(|f| f.ip) == ip) >= MAX_WAITING_OFFERS_PER_ADDRESS {
            return Err(TOO_MANY_FROM_ADDRESS);
        }
        if pending.len() >= MAX_WAITING_OFFERS
            || newcomer && count(&|p| p.from.as_ref().is_some_and(|f| f.newcomer)) >= MAX_NEWCOMER_WAITING_OFFERS
        {
            return Err(TOO_MANY_WAITING);
        }
        let parked = from.as_ref().map(Parking::park);
        pending.insert(
            view.transfer.clone(),
            Pending {
                view,
                manifest,
                answer,
                from,
                _parked: parked,
            },
        );
        Ok(())
    }

    /// Take the offer out to answer it: (who offered, where the answer goes).
    pub fn take(&self, id: &str) -> Option<(PeerId, oneshot::Sender<bool>)> {
        lock(&self.pending).remove(id).map(|p| (p.view.peer, p.answer))
    }

    /// Drop an offer that will not be answered; true if it was still waiting.
    pub fn remove(&self, id: &str) -> bool {
        lock(&self.pending).remove(id).is_some()
    }

    /// Oldest first.
    pub fn views(&self) -> Vec<OfferView> {
        let mut v: Vec<OfferView> = lock(&self.pending).values().map(|p| p.view.clone()).collect();
        v.sort_by(|a, b| a.received_ms.cmp(&b.received_ms).then_with(|| a.transfer.cmp(&b.transfer)));
        v
    }

    /// A waiting offer's manifest, to page through; `None` if no such offer waits.
    pub fn manifest(&self, id: &str) -> Option<Arc<ReceivedManifest>> {
        lock(&self.pending).get(id).map(|p| p.manifest.clone())
    }

    /// The full id of the waiting offer `spec` names (an id or a prefix of at least 4).
    pub fn find(&self, spec: &str) -> Result<String, crate::node::peers::FindError> {
        super::ids::find_id(lock(&self.pending).keys(), spec, "offer", "is waiting (see `lanyard offers`)")
    }
}
