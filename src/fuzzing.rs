//! Doors for the fuzz targets (`fuzz/`), the property tests and the tests and benches that play a
//! hostile peer, into what is otherwise private to the crate: the wire, the checks a peer's input
//! meets, the test hooks. Re-exports and thin wrappers with no logic of their own, so what is
//! fuzzed is exactly what runs. Not an API: only with the `test-hooks` feature, hidden from the
//! docs, free to change.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::identity::Identity;
use crate::net::secure::{self, HandshakeError, Remote};
use crate::net::wire::{Hello, PREAMBLE_LEN, Purpose};
use crate::node::transfer::wire::Item;
use crate::node::transfer::{dirs, file_names, manifest};

/// The protocol as a peer speaks it: control messages, frames, the Noise channel, mDNS records.
/// For the fuzz targets, and for the tests and benches that play a hostile peer byte by byte.
pub mod net {
    pub use crate::net::{discovery, frame, localsend, secure, wire};
}

/// A transfer connection's messages and the checks on the names a peer offers.
pub mod transfer {
    pub use crate::node::transfer::{file_names, wire};
}

/// What a peer may ask of the shared folders, checked as the node checks it.
pub mod share {
    pub use crate::node::share::{Resolved, ShareError, Shares};
}

/// What a LocalSend client connection's driver is spawned on (`net::localsend::server::connect`).
pub use crate::tasks::Tasks;

/// A chat line's id as the node makes one, for a hostile peer's forged lines.
pub use crate::node::chat::new_message_id;

/// A relay that lies (`NodeConfig::relay_tamper`).
pub use crate::node::RelayTamper;

/// The hidden folder of partial files, which no offered path may start with.
pub const PARTIAL_DIR: &str = file_names::PARTIAL_DIR;

/// The check every received manifest passes before anything touches the disk: each path's
/// components, or why the offer is refused.
pub fn validate_offer(items: &[Item]) -> Result<Vec<Vec<String>>, String> {
    manifest::validate_items(items)
}

/// The folder `rel` below the download folder `root`, opened (and with `create`, made) by
/// handle one component at a time, as a receive reaches the folder of a file it places.
pub fn walk_below(root: &Path, rel: &[&str], create: bool) -> io::Result<OwnedFd> {
    let root = dirs::open_root(root)?;
    dirs::walk(root.as_fd(), rel.iter().copied(), create)
}

/// The name a received file or folder is placed under in the folder `dir` when its own is
/// taken, asked of the folder's handle as placing asks it.
pub fn free_name_in(dir: &Path, name: &str) -> io::Result<String> {
    let dir = dirs::open_root(dir)?;
    Ok(file_names::free_name_at(dir.as_fd(), name))
}

/// The order and fit of the candidates `free_name_in` tries, with `is_free` standing for the
/// folder.
pub fn free_name_by(name: &str, is_free: impl Fn(&str) -> bool) -> String {
    file_names::free_name_by(name, is_free)
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
