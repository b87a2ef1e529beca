//! What a face sees of a transfer: one [`TransferView`] per transfer, kept by the node (for
//! snapshots) and sent whole with every change (`meter` paces the changes while bytes move).

use serde::{Deserialize, Serialize};

use super::error::{Direction, FileFailure};
use crate::identity::PeerId;
use crate::reason::Reason;

/// Failed files a view lists (it travels whole with every change; the outcome has the rest).
pub const FAILURES_SHOWN: usize = 20;

/// What a list of items is, as a person names it: one file by its name, one folder as
/// "project/ (214 files)", several as "a.txt and 2 more (5 files)". Fed in manifest order, where
/// a folder's items follow one another.
#[derive(Default)]
pub(crate) struct Label {
    first: Option<(String, bool)>,
    tops: usize,
    last_top: String,
    files: u32,
}

impl Label {
    pub fn add(&mut self, path: &str, dir: bool) {
        let top = super::file_names::top_of(path);
        if !dir {
            self.files += 1;
        }
        if self.first.is_none() {
            self.first = Some((top.to_string(), dir || top.len() < path.len()));
        }
        if self.tops == 0 || top != self.last_top {
            self.tops += 1;
            top.clone_into(&mut self.last_top);
        }
    }

    pub fn finish(self) -> String {
        let Some((first, folder)) = self.first else {
            return "nothing".into();
        };
        let first = if folder { format!("{first}/") } else { first };
        let files = crate::text::plural(self.files, "file");
        match (self.tops, folder) {
            (1, false) => first,
            (1, true) => format!("{first} ({files})"),
            (n, _) => format!("{first} and {} more ({files})", n - 1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Reaching the peer.
    Connecting,
    /// Offered; the receiver has not answered yet.
    Waiting,
    Running,
    /// Finished; `failed` says how many files did not arrive.
    Done,
    Failed,
    Rejected,
    Cancelled,
    /// Stopped with its partial data kept (a program quit at either end): it resumes.
    Paused,
}

impl TransferState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TransferState::Done | TransferState::Failed | TransferState::Rejected | TransferState::Cancelled | TransferState::Paused
        )
    }
}

/// One transfer as a face draws it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    pub transfer: String,
    pub peer: PeerId,
    pub nick: String,
    pub direction: Direction,
    /// The send-to-many this transfer is one recipient of.
    pub group: Option<String>,
    pub state: TransferState,
    /// The file being moved, as offered.
    pub file: String,
    pub file_bytes: u64,
    pub file_size: u64,
    pub files_done: u32,
    pub files: u32,
    /// Bytes done overall, counting what a resume did not need to move.
    pub bytes: u64,
    /// Of `bytes`, those a resume did not need to move (already at the receiver).
    #[serde(default)]
    pub resumed: u64,
    pub total: u64,
    pub percent: u8,
    /// Bytes per second moved since the start.
    pub rate: u64,
    pub eta_secs: Option<u64>,
    /// Files that did not arrive (once finished).
    pub failed: u32,
    /// Why it failed, was rejected or cancelled.
    pub message: Option<String>,
    /// The same, as a code (once it ended early).
    #[serde(default)]
    pub reason: Option<Reason>,
    /// Receive: the folder the files land in.
    pub saved_to: Option<String>,
    /// What is moved, as a person names it: "big.bin", "project/ (214 files)".
    #[serde(default)]
    pub name: String,
    /// Send: the relay of the chain this recipient gets the files through (our direct peer in
    /// it); receive: the peer that passed on the offer of `peer`, who started the send (and
    /// vouched for it).
    #[serde(default)]
    pub via: Option<String>,
    /// Receive, finished: where the one file or folder received was saved (a free name when the
    /// offered one was taken: ".../big (1).bin").
    #[serde(default)]
    pub saved_as: Option<String>,
    /// Files that did not arrive and why, the first [`FAILURES_SHOWN`] of them (`failed` counts
    /// them all).
    #[serde(default)]
    pub failures: Vec<FileFailure>,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(items: &[(&str, bool)]) -> String {
        let mut l = Label::default();
        for (path, dir) in items {
            l.add(path, *dir);
        }
        l.finish()
    }

    #[test]
    fn a_transfer_is_named_as_a_person_would() {
        assert_eq!(label(&[("big.bin", false)]), "big.bin");
        assert_eq!(
            label(&[("project/a.rs", false), ("project/src/b.rs", false), ("project/empty", true)]),
            "project/ (2 files)"
        );
        assert_eq!(label(&[("empty", true)]), "empty/ (0 files)");
        assert_eq!(
            label(&[("a.txt", false), ("b.txt", false), ("c/d", false)]),
            "a.txt and 2 more (3 files)"
        );
        assert_eq!(label(&[("c/d", false), ("a.txt", false)]), "c/ and 1 more (2 files)");
        assert_eq!(label(&[]), "nothing");
    }
}
