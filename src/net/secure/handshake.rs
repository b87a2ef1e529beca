//! The handshake: a plaintext preamble (magic, protocol version, purpose), then Noise XX, which
//! authenticates both static keys and carries each side's hello; and the sockets' settings that
//! notice a vanished peer.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::liveness::set_liveness;
use super::records::{CONTROL_READ_BUFFER, READ_BUFFER, SecureReader, SecureWriter, WRITE_BATCH, record_keys};
use super::{Remote, SecureConn};
use crate::identity::{Identity, PeerId};
use crate::limits::MAX_HELLO;
use crate::net::frame;
use crate::net::wire::{Hello, MAGIC, NOISE_MAX_MESSAGE, NOISE_PARAMS, PREAMBLE_LEN, PROTOCOL_VERSION, Purpose, TRANSFER_PROTOCOL_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{}", version_text(*.ours, *.theirs, *.purpose))]
    VersionMismatch { ours: u16, theirs: u16, purpose: Purpose },
    #[error("not a lanyard peer (bad preamble)")]
    NotLanyard,
    #[error("handshake timed out")]
    Timeout,
    #[error("peer answered with id {got}, but {expected} was expected: refused (spoofing or a changed machine)")]
    IdMismatch {
        expected: PeerId,
        got: PeerId,
        /// The key that answered, for the fingerprint a warning shows.
        got_key: Vec<u8>,
    },
    #[error("connected to ourselves")]
    SelfConnection,
    #[error("handshake failed: {0}")]
    Noise(String),
    #[error("bad hello: {0}")]
    BadHello(String),
    #[error("connection closed during the handshake")]
    Closed,
    #[error(transparent)]
    Io(std::io::Error),
}

fn version_text(ours: u16, theirs: u16, purpose: Purpose) -> String {
    let what = match purpose {
        Purpose::Control => "protocol",
        Purpose::Transfer => "transfer protocol",
    };
    if theirs < ours {
        format!("the peer runs an older lanyard ({what} v{theirs}, this one speaks v{ours}): update lanyard there")
    } else {
        format!("the peer runs a newer lanyard ({what} v{theirs}, this one speaks v{ours}): update this lanyard")
    }
}

impl From<std::io::Error> for HandshakeError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => HandshakeError::Closed,
            _ => HandshakeError::Io(e),
        }
    }
}

impl From<snow::Error> for HandshakeError {
    fn from(e: snow::Error) -> Self {
        HandshakeError::Noise(e.to_string())
    }
}

/// The version a connection of this purpose speaks.
pub(super) fn version_of(purpose: Purpose) -> u16 {
    match purpose {
        Purpose::Control => PROTOCOL_VERSION,
        Purpose::Transfer => TRANSFER_PROTOCOL_VERSION,
    }
}

pub(super) fn preamble(purpose: Purpose) -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..4].copy_from_slice(MAGIC);
    p[4..6].copy_from_slice(&version_of(purpose).to_be_bytes());
    p[6] = match purpose {
        Purpose::Control => 1,
        Purpose::Transfer => 2,
    };
    p
}

/// Check a received preamble; returns the purpose it names.
pub(crate) fn check_preamble(p: &[u8; PREAMBLE_LEN]) -> Result<Purpose, HandshakeError> {
    let purpose = purpose_of(p).ok_or(HandshakeError::NotLanyard)?;
    let (ours, theirs) = (version_of(purpose), u16::from_be_bytes([p[4], p[5]]));
    if theirs != ours {
        return Err(HandshakeError::VersionMismatch { ours, theirs, purpose });
    }
    Ok(purpose)
}

/// The purpose a preamble names, whatever its version: a mismatch is answered in kind.
pub(super) fn purpose_of(p: &[u8; PREAMBLE_LEN]) -> Option<Purpose> {
    if &p[..4] != MAGIC {
        return None;
    }
    match p[6] {
        1 => Some(Purpose::Control),
        2 => Some(Purpose::Transfer),
        _ => None,
    }
}

pub(super) async fn read_hs<S: AsyncRead + Unpin>(sock: &mut S, buf: &mut [u8]) -> Result<usize, HandshakeError> {
    let len = sock.read_u16().await? as usize;
    sock.read_exact(&mut buf[..len]).await?;
    Ok(len)
}

pub(super) async fn write_hs<S: AsyncWrite + Unpin>(sock: &mut S, msg: &[u8]) -> Result<(), HandshakeError> {
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    sock.write_all(&out).await?;
    Ok(())
}

pub(super) fn hello_bytes(hello: &Hello) -> Result<Vec<u8>, HandshakeError> {
    let mut v = Vec::new();
    ciborium::into_writer(hello, &mut v).map_err(|e| HandshakeError::BadHello(e.to_string()))?;
    Ok(v)
}

pub(super) fn parse_hello(bytes: &[u8]) -> Result<Hello, HandshakeError> {
    if bytes.len() > MAX_HELLO {
        return Err(HandshakeError::BadHello("too large".into()));
    }
    let hello: Hello = frame::decode(bytes).map_err(|e| HandshakeError::BadHello(e.to_string()))?;
    hello.validate().map_err(HandshakeError::BadHello)?;
    Ok(hello)
}

pub(super) fn remote_of(state: &snow::HandshakeState, hello: Hello, addr: SocketAddr, me: &Identity) -> Result<Remote, HandshakeError> {
    let key = state
        .get_remote_static()
        .ok_or_else(|| HandshakeError::Noise("no remote static key".into()))?
        .to_vec();
    let id = PeerId::from_public_key(&key);
    if &id == me.id() {
        return Err(HandshakeError::SelfConnection);
    }
    Ok(Remote {
        id,
        public_key: key,
        hello,
        addr,
        channel: 0,
    })
}

