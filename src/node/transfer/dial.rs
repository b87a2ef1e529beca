//! Reaching a peer for a transfer connection of its own.

use std::sync::Arc;
use std::time::Duration;

use super::error::TransferError;
use crate::identity::PeerId;
use crate::net::secure::SecureConn;
use crate::net::wire::Purpose;
use crate::node::{NodeHandle, Shared};

/// How long a transfer waits for an offline peer to come online before dialling what it knows.
pub(super) const PEER_ONLINE_WAIT: Duration = Duration::from_secs(5);

pub(super) fn peer_nick(shared: &Shared, peer: &PeerId) -> String {
    shared.peers().get(peer).map(|p| p.nick.clone()).unwrap_or_default()
}

/// Open a transfer connection of its own to `peer`.
pub(super) async fn connect(shared: &Arc<Shared>, peer: &PeerId) -> Result<SecureConn, TransferError> {
    // A peer known from an earlier run may be listening somewhere else now: give its control
    // connection a moment to come up, which brings its current address.
    let node = NodeHandle { shared: shared.clone() };
    if !node.is_online(peer) {
        node.wait_online(peer, PEER_ONLINE_WAIT).await;
    }
    dial_any(shared, peer, Vec::new()).await
}

/// A transfer connection to `peer` at the first of `addrs`, then of the addresses we know for
/// it, that answers with its key.
pub(crate) async fn dial_any(
    shared: &Arc<Shared>,
    peer: &PeerId,
    mut addrs: Vec<std::net::SocketAddr>,
) -> Result<SecureConn, TransferError> {
    for a in shared.peers().get(peer).map(|p| p.dial_addrs.clone()).unwrap_or_default() {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    let mut last = format!("no known address for peer {}", peer.short());
    for addr in addrs {
        match crate::node::conn::dial(shared, addr, Some(peer), Purpose::Transfer).await {
            Ok(conn) => return Ok(conn),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(TransferError::Unreachable(last))
}
