//! Property tests for what a hostile peer can send: frames, wire messages, received names and
//! offers, share requests. The invariants are the fuzz targets' own (`fuzz/src/invariants.rs`,
//! included here), so `cargo test` checks the same statements the fuzzers do, on inputs drawn
//! from strategies that aim at the edges (limits, traversal, devices, links).

#[allow(dead_code)]
#[path = "../fuzz/src/invariants.rs"]
mod invariants;

use std::fs;
use std::path::Path;

use lanyard::fuzzing::net::frame::{self, FrameError};
use lanyard::fuzzing::net::wire::{
    ByeReason, ControlMsg, Hello, MAX_CHAT_TEXT, MAX_CONTROL_FRAME, MAX_HINT_ADDR_BYTES, MAX_NICK_BYTES, MAX_PEER_HINTS, PeerHint,
};
use lanyard::fuzzing::transfer::file_names::check_relative;
use lanyard::fuzzing::transfer::wire::{Item, MAX_REASON_BYTES, MAX_TRANSFER_FRAME, TransferMsg};
use proptest::prelude::*;

/// Strings of 0 to `max` characters that make names and requests interesting: separators, dots,
/// drive colons, spaces, controls, bidi and invisible marks, a multi-byte letter.
fn hostile_chars(min: usize, max: usize) -> impl Strategy<Value = String> {
    prop::string::string_regex(&format!("[a-c./\\\\: \\x00\\x1b\u{202e}\u{200b}é]{{{min},{max}}}")).expect("a regex")
}

/// Text of any kind, or a run of one character around `limit` bytes.
fn text(limit: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        "(?s).{0,24}",
        (limit.saturating_sub(2)..=limit + 2).prop_map(|n| "x".repeat(n)),
        (limit / 2 - 1..=limit / 2 + 1).prop_map(|n| "é".repeat(n)),
    ]
}

fn chat_id() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[0-9a-f]{32}", 1 => "[0-9a-fA-Z]{30,34}"]
}

fn control_msg() -> impl Strategy<Value = ControlMsg> {
    let hint = (".{0,20}", prop::collection::vec(text(MAX_HINT_ADDR_BYTES), 0..6)).prop_map(|(id, addrs)| PeerHint { id, addrs });
    prop_oneof![
        Just(ControlMsg::Ping),
        Just(ControlMsg::Unknown),
        text(MAX_NICK_BYTES).prop_map(|nick| ControlMsg::Nick { nick }),
        any::<bool>().prop_map(|b| ControlMsg::Bye {
            reason: if b { ByeReason::Leaving } else { ByeReason::Duplicate }
        }),
        (chat_id(), any::<bool>(), any::<u64>(), text(MAX_CHAT_TEXT)).prop_map(|(id, room, sent_ms, text)| ControlMsg::Chat {
            id,
            room,
            sent_ms,
            text
        }),
        chat_id().prop_map(|id| ControlMsg::ChatAck { id }),
        (".{0,70}", prop::collection::vec(any::<u8>(), 30..34)).prop_map(|(transfer, digest)| ControlMsg::Vouch {
            transfer,
            digest: serde_bytes::ByteBuf::from(digest)
        }),
        (
            ".{0,70}",
            prop::collection::vec(any::<u8>(), 30..34),
            any::<bool>(),
            prop::option::of(text(MAX_REASON_BYTES))
        )
            .prop_map(|(transfer, digest, finished, reason)| ControlMsg::Verdict {
                transfer,
                digest: serde_bytes::ByteBuf::from(digest),
                finished,
                files: 1,
                bytes: 2,
                failed: 0,
                code: (!finished).then_some(lanyard::node::api::Reason::Rejected),
                reason,
            }),
        prop::collection::vec(hint, 0..4).prop_map(|peers| ControlMsg::Peers { peers }),
        // Around the count limit, with small hints so the case stays cheap.
        (MAX_PEER_HINTS - 1..=MAX_PEER_HINTS + 1).prop_map(|n| ControlMsg::Peers {
            peers: vec![
                PeerHint {
                    id: "p".into(),
                    addrs: vec!["10.0.0.1:1".into()]
                };
                n
            ]
        }),
    ]
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        text(MAX_NICK_BYTES),
        text(MAX_NICK_BYTES),
        any::<Option<u16>>(),
        text(MAX_NICK_BYTES),
        any::<u64>(),
    )
        .prop_map(|(nick, host, listen_port, software, session)| Hello {
            nick,
            host,
            listen_port,
            software,
            session,
        })
}

