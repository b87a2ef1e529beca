//! Places that stick: the peers a node remembers between runs. At start it drops the ones nobody
//! would miss and dials the others at their remembered addresses at once, beside mDNS, so a
//! one-shot command reaches a known peer in the time of a handshake rather than of a discovery.
//! Faces forget and trust peers through `NodeHandle` (`handle.rs`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::peers::{FORGET_AFTER, PeerTable};
use super::{Event, Shared, conn, lock, off_thread};
use crate::identity::PeerId;
use crate::net::secure::HandshakeError;
use crate::net::wire::Purpose;
use crate::store::{Store, unix_now};

/// Remembered addresses dialled at once at start. Most answer or refuse within a round trip;
/// a stale one on a LAN can hold its slot for the whole connect timeout, so a long list must not
/// open hundreds of sockets together.
const MAX_REMEMBERED_DIALS: usize = 16;

/// Drop the stored peers nobody would miss (see `Store::prune_peers`), except those `keep`
/// names; returns who went.
fn prune(store: &Store, one_time_age: u64, keep: &dyn Fn(&PeerId) -> bool) -> Result<Vec<PeerId>> {
    let now = unix_now();
    let gone = store.prune_peers(now.saturating_sub(FORGET_AFTER), now.saturating_sub(one_time_age), keep)?;
    if !gone.is_empty() {
        tracing::info!(
            "forgot {} peers unseen for a while (untrusted, never chatted with; a key seen once goes after {one_time_age} s)",
            gone.len()
        );
    }
    Ok(gone)
}

/// Every `budget.prune_every`, forget the peers nobody would miss, in the store and the table:
/// throwaway keys must not pile up in a node that runs for weeks. One timer an hour.
pub(crate) async fn prune_periodically(shared: Arc<Shared>) {
    let budget = &shared.config.db_budget;
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(budget.prune_every) => {}
        }
        let online: HashSet<PeerId> = {
            let table = shared.peers();
            table.ids().filter(|id| table.is_online(id)).cloned().collect()
        };
        let s = shared.clone();
        let gone = off_thread(move || prune(&s.store, s.config.db_budget.one_time_peer_age, &|id| online.contains(id))).await;
        let gone = match gone {
            Ok(Ok(gone)) => gone,
            Ok(Err(e)) => {
                tracing::warn!("cannot forget old peers: {e}");
                continue;
            }
            Err(_) => return,
        };
        let mut table = shared.peers();
        let mut changed = false;
        for id in gone {
            // One that came back meanwhile, or that mDNS lists, stays in the table (and is stored
            // again at its next connection).
            if table
                .get(&id)
                .is_some_and(|p| p.conn.is_none() && !p.mdns_present && !p.dialer_running)
            {
                table.remove(&id);
                shared.emit(Event::PeerForgotten { id });
                changed = true;
            }
        }
        drop(table);
        if changed {
            shared.touch();
        }
        shared.tally.pruned();
    }
}

/// The peer table as the store remembers it, after dropping the peers nobody would miss.
pub(crate) fn load_table(store: &Store, me: &PeerId, one_time_age: u64) -> Result<PeerTable> {
    prune(store, one_time_age, &|_| false)?;
    let chatted: HashSet<PeerId> = store.peers_with_history()?.into_iter().collect();
    let seen_before = crate::store::unix_now().saturating_sub(crate::limits::STANDING_AFTER.as_secs());
    let earned: HashSet<PeerId> = store.peers_with_standing(me, seen_before)?.into_iter().collect();
    let mut table = PeerTable::default();
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
        e.earned = earned.contains(&p.id);
    }
    Ok(table)
}

