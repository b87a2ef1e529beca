//! Test hooks: what a test makes the next data stream do, and what it pretends the disk has.
//! The calls that set them exist only with the `test-hooks` feature.

use tokio_util::sync::CancellationToken;

use std::sync::Mutex;

#[cfg(feature = "test-hooks")]
use crate::node::NodeHandle;
use crate::node::lock;

/// What a test makes the next data stream do once this many bytes of one file went by:
/// stand in, deterministically, for a crash or pulled cable (`Disconnect`), a peer that stops
/// moving data (`Stall`: a sender stops sending, a receiver stops reading, until the transfer
/// ends), or a receiver that falls behind for a while (`Hold`: it stops reading until the
/// test lets it go on, so the sender's writes block mid-way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Without the hooks nothing sets a fault: the streams still look (and find none).
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
pub(crate) enum Fault {
    Disconnect(u64),
    Stall(u64),
    Hold(u64),
    /// The sender flips the file's byte at this offset (counted from where it starts sending).
    Corrupt(u64),
}

/// The fault set for the next data stream, and what ends a `Fault::Hold`.
#[derive(Default)]
pub(crate) struct Faults {
    fault: Mutex<Option<Fault>>,
    /// Raised by the test to end a `Fault::Hold`.
    hold_release: Mutex<Option<CancellationToken>>,
}

impl Faults {
    pub(crate) fn take(&self) -> Option<Fault> {
        lock(&self.fault).take()
    }

    /// What ends a `Fault::Hold`.
    pub(crate) fn hold_release(&self) -> CancellationToken {
        lock(&self.hold_release).clone().unwrap_or_default()
    }
}

#[cfg(feature = "test-hooks")]
impl NodeHandle {
    /// Test hook: the next file streamed by this node (either direction) breaks its
    /// connection after `bytes` bytes, as a crash or a pulled cable would.
    #[doc(hidden)]
    pub fn inject_disconnect_after(&self, bytes: u64) {
        *lock(&self.shared.transfers.faults.fault) = Some(Fault::Disconnect(bytes.max(1)));
    }

    /// Test hook: the next file this node receives stops being read after `bytes` bytes until
    /// the returned token is cancelled (a receiver that falls behind; the sender's writes block).
    #[doc(hidden)]
    pub fn inject_hold_after(&self, bytes: u64) -> CancellationToken {
        let release = CancellationToken::new();
        *lock(&self.shared.transfers.faults.hold_release) = Some(release.clone());
        *lock(&self.shared.transfers.faults.fault) = Some(Fault::Hold(bytes.max(1)));
        release
    }

    /// Test hook: the next file this node sends has its byte at `offset` (from where the send
    /// starts) flipped on the way out, as a bad disk or bad memory would: after encryption the
    /// record is authentic, so only the receiver's chunk check can catch it.
    #[doc(hidden)]
    pub fn inject_corrupt_at(&self, offset: u64) {
        *lock(&self.shared.transfers.faults.fault) = Some(Fault::Corrupt(offset));
    }

    /// Test hook: assume the download folder's file system has `bytes` free (`None`: ask it).
    #[doc(hidden)]
    pub fn pretend_free_space(&self, bytes: Option<u64>) {
        self.shared.transfers.space.pretend_free(bytes);
    }

    /// Test hook: the next file this node sends or receives stops moving after `bytes` bytes
    /// (until the transfer is cancelled or stalls).
    #[doc(hidden)]
    pub fn inject_stall_after(&self, bytes: u64) {
        *lock(&self.shared.transfers.faults.fault) = Some(Fault::Stall(bytes.max(1)));
    }
}
