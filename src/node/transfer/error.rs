//! What a transfer ends with: an [`Outcome`] or a [`TransferError`], told from one end
//! ([`Direction`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::reason::Reason;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Send,
    Receive,
}

impl Direction {
    /// The peer's end of a transfer this end sees as `self`.
    pub fn other(self) -> Direction {
        match self {
            Direction::Send => Direction::Receive,
            Direction::Receive => Direction::Send,
        }
    }
}

/// How a transfer ended when it did not simply finish. (A file that failed verification does
/// not end a transfer: it is listed in [`Outcome::failed`].) Each carries a [`Reason`] code
/// besides the sentence for a person; faces act on the code, never on the words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The peer could not be reached at all: nothing was offered.
    #[error("{0}")]
    Unreachable(String),
    /// The offer was not taken: said no, nobody answered, no room, busy.
    #[error("{1}")]
    Rejected(Reason, String),
    /// Either end cancelled (the code says which): partial data is gone on both.
    #[error("{1}")]
    Cancelled(Reason, String),
    /// Either end's program stopped (quit, Ctrl-C, SIGTERM): partial data is kept, and the
    /// transfer resumes.
    #[error("{0}")]
    Stopped(String),
    /// The peer went away mid-way (crashed, network gone, stalled): partial data is kept, and
    /// the same transfer again resumes.
    #[error("{1}")]
    PeerLost(Reason, String),
    /// Our disk refused (full, no permission): partial data is kept.
    #[error("{1}")]
    Disk(Reason, String),
    /// The peer broke the protocol, or data failed verification or authentication.
    #[error("{1}")]
    Protocol(Reason, String),
    /// Anything else. Partial data is kept for a resume.
    #[error("{1}")]
    Failed(Reason, String),
}

impl TransferError {
    pub(super) fn failed(msg: impl std::fmt::Display) -> Self {
        TransferError::Failed(Reason::Other, msg.to_string())
    }

    /// Why, as a code.
    pub fn reason(&self) -> Reason {
        match self {
            TransferError::Unreachable(_) => Reason::Unreachable,
            TransferError::Stopped(_) => Reason::Stopped,
            TransferError::Rejected(r, _)
            | TransferError::Cancelled(r, _)
            | TransferError::PeerLost(r, _)
            | TransferError::Disk(r, _)
            | TransferError::Protocol(r, _)
            | TransferError::Failed(r, _) => *r,
        }
    }
}

/// A file or folder that did not arrive, and why: in a person's words (the receiver's, about that
/// file) and as a code (`bad_data` for a chunk that failed its hash, `disk_error`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFailure {
    /// The path as offered.
    pub path: String,
    pub reason: String,
    pub code: Reason,
}

/// What a finished transfer did. A transfer "finishes" even if some files failed; `failed`
/// lists them, and only an empty list means every file was verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub transfer: String,
    /// Files verified at the receiver.
    pub files: u32,
    pub bytes: u64,
    /// Bytes that did not have to move because the receiver already held them (resume).
    pub resumed: u64,
    /// Files and folders that did not arrive: a bounded list (receiver: the first
    /// `limits::OUTCOME_LISTED`); `failed_omitted` counts the rest.
    pub failed: Vec<FileFailure>,
    /// Failures beyond those listed in `failed`.
    #[serde(default)]
    pub failed_omitted: u32,
    /// Receiver only: where verified files now are (the first `limits::OUTCOME_LISTED`).
    pub saved: Vec<PathBuf>,
    /// Sender only: top-level files and folders the receiver saved under another name (a free
    /// name, as `report (1).pdf`), as (name offered, name saved); a bounded list.
    #[serde(default)]
    pub saved_as: Vec<(String, String)>,
}

impl Outcome {
    pub fn all_ok(&self) -> bool {
        self.failed.is_empty() && self.failed_omitted == 0
    }

    /// Files and folders that did not arrive, listed or not.
    pub fn failed_count(&self) -> usize {
        self.failed.len() + self.failed_omitted as usize
    }

    /// Note a failure: listed while the list has room, counted beyond.
    pub(crate) fn fail(&mut self, path: String, code: Reason, reason: String) {
        if self.failed.len() < crate::limits::OUTCOME_LISTED {
            self.failed.push(FileFailure { path, reason, code });
        } else {
            self.failed_omitted += 1;
        }
    }
}
