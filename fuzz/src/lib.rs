//! Shared by the fuzz targets: the invariants (also included by `tests/props.rs`), messages built
//! from fuzz input where raw CBOR rarely reaches, and one runtime for the async parts.
//!
//! Each target takes a first byte that picks raw bytes (what a peer puts on the wire) or a
//! structured message (what gets past the decoder to the checks); see `raw_or`.

pub mod invariants;

use std::fmt::Debug;
use std::future::Future;
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use lanyard::fuzzing::net::wire::{
    ByeReason, CHAT_ID_LEN, ControlMsg, Hello, MAX_CHAT_TEXT, MAX_HINT_ADDR_BYTES, MAX_NICK_BYTES, MAX_PEER_HINTS, PeerHint,
};
use lanyard::node::api::{EntryKind, ShareEntry};
use lanyard::fuzzing::transfer::file_names::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES};
use lanyard::fuzzing::transfer::wire::{Hop, Item, MAX_REASON_BYTES, TransferMsg};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Run a future to completion on one shared single-threaded runtime.
pub fn block_on<F: Future>(f: F) -> F::Output {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
    .block_on(f)
}

/// `Some(rest)` when the input's first byte asks for raw bytes, else `None` with `u` positioned
/// after that byte for a structured message.
pub fn raw_or<'a>(data: &'a [u8]) -> (Option<&'a [u8]>, Unstructured<'a>) {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => (Some(rest), Unstructured::new(&[])),
        Some((_, rest)) => (None, Unstructured::new(rest)),
        None => (Some(data), Unstructured::new(&[])),
    }
}

/// The body of a message target: the message decoded from raw bytes (round-tripped on the way)
/// or built by `build`, then checked by `check`.
pub fn message_target<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    data: &[u8],
    build: impl FnOnce(&mut Unstructured) -> Result<T>,
    check: impl FnOnce(&T),
) {
    let msg = match raw_or(data) {
        (Some(bytes), _) => invariants::body::<T>(bytes),
        (None, mut u) => build(&mut u).ok(),
    };
    if let Some(msg) = msg {
        check(&msg);
    }
}

/// A string of a length the limits care about: arbitrary text, or one repeated character
/// around `limit` (the fuzz input is rarely long enough to get there by itself).
pub fn text(u: &mut Unstructured, limit: usize) -> Result<String> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 | 1 => u.arbitrary()?,
        2 => {
            let c: char = u.arbitrary()?;
            c.to_string()
                .repeat(u.int_in_range(limit.saturating_sub(2)..=limit + 2)? / c.len_utf8().max(1))
        }
        _ => "a".repeat(u.int_in_range(0..=limit + 2)?),
    })
}

/// Mostly well-formed chat ids, so the other checks are reached.
fn chat_id(u: &mut Unstructured) -> Result<String> {
    if u.ratio(1, 4)? {
        return u.arbitrary();
    }
    let hex = b"0123456789abcdef";
    (0..CHAT_ID_LEN).map(|_| Ok(*u.choose(hex)? as char)).collect()
}

pub fn control_msg(u: &mut Unstructured) -> Result<ControlMsg> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => ControlMsg::Ping,
        1 => ControlMsg::Nick {
            nick: text(u, MAX_NICK_BYTES)?,
        },
        2 => ControlMsg::Bye {
            reason: if u.arbitrary()? { ByeReason::Leaving } else { ByeReason::Duplicate },
        },
        3 => ControlMsg::Chat {
            id: chat_id(u)?,
            room: u.arbitrary()?,
            sent_ms: u.arbitrary()?,
            text: text(u, MAX_CHAT_TEXT)?,
        },
        4 => ControlMsg::ChatAck { id: chat_id(u)? },
        5 => {
            let n = u.int_in_range(0..=MAX_PEER_HINTS + 1)?;
            let mut peers = Vec::with_capacity(n);
            for _ in 0..n {
                let a = u.int_in_range(0..=5usize)?;
                let addrs = (0..a).map(|_| text(u, MAX_HINT_ADDR_BYTES)).collect::<Result<_>>()?;
                peers.push(PeerHint { id: u.arbitrary()?, addrs });
            }
            ControlMsg::Peers { peers }
        }
        6 => ControlMsg::Vouch {
            transfer: text(u, 70)?,
            digest: serde_bytes::ByteBuf::from(u.arbitrary::<Vec<u8>>()?),
        },
        _ => ControlMsg::Unknown,
    })
}

pub fn hello(u: &mut Unstructured) -> Result<Hello> {
    Ok(Hello {
        nick: text(u, MAX_NICK_BYTES)?,
        host: text(u, MAX_NICK_BYTES)?,
        listen_port: u.arbitrary()?,
        software: text(u, MAX_NICK_BYTES)?,
        session: u.arbitrary()?,
    })
}

