//! The secure channel: a plaintext preamble (magic, protocol version, purpose), then a Noise XX
//! handshake that authenticates both static keys, then encrypted records of at most 64 KiB, each
//! prefixed by its u16 length. Frames (see `frame`) and raw file bytes ride on top as one
//! plaintext byte stream per direction.
//!
//! `handshake`: the preamble and Noise XX; `records`: the encrypted records, one reader and one
//! writer per connection; `liveness`: the sockets' settings that notice a vanished peer.

mod handshake;
mod liveness;
mod records;

use std::net::SocketAddr;

use crate::identity::PeerId;
pub use crate::limits::HANDSHAKE_TIMEOUT;
use crate::net::wire::{Hello, Purpose};
pub use handshake::{HandshakeError, accept, connect};
// The fuzz targets reach the handshake through `fuzzing`.
#[cfg(feature = "test-hooks")]
pub(crate) use handshake::{check_preamble, respond};
pub use liveness::CONTROL_GONE_AFTER;
pub use records::{SecureReader, SecureWriter};

/// Who is on the other end, as proven by the handshake.
#[derive(Debug, Clone)]
pub struct Remote {
    pub id: PeerId,
    pub public_key: Vec<u8>,
    pub hello: Hello,
    pub addr: SocketAddr,
    /// Names this connection the same way at both ends (from the Noise handshake hash), so two
    /// nodes with two connections between them can agree on which to keep without talking.
    pub channel: u64,
}

pub struct SecureConn {
    pub reader: SecureReader,
    pub writer: SecureWriter,
    pub remote: Remote,
    pub purpose: Purpose,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ring::aead;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::handshake::{builder, preamble, responder, version_of};
    use super::records::{READ_BUFFER, RecordKey, WRITE_BATCH, record_keys};
    use super::*;
    use crate::identity::Identity;
    use crate::net::frame::{self, FrameError};
    use crate::net::wire::{
        ByeReason, ControlMsg, MAX_CONTROL_FRAME, NOISE_MAX_MESSAGE, NOISE_MAX_PLAINTEXT, NOISE_TAG, PREAMBLE_LEN, PROTOCOL_VERSION,
        TRANSFER_PROTOCOL_VERSION,
    };

    fn hello(nick: &str) -> Hello {
        Hello {
            nick: nick.into(),
            host: "h".into(),
            listen_port: None,
            software: "test".into(),
            session: 1,
        }
    }

    async fn pair() -> (
        Result<SecureConn, HandshakeError>,
        Result<SecureConn, HandshakeError>,
        Identity,
        Identity,
    ) {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let b_id = b.id().clone();
        let (ca, cb) = tokio::join!(
            async {
                connect(
                    TcpStream::connect(addr).await.unwrap(),
                    &a,
                    &hello("a"),
                    Purpose::Control,
                    Some(&b_id),
                )
                .await
            },
            async { accept(listener.accept().await.unwrap().0, &b, &hello("b")).await }
        );
        (ca, cb, a, b)
    }

    #[tokio::test]
    async fn handshake_authenticates_both_sides_and_carries_frames() {
        let (ca, cb, a, b) = pair().await;
        let (mut ca, mut cb) = (ca.unwrap(), cb.unwrap());
        assert_eq!(&ca.remote.id, b.id());
        assert_eq!(&cb.remote.id, a.id());
        assert_eq!(cb.remote.hello.nick, "a");
        assert_eq!(cb.purpose, Purpose::Control);
        ca.writer.send(&ControlMsg::Nick { nick: "x".repeat(100_000) }).await.unwrap();
        ca.writer.send(&ControlMsg::Ping).await.unwrap();
        let big = vec![7u8; 300_000];
        ca.writer.write_raw(&big).await.unwrap();
        ca.writer
            .send(&ControlMsg::Bye {
                reason: ByeReason::Leaving,
            })
            .await
            .unwrap();
        // The oversized frame went out first and must be refused by the reader's bound.
        let first = cb.reader.read_frame::<ControlMsg>(MAX_CONTROL_FRAME).await;
        assert!(matches!(first, Err(FrameError::TooLarge { .. })), "{first:?}");
    }

