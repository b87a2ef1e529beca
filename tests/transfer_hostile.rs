//! A hand-made malicious sender speaking the transfer protocol directly: hostile names,
//! oversize counts and lengths, lies about offsets, sizes and hashes. Each must end that one
//! transfer with nothing written outside the download folder, nothing unverified under a
//! final name, and the node still serving.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{PATIENCE as WAIT, until};
use lanyard::fuzzing::net::secure::{self, SecureConn};
use lanyard::fuzzing::net::wire::Purpose;
use lanyard::fuzzing::transfer::wire::{Item, MAX_TRANSFER_FRAME, TransferMsg};
use lanyard::identity::Identity;
use lanyard::node::api::{NodeConfig, NodeHandle};
use serde_bytes::ByteBuf;
use tokio::net::TcpStream;

async fn receiver(dir: &Path) -> NodeHandle {
    let mut config = NodeConfig::local("victim", dir.join("data"));
    config.download_dir = dir.join("downloads");
    config.accept_all = true;
    NodeHandle::start(config).await.unwrap()
}

async fn dial(node: &NodeHandle) -> SecureConn {
    common::dial_transfer_as(node, &Identity::generate().unwrap()).await
}

/// A file whose content never matters (the offer or the stream is refused first).
fn file(path: &str, size: u64) -> Item {
    Item {
        path: path.into(),
        size,
        mtime: 1,
        dir: false,
        root: ByteBuf::from(vec![0u8; 32]),
    }
}

/// A file of `data`, with its true root.
fn file_of(path: &str, data: &[u8]) -> Item {
    Item {
        root: ByteBuf::from(blake3::hash(data).as_bytes().to_vec()),
        ..file(path, data.len() as u64)
    }
}

async fn offer(conn: &mut SecureConn, items: Vec<Item>) {
    let bytes = items.iter().map(|i| i.size).sum();
    conn.writer
        .send(&TransferMsg::Offer {
            transfer: "0123456789abcdef".into(),
            items: items.len() as u32,
            bytes,
            relay: vec![],
            origin: None,
        })
        .await
        .unwrap();
    conn.writer.send(&TransferMsg::Items { items }).await.unwrap();
}

/// The next message, or None when the node closed the connection (or broke it off).
async fn answer(conn: &mut SecureConn) -> Option<TransferMsg> {
    tokio::time::timeout(WAIT, conn.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME))
        .await
        .expect("the node answers or closes")
        .ok()
        .flatten()
}

/// Every file under `dir`, relative, skipping the partial folder.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            if p.file_name().unwrap() == ".lanyard-partial" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn hostile_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let node = receiver(dir.path()).await;
    let catalogue = [
        "../x",
        "../../etc/cron.d/x",
        "a/../../x",
        "/etc/x",
        "//server/share/x",
        "\\\\server\\x",
        "C:/Windows/x",
        "c:x",
        "a/./b",
        "a//b",
        "x\u{1b}[2J",
        "x\u{0}y",
        "x\ny",
        "evil\u{202e}fdp.exe",
        "report\u{200f}.pdf",
        "carol\u{200b}.txt",
        "d/zero\u{feff}width",
        "tag\u{e0041}",
        "CON",
        "nul.txt",
        "com1",
        "a/LPT9.log",
        "trailing. ",
        ".",
        "..",
        "",
        ".lanyard-partial/x",
    ];
    let long_component = "x".repeat(256);
    let long_path = vec!["d"; 3000].join("/");
    let deep = vec!["d"; 100].join("/");
    for name in catalogue.iter().map(|s| s.to_string()).chain([long_component, long_path, deep]) {
        let mut conn = dial(&node).await;
        offer(&mut conn, vec![file(&name, 1)]).await;
        match answer(&mut conn).await {
            Some(TransferMsg::Reject { text: Some(reason), .. }) => {
                assert!(reason.starts_with("refused") || reason.contains("reserved"), "{name:?}: {reason}")
            }
            other => panic!("{name:?}: expected a rejection, got {other:?}"),
        }
    }
    assert!(
        files_under(dir.path()).iter().all(|f| f.starts_with("data/")),
        "{:?}",
        files_under(dir.path())
    );
}

