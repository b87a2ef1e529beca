//! The messages of a transfer connection and their limits.
//!
//! Transfer protocol v4 (the version is in the connection's preamble: an older peer is told
//! to update before anything else is said). v4: every refusal, failure and stop carries a
//! [`Reason`] code, and the peer's words only as optional text beside it.
//!
//! The initiator's first frame says what it wants: `Offer` (push), `List` or `Get` (pull). An
//! offer's manifest follows in `Items` frames; each file carries its BLAKE3 root. An offer may
//! name a chain of further recipients (`relay`): the receiver forwards what it verified to the
//! first of them that accepts, passing on the rest, and reports how each fared (`Relayed`,
//! then `RelayDone`). The receiver answers `Accept` (with the bytes it already holds of each
//! file, whole chunks, for resume) or `Reject`. Then, per file: `FileStart` (from which
//! offset), the chunk hashes in `Hashes` frames when the file has more than one chunk, `Data`
//! frames each followed by exactly `len` raw bytes (never across a chunk boundary), and
//! `FileEnd`; the receiver answers `FileOk` or `FileFailed`. Data travels in segments rather
//! than as one raw run per file so that the sender can stop mid-file (`Cancel`, `FileAbort`)
//! without closing the connection, at the cost of one tiny frame per MiB. A file of one chunk
//! whose bytes fit one segment may instead come as a single `File` frame and its bytes: for
//! 4 KiB files, three frames cost more than the data.

use serde::{Deserialize, Serialize};

use super::file_names::{check_relative, top_of};
pub use crate::limits::{
    HASHES_PER_FRAME, MAX_FILE_BYTES, MAX_GET_PATHS, MAX_ITEMS, MAX_LIST_ENTRIES, MAX_MANIFEST_BYTES, MAX_REASON_BYTES, MAX_RESUME_ENTRIES,
    MAX_SEGMENT, MAX_TRANSFER_FRAME,
};
use crate::node::share::ShareEntry;
pub use crate::reason::Reason;

/// Path bytes (with [`ITEM_OVERHEAD`] per item) the sender packs into one `Items` frame, well
/// under the frame limit.
pub const ITEMS_FRAME_BYTES: usize = 256 << 10;
/// What an item costs in an `Items` frame besides its path, at most (CBOR keys, numbers, root).
pub const ITEM_OVERHEAD: usize = 96;
/// Entries per `Listing` frame (a name is at most 255 bytes, so this stays under the limit).
pub const LIST_FRAME_ENTRIES: usize = 2000;

/// One entry of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// '/'-separated, relative; the first component is the top-level name the user picked.
    pub path: String,
    /// Bytes (0 for a folder).
    pub size: u64,
    /// Source modification time, nanoseconds since the epoch: part of the resume key.
    pub mtime: u64,
    /// An (empty) folder to recreate rather than a file.
    pub dir: bool,
    /// The file's BLAKE3 hash (32 bytes; empty for a folder).
    pub root: serde_bytes::ByteBuf,
}

/// One deposit as its holder lists it to its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldEntry {
    /// The deposit's id (hex, [`DEPOSIT_ID_LEN`]).
    pub id: String,
    pub name: String,
    pub bytes: u64,
    pub files: u32,
    /// The hash of its whole offer (names, sizes, roots): its content.
    pub digest: serde_bytes::ByteBuf,
    /// When the holder last read it back whole and found it intact (Unix ms).
    pub verified_ms: u64,
    /// How many copies its owner last said it wants (0: never said).
    #[serde(default)]
    pub replicas: u32,
}

/// How many copies an owner wants of one of its deposits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    pub id: String,
    pub replicas: u32,
}

/// A deposit id: 128 bits of a hash, as lowercase hex.
pub const DEPOSIT_ID_LEN: usize = 32;

impl HeldEntry {
    /// A listing entry from a holder is checked before it is kept.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.len() != DEPOSIT_ID_LEN || !self.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a listed deposit has a malformed id".into());
        }
        if self.digest.len() != 32 {
            return Err("a listed deposit has a malformed hash".into());
        }
        super::file_names::check_component(&self.name)
            .map(|_| ())
            .map_err(|e| format!("a listed deposit's name: {e}"))
    }
}

/// A recipient further down a relayed send's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// Its peer id: the key that answers must hash to it.
    pub id: String,
    /// Where it was last seen ("10.0.0.7:7717"), at most `limits::MAX_HINT_ADDRS`.
    pub addrs: Vec<String>,
}

