//! Offers waiting for a person: who offers what (the manifest, spooled, paged out to faces), and
//! the one channel that carries the answer back to the receiving transfer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::manifest::Manifest;
use super::wire::Item;
use crate::identity::PeerId;
use crate::node::lock;

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
    manifest: Arc<Manifest>,
    answer: oneshot::Sender<bool>,
}

/// The offers waiting for an answer.
#[derive(Default)]
pub(crate) struct Offers {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Offers {
    pub fn insert(&self, view: OfferView, manifest: Arc<Manifest>, answer: oneshot::Sender<bool>) {
        lock(&self.pending).insert(view.transfer.clone(), Pending { view, manifest, answer });
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
    pub fn manifest(&self, id: &str) -> Option<Arc<Manifest>> {
        lock(&self.pending).get(id).map(|p| p.manifest.clone())
    }

    /// The full id of the waiting offer `spec` names (an id or a prefix of at least 4).
    pub fn find(&self, spec: &str) -> Result<String, String> {
        super::find_id(lock(&self.pending).keys(), spec, "offer", "is waiting (see `lanyard offers`)")
    }
}