#[tokio::test]
async fn oversize_and_inconsistent_offers_end_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let node = receiver(dir.path()).await;

    // A count far over the limit: refused before any manifest is read.
    let mut conn = dial(&node).await;
    conn.writer
        .send(&TransferMsg::Offer {
            transfer: "x".into(),
            items: u32::MAX,
            bytes: 0,
            relay: vec![],
            origin: None,
        })
        .await
        .unwrap();
    assert!(matches!(answer(&mut conn).await, Some(TransferMsg::Error { .. }) | None));

    // More items than announced.
    let mut conn = dial(&node).await;
    conn.writer
        .send(&TransferMsg::Offer {
            transfer: "x".into(),
            items: 1,
            bytes: 2,
            relay: vec![],
            origin: None,
        })
        .await
        .unwrap();
    conn.writer
        .send(&TransferMsg::Items {
            items: vec![file("a", 1), file("b", 1)],
        })
        .await
        .unwrap();
    assert!(matches!(answer(&mut conn).await, Some(TransferMsg::Error { .. }) | None));

    // Sizes that do not add up to the announced total.
    let mut conn = dial(&node).await;
    conn.writer
        .send(&TransferMsg::Offer {
            transfer: "x".into(),
            items: 1,
            bytes: 5,
            relay: vec![],
            origin: None,
        })
        .await
        .unwrap();
    conn.writer
        .send(&TransferMsg::Items {
            items: vec![file("a", u64::MAX)],
        })
        .await
        .unwrap();
    assert!(matches!(
        answer(&mut conn).await,
        Some(TransferMsg::Error { .. } | TransferMsg::Reject { .. }) | None
    ));

    // A frame length over the limit.
    let mut conn = dial(&node).await;
    let big = "x".repeat(MAX_TRANSFER_FRAME + 1);
    conn.writer.send(&TransferMsg::List { path: big }).await.unwrap();
    assert_eq!(answer(&mut conn).await, None);

    // Nonsense as the first message.
    let mut conn = dial(&node).await;
    conn.writer.send(&TransferMsg::Done).await.unwrap();
    assert_eq!(answer(&mut conn).await, None);

    // The node still takes a good transfer.
    let mut conn = dial(&node).await;
    offer(&mut conn, vec![file_of("ok.txt", b"ok")]).await;
    assert_eq!(answer(&mut conn).await, Some(TransferMsg::Accept { resume: vec![] }));
    send_file(&mut conn, 0, b"ok").await;
    conn.writer.send(&TransferMsg::Done).await.unwrap();
    assert_eq!(answer(&mut conn).await, Some(TransferMsg::FileOk { index: 0, saved_as: None }));
    assert_eq!(std::fs::read(dir.path().join("downloads/ok.txt")).unwrap(), b"ok");
}