pub(super) fn builder(identity: &Identity, prologue: &[u8]) -> Result<snow::HandshakeState, snow::Error> {
    let params = NOISE_PARAMS.parse()?;
    snow::Builder::new(params)
        .local_private_key(identity.private_key())?
        .prologue(prologue)?
        .build_initiator()
}

pub(super) fn responder(identity: &Identity, prologue: &[u8]) -> Result<snow::HandshakeState, snow::Error> {
    let params = NOISE_PARAMS.parse()?;
    snow::Builder::new(params)
        .local_private_key(identity.private_key())?
        .prologue(prologue)?
        .build_responder()
}

/// Dial side. `expect` is the id we believe lives there (from mDNS or the peer table): a different
/// key answering is refused before we reveal who we are.
pub async fn connect(
    mut sock: TcpStream,
    identity: &Identity,
    hello: &Hello,
    purpose: Purpose,
    expect: Option<&PeerId>,
) -> Result<SecureConn, HandshakeError> {
    set_liveness(&sock)?;
    let addr = sock.peer_addr()?;
    let ours = preamble(purpose);
    sock.write_all(&ours).await?;
    let mut theirs = [0u8; PREAMBLE_LEN];
    sock.read_exact(&mut theirs).await?;
    match check_preamble(&theirs)? {
        p if p == purpose => {}
        _ => return Err(HandshakeError::NotLanyard),
    }
    let prologue = [ours, theirs].concat();

    let mut hs = builder(identity, &prologue)?;
    let mut msg = vec![0u8; NOISE_MAX_MESSAGE];
    let mut payload = vec![0u8; NOISE_MAX_MESSAGE];
    // -> e
    let n = hs.write_message(&[], &mut msg)?;
    write_hs(&mut sock, &msg[..n]).await?;
    // <- e, ee, s, es  (+ their hello)
    let n = read_hs(&mut sock, &mut msg).await?;
    let p = hs.read_message(&msg[..n], &mut payload)?;
    let their_hello = parse_hello(&payload[..p])?;
    let remote = remote_of(&hs, their_hello, addr, identity)?;
    if let Some(expected) = expect
        && expected != &remote.id
    {
        return Err(HandshakeError::IdMismatch {
            expected: expected.clone(),
            got: remote.id,
            got_key: remote.public_key,
        });
    }
    // -> s, se  (+ our hello)
    let n = hs.write_message(&hello_bytes(hello)?, &mut msg)?;
    write_hs(&mut sock, &msg[..n]).await?;
    finish(sock, hs, remote, purpose)
}

/// Accept side: answers any lanyard peer; the caller decides what to do with who it is.
pub async fn accept(mut sock: TcpStream, identity: &Identity, hello: &Hello) -> Result<SecureConn, HandshakeError> {
    set_liveness(&sock)?;
    let addr = sock.peer_addr()?;
    let (hs, remote, purpose) = respond(&mut sock, identity, hello, addr).await?;
    finish(sock, hs, remote, purpose)
}

/// The responder's side of preamble and handshake, over any byte stream (the fuzz targets
/// drive it through an in-memory pipe).
pub(crate) async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    sock: &mut S,
    identity: &Identity,
    hello: &Hello,
    addr: SocketAddr,
) -> Result<(snow::HandshakeState, Remote, Purpose), HandshakeError> {
    let mut theirs = [0u8; PREAMBLE_LEN];
    sock.read_exact(&mut theirs).await?;
    // Answer with our version even when theirs differs, so both sides can say what's wrong.
    let ours = preamble(purpose_of(&theirs).ok_or(HandshakeError::NotLanyard)?);
    sock.write_all(&ours).await?;
    let purpose = check_preamble(&theirs)?;
    let prologue = [theirs, ours].concat();

    let mut hs = responder(identity, &prologue)?;
    let mut msg = vec![0u8; NOISE_MAX_MESSAGE];
    let mut payload = vec![0u8; NOISE_MAX_MESSAGE];
    let n = read_hs(sock, &mut msg).await?;
    hs.read_message(&msg[..n], &mut payload)?;
    let n = hs.write_message(&hello_bytes(hello)?, &mut msg)?;
    write_hs(sock, &msg[..n]).await?;
    let n = read_hs(sock, &mut msg).await?;
    let p = hs.read_message(&msg[..n], &mut payload)?;
    let their_hello = parse_hello(&payload[..p])?;
    let remote = remote_of(&hs, their_hello, addr, identity)?;
    Ok((hs, remote, purpose))
}

pub(super) fn finish(
    sock: TcpStream,
    mut hs: snow::HandshakeState,
    mut remote: Remote,
    purpose: Purpose,
) -> Result<SecureConn, HandshakeError> {
    if !hs.is_handshake_finished() {
        return Err(HandshakeError::Noise("handshake not finished".into()));
    }
    let mut channel = [0u8; 8];
    channel.copy_from_slice(&hs.get_handshake_hash()[..8]);
    remote.channel = u64::from_be_bytes(channel);
    let (send, recv) = record_keys(&mut hs).ok_or_else(|| HandshakeError::Noise("bad transport key".into()))?;
    let (rd, wr) = sock.into_split();
    Ok(SecureConn {
        reader: SecureReader::new(
            rd,
            recv,
            if purpose == Purpose::Control {
                CONTROL_READ_BUFFER
            } else {
                READ_BUFFER
            },
        ),
        writer: SecureWriter::new(
            wr,
            send,
            if purpose == Purpose::Control {
                2 + NOISE_MAX_MESSAGE
            } else {
                WRITE_BATCH + 2 + NOISE_MAX_MESSAGE
            },
        ),
        remote,
        purpose,
    })
}
