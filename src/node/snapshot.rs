//! What a face draws from, in one call (`NodeHandle::snapshot`, in `handle.rs`); the event stream
//! keeps it current.

use serde::{Deserialize, Serialize};

use super::{ChatEntry, OfferView, PeerInfo, TransferView};
use crate::identity::PeerId;

/// This node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub id: PeerId,
    pub fingerprint: String,
    pub nick: String,
    pub host: String,
    /// Where it accepts peers (`None` for a one-shot command's own node).
    pub listen: Option<String>,
    pub download_dir: String,
    pub shares: Vec<String>,
    pub mdns: bool,
}

/// A conversation: `#all` or one peer's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    /// A peer id, or `#all`.
    pub conversation: String,
    pub last: Option<ChatEntry>,
    pub unread: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last event this snapshot reflects: apply the events after it.
    pub seq: u64,
    pub me: Me,
    /// Online first; discovered-but-not-connected and offline peers too.
    pub peers: Vec<PeerInfo>,
    /// `#all` first, then the others, the most recent first.
    pub conversations: Vec<ConversationView>,
    /// Running, then recently finished.
    pub transfers: Vec<TransferView>,
    /// Waiting for an answer, oldest first (names: the first few; the rest by `offer_items`).
    pub offers: Vec<OfferView>,
    /// LocalSend devices heard of (none when LocalSend is off).
    #[serde(default)]
    pub localsend: Vec<super::localsend::Device>,
    /// Our deposits as recorded (holders and whether each copy was verified), oldest first.
    #[serde(default)]
    pub deposits: Vec<super::locker::DepositView>,
}
