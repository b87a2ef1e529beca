//! Peer exchange: connected peers tell each other whom they are connected to, so one path into
//! the lab (one mDNS answer, one `--peer`) leads to all of it, also across subnets where
//! multicast does not pass and past mDNS packets that were lost.
//!
//! Each side sends its list once, when a control connection comes up. That is enough for the
//! whole lab to converge: a node that learns of a peer dials it, gets that peer's list in turn,
//! and so on, so a node ends up connected to everyone reachable from its first peer; and every
//! node it dials learns of it by the connection itself.
//!
//! What a peer tells us is a claim, never a fact: we dial the address expecting the id, only the
//! key that answers makes it a peer, and a hinted peer is neither listed nor stored before that.
//! A hostile list costs bounded work: at most [`MAX_CANDIDATES`] unconfirmed peers are held, each
//! dialled for [`HINT_TTL`] at most after its last hint, at most [`MAX_HINTED_DIALS`] at once.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::{Shared, conn};
use crate::identity::PeerId;
use crate::limits::{HINT_TTL, MAX_CANDIDATES, MIN_DISCOVERED_PORT};
use crate::net::wire::{ControlMsg, MAX_HINT_ADDRS, MAX_PEER_HINTS, PeerHint};

/// The lists to send to a peer that just connected from `to_addr`: every other peer we are
/// connected to that accepts connections, with where we reach it.
pub(crate) fn lists_for(shared: &Shared, to: &PeerId, to_addr: SocketAddr) -> Vec<ControlMsg> {
    let hints: Vec<PeerHint> = {
        let table = shared.peers();
        table
            .ids()
            .filter(|id| *id != to)
            .filter_map(|id| {
                let peer = table.get(id)?;
                if !peer.conn.as_ref().is_some_and(|c| c.listens) {
                    return None;
                }
                let addrs: Vec<String> = peer
                    .dial_addrs
                    .iter()
                    .filter(|a| usable(**a, to_addr).is_some())
                    .take(MAX_HINT_ADDRS)
                    .map(|a| a.to_string())
                    .collect();
                (!addrs.is_empty()).then(|| PeerHint { id: id.to_string(), addrs })
            })
            .collect()
    };
    hints
        .chunks(MAX_PEER_HINTS)
        .map(|c| ControlMsg::Peers { peers: c.to_vec() })
        .collect()
}

/// Take in a list from `from` (connected from `from_addr`): dial the peers we don't know yet.
pub(crate) fn receive(shared: &Arc<Shared>, from: &PeerId, from_addr: SocketAddr, hints: Vec<PeerHint>) {
    // A node that doesn't listen is a one-shot command: it came for one peer, not the lab.
    if shared.listen_addr.is_none() {
        return;
    }
    let me = shared.identity.id().clone();
    let until = Instant::now() + HINT_TTL;
    let mut start = Vec::new();
    let mut ignored = 0usize;
    {
        let mut table = shared.peers();
        let now = Instant::now();
        for hint in hints {
            let Some(id) = PeerId::parse(&hint.id) else {
                ignored += 1;
                continue;
            };
            if id == me || &id == from {
                continue;
            }
            let addrs: Vec<SocketAddr> = hint
                .addrs
                .iter()
                .filter_map(|a| a.parse().ok())
                .filter_map(|a| usable(a, from_addr))
                .collect();
            if addrs.is_empty() {
                ignored += 1;
                continue;
            }
            // The peer that sent the list is the source of all its names.
            if !table.admit_claim(&id, from_addr.ip(), MAX_CANDIDATES, now) {
                ignored += 1;
                continue;
            }
            let peer = table.entry(&id);
            if peer.conn.is_some() {
                continue;
            }
            // Second-hand addresses go after the ones we found ourselves.
            for a in addrs {
                if !peer.dial_addrs.contains(&a) {
                    peer.dial_addrs.push(a);
                }
            }
            peer.dial_addrs.truncate(8);
            peer.hinted_until = Some(until);
            if !std::mem::replace(&mut peer.dialer_running, true) {
                start.push(id);
            }
        }
    }
    if ignored > 0 {
        tracing::debug!("{} listed {ignored} peers we cannot use or hold", from.short());
    }
    for id in start {
        conn::spawn_dialler(shared, id);
    }
}

/// Whether an address a peer gave us (it reached us from `from`) is worth dialling, and as what:
/// an IPv6 link-local address is only meaningful on the link the list came over, so it takes that
/// link's scope. Loopback only among nodes of one machine.
/// Nor is a port below [`MIN_DISCOVERED_PORT`]: lanyard does not listen there, someone's ssh does.
fn usable(addr: SocketAddr, from: SocketAddr) -> Option<SocketAddr> {
    if addr.port() < MIN_DISCOVERED_PORT {
        return None;
    }
    match (addr, from) {
        (SocketAddr::V4(a), _) => {
            let ip = a.ip();
            let bad = ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast();
            let foreign_loopback = ip.is_loopback() && !from.ip().is_loopback();
            (!bad && !foreign_loopback).then_some(addr)
        }
        (SocketAddr::V6(mut a), _) => {
            let ip = *a.ip();
            if ip.is_unspecified() || ip.is_multicast() || (ip.is_loopback() && !from.ip().is_loopback()) {
                return None;
            }
            if ip.is_unicast_link_local() {
                match from {
                    SocketAddr::V6(f) if f.ip().is_unicast_link_local() && f.scope_id() != 0 => a.set_scope_id(f.scope_id()),
                    _ => return None,
                }
            } else if let Some(v4) = ip.to_ipv4_mapped() {
                return usable(SocketAddr::new(IpAddr::V4(v4), a.port()), from);
            }
            Some(SocketAddr::V6(a))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_a_peer_may_name() {
        let lan = a("10.99.0.12:40000");
        assert_eq!(usable(a("10.99.0.13:7717"), lan), Some(a("10.99.0.13:7717")));
        assert_eq!(
            usable(a("192.168.7.4:7717"), lan),
            Some(a("192.168.7.4:7717")),
            "another subnet is fine"
        );
        assert_eq!(usable(a("127.0.0.1:7717"), lan), None, "its loopback is not ours");
        assert_eq!(usable(a("127.0.0.1:7717"), a("127.0.0.1:5000")), Some(a("127.0.0.1:7717")));
        assert_eq!(usable(a("0.0.0.0:7717"), lan), None);
        assert_eq!(usable(a("224.0.0.251:5353"), lan), None);
        assert_eq!(usable(a("255.255.255.255:7717"), lan), None);
        assert_eq!(usable(a("10.99.0.13:0"), lan), None);
        assert_eq!(usable(a("10.99.0.13:22"), lan), None, "not lanyard's: someone's ssh");
        assert_eq!(usable(a("10.99.0.13:1024"), lan), Some(a("10.99.0.13:1024")));
        assert_eq!(usable(a("[::ffff:127.0.0.1]:7717"), lan), None, "loopback in disguise");
        assert_eq!(usable(a("[fd00::5]:7717"), lan), Some(a("[fd00::5]:7717")));
    }

    #[test]
    fn a_link_local_address_takes_the_scope_of_the_link_it_came_over() {
        assert_eq!(usable(a("[fe80::1%7]:7717"), a("10.99.0.12:4000")), None);
        assert_eq!(usable(a("[fe80::1]:7717"), a("[fe80::2%3]:4000")), Some(a("[fe80::1%3]:7717")));
        assert_eq!(usable(a("[fe80::1%9]:7717"), a("[fe80::2%3]:4000")), Some(a("[fe80::1%3]:7717")));
    }
}