/// A path an offer or a request might carry: components from a hostile vocabulary or made of
/// hostile characters, joined by '/', sometimes absolute.
fn path() -> impl Strategy<Value = String> {
    let component = prop_oneof![
        3 => prop::sample::select(vec![
            "a", "b", "d", "x.txt", "..", ".", "", " ", "CON", "nul.txt", "com1", "c:", ".lanyard-partial", "dir.", "é",
        ])
        .prop_map(str::to_owned),
        2 => hostile_chars(1, 6),
        1 => (250usize..=258).prop_map(|n| "n".repeat(n)),
    ];
    (any::<bool>(), prop::collection::vec(component, 1..5)).prop_map(|(abs, c)| format!("{}{}", if abs { "/" } else { "" }, c.join("/")))
}

fn item() -> impl Strategy<Value = Item> {
    (path(), any::<u64>(), any::<bool>(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(path, size, dir, root)| Item {
        path,
        size,
        mtime: 0,
        dir,
        root: serde_bytes::ByteBuf::from(root),
    })
}

/// Any reason code this build knows (`Other` stands for every code it does not).
fn reason() -> impl Strategy<Value = lanyard::reason::Reason> {
    proptest::sample::select(lanyard::reason::Reason::ALL)
}

fn transfer_msg() -> impl Strategy<Value = TransferMsg> {
    prop_oneof![
        (".{0,8}", any::<u32>(), any::<u64>()).prop_map(|(transfer, items, bytes)| TransferMsg::Offer {
            transfer,
            items,
            bytes,
            relay: vec![],
            origin: None
        }),
        prop::collection::vec(item(), 0..6).prop_map(|items| TransferMsg::Items { items }),
        path().prop_map(|path| TransferMsg::List { path }),
        prop::collection::vec((any::<u32>(), any::<u64>()), 0..4).prop_map(|resume| TransferMsg::Accept { resume }),
        (reason(), proptest::option::of(text(MAX_REASON_BYTES))).prop_map(|(code, text)| TransferMsg::Reject { code, text }),
        (reason(), proptest::option::of(text(MAX_REASON_BYTES))).prop_map(|(code, text)| TransferMsg::Error { code, text }),
        (reason(), proptest::option::of(text(MAX_REASON_BYTES))).prop_map(|(code, text)| TransferMsg::Cancel { code, text }),
        any::<u64>().prop_map(|len| TransferMsg::Data { len }),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| TransferMsg::Hashes {
            cvs: serde_bytes::ByteBuf::from(b)
        }),
        Just(TransferMsg::FileEnd),
        (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(index, offset, len)| TransferMsg::File { index, offset, len }),
        Just(TransferMsg::RelayDone),
        (any::<u32>(), prop::option::of(path())).prop_map(|(index, saved_as)| TransferMsg::FileOk { index, saved_as }),
        Just(TransferMsg::Done),
    ]
}

