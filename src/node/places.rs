//! Places that stick: the peers a node remembers between runs. At start it drops the ones nobody
//! would miss. Faces forget and trust peers here.

use std::collections::HashSet;

use super::peers::{FORGET_AFTER, PeerTable};
use super::{Event, NodeHandle};
use crate::identity::PeerId;
use crate::store::{Store, unix_now};
use anyhow::{Result, bail};

/// The peer table as the store remembers it, after dropping the peers nobody would miss.
pub(crate) fn load_table(store: &Store, me: &PeerId) -> Result<PeerTable> {
    let pruned = store.prune_peers(unix_now().saturating_sub(FORGET_AFTER))?;
    if pruned > 0 {
        tracing::info!("forgot {pruned} peers unseen for a day (untrusted, never chatted with)");
    }
    let chatted: HashSet<PeerId> = store.peers_with_history()?.into_iter().collect();
    let mut table = PeerTable::new(me.clone());
    for p in store.peers()? {
        // Only a copied data dir holds its own record; dialling it would reach ourselves.
        if &p.id == me {
            continue;
        }
        let e = table.entry(&p.id);
        e.public_key = p.public_key;
        e.nick = p.nick;
        e.host = p.host;
        e.trusted = p.trusted;
        e.last_seen = p.last_seen;
        e.dial_addrs = p.listen_addr.and_then(|a| a.parse().ok()).into_iter().collect();
        e.chatted = chatted.contains(&p.id);
    }
    Ok(table)
}

impl NodeHandle {
    /// Drop a peer's record and pinned key from the store, and the peer from the table, now. A
    /// live connection to it is closed, so a forgotten peer that is still around is pinned
    /// afresh on its next connection. Its chat history stays. False if it was not known.
    pub fn forget(&self, id: &PeerId) -> Result<bool> {
        if id == self.id() {
            bail!("that is this node itself");
        }
        let stored = self.shared.store.forget_peer(id)?;
        let removed = self.shared.peers().remove(id);
        let known = stored || removed.is_some();
        if let Some(p) = removed {
            if let Some(c) = &p.conn {
                c.cancel.cancel();
            }
            // The connection's own end finds no entry and stays silent: say it here, once.
            if p.announced {
                self.shared.emit(Event::PeerDown {
                    id: id.clone(),
                    nick: p.nick,
                    reason: "forgotten".into(),
                });
            }
        }
        if known {
            self.shared.touch();
        }
        Ok(known)
    }

    /// Auto-accept files from a peer (or stop), kept in the store.
    pub fn set_trusted(&self, id: &PeerId, trusted: bool) -> Result<()> {
        if !self.shared.store.set_trusted(id, trusted)? {
            bail!("unknown peer {id}: it has never connected");
        }
        if let Some(p) = self.shared.peers().get_mut(id) {
            p.trusted = trusted;
        }
        self.shared.touch();
        Ok(())
    }
}
