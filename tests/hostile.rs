//! Hostile input against a real node: garbage, a 4 GiB length prefix, a half handshake, a flood
//! of idle connections. After each, the node must still serve a real peer.

mod common;

use common::{PATIENCE, TestNode, connect};
use lanyard::fuzzing::net::secure;
use lanyard::fuzzing::net::wire::{Hello, MAGIC, PROTOCOL_VERSION, Purpose};
use lanyard::identity::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn hello(nick: &str) -> Hello {
    Hello {
        nick: nick.into(),
        host: "h".into(),
        listen_port: None,
        software: "test".into(),
        session: 1,
    }
}

/// Wait until the node closes `sock` (EOF or reset); fails only after [`PATIENCE`].
async fn closed_by_node(sock: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("the node closes a hostile connection");
}

/// The node still accepts and serves a genuine peer.
async fn still_serves(target: &mut TestNode) {
    let mut real = TestNode::start("real").await;
    connect(&mut real, target).await;
}

#[tokio::test]
async fn random_bytes_are_dropped() {
    use rand::{Rng, SeedableRng};
    let mut a = TestNode::start("ada").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    // All at once: garbage that looks like an unfinished handshake is only dropped by timeout.
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..20 {
        let n = rng.random_range(1..4096);
        let mut junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        if round % 2 == 0 {
            // Get past the preamble so the Noise layer sees the garbage too.
            let mut pre = MAGIC.to_vec();
            pre.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
            pre.extend_from_slice(&[1, 0]);
            junk.splice(0..0, pre);
        }
        let addr = a.addr();
        tasks.spawn(async move {
            let mut sock = TcpStream::connect(addr).await.unwrap();
            let _ = sock.write_all(&junk).await;
            closed_by_node(&mut sock).await;
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    still_serves(&mut a).await;
}

#[tokio::test]
async fn a_4_gib_length_prefix_after_the_handshake_is_refused() {
    let mut a = TestNode::start("ada").await;
    let me = Identity::generate().unwrap();
    let sock = TcpStream::connect(a.addr()).await.unwrap();
    let mut conn = secure::connect(sock, &me, &hello("mallory"), Purpose::Control, Some(&a.id()))
        .await
        .unwrap();
    a.expect_up(me.id()).await;
    // An authenticated peer announces a frame of u32::MAX bytes: refused before allocation,
    // that connection ends, the node carries on.
    conn.writer.write_raw(&u32::MAX.to_be_bytes()).await.unwrap();
    conn.writer.flush().await.unwrap();
    let down = a.expect_down(me.id()).await;
    println!("{down:?}");
    assert!(format!("{down:?}").contains("exceeds the limit"), "{down:?}");
    still_serves(&mut a).await;
}

#[tokio::test]
async fn a_malformed_frame_drops_only_that_connection() {
    let mut a = TestNode::start("ada").await;
    let mut friend = TestNode::start("friend").await;
    connect(&mut a, &mut friend).await;
    let me = Identity::generate().unwrap();
    let sock = TcpStream::connect(a.addr()).await.unwrap();
    let mut conn = secure::connect(sock, &me, &hello("mallory"), Purpose::Control, None).await.unwrap();
    a.expect_up(me.id()).await;
    // A well-sized frame whose body is not a message.
    conn.writer.write_raw(&[0, 0, 0, 3, 0xff, 0xfe, 0xfd]).await.unwrap();
    conn.writer.flush().await.unwrap();
    a.expect_down(me.id()).await;
    assert!(a.node.is_online(&friend.id()), "the other peer is untouched");
}

#[tokio::test]
async fn a_half_handshake_times_out() {
    let mut a = TestNode::start("ada").await;
    let mut sock = TcpStream::connect(a.addr()).await.unwrap();
    let mut pre = MAGIC.to_vec();
    pre.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    pre.extend_from_slice(&[1, 0]);
    sock.write_all(&pre).await.unwrap();
    // The first Noise message's length, then nothing: the node must give up on its own.
    sock.write_all(&[0, 32]).await.unwrap();
    closed_by_node(&mut sock).await;
    still_serves(&mut a).await;
}

#[tokio::test]
async fn two_hundred_idle_connections_do_not_lock_out_a_real_peer() {
    let mut a = TestNode::start("ada").await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(a.addr()).await.unwrap());
    }
    // While they are all still open, a genuine peer gets in.
    still_serves(&mut a).await;
    // And every idle one is closed by the node (evicted or timed out).
    for sock in &mut idle {
        closed_by_node(sock).await;
    }
    still_serves(&mut a).await;
}

#[tokio::test]
async fn a_newer_protocol_version_is_told_why() {
    let a = TestNode::start("ada").await;
    let mut sock = TcpStream::connect(a.addr()).await.unwrap();
    let mut pre = MAGIC.to_vec();
    pre.extend_from_slice(&(PROTOCOL_VERSION + 1).to_be_bytes());
    pre.extend_from_slice(&[1, 0]);
    sock.write_all(&pre).await.unwrap();
    let mut answer = [0u8; 8];
    sock.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer[..4], MAGIC);
    assert_eq!(
        u16::from_be_bytes([answer[4], answer[5]]),
        PROTOCOL_VERSION,
        "we say our version so the peer can report it"
    );
    closed_by_node(&mut sock).await;
}

