//! Writes the seed corpus (`fuzz/corpus/<target>/`): real encoded frames and messages, and the
//! names, offers, requests and handshakes that sit on each rule's edge. Run from `fuzz/` with
//! `cargo run --example seeds` after changing a message; the files are named by content, so
//! re-running adds only what is new.

use std::fs;
use std::path::Path;

use lanyard::fuzzing::net::frame;
use lanyard::fuzzing::net::wire::{
    ByeReason, ControlMsg, Hello, MAGIC, MAX_CHAT_TEXT, MAX_HINT_ADDR_BYTES, MAX_NICK_BYTES, MAX_PEER_HINTS, PROTOCOL_VERSION, PeerHint,
};
use lanyard::fuzzing::transfer::file_names::{MAX_COMPONENT_BYTES, MAX_DEPTH, MAX_PATH_BYTES};
use lanyard::fuzzing::transfer::wire::{Item, MAX_REASON_BYTES, MAX_SEGMENT, TransferMsg};

/// Raw-bytes mode of a target's first byte (see `lanyard_fuzz::raw_or`).
const RAW: u8 = 0;

fn write(target: &str, seeds: &[Vec<u8>]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    fs::create_dir_all(&dir).expect("mkdir");
    for seed in seeds {
        let name = content_name(seed);
        fs::write(dir.join(name), seed).expect("write");
    }
    println!("{target}: {} seeds", seeds.len());
}

/// A name from the content (FNV-1a: enough to tell a few dozen seeds apart), so re-running
/// rewrites the same files.
fn content_name(bytes: &[u8]) -> String {
    let h = bytes
        .iter()
        .fold(0xcbf29ce484222325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
    format!("{h:016x}")
}

fn body<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    frame::encode(msg, &mut buf).expect("encode");
    buf.split_off(frame::LEN_BYTES)
}

fn framed<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    frame::encode(msg, &mut buf).expect("encode");
    buf
}

fn raw(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.insert(0, RAW);
    bytes
}

fn id(c: char) -> String {
    c.to_string().repeat(32)
}

fn control_msgs() -> Vec<ControlMsg> {
    let hint = |addrs: Vec<String>| PeerHint {
        id: "abcdefghijklmnop".into(),
        addrs,
    };
    vec![
        ControlMsg::Ping,
        ControlMsg::Nick { nick: "ada".into() },
        ControlMsg::Nick { nick: String::new() },
        ControlMsg::Nick {
            nick: "n".repeat(MAX_NICK_BYTES),
        },
        ControlMsg::Nick {
            nick: "é".repeat(MAX_NICK_BYTES / 2 + 1),
        },
        ControlMsg::Nick {
            nick: "carol\u{200b}\u{1b}[2J".into(),
        },
        ControlMsg::Bye {
            reason: ByeReason::Leaving,
        },
        ControlMsg::Bye {
            reason: ByeReason::Duplicate,
        },
        ControlMsg::Chat {
            id: id('a'),
            room: true,
            sent_ms: 1_700_000_000_000,
            text: "hello #all".into(),
        },
        ControlMsg::Chat {
            id: id('0'),
            room: false,
            sent_ms: u64::MAX,
            text: "t".repeat(MAX_CHAT_TEXT + 1),
        },
        ControlMsg::Chat {
            id: id('A'),
            room: false,
            sent_ms: 0,
            text: String::new(),
        },
        ControlMsg::ChatAck { id: id('f') },
        ControlMsg::ChatAck { id: "g".repeat(32) },
        ControlMsg::Peers {
            peers: vec![hint(vec!["10.0.0.1:7000".into(), "[fe80::1%eth0]:7000".into()])],
        },
        ControlMsg::Peers {
            peers: vec![hint(vec!["a".repeat(MAX_HINT_ADDR_BYTES + 1)])],
        },
        ControlMsg::Peers {
            peers: vec![hint(vec!["1.2.3.4:5".into(); 5])],
        },
        ControlMsg::Peers {
            peers: vec![hint(Vec::new()); MAX_PEER_HINTS + 1],
        },
        ControlMsg::Unknown,
    ]
}

fn hellos() -> Vec<Hello> {
    let h = |nick: &str, host: &str, software: &str| Hello {
        nick: nick.into(),
        host: host.into(),
        listen_port: Some(7000),
        software: software.into(),
        session: 42,
    };
    vec![
        h("ada", "lab-pc-01", "lanyard 0.1.0"),
        h("", "h", "s"),
        h(&"n".repeat(MAX_NICK_BYTES), "h", "s"),
        h(&"n".repeat(MAX_NICK_BYTES + 1), "h", "s"),
        h("ada", &"h".repeat(MAX_NICK_BYTES + 1), "s"),
        h("ada", "h", &"s".repeat(MAX_NICK_BYTES + 1)),
        h("ok\u{202e}fdp", "h\u{1b}]0;x\u{7}", ""),
    ]
}

