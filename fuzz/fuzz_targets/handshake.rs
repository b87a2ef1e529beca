//! The responder's preamble and Noise handshake over an in-memory pipe.
//!
//! Even first byte: the rest is everything the initiator sends, raw. Arbitrary bytes cannot
//! complete the handshake (they would have to answer our fresh ephemeral key), so the responder
//! must fail, say nothing to a stranger, and answer a lanyard preamble of another version with
//! its own. Odd first byte: a real initiator (snow) runs the handshake with the next byte as
//! purpose and the rest as its hello payload, so arbitrary hello bytes reach the responder
//! through a valid channel; it must succeed exactly when they are a valid hello.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use lanyard::fuzzing;
use lanyard::identity::{Identity, PeerId};
use lanyard::fuzzing::net::frame;
use lanyard::fuzzing::net::secure::HandshakeError;
use lanyard::fuzzing::net::wire::{
    Hello, MAGIC, NOISE_MAX_MESSAGE, NOISE_PARAMS, PREAMBLE_LEN, PROTOCOL_VERSION, Purpose, TRANSFER_PROTOCOL_VERSION,
};
use lanyard_fuzz::block_on;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, duplex};

/// Far beyond what an in-memory handshake needs: reaching it means the responder hangs.
const HANG: Duration = Duration::from_secs(10);
/// Largest hello payload a handshake message can carry (the rest is keys and tags).
const MAX_PAYLOAD: usize = NOISE_MAX_MESSAGE - 200;

fn hello() -> Hello {
    Hello {
        nick: "responder".into(),
        host: "fuzz".into(),
        listen_port: Some(1),
        software: "fuzz".into(),
        session: 1,
    }
}

fn responder() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::generate().expect("an identity"))
}

fn initiator_key() -> &'static snow::Keypair {
    static KEY: OnceLock<snow::Keypair> = OnceLock::new();
    KEY.get_or_init(|| {
        snow::Builder::new(NOISE_PARAMS.parse().expect("params"))
            .generate_keypair()
            .expect("a keypair")
    })
}

/// Our preamble for a purpose byte: control and transfer connections have versions of their own.
fn preamble(purpose: u8) -> [u8; PREAMBLE_LEN] {
    let version = if purpose == 2 {
        TRANSFER_PROTOCOL_VERSION
    } else {
        PROTOCOL_VERSION
    };
    let mut p = [0u8; PREAMBLE_LEN];
    p[..4].copy_from_slice(MAGIC);
    p[4..6].copy_from_slice(&version.to_be_bytes());
    p[6] = purpose;
    p
}

async fn raw(input: &[u8]) {
    let (mut client, mut server) = duplex(input.len() + 4 * NOISE_MAX_MESSAGE);
    client.write_all(input).await.expect("fits the pipe");
    client.shutdown().await.expect("shutdown");
    let result = tokio::time::timeout(HANG, fuzzing::respond(&mut server, responder(), &hello()))
        .await
        .expect("the responder hangs on a closed stream");
    drop(server);
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.expect("read");
    assert!(result.is_err(), "arbitrary bytes completed a handshake");
    let Some(theirs) = input.first_chunk::<PREAMBLE_LEN>() else {
        assert!(answer.is_empty(), "answered half a preamble");
        return;
    };
    match fuzzing::check_preamble(theirs) {
        Err(HandshakeError::NotLanyard) => {
            assert!(answer.is_empty(), "answered a stranger");
            assert!(matches!(result, Err(HandshakeError::NotLanyard)));
        }
        Err(HandshakeError::VersionMismatch { ours, theirs: v, purpose }) => {
            let byte = if purpose == Purpose::Control { 1 } else { 2 };
            assert_eq!(theirs[6], byte);
            assert_eq!(
                (ours, v),
                (
                    u16::from_be_bytes([preamble(byte)[4], preamble(byte)[5]]),
                    u16::from_be_bytes([theirs[4], theirs[5]])
                )
            );
            assert_eq!(answer, preamble(byte), "our version, in answer to another one");
            assert!(matches!(result, Err(HandshakeError::VersionMismatch { .. })));
        }
        Err(e) => panic!("a preamble is lanyard or not, of a version or another, not {e}"),
        Ok(purpose) => {
            let byte = if purpose == Purpose::Control { 1 } else { 2 };
            assert_eq!(answer.get(..PREAMBLE_LEN), Some(&preamble(byte)[..]));
            assert_eq!(theirs[6], byte);
        }
    }
}