#[tokio::test]
async fn a_peer_that_never_reads_its_acks_is_cut_off() {
    use lanyard::fuzzing::net::wire::ControlMsg;
    let mut a = TestNode::start("ada").await;
    let me = Identity::generate().unwrap();
    // A small receive buffer, so that fewer unread acks fill the path back to us: what the node
    // must get through before it notices stays well within what a loaded machine does quickly.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let sock = socket.connect(a.addr().parse().unwrap()).await.unwrap();
    let conn = secure::connect(sock, &me, &hello("mallory"), Purpose::Control, None).await.unwrap();
    a.expect_up(me.id()).await;
    // Valid chat lines as fast as the node takes them, while never reading a byte back: the
    // node's acks pile up unread. Keep the reader half alive so the socket stays open. Bounded:
    // the node's own send buffer (up to net.ipv4.tcp_wmem's max, 4 MiB by default) takes some
    // 60,000 acks before anything backs up; the count leaves room for machines tuned higher.
    let (_reader, mut writer) = (conn.reader, conn.writer);
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    let flood = tokio::spawn(async move {
        for n in 0u64..1_000_000 {
            let msg = ControlMsg::Chat {
                id: format!("{n:032x}"),
                room: false,
                sent_ms: 0,
                text: "x".into(),
            };
            if writer.send(&msg).await.is_err() {
                break;
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let down = a.expect_down(me.id()).await;
    flood.abort();
    println!("{down:?} after {} lines", sent.load(std::sync::atomic::Ordering::Relaxed));
    // Cut off for misbehaving — sending past its window of unacknowledged lines, or not reading
    // the acks — not merely timed out once the flood ran dry.
    let why = format!("{down:?}");
    assert!(
        why.contains("sends more than its window") || why.contains("does not read its acknowledgements"),
        "{why}"
    );
    still_serves(&mut a).await;
}

#[tokio::test]
async fn a_peer_with_an_invisible_character_in_its_nick_is_shown_apart() {
    use lanyard::cli::output::peers_table;
    use lanyard::fuzzing::net::wire::ControlMsg;
    let mut a = TestNode::start("ada").await;
    let mut carol = TestNode::start("carol").await;
    connect(&mut a, &mut carol).await;
    // An impostor whose nick looks like "carol": accepted (display neutralises), stored as sent.
    let me = Identity::generate().unwrap();
    let sock = TcpStream::connect(a.addr()).await.unwrap();
    let mut conn = secure::connect(sock, &me, &hello("carol\u{200b}"), Purpose::Control, None)
        .await
        .unwrap();
    a.expect_up(me.id()).await;
    assert_eq!(a.node.peer(me.id()).unwrap().nick, "carol\u{200b}");
    let table = peers_table(&a.node.peers());
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("carol")).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows.iter().any(|r| r.starts_with("carol\\u{200b} ")), "{table}");
    assert!(rows.iter().any(|r| r.starts_with("carol ")), "{table}");
    assert!(table.lines().all(lanyard::text::is_clean), "{table}");

    // The same for a rename: kept as sent, shown escaped.
    conn.writer
        .send(&ControlMsg::Nick {
            nick: "\u{202e}carol".into(),
        })
        .await
        .unwrap();
    a.expect_event("peer_renamed", |e| matches!(e, lanyard::node::events::Event::PeerRenamed { .. }))
        .await;
    assert_eq!(a.node.peer(me.id()).unwrap().nick, "\u{202e}carol");
    let table = peers_table(&a.node.peers());
    assert!(table.contains("\\u{202e}carol"), "{table}");
}