/// How a recipient further down the chain is doing, as its relay reports it upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Report {
    /// It took the offer; `resumed` bytes it already held.
    Accepted { resumed: u64 },
    /// Bytes it has verified so far (resumed ones included), and files finished.
    Progress { bytes: u64, files: u32 },
    /// It has every file it will get: `failed` of them did not arrive (`reason` says why, of
    /// the first).
    Finished {
        files: u32,
        bytes: u64,
        failed: u32,
        reason: Option<String>,
        /// Top-level items it saved under another name (a free name), as (offered, saved).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        saved_as: Vec<(String, String)>,
    },
    /// It rejected the offer, could not be reached, or its connection ended before it had
    /// everything (it may be re-attached). `reason` is the relay's account of it.
    Failed { code: Reason, reason: String },
}

/// Adjacently tagged (`{"t": name, "c": fields}`), not internally: with the tag first, a
/// frame decodes straight into its variant, where an internal tag makes serde buffer the whole
/// frame first (a tenth of a small-file receiver's CPU went to that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "c", rename_all = "snake_case")]
pub enum TransferMsg {
    /// Start of a push (or the answer to `Get`): `items` entries follow in `Items` frames.
    Offer {
        transfer: String,
        items: u32,
        bytes: u64,
        /// Recipients to forward to, in order (a relayed send); empty for a plain one.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        relay: Vec<Hop>,
        /// On an offer a relay passes on: the id of the peer that started the send, which
        /// vouched for it over its control connection (`ControlMsg::Vouch`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<String>,
    },
    /// Start of a push to keep for its owner (a deposit, `crate::node::locker`): an `Offer`
    /// whose files go to the receiver's deposit store, taken without asking a person when its
    /// budgets allow, held for `origin` (or the sender) under `name`. A new message rather
    /// than a field of `Offer`: a node that does not hold deposits ends the connection
    /// instead of asking its user to take the files into Downloads.
    Deposit {
        transfer: String,
        items: u32,
        bytes: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        relay: Vec<Hop>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<String>,
        /// What the owner calls it: one name, checked like a received file name.
        name: String,
    },
    Items {
        items: Vec<Item>,
    },
    /// Locker: the deposits this connection's key owns here. Answered with `HeldListing`
    /// frames; to any other key a deposit does not exist. Renews what it lists. `wanted`: how
    /// many copies the owner wants of deposits the holder keeps for it (at most
    /// `MAX_HELD_PER_OWNER`), kept and listed back, so that an owner's record rebuilt from
    /// holders (another machine, after `id import`) keeps its count.
    HeldList {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        wanted: Vec<Wanted>,
    },
    /// Locker: a part of the answer to `HeldList`; `more` says another follows.
    HeldListing {
        entries: Vec<HeldEntry>,
        more: bool,
    },
    /// Locker: send the deposit with this id (or name) back as an offer, like `Get`.
    Fetch {
        transfer: String,
        deposit: String,
    },
    /// Locker: delete the deposit with this id (or every version of this name) held for this
    /// connection's key. Answered with `Dropped`.
    DropDeposit {
        deposit: String,
    },
    /// Locker: how many deposits `DropDeposit` deleted (0: none of this key's by that name).
    Dropped {
        count: u32,
    },
    /// Locker: offer this key's deposit `deposit` to `to` as a `Deposit` of this key (whose
    /// vouch for it `to` hears from the owner): a copy from holder to holder, the owner
    /// uploading nothing. Answered with `Replicated`, or an `Error`.
    Replicate {
        transfer: String,
        deposit: String,
        to: Hop,
    },
    /// Locker: `to` verified every file of the copy.
    Replicated {
        files: u32,
        bytes: u64,
    },
    /// Pull: list one folder of the peer's shares.
    List {
        path: String,
    },
    /// Pull: send these paths as an offer.
    Get {
        transfer: String,
        paths: Vec<String>,
    },
    /// A listing chunk; `more` says another follows.
    Listing {
        entries: Vec<ShareEntry>,
        more: bool,
    },
    /// The receiver takes the offer; `resume` holds (index, bytes already held) for files it
    /// has partly or wholly.
    Accept {
        resume: Vec<(u32, u64)>,
    },
    Reject {
        code: Reason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    FileStart {
        index: u32,
        offset: u64,
    },
    /// `FileStart`, one `Data` of `len` bytes and `FileEnd` in one frame (then the `len` raw
    /// bytes): only for a file of at most one chunk (no `Hashes`), `len` being all its bytes
    /// from `offset` and at most one segment.
    File {
        index: u32,
        offset: u64,
        len: u64,
    },
    /// The next hashes of the current file's chunks, 32 bytes each, in order: all of them
    /// (over one or more frames) before its first `Data`.
    Hashes {
        cvs: serde_bytes::ByteBuf,
    },
    /// `len` raw bytes follow.
    Data {
        len: u64,
    },
    /// The file's last chunk was sent.
    FileEnd,
    /// The sender gives up on this file (it changed or vanished); the transfer goes on.
    FileAbort {
        index: u32,
        code: Reason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    FileOk {
        index: u32,
        /// Where the receiver put it, relative to its download folder, when that is not the path
        /// offered (a free name was chosen: `report (1).pdf`). Older peers neither send nor
        /// expect it. The sender checks it like a received name before showing it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        saved_as: Option<String>,
    },
    FileFailed {
        index: u32,
        code: Reason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// Everything was sent.
    Done,
    /// From a relay: how `peer` (an id from the chain it was given) is doing.
    Relayed {
        peer: String,
        report: Report,
    },
    /// From a relay: every recipient behind it has a final report.
    RelayDone,
    /// Either side stops the whole transfer on purpose (`code` says which side); partial data
    /// is removed. Sent only between frames: never inside a file's raw bytes.
    Cancel {
        code: Reason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// Either side cannot go on (its program stops, disk full, bad request); partial data is
    /// kept for a resume.
    Error {
        code: Reason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
}

/// A hash of a whole offer as it goes on the wire (names, sizes, kinds, roots), built item by
/// item: what the sender vouches for and the recipient of a relayed offer checks.
#[derive(Default)]
pub(crate) struct OfferDigest(blake3::Hasher);

impl OfferDigest {
    pub fn add(&mut self, item: &Item) {
        self.add_parts(&item.path, item.size, item.dir, &item.root);
    }

    pub fn add_parts(&mut self, path: &str, size: u64, dir: bool, root: &[u8]) {
        self.0.update(&(path.len() as u64).to_le_bytes());
        self.0.update(path.as_bytes());
        self.0.update(&size.to_le_bytes());
        self.0.update(&[dir as u8]);
        self.0.update(&(root.len() as u64).to_le_bytes());
        self.0.update(root);
    }

    pub fn finish(&self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// What the sender of a relayed send vouches for: the offer's digest, and for a deposit its
/// name too, so that no relay can turn a send into a deposit, a deposit into a send, or rename
/// it.
pub(crate) fn vouched_digest(digest: [u8; 32], deposit: Option<&str>) -> [u8; 32] {
    match deposit {
        None => digest,
        Some(name) => {
            let mut h = blake3::Hasher::new();
            h.update(b"lanyard-deposit-v1");
            h.update(&digest);
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            *h.finalize().as_bytes()
        }
    }
}

/// A reason from a peer, cut to a sane length on a char boundary.
pub fn bounded(reason: &str) -> String {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// The one line a report gives for a file that did not arrive: its name and why, both made
/// printable, cut to what a reason may be.
pub(crate) fn file_failure_line(path: &str, why: &str) -> String {
    bounded(&format!("\"{}\": {}", crate::text::printable(path), crate::text::printable(why)))
}

/// A message's kind, for logs and protocol errors (never its hostile contents).
pub(crate) fn msg_name(m: &TransferMsg) -> &'static str {
    match m {
        TransferMsg::Offer { .. } => "offer",
        TransferMsg::Items { .. } => "items",
        TransferMsg::Deposit { .. } => "deposit",
        TransferMsg::HeldList { .. } => "held_list",
        TransferMsg::HeldListing { .. } => "held_listing",
        TransferMsg::Fetch { .. } => "fetch",
        TransferMsg::DropDeposit { .. } => "drop_deposit",
        TransferMsg::Dropped { .. } => "dropped",
        TransferMsg::Replicate { .. } => "replicate",
        TransferMsg::Replicated { .. } => "replicated",
        TransferMsg::List { .. } => "list",
        TransferMsg::Get { .. } => "get",
        TransferMsg::Listing { .. } => "listing",
        TransferMsg::Accept { .. } => "accept",
        TransferMsg::Reject { .. } => "reject",
        TransferMsg::FileStart { .. } => "file_start",
        TransferMsg::Data { .. } => "data",
        TransferMsg::Hashes { .. } => "hashes",
        TransferMsg::FileEnd => "file_end",
        TransferMsg::File { .. } => "file",
        TransferMsg::Relayed { .. } => "relayed",
        TransferMsg::RelayDone => "relay_done",
        TransferMsg::FileAbort { .. } => "file_abort",
        TransferMsg::FileOk { .. } => "file_ok",
        TransferMsg::FileFailed { .. } => "file_failed",
        TransferMsg::Done => "done",
        TransferMsg::Cancel { .. } => "cancel",
        TransferMsg::Error { .. } => "error",
    }
}

/// A report from downstream, cut to what we pass on.
pub(crate) fn bounded_report(r: Report) -> Report {
    match r {
        Report::Finished {
            files,
            bytes,
            failed,
            reason,
            saved_as,
        } => {
            // Names from the network: only those a received name may be, and a few.
            let mut kept = Vec::new();
            for (offered, saved) in saved_as {
                note_saved_as(&mut kept, &offered, &saved);
            }
            Report::Finished {
                files,
                bytes,
                failed,
                reason: reason.map(|r| bounded(&r)),
                saved_as: kept,
            }
        }
        Report::Failed { code, reason } => Report::Failed {
            code,
            reason: bounded(&reason),
        },
        other => other,
    }
}

/// Renamed top-level items an outcome lists at most: enough to tell a person, bounded whatever
/// the receiver sends.
const MAX_SAVED_AS: usize = 100;

/// Note that the receiver saved `offered` as `saved`, by top-level name (a folder that became
/// `proj (1)` is one entry, not one per file). `saved` comes from the peer: it is only kept if
/// it passes the checks a received name must pass.
pub(crate) fn note_saved_as(list: &mut Vec<(String, String)>, offered: &str, saved: &str) {
    if check_relative(saved).is_err() {
        return;
    }
    let (offered, saved) = (top_of(offered), top_of(saved));
    if offered == saved || list.len() >= MAX_SAVED_AS || list.iter().any(|(o, _)| o == offered) {
        return;
    }
    list.push((offered.to_string(), saved.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::frame;

    #[test]
    fn renamed_items_are_noted_once_by_top_level_name_and_bounded() {
        let mut list = Vec::new();
        note_saved_as(&mut list, "report.pdf", "report (1).pdf");
        note_saved_as(&mut list, "proj/a.txt", "proj (1)/a.txt");
        note_saved_as(&mut list, "proj/b/c.txt", "proj (1)/b/c.txt");
        note_saved_as(&mut list, "same.txt", "same.txt");
        // What a hostile receiver might claim is not shown.
        for bad in ["../../etc/passwd", "/abs", "x\u{1b}[2J", "ok\u{202e}fdp.exe", ""] {
            note_saved_as(&mut list, "evil.txt", bad);
        }
        assert_eq!(
            list,
            vec![
                ("report.pdf".to_string(), "report (1).pdf".to_string()),
                ("proj".to_string(), "proj (1)".to_string())
            ]
        );
        for i in 0..2 * MAX_SAVED_AS {
            note_saved_as(&mut list, &format!("f{i}"), &format!("f{i} (1)"));
        }
        assert_eq!(list.len(), MAX_SAVED_AS);
    }

    #[test]
    fn messages_round_trip() {
        let msgs = vec![
            TransferMsg::Offer {
                transfer: "ab".into(),
                items: 2,
                bytes: 5,
                relay: vec![Hop {
                    id: "abcdefgh".into(),
                    addrs: vec!["10.0.0.7:7717".into()],
                }],
                origin: Some("abcdefgh".into()),
            },
            TransferMsg::Items {
                items: vec![Item {
                    path: "a/b é".into(),
                    size: 5,
                    mtime: 9,
                    dir: false,
                    root: serde_bytes::ByteBuf::from(vec![7u8; 32]),
                }],
            },
            TransferMsg::Accept { resume: vec![(1, 4096)] },
            TransferMsg::Hashes {
                cvs: serde_bytes::ByteBuf::from(vec![1u8; 64]),
            },
            TransferMsg::FileEnd,
            TransferMsg::File {
                index: 3,
                offset: 0,
                len: 4096,
            },
            TransferMsg::Relayed {
                peer: "abcdefgh".into(),
                report: Report::Finished {
                    files: 1,
                    bytes: 2,
                    failed: 0,
                    reason: None,
                    saved_as: vec![("a".into(), "a (1)".into())],
                },
            },
            TransferMsg::RelayDone,
            TransferMsg::Relayed {
                peer: "abcdefgh".into(),
                report: Report::Failed {
                    code: Reason::Unconfirmed,
                    reason: "x".into(),
                },
            },
            TransferMsg::Cancel {
                code: Reason::CancelledBySender,
                text: None,
            },
            TransferMsg::Error {
                code: Reason::DiskFull,
                text: Some("disk full on bob".into()),
            },
            TransferMsg::Reject {
                code: Reason::NoSpace,
                text: Some("needs 3 GiB".into()),
            },
            TransferMsg::FileFailed {
                index: 2,
                code: Reason::BadData,
                text: None,
            },
            TransferMsg::FileAbort {
                index: 2,
                code: Reason::SourceChanged,
                text: Some("it changed".into()),
            },
            TransferMsg::Data { len: MAX_SEGMENT },
            TransferMsg::FileOk { index: 3, saved_as: None },
            TransferMsg::FileOk {
                index: 3,
                saved_as: Some("report (1).pdf".into()),
            },
        ];
        for m in msgs {
            let mut buf = Vec::new();
            frame::encode(&m, &mut buf).unwrap();
            let back: TransferMsg = frame::decode(&buf[4..]).unwrap();
            assert_eq!(back, m);
        }
    }

    #[test]
    fn a_file_ok_without_saved_as_parses() {
        #[derive(Serialize)]
        #[serde(tag = "t", content = "c", rename_all = "snake_case")]
        enum Old {
            FileOk { index: u32 },
        }
        let mut buf = Vec::new();
        frame::encode(&Old::FileOk { index: 7 }, &mut buf).unwrap();
        let back: TransferMsg = frame::decode(&buf[4..]).unwrap();
        assert_eq!(back, TransferMsg::FileOk { index: 7, saved_as: None });
    }

    #[test]
    fn a_stop_with_a_code_from_a_later_version_still_parses() {
        #[derive(Serialize)]
        #[serde(tag = "t", content = "c", rename_all = "snake_case")]
        enum Later {
            Cancel { code: &'static str, text: Option<&'static str> },
            Error { code: &'static str },
        }
        let mut buf = Vec::new();
        frame::encode(
            &Later::Cancel {
                code: "cancelled_by_a_teacher",
                text: Some("class is over"),
            },
            &mut buf,
        )
        .unwrap();
        let back: TransferMsg = frame::decode(&buf[4..]).unwrap();
        assert_eq!(
            back,
            TransferMsg::Cancel {
                code: Reason::Other,
                text: Some("class is over".into())
            }
        );
        buf.clear();
        frame::encode(&Later::Error { code: "solar_flare" }, &mut buf).unwrap();
        let back: TransferMsg = frame::decode(&buf[4..]).unwrap();
        assert_eq!(
            back,
            TransferMsg::Error {
                code: Reason::Other,
                text: None
            }
        );
    }

    #[test]
    fn a_full_items_frame_fits_the_limit() {
        // The sender packs ITEMS_FRAME_BYTES of paths (and their roots) plus at most one more.
        let path = "x".repeat(crate::node::transfer::file_names::MAX_PATH_BYTES);
        let n = ITEMS_FRAME_BYTES / path.len() + 1;
        let items = vec![
            Item {
                path,
                size: u64::MAX,
                mtime: u64::MAX,
                dir: false,
                root: serde_bytes::ByteBuf::from(vec![0xffu8; 32]),
            };
            n
        ];
        let mut buf = Vec::new();
        frame::encode(&TransferMsg::Items { items }, &mut buf).unwrap();
        assert!(buf.len() < MAX_TRANSFER_FRAME);
        buf.clear();
        let cvs = serde_bytes::ByteBuf::from(vec![0xffu8; 32 * HASHES_PER_FRAME]);
        frame::encode(&TransferMsg::Hashes { cvs }, &mut buf).unwrap();
        assert!(buf.len() < MAX_TRANSFER_FRAME);
        buf.clear();
        let hop = Hop {
            id: "x".repeat(64),
            addrs: vec!["[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535".into(); crate::limits::MAX_HINT_ADDRS],
        };
        let offer = TransferMsg::Offer {
            transfer: "f".repeat(16),
            items: u32::MAX,
            bytes: u64::MAX,
            relay: vec![hop; crate::limits::MAX_RELAY_HOPS],
            origin: Some("x".repeat(64)),
        };
        frame::encode(&offer, &mut buf).unwrap();
        assert!(buf.len() < MAX_TRANSFER_FRAME);
        let resume: Vec<(u32, u64)> = (0..MAX_RESUME_ENTRIES as u32).map(|i| (u32::MAX - i, u64::MAX)).collect();
        buf.clear();
        frame::encode(&TransferMsg::Accept { resume }, &mut buf).unwrap();
        assert!(buf.len() < MAX_TRANSFER_FRAME);
    }

    #[test]
    fn reasons_are_bounded_on_char_boundaries() {
        let long = "é".repeat(1000);
        let b = bounded(&long);
        assert!(b.len() <= MAX_REASON_BYTES && b.chars().all(|c| c == 'é'));
    }
}