/// Path components that make offers interesting: traversal, devices, the partial folder, and
/// a few plain names that collide with each other.
const COMPONENTS: &[&str] = &[
    "a",
    "b",
    "d",
    "x.txt",
    "..",
    ".",
    "",
    " ",
    "CON",
    "nul.txt",
    "c:",
    "a\\..",
    ".lanyard-partial",
    "\u{202e}txt",
    "\0",
    "dir.",
    "é",
];

/// A path an offer might carry: built from `COMPONENTS` and arbitrary ones, or arbitrary whole.
pub fn path(u: &mut Unstructured) -> Result<String> {
    if u.ratio(1, 5)? {
        return text(u, MAX_PATH_BYTES);
    }
    let depth = u.int_in_range(1..=4usize)?;
    let mut parts = Vec::with_capacity(depth);
    for _ in 0..depth {
        parts.push(match u.int_in_range(0..=5u8)? {
            0 => u.arbitrary()?,
            1 => text(u, MAX_COMPONENT_BYTES)?,
            _ => u.choose(COMPONENTS)?.to_string(),
        });
    }
    let lead = if u.ratio(1, 10)? { "/" } else { "" };
    Ok(format!("{lead}{}", parts.join("/")))
}

pub fn items(u: &mut Unstructured) -> Result<Vec<Item>> {
    let n = u.int_in_range(0..=8usize)?;
    (0..n)
        .map(|_| {
            Ok(Item {
                path: path(u)?,
                size: u.arbitrary()?,
                mtime: u.arbitrary()?,
                dir: u.arbitrary()?,
                root: serde_bytes::ByteBuf::from(u.arbitrary::<Vec<u8>>()?),
            })
        })
        .collect()
}

pub fn transfer_msg(u: &mut Unstructured) -> Result<TransferMsg> {
    let reason = |u: &mut Unstructured| text(u, MAX_REASON_BYTES);
    // A code as the wire carries it (its name, which an unknown one reads as `other`), and the
    // optional words beside it.
    let code = |u: &mut Unstructured| -> Result<lanyard::reason::Reason> { Ok(lanyard::reason::Reason::from_code(&reason(u)?)) };
    let words = |u: &mut Unstructured| -> Result<Option<String>> { if u.arbitrary()? { Ok(Some(reason(u)?)) } else { Ok(None) } };
    Ok(match u.int_in_range(0..=16u8)? {
        0 => TransferMsg::Offer {
            transfer: u.arbitrary()?,
            items: u.arbitrary()?,
            bytes: u.arbitrary()?,
            relay: (0..u.int_in_range(0..=3usize)?)
                .map(|_| {
                    Ok(Hop {
                        id: u.arbitrary()?,
                        addrs: u.arbitrary()?,
                    })
                })
                .collect::<Result<_>>()?,
            origin: u.arbitrary()?,
        },
        1 => TransferMsg::Items { items: items(u)? },
        2 => TransferMsg::List { path: path(u)? },
        3 => TransferMsg::Get {
            transfer: u.arbitrary()?,
            paths: (0..u.int_in_range(0..=4usize)?).map(|_| path(u)).collect::<Result<_>>()?,
        },
        4 => TransferMsg::Listing {
            entries: (0..u.int_in_range(0..=4usize)?)
                .map(|_| {
                    Ok(ShareEntry {
                        name: u.arbitrary()?,
                        kind: if u.arbitrary()? { EntryKind::Dir } else { EntryKind::File },
                        size: u.arbitrary()?,
                        modified: u.arbitrary()?,
                    })
                })
                .collect::<Result<_>>()?,
            more: u.arbitrary()?,
        },
        5 => TransferMsg::Accept { resume: u.arbitrary()? },
        6 => TransferMsg::Reject {
            code: code(u)?,
            text: words(u)?,
        },
        7 => TransferMsg::FileStart {
            index: u.arbitrary()?,
            offset: u.arbitrary()?,
        },
        8 if u.arbitrary()? => TransferMsg::Data { len: u.arbitrary()? },
        8 => TransferMsg::File {
            index: u.arbitrary()?,
            offset: u.arbitrary()?,
            len: u.arbitrary()?,
        },
        9 if u.arbitrary()? => TransferMsg::FileEnd,
        9 => TransferMsg::Hashes {
            cvs: serde_bytes::ByteBuf::from(u.arbitrary::<Vec<u8>>()?),
        },
        10 => TransferMsg::FileAbort {
            index: u.arbitrary()?,
            code: code(u)?,
            text: words(u)?,
        },
        11 => TransferMsg::FileOk {
            index: u.arbitrary()?,
            saved_as: if u.arbitrary()? { Some(path(u)?) } else { None },
        },
        12 => TransferMsg::FileFailed {
            index: u.arbitrary()?,
            code: code(u)?,
            text: words(u)?,
        },
        13 if u.arbitrary()? => TransferMsg::Done,
        13 => TransferMsg::RelayDone,
        14 => TransferMsg::Cancel {
            code: code(u)?,
            text: words(u)?,
        },
        _ => TransferMsg::Error {
            code: code(u)?,
            text: words(u)?,
        },
    })
}