fn hostile_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "report.pdf",
        "photos/2024/日本語.txt",
        "../x",
        "a/../../b",
        "..",
        ".",
        "/etc/passwd",
        "\\\\server\\share",
        "C:\\x",
        "c:x",
        "a\\..\\b",
        "CON",
        "nul.txt",
        "CON .txt",
        "COM¹",
        "lpt9.log",
        "ok\u{202e}fdp.exe",
        "carol\u{200b}.txt",
        "a\0b",
        "x\u{1b}[2J",
        "new\nline",
        "trailing.",
        "trailing ",
        " leading",
        "a//b",
        "a/",
        "a:stream",
        ".lanyard-partial/x",
        "link/x",
        "dir/etc/passwd",
        "file/x",
        "dir/sub/new.txt",
        "x.txt",
        "archive.tar.gz",
        ".bashrc",
        "\u{2764}\u{fe0f}.png",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push("n".repeat(MAX_COMPONENT_BYTES));
    names.push("n".repeat(MAX_COMPONENT_BYTES + 1));
    names.push(format!("{}.txt", "日".repeat(83)));
    names.push(vec!["d"; MAX_DEPTH].join("/"));
    names.push(vec!["d"; MAX_DEPTH + 1].join("/"));
    names.push(vec!["y".repeat(200); MAX_PATH_BYTES / 201 + 1].join("/"));
    names
}

fn item(path: &str, dir: bool) -> Item {
    Item {
        path: path.into(),
        size: if dir { 0 } else { 3 },
        mtime: 1,
        dir,
        // Any 32 bytes: the seeds exercise decoding and validation, not verification.
        root: serde_bytes::ByteBuf::from(if dir { vec![] } else { vec![7u8; 32] }),
    }
}

fn offers() -> Vec<Vec<Item>> {
    vec![
        vec![item("d/a.txt", false), item("d/e", true), item("é 日本.pdf", false)],
        vec![item("../x", false)],
        vec![item("/etc/passwd", false)],
        vec![item("a/../../x", false)],
        vec![item("C:/x", false)],
        vec![item("NUL", false)],
        vec![item(".lanyard-partial/x", false)],
        vec![item("a", false), item("a", false)],
        vec![item("a", false), item("a/b", false)],
        vec![item("a", true), item("a/b", false)],
        vec![item("a/b", false), item("a", false)],
        vec![item("", false)],
        vec![item("ok\u{202e}fdp.exe", false)],
        vec![],
    ]
}

fn transfer_msgs() -> Vec<TransferMsg> {
    let mut msgs = vec![
        TransferMsg::Offer {
            transfer: "0123456789abcdef".into(),
            items: 2,
            bytes: 5,
            relay: Vec::new(),
            origin: None,
        },
        TransferMsg::List { path: "docs/sub".into() },
        TransferMsg::Get {
            transfer: "t".into(),
            paths: vec!["docs/a.txt".into(), "../etc".into()],
        },
        TransferMsg::Listing {
            entries: Vec::new(),
            more: false,
        },
        TransferMsg::Accept {
            resume: vec![(0, 4096), (u32::MAX, u64::MAX)],
        },
        TransferMsg::Reject {
            code: lanyard::reason::Reason::Rejected,
            text: Some("é".repeat(MAX_REASON_BYTES)),
        },
        TransferMsg::FileStart { index: 0, offset: 0 },
        TransferMsg::Data { len: MAX_SEGMENT + 1 },
        TransferMsg::FileEnd,
        TransferMsg::File {
            index: 0,
            offset: 0,
            len: 4096,
        },
        TransferMsg::FileAbort {
            index: 1,
            code: lanyard::reason::Reason::Other,
            text: Some("changed".into()),
        },
        TransferMsg::FileOk {
            index: 3,
            saved_as: Some("report (1).pdf".into()),
        },
        TransferMsg::FileOk {
            index: 3,
            saved_as: Some("../../.bashrc".into()),
        },
        TransferMsg::FileOk { index: 3, saved_as: None },
        TransferMsg::FileFailed {
            index: 2,
            code: lanyard::reason::Reason::BadData,
            text: Some("x\u{1b}[2J".into()),
        },
        TransferMsg::Done,
        TransferMsg::Cancel {
            code: lanyard::reason::Reason::CancelledBySender,
            text: Some("no".into()),
        },
        TransferMsg::Error {
            code: lanyard::reason::Reason::DiskFull,
            text: None,
        },
    ];
    msgs.extend(offers().into_iter().map(|items| TransferMsg::Items { items }));
    msgs
}

