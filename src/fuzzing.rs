//! Doors for the fuzz targets (`fuzz/`) and the property tests (`tests/props.rs`) into checks
//! that are otherwise private to the crate. Thin wrappers with no logic of their own, so what is
//! fuzzed is exactly what runs. Not an API: hidden from the docs, free to change.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::identity::Identity;
use crate::net::secure::{self, HandshakeError, Remote};
use crate::net::wire::{Hello, PREAMBLE_LEN, Purpose};
use crate::node::transfer::wire::Item;
use crate::node::transfer::{manifest, place};

/// The hidden folder of partial files, which no offered path may start with.
pub const PARTIAL_DIR: &str = place::PARTIAL_DIR;

/// The check every received manifest passes before anything touches the disk: each path's
/// components, or why the offer is refused.
pub fn validate_offer(items: &[Item]) -> Result<Vec<Vec<String>>, String> {
    manifest::validate_items(items)
}

/// The plaintext preamble check: magic, protocol version, purpose.
pub fn check_preamble(preamble: &[u8; PREAMBLE_LEN]) -> Result<Purpose, HandshakeError> {
    secure::check_preamble(preamble)
}

/// The responder's preamble and Noise handshake over any byte stream: who the initiator proved
/// to be, and what for.
pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    sock: &mut S,
    identity: &Identity,
    hello: &Hello,
) -> Result<(Remote, Purpose), HandshakeError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let (_, remote, purpose) = secure::respond(sock, identity, hello, addr).await?;
    Ok((remote, purpose))
}

/// What an mDNS record from the LAN turns into (`None`: nothing to dial): a record with the
/// given port, addresses and TXT values.
pub fn mdns_record(port: u16, addrs: &[std::net::IpAddr], txt: &[(&str, &str)]) -> Option<crate::net::discovery::DiscoveryEvent> {
    let addrs = addrs.iter().map(|ip| mdns_sd::ScopedIp::from(*ip)).collect();
    crate::net::discovery::parse_resolved("forged._lanyard._tcp.local.", port, &addrs, |k| {
        txt.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
    })
}