/// Try each remembered peer once at its remembered address, the most recently seen first. Not a
/// redial target: a peer that is away stays for mDNS, `--peer` or its own dial to bring back.
pub(crate) async fn dial_remembered(shared: Arc<Shared>) {
    let mut targets: Vec<(u64, PeerId, SocketAddr)> = {
        let table = shared.peers();
        table
            .ids()
            .filter_map(|id| {
                let p = table.get(id)?;
                // Remembered: its key answered once. A claim that came in since the start (an
                // mDNS record, a list) is for the dial gate (`dials`), not dialled from here.
                if !p.is_proven() {
                    return None;
                }
                let addr = *p.dial_addrs.first()?;
                (!is_own_address(addr, shared.listen_addr)).then(|| (p.last_seen.unwrap_or(0), id.clone(), addr))
            })
            .collect()
    };
    targets.sort_by_key(|t| std::cmp::Reverse(t.0));
    let slots = Arc::new(Semaphore::new(MAX_REMEMBERED_DIALS));
    for (_, id, addr) in targets {
        let permit = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        shared.tracker.spawn("known::dial", dial_one(shared.clone(), id, addr, permit));
    }
}

async fn dial_one(shared: Arc<Shared>, id: PeerId, addr: SocketAddr, permit: OwnedSemaphorePermit) {
    // A `--peer` dialler for the same address is on it already; two connections from this side
    // at once may be settled differently by the two ends (see `dialing_remembered`).
    if lock(&shared.manual).keys().any(|t| t.parse() == Ok(addr)) {
        return;
    }
    {
        let mut table = shared.peers();
        // Connected by another path meanwhile, or forgotten: nothing to do.
        match table.get_mut(&id) {
            Some(p) if p.conn.is_none() => p.dialing_remembered = true,
            _ => return,
        }
    }
    // A one-shot command that is done must not wait out the connect timeout of a stale address.
    let dialled = tokio::select! {
        _ = shared.cancel.cancelled() => None,
        r = conn::dial(&shared, addr, Some(&id), Purpose::Control) => Some(r),
    };
    drop(permit);
    // Until the connection is registered (run_control clears the flag then), the mDNS dialler
    // of this peer keeps waiting: a second dial from this side would race this one.
    let settled = |shared: &Shared| {
        if let Some(p) = shared.peers().get_mut(&id) {
            p.dialing_remembered = false;
        }
        shared.touch();
    };
    let Some(dialled) = dialled else { return settled(&shared) };
    if let Err(HandshakeError::IdMismatch { .. }) = dialled {
        shared.tally.remembered_other_key();
    }
    shared.tally.remembered_dialled();
    if dialled.is_err() {
        settled(&shared);
    }
    match dialled {
        Ok(c) => {
            conn::run_control(shared.clone(), c).await;
            // Refused before registering, or over: either way nothing is in flight any more.
            settled(&shared);
        }
        // Addresses get reused (DHCP, another node on that port): not a spoofing alarm, just not
        // the peer we remember; the handshake stopped before we said who we are.
        Err(e @ HandshakeError::IdMismatch { .. }) => tracing::info!("remembered address {addr} of {}: {e}", id.short()),
        Err(e) => tracing::debug!("remembered address {addr} of {}: {e}", id.short()),
    }
}

/// Whether dialling `addr` would reach our own listener (by any address we can tell is ours
/// without asking the interfaces; the handshake refuses the rest, see `SelfConnection`).
fn is_own_address(addr: SocketAddr, listen: Option<SocketAddr>) -> bool {
    let Some(listen) = listen else { return false };
    addr.port() == listen.port() && (addr.ip() == listen.ip() || (addr.ip().is_loopback() && listen.ip().is_unspecified()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_listener_is_not_dialled() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(is_own_address(a("127.0.0.1:7717"), Some(a("0.0.0.0:7717"))));
        assert!(is_own_address(a("127.0.0.1:7717"), Some(a("127.0.0.1:7717"))));
        assert!(is_own_address(a("10.0.0.5:7717"), Some(a("10.0.0.5:7717"))));
        assert!(
            !is_own_address(a("10.0.0.5:7717"), Some(a("0.0.0.0:7717"))),
            "another lab machine on the default port"
        );
        assert!(!is_own_address(a("127.0.0.1:7718"), Some(a("0.0.0.0:7717"))));
        assert!(!is_own_address(a("127.0.0.1:7717"), None));
    }
}