#[tokio::test]
async fn lies_during_the_stream_never_leave_a_file_under_its_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let node = receiver(dir.path()).await;
    // Data that does not match the root the offer gave, from the sender itself: caught at its
    // chunk, that file fails (a source that changed while it was read) and nothing of it is
    // placed; the next file still arrives. (From a relay it ends the transfer: tests/relay.rs.)
    let mut conn = dial(&node).await;
    offer(&mut conn, vec![file_of("forged.txt", b"good"), file_of("fine.txt", b"f")]).await;
    assert!(matches!(answer(&mut conn).await, Some(TransferMsg::Accept { .. })));
    conn.writer.send(&TransferMsg::FileStart { index: 0, offset: 0 }).await.unwrap();
    conn.writer.send(&TransferMsg::Data { len: 4 }).await.unwrap();
    conn.writer.write_raw(b"evil").await.unwrap();
    conn.writer.send(&TransferMsg::FileEnd).await.unwrap();
    send_file(&mut conn, 1, b"f").await;
    conn.writer.send(&TransferMsg::Done).await.unwrap();
    let mut verdicts = [answer(&mut conn).await, answer(&mut conn).await];
    verdicts.sort_by_key(|v| format!("{v:?}"));
    match &verdicts[0] {
        Some(TransferMsg::FileFailed {
            index: 0,
            text: Some(reason),
            ..
        }) => assert!(reason.contains("chunk 0 did not match its hash"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(verdicts[1], Some(TransferMsg::FileOk { index: 1, saved_as: None }));
    assert!(!dir.path().join("downloads/forged.txt").exists());
    drop(conn);

    // A root of the wrong length: the offer is refused.
    let mut conn = dial(&node).await;
    let mut short = file_of("short.txt", b"s");
    short.root = ByteBuf::from(vec![0u8; 3]);
    offer(&mut conn, vec![short]).await;
    assert!(matches!(answer(&mut conn).await, Some(TransferMsg::Reject { text: Some(reason), .. }) if reason.contains("BLAKE3 root")));

    // More data than the file holds, a wrong resume offset, an index out of range, a segment
    // over the limit: each ends the connection.
    let lies: Vec<Vec<TransferMsg>> = vec![
        vec![TransferMsg::FileStart { index: 0, offset: 0 }, TransferMsg::Data { len: 5 }],
        vec![TransferMsg::FileStart { index: 0, offset: 2 }],
        vec![TransferMsg::FileStart { index: 7, offset: 0 }],
        vec![TransferMsg::FileStart { index: 0, offset: 0 }, TransferMsg::Data { len: u64::MAX }],
        vec![TransferMsg::FileStart { index: 0, offset: 0 }, TransferMsg::FileEnd],
        // A whole-file frame that does not carry the whole file, or carries more.
        vec![TransferMsg::File {
            index: 0,
            offset: 0,
            len: 3,
        }],
        vec![TransferMsg::File {
            index: 0,
            offset: 0,
            len: 5,
        }],
        vec![TransferMsg::File {
            index: 0,
            offset: 2,
            len: 2,
        }],
    ];
    for lie in lies {
        let mut conn = dial(&node).await;
        offer(&mut conn, vec![file("lie.txt", 4)]).await;
        assert!(matches!(answer(&mut conn).await, Some(TransferMsg::Accept { .. })));
        for m in &lie {
            conn.writer.send(m).await.unwrap();
        }
        match answer(&mut conn).await {
            Some(TransferMsg::Error {
                code: lanyard::reason::Reason::Protocol,
                text: Some(message),
            }) => assert!(message.contains("protocol error"), "{lie:?}: {message}"),
            // A silent close would leave the sender guessing: the node says why first.
            other => panic!("{lie:?}: {other:?}"),
        }
    }
    // A whole-file frame for a file of several chunks, which must come with its hashes.
    let mut conn = dial(&node).await;
    offer(&mut conn, vec![file("two-chunks.bin", (1 << 20) + 1)]).await;
    assert!(matches!(answer(&mut conn).await, Some(TransferMsg::Accept { .. })));
    let whole = TransferMsg::File {
        index: 0,
        offset: 0,
        len: (1 << 20) + 1,
    };
    conn.writer.send(&whole).await.unwrap();
    match answer(&mut conn).await {
        Some(TransferMsg::Error {
            code: lanyard::reason::Reason::Protocol,
            text: Some(message),
        }) => assert!(message.contains("several chunks"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Only the honest file of the first connection.
    assert_eq!(files_under(&dir.path().join("downloads")), vec!["fine.txt".to_string()]);

    // An honest whole-file frame (what a sender uses for a small file) and its bytes.
    let mut conn = dial(&node).await;
    offer(&mut conn, vec![file_of("whole.txt", b"in one frame")]).await;
    assert!(matches!(answer(&mut conn).await, Some(TransferMsg::Accept { .. })));
    conn.writer
        .send(&TransferMsg::File {
            index: 0,
            offset: 0,
            len: 12,
        })
        .await
        .unwrap();
    conn.writer.write_raw(b"in one frame").await.unwrap();
    conn.writer.send(&TransferMsg::Done).await.unwrap();
    assert_eq!(answer(&mut conn).await, Some(TransferMsg::FileOk { index: 0, saved_as: None }));
    assert_eq!(std::fs::read(dir.path().join("downloads/whole.txt")).unwrap(), b"in one frame");
}

#[tokio::test]
async fn one_peer_cannot_hold_more_than_eight_transfer_connections() {
    let dir = tempfile::tempdir().unwrap();
    let node = receiver(dir.path()).await;
    let me = Identity::generate().unwrap();
    let hello = common::mallory_hello();
    // Nine connections that say nothing yet; each one's reader reports when it ends.
    let mut writers = Vec::new();
    let mut ended = tokio::task::JoinSet::new();
    for n in 0..9 {
        let sock = TcpStream::connect(node.listen_addr().unwrap()).await.unwrap();
        let mut conn = secure::connect(sock, &me, &hello, Purpose::Transfer, Some(node.id()))
            .await
            .unwrap();
        ended.spawn(async move { (n, conn.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME).await) });
        writers.push(conn.writer);
    }
    // One of them is refused at once, told why (normally the ninth; the node counts them as
    // their handshakes complete on its side). The other eight stay open, waiting for a first
    // message.
    let (n, first) = tokio::time::timeout(WAIT, ended.join_next())
        .await
        .expect("one of nine connections is dropped")
        .unwrap()
        .unwrap();
    assert!(
        matches!(&first, Ok(Some(TransferMsg::Error { code: lanyard::reason::Reason::Busy, text: Some(message) })) if message == "too many transfers from you"),
        "connection {n} is refused with a reason: {first:?}"
    );
    let next = tokio::time::timeout(Duration::from_millis(500), ended.join_next()).await;
    assert!(next.is_err(), "the other eight are still open and waiting: {next:?}");
    // Another peer (on a machine of its own: newcomers from one address share half of its
    // slots, which this one key holds now) is unaffected.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if socket.bind(std::net::SocketAddr::from(([127, 0, 0, 2], 0))).is_err() {
        return common::skip("one_peer_cannot_hold_more_than_eight_transfer_connections", "cannot bind 127.0.0.2");
    }
    let sock = socket.connect(node.listen_addr().unwrap()).await.unwrap();
    let mut other = secure::connect(sock, &Identity::generate().unwrap(), &hello, Purpose::Transfer, Some(node.id()))
        .await
        .unwrap();
    let open = tokio::time::timeout(
        Duration::from_millis(500),
        other.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME),
    )
    .await;
    assert!(open.is_err(), "another peer's connection stays open: {open:?}");
}

/// One whole file of one chunk: start, its bytes, its end.
async fn send_file(conn: &mut SecureConn, index: u32, data: &[u8]) {
    conn.writer.send(&TransferMsg::FileStart { index, offset: 0 }).await.unwrap();
    conn.writer.send(&TransferMsg::Data { len: data.len() as u64 }).await.unwrap();
    conn.writer.write_raw(data).await.unwrap();
    conn.writer.send(&TransferMsg::FileEnd).await.unwrap();
}

fn dir_item(path: &str) -> Item {
    Item {
        path: path.into(),
        size: 0,
        mtime: 1,
        dir: true,
        root: ByteBuf::new(),
    }
}

#[tokio::test]
async fn an_offer_of_many_folders_creates_none_before_the_sender_reaches_them() {
    const FOLDERS: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let node = receiver(dir.path()).await;
    let downloads = dir.path().join("downloads");
    let mut conn = dial(&node).await;
    let mut items = vec![file_of("tree/first.txt", b"first")];
    items.extend((0..FOLDERS).map(|i| dir_item(&format!("tree/d{i:04}"))));
    items.push(file_of("tree/last.txt", b"last"));
    offer(&mut conn, items).await;
    assert!(matches!(answer(&mut conn).await, Some(TransferMsg::Accept { .. })));
    // Accepted, and nothing came yet: nothing made.
    assert!(!downloads.join("tree").exists());

    send_file(&mut conn, 0, b"first").await;
    until("the first file placed", || downloads.join("tree/first.txt").exists()).await;
    // Its folder came with it; the folders the sender has not reached did not.
    let made = std::fs::read_dir(downloads.join("tree")).unwrap().count();
    assert_eq!(made, 1, "only first.txt in tree/");

    send_file(&mut conn, (FOLDERS + 1) as u32, b"last").await;
    conn.writer.send(&TransferMsg::Done).await.unwrap();
    let mut ok = 0;
    while ok < FOLDERS + 2 {
        match answer(&mut conn).await {
            Some(TransferMsg::FileOk { .. }) => ok += 1,
            other => panic!("after {ok} verdicts: {other:?}"),
        }
    }
    assert!(downloads.join("tree/d0000").is_dir() && downloads.join(format!("tree/d{:04}", FOLDERS - 1)).is_dir());
    assert_eq!(std::fs::read(downloads.join("tree/last.txt")).unwrap(), b"last");
}

#[tokio::test]
async fn a_link_swapped_in_for_a_folder_mid_transfer_leads_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let node = receiver(dir.path()).await;
    let downloads = dir.path().join("downloads");
    let outside = tempfile::tempdir().unwrap();
    let mut conn = dial(&node).await;
    offer(
        &mut conn,
        vec![file_of("tree/sub/a.txt", b"halfmore"), file_of("tree/sub/b.txt", b"b!")],
    )
    .await;
    assert!(matches!(answer(&mut conn).await, Some(TransferMsg::Accept { .. })));
    conn.writer.send(&TransferMsg::FileStart { index: 0, offset: 0 }).await.unwrap();
    conn.writer.send(&TransferMsg::Data { len: 4 }).await.unwrap();
    conn.writer.write_raw(b"half").await.unwrap();
    conn.writer.flush().await.unwrap();
    // The first byte made the folder; now someone replaces it with a link to elsewhere,
    // between that check and the writes that follow.
    let sub = downloads.join("tree/sub");
    until("the folder made", || sub.is_dir()).await;
    std::fs::remove_dir(&sub).unwrap();
    std::os::unix::fs::symlink(outside.path(), &sub).unwrap();

    conn.writer.send(&TransferMsg::Data { len: 4 }).await.unwrap();
    conn.writer.write_raw(b"more").await.unwrap();
    conn.writer.send(&TransferMsg::FileEnd).await.unwrap();
    send_file(&mut conn, 1, b"b!").await;
    conn.writer.send(&TransferMsg::Done).await.unwrap();
    for _ in 0..2 {
        match answer(&mut conn).await {
            Some(TransferMsg::FileFailed { text: Some(reason), .. }) => assert!(reason.contains("cannot place it"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "nothing lands outside");

    // Planted before the offer: the folder goes elsewhere (a free name), never through it.
    std::fs::remove_file(&sub).unwrap();
    std::os::unix::fs::symlink(outside.path(), downloads.join("linked")).unwrap();
    let mut conn = dial(&node).await;
    offer(&mut conn, vec![file_of("linked/x.txt", b"x")]).await;
    assert!(matches!(answer(&mut conn).await, Some(TransferMsg::Accept { .. })));
    send_file(&mut conn, 0, b"x").await;
    conn.writer.send(&TransferMsg::Done).await.unwrap();
    assert_eq!(
        answer(&mut conn).await,
        Some(TransferMsg::FileOk {
            index: 0,
            saved_as: Some("linked (1)/x.txt".into())
        })
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "nothing lands outside");
}

#[tokio::test]
async fn a_plain_offer_with_a_running_transfers_id_does_not_take_it_over() {
    let dir = tempfile::tempdir().unwrap();
    let node = receiver(dir.path()).await;
    let mut first = dial(&node).await;
    offer(&mut first, vec![file_of("mine.txt", b"mine, all of it")]).await;
    assert!(matches!(answer(&mut first).await, Some(TransferMsg::Accept { .. })));
    first.writer.send(&TransferMsg::FileStart { index: 0, offset: 0 }).await.unwrap();
    // Another key offers under the same transfer id, as a plain send (no relay chain, no
    // origin): it is a transfer of its own, the running one goes on.
    let mut other = dial(&node).await;
    offer(&mut other, vec![file_of("theirs.txt", b"theirs")]).await;
    assert!(matches!(answer(&mut other).await, Some(TransferMsg::Accept { .. })));
    let data = b"mine, all of it";
    first.writer.send(&TransferMsg::Data { len: data.len() as u64 }).await.unwrap();
    first.writer.write_raw(data).await.unwrap();
    first.writer.send(&TransferMsg::FileEnd).await.unwrap();
    first.writer.send(&TransferMsg::Done).await.unwrap();
    assert_eq!(answer(&mut first).await, Some(TransferMsg::FileOk { index: 0, saved_as: None }));
    assert_eq!(std::fs::read(dir.path().join("downloads/mine.txt")).unwrap(), data);
}