/// `cases` per property; a failure is reported with its shrunk input rather than written to a
/// regressions file (a found case becomes a named test or seed instead).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn frame_headers_are_bounded_exactly(len in any::<u32>(), max in prop_oneof![Just(MAX_CONTROL_FRAME), Just(MAX_TRANSFER_FRAME), 0..=100_000usize]) {
        invariants::frame_header(len.to_be_bytes(), max);
    }

    #[test]
    fn any_bytes_decode_to_a_message_that_round_trips_or_to_nothing(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        invariants::body::<ControlMsg>(&bytes);
        invariants::body::<TransferMsg>(&bytes);
        invariants::body::<Hello>(&bytes);
    }

    #[test]
    fn control_messages_round_trip_and_validate_within_the_limits(msg in control_msg()) {
        invariants::control_msg(&msg);
    }

    #[test]
    fn hellos_round_trip_and_validate_within_the_limits(h in hello()) {
        invariants::hello(&h);
    }

    #[test]
    fn transfer_messages_round_trip(msg in transfer_msg()) {
        invariants::transfer_msg(&msg);
    }

    /// A stream cut anywhere reads back as the whole frames before the cut, then a clean end
    /// (only at a frame boundary) or an error, never a made-up message.
    #[test]
    fn a_cut_stream_yields_exactly_its_whole_frames(msgs in prop::collection::vec(control_msg(), 1..5), cut in any::<prop::sample::Index>()) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for m in &msgs {
            frame::encode(m, &mut buf).unwrap();
            ends.push(buf.len());
        }
        let cut = cut.index(buf.len() + 1);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (got, last) = rt.block_on(async {
            let mut rest = &buf[..cut];
            let mut got = Vec::new();
            loop {
                match frame::read::<ControlMsg, _>(&mut rest, usize::MAX).await {
                    Ok(Some(m)) => got.push(m),
                    other => return (got, other),
                }
            }
        });
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        prop_assert_eq!(&got[..], &msgs[..whole]);
        let at_boundary = cut == 0 || ends.contains(&cut);
        match last {
            Ok(None) => prop_assert!(at_boundary, "a clean end inside a frame (cut at {cut})"),
            Err(FrameError::Truncated) => prop_assert!(!at_boundary),
            other => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn received_names_are_accepted_exactly_when_safe(name in prop_oneof![path(), hostile_chars(0, 12), "(?s).{0,16}"]) {
        invariants::relative_name(&name);
    }

    #[test]
    fn offers_are_accepted_exactly_when_consistent(items in prop::collection::vec(item(), 0..6)) {
        invariants::offer(&items);
    }
}

proptest! {
    // These touch the file system: fewer cases.
    #![proptest_config(config(128))]

    /// Every accepted name walked to, its folders made and given a free name stays inside the
    /// download folder, also with links to elsewhere already in it.
    #[test]
    fn sanitised_names_stay_inside_the_download_folder(name in path(), taken in 0u32..4) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("Downloads");
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("a"), b"").unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("b")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("d/x.txt")).unwrap();
        invariants::walk(&root, &name, false);
        if let Ok(rel) = check_relative(&name) {
            invariants::free_name(&root, rel.iter().next_back().unwrap().to_str().unwrap(), taken);
            if let Some(parent) = rel.parent() {
                invariants::walk(&root, &parent.to_string_lossy(), true);
            }
        }
        prop_assert!(only_the_fixture_outside(tmp.path(), &root));
    }

    /// A share request never leads out of its share, whatever `..`, links or odd characters it
    /// holds.
    #[test]
    fn share_requests_never_escape(request in prop_oneof![
        share_request(),
        hostile_chars(0, 12),
    ]) {
        thread_local!(static FIXTURE: invariants::ShareFixture = invariants::share_fixture());
        FIXTURE.with(|fx| invariants::share_request(fx, &request));
    }
}

/// Requests built from the names in the share fixture, its links and traversal.
fn share_request() -> impl Strategy<Value = String> {
    let component = prop::sample::select(vec![
        "docs", "docs (2)", "sub", "deeper", "a.txt", "c.txt", "out", "etc", "in", "up", "up2", "key", "dangling", "loop", "..", ".", "",
        "passwd", "CON", "empty",
    ]);
    (prop::collection::vec(component, 0..5), any::<bool>())
        .prop_map(|(c, slash)| format!("{}{}", c.join("/"), if slash { "/" } else { "" }))
}

/// Nothing but the download folder was created next to it (no escape by the walk that makes
/// folders).
fn only_the_fixture_outside(tmp: &Path, root: &Path) -> bool {
    fs::read_dir(tmp).unwrap().all(|e| e.unwrap().path() == root)
}
