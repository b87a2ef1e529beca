//! Counts of things a node did that leave no other trace a test can wait for: a check that
//! nothing happened waits until the node says it looked, instead of sleeping and hoping it had
//! time to. Read only with the `test-hooks` feature; counting costs an atomic add.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub(crate) struct Tally {
    /// Dials of a remembered peer's last address that ended (connected, refused or failed).
    remembered_dialled: AtomicU64,
    /// Of those, the ones another key answered.
    remembered_other_key: AtomicU64,
    /// Passes of the periodic forgetting of unneeded peers that ran to the end.
    prunes: AtomicU64,
    /// Control connections entered in the peer table (up, replacing one, or a duplicate).
    control_registered: AtomicU64,
    /// Connections closed as a duplicate whose peer is not yet settled up or down.
    duplicates_unsettled: Arc<AtomicU64>,
}

/// What a [`Tally`] holds at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
// Without the hooks nothing reads it.
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
pub struct Counts {
    pub remembered_dialled: u64,
    pub remembered_other_key: u64,
    pub prunes: u64,
    pub control_registered: u64,
    pub duplicates_unsettled: u64,
}

impl Tally {
    pub(crate) fn remembered_dialled(&self) {
        self.remembered_dialled.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn remembered_other_key(&self) {
        self.remembered_other_key.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn control_registered(&self) {
        self.control_registered.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn pruned(&self) {
        self.prunes.fetch_add(1, Ordering::SeqCst);
    }

    /// A duplicate's close leaves its peer to settle; the guard's drop says it did.
    pub(crate) fn duplicate_unsettled(&self) -> Unsettled {
        self.duplicates_unsettled.fetch_add(1, Ordering::SeqCst);
        Unsettled(self.duplicates_unsettled.clone())
    }

    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            remembered_dialled: self.remembered_dialled.load(Ordering::SeqCst),
            remembered_other_key: self.remembered_other_key.load(Ordering::SeqCst),
            prunes: self.prunes.load(Ordering::SeqCst),
            control_registered: self.control_registered.load(Ordering::SeqCst),
            duplicates_unsettled: self.duplicates_unsettled.load(Ordering::SeqCst),
        }
    }
}

pub(crate) struct Unsettled(Arc<AtomicU64>);

impl Drop for Unsettled {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(feature = "test-hooks")]
impl super::NodeHandle {
    /// Test hook: what this node counted so far (see [`Counts`]).
    pub fn tally(&self) -> Counts {
        self.shared.tally.counts()
    }
}