    #[tokio::test]
    async fn raw_bytes_and_frames_interleave() {
        let (ca, cb, _, _) = pair().await;
        let (mut ca, mut cb) = (ca.unwrap(), cb.unwrap());
        let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        ca.writer.send(&ControlMsg::Ping).await.unwrap();
        ca.writer.write_raw(&big).await.unwrap();
        ca.writer
            .send(&ControlMsg::Bye {
                reason: ByeReason::Leaving,
            })
            .await
            .unwrap();
        assert_eq!(
            cb.reader.read_frame::<ControlMsg>(MAX_CONTROL_FRAME).await.unwrap(),
            Some(ControlMsg::Ping)
        );
        let mut got = vec![0u8; big.len()];
        cb.reader.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
        assert_eq!(
            cb.reader.read_frame::<ControlMsg>(MAX_CONTROL_FRAME).await.unwrap(),
            Some(ControlMsg::Bye {
                reason: ByeReason::Leaving
            })
        );
        ca.writer.shutdown().await;
        assert_eq!(cb.reader.read_frame::<ControlMsg>(MAX_CONTROL_FRAME).await.unwrap(), None);
    }

    #[tokio::test]
    async fn wrong_expected_id_is_refused() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        let someone_else = Identity::generate().unwrap().id().clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ca, _cb) = tokio::join!(
            async {
                connect(
                    TcpStream::connect(addr).await.unwrap(),
                    &a,
                    &hello("a"),
                    Purpose::Control,
                    Some(&someone_else),
                )
                .await
            },
            async { accept(listener.accept().await.unwrap().0, &b, &hello("b")).await }
        );
        assert!(matches!(ca, Err(HandshakeError::IdMismatch { .. })));
    }

    /// A node answering one connection on a free port.
    async fn answering() -> (std::net::SocketAddr, tokio::task::JoinHandle<Result<SecureConn, HandshakeError>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let b = Identity::generate().unwrap();
            accept(listener.accept().await.unwrap().0, &b, &hello("b")).await
        });
        (addr, server)
    }

    #[tokio::test]
    async fn version_mismatch_is_reported_on_both_sides() {
        let a = Identity::generate().unwrap();
        let (addr, server) = answering().await;
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let mut p = preamble(Purpose::Control);
        p[4..6].copy_from_slice(&99u16.to_be_bytes());
        sock.write_all(&p).await.unwrap();
        let mut theirs = [0u8; PREAMBLE_LEN];
        sock.read_exact(&mut theirs).await.unwrap();
        assert_eq!(u16::from_be_bytes([theirs[4], theirs[5]]), PROTOCOL_VERSION);
        let err = server.await.unwrap().err().unwrap();
        assert!(err.to_string().contains("v99"), "{err}");
        drop(a);
    }

    /// A v1 node (before verified chunks), a v2 one (before v3's frames) or a v3 one (before
    /// v4's reason codes) dialling a transfer, and us dialling a v1 one: both ends hear what to
    /// update, and the control protocol is not affected.
    #[tokio::test]
    async fn an_old_transfer_peer_is_told_to_update() {
        let mut old = preamble(Purpose::Transfer);
        for version in [1u16, 2, 3] {
            let (addr, server) = answering().await;
            let mut sock = TcpStream::connect(addr).await.unwrap();
            old[4..6].copy_from_slice(&version.to_be_bytes());
            sock.write_all(&old).await.unwrap();
            let mut theirs = [0u8; PREAMBLE_LEN];
            sock.read_exact(&mut theirs).await.unwrap();
            assert_eq!(u16::from_be_bytes([theirs[4], theirs[5]]), TRANSFER_PROTOCOL_VERSION);
            let err = server.await.unwrap().err().unwrap().to_string();
            assert!(
                err.contains(&format!("older lanyard (transfer protocol v{version}")) && err.contains("update lanyard"),
                "{err}"
            );
        }
        old[4..6].copy_from_slice(&1u16.to_be_bytes());

        // Our dial to an old node: it answers with its v1 preamble.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let old_node = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut theirs = [0u8; PREAMBLE_LEN];
            sock.read_exact(&mut theirs).await.unwrap();
            sock.write_all(&old).await.unwrap();
        });
        let a = Identity::generate().unwrap();
        let sock = TcpStream::connect(addr).await.unwrap();
        let err = connect(sock, &a, &hello("a"), Purpose::Transfer, None)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("older lanyard") && err.contains("update lanyard there"), "{err}");
        old_node.await.unwrap();
        assert_eq!(version_of(Purpose::Control), 1);
    }

    #[tokio::test]
    async fn garbage_preamble_is_not_lanyard() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let b = Identity::generate().unwrap();
            accept(listener.accept().await.unwrap().0, &b, &hello("b")).await
        });
        let mut sock = TcpStream::connect(addr).await.unwrap();
        sock.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert!(matches!(server.await.unwrap(), Err(HandshakeError::NotLanyard)));
    }

    /// Two snow handshake states run through XX in memory, ready for transport.
    fn snow_pair() -> (snow::HandshakeState, snow::HandshakeState) {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        let mut i = builder(&a, b"p").unwrap();
        let mut r = responder(&b, b"p").unwrap();
        let (mut m, mut p) = (vec![0u8; NOISE_MAX_MESSAGE], vec![0u8; NOISE_MAX_MESSAGE]);
        for turn in 0..3 {
            let (w, rd) = if turn % 2 == 0 { (&mut i, &mut r) } else { (&mut r, &mut i) };
            let n = w.write_message(&[], &mut m).unwrap();
            rd.read_message(&m[..n], &mut p).unwrap();
        }
        (i, r)
    }

    /// The records sealed with ring are the ones snow's transport seals and opens, both ways:
    /// peers on either record layer understand each other.
    #[test]
    fn records_match_snows_transport() {
        let (mut i, r) = snow_pair();
        let (mut send, mut recv) = record_keys(&mut i).unwrap();
        let theirs = r.into_stateless_transport_mode().unwrap();
        for (nonce, len) in [(0u64, 0usize), (1, 1), (2, 4096), (3, NOISE_MAX_PLAINTEXT)] {
            let plain: Vec<u8> = (0..len).map(|b| (b * 7 + nonce as usize) as u8).collect();
            let mut ours = plain.clone();
            let tag = send.seal(&mut ours).unwrap();
            ours.extend_from_slice(tag.as_ref());
            let mut snows = vec![0u8; len + NOISE_TAG];
            theirs.write_message(nonce, &plain, &mut snows).unwrap();
            let mut opened = vec![0u8; NOISE_MAX_MESSAGE];
            let n = theirs.read_message(nonce, &ours, &mut opened).unwrap();
            assert_eq!(&opened[..n], &plain[..], "snow opens ours, len {len}");
            let n = recv.open_within(&mut snows, 0).unwrap();
            assert_eq!(&snows[..n], &plain[..], "we open snow's, len {len}");
        }
    }

    /// Bulk data goes out as full records (the same boundaries as before sealing in place), and
    /// arrives whole however the socket cuts it.
    #[tokio::test]
    async fn bulk_data_makes_full_records_and_arrives_whole() {
        let (ca, cb, _, _) = pair().await;
        let (mut ca, mut cb) = (ca.unwrap(), cb.unwrap());
        let data: Vec<u8> = (0..3_000_001u32).map(|i| (i % 251) as u8).collect();
        ca.writer.queue_frame(&ControlMsg::Ping).unwrap();
        for piece in data.chunks(777_777) {
            ca.writer.write_raw(piece).await.unwrap();
        }
        ca.writer.flush().await.unwrap();
        ca.writer.shutdown().await;
        let mut frame = Vec::new();
        frame::encode(&ControlMsg::Ping, &mut frame).unwrap();
        let plain_total = frame.len() + data.len();
        let mut wire = Vec::new();
        cb.reader.sock.read_to_end(&mut wire).await.unwrap();
        let mut lens = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let len = u16::from_be_bytes([wire[at], wire[at + 1]]) as usize;
            lens.push(len);
            at += 2 + len;
        }
        assert_eq!(at, wire.len());
        let (last, full) = lens.split_last().unwrap();
        assert!(full.iter().all(|&l| l == NOISE_MAX_MESSAGE), "{lens:?}");
        assert_eq!(full.len() * NOISE_MAX_PLAINTEXT + last - NOISE_TAG, plain_total);

        // The same bytes again through a reader, in deliberately ragged socket reads.
        let (ca, cb, _, _) = pair().await;
        let (mut ca, mut cb) = (ca.unwrap(), cb.unwrap());
        let sent = tokio::spawn(async move {
            ca.writer.queue_frame(&ControlMsg::Ping).unwrap();
            for piece in data.chunks(777_777) {
                ca.writer.write_raw(piece).await.unwrap();
            }
            ca.writer.shutdown().await;
            data
        });
        assert_eq!(
            cb.reader.read_frame::<ControlMsg>(MAX_CONTROL_FRAME).await.unwrap(),
            Some(ControlMsg::Ping)
        );
        let mut got = Vec::new();
        let mut want = 1;
        while got.len() < plain_total - frame.len() {
            let left = plain_total - frame.len() - got.len();
            cb.reader.read_exact_into(&mut got, want.min(left)).await.unwrap();
            want = want * 3 + 1;
        }
        assert_eq!(got, sent.await.unwrap());
        assert_eq!(cb.reader.read_some(10).await.unwrap(), &[] as &[u8]);
    }

    /// Ragged writes straight to the socket: records cut at every size land in the reader's
    /// buffer in pieces and must be stitched, also across its compaction.
    #[tokio::test]
    async fn records_cut_anywhere_by_the_socket_are_read_whole() {
        let (mut i, mut r) = snow_pair();
        let (mut send, _) = record_keys(&mut i).unwrap();
        let (_, recv) = record_keys(&mut r).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut out = TcpStream::connect(addr).await.unwrap();
        let (sock, _) = listener.accept().await.unwrap();
        let (rd, _wr) = sock.into_split();
        let mut reader = SecureReader::new(rd, recv, READ_BUFFER);
        let mut wire = Vec::new();
        let mut plain = Vec::new();
        for k in 0..200usize {
            let len = [0, 1, 17, 65519, 40000, 3][k % 6];
            let mut p: Vec<u8> = (0..len).map(|b| (b + k) as u8).collect();
            plain.extend_from_slice(&p);
            let tag = send.seal(&mut p).unwrap();
            p.extend_from_slice(tag.as_ref());
            wire.extend_from_slice(&(p.len() as u16).to_be_bytes());
            wire.extend_from_slice(&p);
        }
        let writer = tokio::spawn(async move {
            let mut at = 0;
            let mut step = 1;
            while at < wire.len() {
                let n = step.min(wire.len() - at);
                out.write_all(&wire[at..at + n]).await.unwrap();
                out.flush().await.unwrap();
                at += n;
                step = (step * 5 + 3) % 150_001;
                tokio::task::yield_now().await;
            }
        });
        let mut got = Vec::new();
        reader.read_exact_into(&mut got, plain.len()).await.unwrap();
        assert!(got == plain, "plaintext differs");
        writer.await.unwrap();
        assert_eq!(reader.read_some(1).await.unwrap(), &[] as &[u8], "clean close");
    }

    #[tokio::test]
    async fn a_forged_record_fails_after_the_good_ones_before_it() {
        let (ca, cb, _, _) = pair().await;
        let (mut ca, mut cb) = (ca.unwrap(), cb.unwrap());
        ca.writer.send(&ControlMsg::Ping).await.unwrap();
        let mut forged = Vec::new();
        ca.writer.queue_bytes(b"hello").unwrap();
        ca.writer.seal_open().unwrap();
        std::mem::swap(&mut forged, &mut ca.writer.out);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        ca.writer.sock.write_all(&forged).await.unwrap();
        assert_eq!(
            cb.reader.read_frame::<ControlMsg>(MAX_CONTROL_FRAME).await.unwrap(),
            Some(ControlMsg::Ping)
        );
        let err = cb.reader.read_some(10).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    }

    /// A write dropped part-way (a cancelled task) is never followed by more records: the peer
    /// sees the connection end inside a record, not a record that fails authentication.
    #[tokio::test]
    async fn a_write_dropped_part_way_tears_the_writer_and_nothing_follows_it() {
        for in_place in [true, false] {
            let (ca, cb, _, _) = pair().await;
            let (mut ca, mut cb) = (ca.unwrap(), cb.unwrap());
            // The peer reads nothing yet: far more than the socket buffers hold cannot go.
            let mut data = vec![7u8; 64 << 20];
            let write = async {
                if in_place {
                    ca.writer.write_raw_in_place(&mut data).await
                } else {
                    ca.writer.write_raw(&data).await
                }
            };
            assert!(tokio::time::timeout(Duration::from_millis(200), write).await.is_err());
            assert!(ca.writer.is_torn());
            let err = ca.writer.send(&ControlMsg::Ping).await.unwrap_err();
            assert!(err.to_string().contains("cut short"), "{err}");
            ca.writer.shutdown().await;
            drop(ca);
            // Cut inside a record (or, by chance, between two): either way an end, not forgery.
            let mut got = 0usize;
            let end = loop {
                match cb.reader.read_some(usize::MAX).await {
                    Ok([]) => break None,
                    Ok(chunk) => got += chunk.len(),
                    Err(e) => break Some(e),
                }
            };
            if let Some(err) = end {
                assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err} after {got} bytes");
            }
            assert!(got < data.len());
        }
    }

    #[tokio::test]
    async fn a_close_inside_a_record_is_not_clean() {
        let (ca, cb, _, _) = pair().await;
        let (mut ca, mut cb) = (ca.unwrap(), cb.unwrap());
        ca.writer.queue_bytes(b"hello").unwrap();
        ca.writer.seal_open().unwrap();
        let cut = ca.writer.out.len() - 3;
        let sock = &mut ca.writer.sock;
        sock.write_all(&ca.writer.out[..cut]).await.unwrap();
        sock.shutdown().await.unwrap();
        let err = cb.reader.read_some(10).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    }

    /// Bulk reads straight into the caller's buffer authenticate every record too, and a stream
    /// cut inside them is an error, not a short read.
    #[tokio::test]
    async fn direct_reads_catch_forgery_and_cuts() {
        for forge in [true, false] {
            let (ca, cb, _, _) = pair().await;
            let (mut ca, mut cb) = (ca.unwrap(), cb.unwrap());
            let data = vec![5u8; 1_000_000];
            ca.writer.queue_bytes(&data).unwrap();
            ca.writer.seal_open().unwrap();
            let mut wire = std::mem::take(&mut ca.writer.out);
            if forge {
                wire[700_000] ^= 0x40;
            } else {
                wire.truncate(900_000);
            }
            ca.writer.sock.write_all(&wire).await.unwrap();
            ca.writer.sock.shutdown().await.unwrap();
            let mut got = Vec::new();
            let err = cb.reader.read_exact_into(&mut got, data.len()).await.unwrap_err();
            let want = if forge {
                std::io::ErrorKind::InvalidData
            } else {
                std::io::ErrorKind::UnexpectedEof
            };
            assert_eq!(err.kind(), want, "{err}");
        }
    }

    /// Sealing in place writes exactly the bytes `write_raw` writes, whatever frames come
    /// between the pieces and however the pieces fall on record boundaries.
    #[tokio::test]
    async fn sealing_in_place_writes_the_same_bytes() {
        async fn wire(in_place: bool) -> Vec<u8> {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let out = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (mut peer, _) = listener.accept().await.unwrap();
            let key = RecordKey {
                key: aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &[7; 32]).unwrap()),
                nonce: 0,
            };
            let mut w = SecureWriter::new(out.into_split().1, key, WRITE_BATCH + 2 + NOISE_MAX_MESSAGE);
            let read = tokio::spawn(async move {
                let mut all = Vec::new();
                peer.read_to_end(&mut all).await.unwrap();
                all
            });
            let small = std::iter::repeat_n(4096, 300);
            let sizes = [1usize, 65519, 65520, 1 << 20, 131_038, 5, 4_500_000, 0, 65518]
                .into_iter()
                .chain(small);
            for (k, len) in sizes.enumerate() {
                w.queue_frame(&ControlMsg::Nick { nick: "n".repeat(k) }).unwrap();
                let mut data: Vec<u8> = (0..len).map(|i| (i * 31 + k) as u8).collect();
                if in_place {
                    w.write_raw_in_place(&mut data).await.unwrap();
                } else {
                    w.write_raw(&data).await.unwrap();
                }
                // Small pieces are batched, not gathered until the end.
                assert!(w.out.len() <= WRITE_BATCH + 2 + NOISE_MAX_MESSAGE, "{} queued", w.out.len());
            }
            w.shutdown().await;
            read.await.unwrap()
        }
        let (copied, sealed) = (wire(false).await, wire(true).await);
        assert_eq!(copied.len(), sealed.len());
        assert!(copied == sealed, "the bytes differ");
    }
}