fn preamble(version: u16, purpose: u8) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.extend_from_slice(&version.to_be_bytes());
    p.extend_from_slice(&[purpose, 0]);
    p
}

fn handshakes() -> Vec<Vec<u8>> {
    let msg = |len: u16, body: &[u8]| {
        let mut m = len.to_be_bytes().to_vec();
        m.extend_from_slice(body);
        m
    };
    let ephemeral = msg(32, &[9u8; 32]);
    let mut seeds = vec![
        raw(preamble(PROTOCOL_VERSION, 1)),
        raw([preamble(PROTOCOL_VERSION, 1), ephemeral.clone()].concat()),
        raw([preamble(PROTOCOL_VERSION, 2), ephemeral.clone(), msg(64, &[1u8; 64])].concat()),
        raw([preamble(PROTOCOL_VERSION, 1), msg(u16::MAX, &[0u8; 16])].concat()),
        raw([preamble(PROTOCOL_VERSION, 1), msg(0, &[])].concat()),
        raw([preamble(PROTOCOL_VERSION, 1), msg(31, &[9u8; 31])].concat()),
        raw(preamble(99, 1)),
        raw(preamble(0, 2)),
        raw(preamble(PROTOCOL_VERSION, 3)),
        raw(b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        raw(b"LNY".to_vec()),
    ];
    for (purpose, h) in [(1u8, 0usize), (2, 0), (1, 3), (2, 1), (3, 0), (0, 0)] {
        let mut s = vec![1, purpose];
        s.extend(body(&hellos()[h]));
        seeds.push(s);
    }
    seeds.push(vec![1, 1, 0xff, 0x00]);
    seeds
}

fn share_requests() -> Vec<String> {
    [
        "",
        "/",
        "docs",
        "docs/",
        "docs/a.txt",
        "docs/sub/c.txt",
        "docs/sub/deeper/d.txt",
        "docs/empty",
        "docs/CON",
        "docs/two words.txt",
        "docs (2)/b.txt",
        "docs/in/c.txt",
        "docs/sub/up/a.txt",
        "docs/sub/up2/secret/key",
        "docs/out/key",
        "docs/etc/passwd",
        "docs/sub/key",
        "docs/dangling",
        "docs/loop",
        "docs/..",
        "docs/../secret/key",
        "../secret",
        "docs/./a.txt",
        "//docs",
        "\\docs",
        "docs\\..\\..",
        "docs//a.txt",
        "docs/a\u{1b}[2J",
        "docs/ok\u{202e}fdp.exe",
        "docs/a\0b",
        "nosuch/x",
        "C:/Windows",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("docs/{}", "x/".repeat(2100))])
    .collect()
}

fn main() {
    let control = control_msgs();
    let mut frames: Vec<Vec<u8>> = control.iter().map(framed).collect();
    frames.push(control.iter().take(6).flat_map(framed).collect());
    frames.push(transfer_msgs().iter().take(8).flat_map(framed).collect());
    frames.push(u32::MAX.to_be_bytes().to_vec());
    frames.push([0, 0, 0, 5, 0xa1].to_vec());
    frames.push([framed(&ControlMsg::Ping), vec![0, 0]].concat());
    frames.push(Vec::new());
    write("frame", &frames);

    let mut seeds: Vec<Vec<u8>> = control.iter().map(|m| raw(body(m))).collect();
    seeds.push(raw(b"\xa2\x61t\x69file_hint\x67payload\x83\x01\x02\x03".to_vec()));
    seeds.push(raw(vec![0x5b, 0, 0, 0, 1, 0, 0, 0, 0]));
    seeds.push(vec![1; 16]);
    write("control_msg", &seeds);

    let mut seeds: Vec<Vec<u8>> = hellos().iter().map(|h| raw(body(h))).collect();
    seeds.push(vec![1; 8]);
    write("hello", &seeds);

    let mut seeds: Vec<Vec<u8>> = transfer_msgs().iter().map(|m| raw(body(m))).collect();
    seeds.push(vec![1; 16]);
    write("transfer_msg", &seeds);

    let mut seeds: Vec<Vec<u8>> = offers().iter().map(|o| raw(body(o))).collect();
    seeds.push(vec![1; 24]);
    write("offer", &seeds);

    let seeds: Vec<Vec<u8>> = hostile_names()
        .iter()
        .enumerate()
        .map(|(i, n)| [vec![(i % 4) as u8], n.as_bytes().to_vec()].concat())
        .collect();
    write("names", &seeds);

    let seeds: Vec<Vec<u8>> = share_requests().iter().map(|s| s.as_bytes().to_vec()).collect();
    write("share", &seeds);

    write("handshake", &handshakes());
}
