//! One call that gives a face everything it needs to draw; the event stream keeps it current.

use serde::{Deserialize, Serialize};

use super::{ChatEntry, NodeHandle, OfferView, PeerInfo, ROOM, TransferView};
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
}

impl NodeHandle {
    /// Everything a face draws, as of event `seq`.
    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        // Read before the state: an event that lands meanwhile is both in the state and applied
        // again by the face, which is harmless (events carry state); the reverse would lose it.
        let seq = self.shared.events.seq();
        let config = &self.shared.config;
        let me = Me {
            id: self.id().clone(),
            fingerprint: self.fingerprint(),
            nick: self.nick(),
            host: self.shared.host.clone(),
            listen: self.listen_addr().map(|a| a.to_string()),
            download_dir: config.download_dir.display().to_string(),
            shares: config.shares.iter().map(|s| s.display().to_string()).collect(),
            mdns: config.mdns,
        };
        let mut conversations: Vec<ConversationView> = self
            .conversations()
            .await?
            .into_iter()
            .map(|(last, unread)| ConversationView {
                conversation: last.conversation.clone(),
                last: Some(last),
                unread,
            })
            .collect();
        conversations.sort_by(|a, b| {
            let when = |c: &ConversationView| c.last.as_ref().map_or(0, |l| l.received_ms);
            (b.conversation == ROOM)
                .cmp(&(a.conversation == ROOM))
                .then_with(|| when(b).cmp(&when(a)))
        });
        if conversations.first().is_none_or(|c| c.conversation != ROOM) {
            conversations.insert(
                0,
                ConversationView {
                    conversation: ROOM.to_string(),
                    last: None,
                    unread: 0,
                },
            );
        }
        Ok(Snapshot {
            seq,
            me,
            peers: self.peers(),
            conversations,
            transfers: self.transfers(),
            offers: self.offers(),
        })
    }
}