async fn read_hs<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> Option<usize> {
    let len = s.read_u16().await.ok()? as usize;
    s.read_exact(&mut buf[..len]).await.ok()?;
    Some(len)
}

async fn write_hs<S: AsyncWrite + Unpin>(s: &mut S, msg: &[u8]) -> Option<()> {
    s.write_all(&(msg.len() as u16).to_be_bytes()).await.ok()?;
    s.write_all(msg).await.ok()
}

/// A real initiator whose hello is `payload`; `None` if the responder stopped talking.
async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, purpose: u8, payload: &[u8]) -> Option<()> {
    let ours = preamble(purpose);
    s.write_all(&ours).await.ok()?;
    let mut theirs = [0u8; PREAMBLE_LEN];
    s.read_exact(&mut theirs).await.ok()?;
    let key = initiator_key();
    let mut hs = snow::Builder::new(NOISE_PARAMS.parse().expect("params"))
        .local_private_key(&key.private)
        .expect("key")
        .prologue(&[ours, theirs].concat())
        .expect("prologue")
        .build_initiator()
        .expect("initiator");
    let mut msg = vec![0u8; NOISE_MAX_MESSAGE];
    let mut plain = vec![0u8; NOISE_MAX_MESSAGE];
    let n = hs.write_message(&[], &mut msg).expect("-> e");
    write_hs(&mut s, &msg[..n]).await?;
    let n = read_hs(&mut s, &mut msg).await?;
    let p = hs.read_message(&msg[..n], &mut plain).expect("a valid responder");
    let their_hello: Hello = frame::decode(&plain[..p]).expect("the responder's hello");
    assert_eq!(their_hello, hello());
    let n = hs.write_message(payload, &mut msg).expect("-> s, se");
    write_hs(&mut s, &msg[..n]).await?;
    s.shutdown().await.ok()
}

async fn scripted(purpose: u8, payload: &[u8]) {
    let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
    let (client, mut server) = duplex(4 * NOISE_MAX_MESSAGE);
    let ours = hello();
    // The responder's end closes when it returns, as `accept` drops its socket.
    let respond = async move { fuzzing::respond(&mut server, responder(), &ours).await };
    let (result, _) = tokio::time::timeout(HANG, async { tokio::join!(respond, initiate(client, purpose, payload)) })
        .await
        .expect("the handshake hangs");
    let valid_hello = frame::decode::<Hello>(payload)
        .ok()
        .filter(|h| payload.len() <= 1024 && h.validate().is_ok());
    match (purpose, result) {
        (1 | 2, Ok((remote, got))) => {
            let h = valid_hello.expect("accepted an invalid hello");
            assert_eq!(remote.hello, h);
            assert_eq!(remote.id, PeerId::from_public_key(&initiator_key().public));
            assert_eq!(remote.public_key, initiator_key().public);
            assert_eq!(got, if purpose == 1 { Purpose::Control } else { Purpose::Transfer });
        }
        (1 | 2, Err(e)) => {
            assert!(valid_hello.is_none(), "refused a valid hello: {e}");
            assert!(matches!(e, HandshakeError::BadHello(_)), "{e}");
        }
        (_, Ok(_)) => panic!("accepted purpose {purpose}"),
        (_, Err(e)) => assert!(matches!(e, HandshakeError::NotLanyard), "{e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    match data {
        [mode, rest @ ..] if mode % 2 == 0 => block_on(raw(rest)),
        [_, purpose, payload @ ..] => block_on(scripted(purpose % 4, payload)),
        _ => {}
    }
});
