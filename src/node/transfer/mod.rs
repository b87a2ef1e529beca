//! File transfer: push (an offer the receiver accepts) and pull (list and get from a peer's
//! shares), both verified with BLAKE3, resumable, and each on a connection of its own.
//!
//! Its files, from what faces call down to the disk:
//!
//! - `api`: what a face does with transfers (send, get, list, answer, cancel, resume).
//! - `hooks`: test hooks (faults on the next data stream, pretended free space).
//! - `incoming`: a transfer connection from a peer, refused or served by its first message.
//! - `dial`: reaching a peer for a transfer connection of its own.
//! - `ask`: asking a person about an offer, within its deadline.
//! - `registry`: running and recent transfers, waiting offers, vouches of relayed sends.
//! - `ctx`: one running transfer (`Ctx`): its row, how it stops, how its end is stored.
//! - `error`: what a transfer ends with ([`Outcome`], [`TransferError`]) and [`Direction`].
//! - `ids`: transfer ids, made, checked and found from a prefix.
//! - `source`: what a sender offers, built from local paths or from a share; `opener`: its
//!   files opened folder by folder, confined to the shares.
//! - `hashing`: hashing the files of an offer ahead of sending, in parallel.
//! - `send` / `receive`: the two ends of one stream of files, used by push and pull alike (a
//!   `Get` is answered with an offer of exactly the requested files); `stream`: what both ends
//!   share (why a stream stopped, reading the next message, telling the peer); `disk`: the
//!   receiving end's disk thread.
//! - `placing`: where received bytes live: partial files, resume keys, the final no-overwrite
//!   placement; `dirs`: folders made without following links; `writeback`: flushing written
//!   data early.
//! - `pull`: list and get, both ends.
//! - `chunks`: files cut into chunks checked on arrival against hashes under the file's root.
//! - `relay` / `tap`: relayed sends — a chain of recipients, each forwarding what it verified.
//! - `progress`: what a face sees of a transfer ([`TransferView`]); `meter`: progress
//!   coalesced while bytes move.
//! - `offers`: offers waiting for a person's answer, with their (spooled) manifest.
//! - `manifest`: a received manifest, names spooled to disk, one small record per item kept.
//! - `budget`: what received manifests may cost the node in memory, in all and per peer.
//! - `space`: disk space promised to running receives.
//! - `deadline`: when a transfer counts as stalled.
//! - `records` / `resume` / `expire`: transfers stored across restarts, paused sends offered
//!   again, old partial files removed.
//! - `cancels`: cancels a peer could not hear on the transfer's own connection, told over its
//!   control connection now and again once it is back.
//! - [`wire`]: the messages and limits of a transfer connection.
//! - [`file_names`]: checks on names that arrive from the network.
//! - `held`: the locker on a transfer connection (deposits taken, listed, fetched, dropped).
//! - `localsend`: a LocalSend device's offer taken as one of our receives; `localsend_push`:
//!   a send to a LocalSend device.

mod api;
mod ask;
mod budget;
mod cancels;
mod chunks;
mod ctx;
mod deadline;
mod dial;
pub(crate) mod dirs;
mod disk;
mod error;
mod expire;
pub mod file_names;
mod hashing;
pub(crate) mod held;
mod hooks;
mod ids;
mod incoming;
pub(crate) mod localsend;
mod localsend_push;
pub(crate) mod manifest;
mod meter;
mod offers;
mod opener;
pub(crate) mod placing;
mod progress;
mod pull;
mod receive;
mod records;
mod registry;
mod relay;
mod resume;
mod send;
mod source;
mod space;
mod stream;
mod tap;
pub mod wire;
mod writeback;

pub use crate::reason::Reason;
pub use api::{Answerer, GroupTask, Prepared, TransferTask};
pub use error::{Direction, FileFailure, Outcome, TransferError};
pub(crate) use expire::at_start as expire_partials;
pub(crate) use incoming::{refuse, serve_incoming};
pub(crate) use localsend_push::push as localsend_push;
pub use offers::{OfferItem, OfferView};
pub use progress::{TransferState, TransferView};
pub use pull::PeerListing;
pub(crate) use registry::Registry;
pub(crate) use resume::load as load_records;

/// A peer's control connection says it cancelled a transfer with us (see `cancels`).
pub(crate) fn cancel_heard(
    shared: &std::sync::Arc<crate::node::Shared>,
    from: &crate::identity::PeerId,
    transfer: &str,
    code: Option<Reason>,
) {
    cancels::heard(shared, from, transfer, code);
}

/// A peer's control connection came up: it hears the cancels it may have missed.
pub(crate) fn cancels_connection_up(
    shared: &crate::node::Shared,
    peer: &crate::identity::PeerId,
    tx: &tokio::sync::mpsc::Sender<crate::net::wire::ControlMsg>,
) {
    cancels::connection_up(shared, peer, tx);
}
