//! The secure channel: a plaintext preamble (magic, protocol version, purpose), then a Noise XX
//! handshake that authenticates both static keys, then encrypted records of at most 64 KiB, each
//! prefixed by its u16 length. Frames (see `frame`) and raw file bytes ride on top as one
//! plaintext byte stream per direction.
//!
//! The two directions use snow's stateless transport with their own nonce counters, so a
//! connection splits into a reader and a writer that different tasks own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::identity::{Identity, PeerId};
pub use crate::limits::HANDSHAKE_TIMEOUT;
use crate::limits::MAX_HELLO;
use crate::net::frame::{self, FrameError, LEN_BYTES};
use crate::net::wire::{
    Hello, MAGIC, NOISE_MAX_MESSAGE, NOISE_MAX_PLAINTEXT, NOISE_PARAMS, NOISE_TAG, PREAMBLE_LEN, PROTOCOL_VERSION, Purpose,
    TRANSFER_PROTOCOL_VERSION,
};

/// Sealed bytes gathered before a socket write: fewer syscalls for bulk data.
const WRITE_BATCH: usize = 256 * 1024;

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

/// Kernel-level liveness for every connection: a peer whose machine vanished (power, cable)
/// is detected by keepalive probes, and data it never acknowledges fails the socket, so no task
/// waits on it forever — also in the middle of a transfer, whose protocol may legitimately sit
/// idle while a person decides on an offer.
fn set_liveness(sock: &TcpStream) -> std::io::Result<()> {
    let sock = socket2::SockRef::from(sock);
    sock.set_tcp_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    sock.set_tcp_keepalive(&keepalive)?;
    #[cfg(target_os = "linux")]
    sock.set_tcp_user_timeout(Some(Duration::from_secs(30)))?;
    Ok(())
}

/// How soon a control connection notices that its peer's machine is gone (power, cable, sleep):
/// the kernel probes a connection quiet for [`CONTROL_PROBE_AFTER`], every [`CONTROL_PROBE_EVERY`],
/// and gives up after [`CONTROL_PROBES`] unanswered probes. The kernel does it, so a quiet
/// connection costs the process nothing: no timer, no wake-up, no encryption per probe.
pub const CONTROL_PROBE_AFTER: Duration = Duration::from_secs(5);
pub const CONTROL_PROBE_EVERY: Duration = Duration::from_secs(2);
pub const CONTROL_PROBES: u32 = 3;
/// The longest a vanished peer goes unnoticed on a control connection.
pub const CONTROL_GONE_AFTER: Duration =
    Duration::from_secs(CONTROL_PROBE_AFTER.as_secs() + CONTROL_PROBE_EVERY.as_secs() * CONTROL_PROBES as u64);

/// The version a connection of this purpose speaks.
fn version_of(purpose: Purpose) -> u16 {
    match purpose {
        Purpose::Control => PROTOCOL_VERSION,
        Purpose::Transfer => TRANSFER_PROTOCOL_VERSION,
    }
}

fn preamble(purpose: Purpose) -> [u8; PREAMBLE_LEN] {
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
fn purpose_of(p: &[u8; PREAMBLE_LEN]) -> Option<Purpose> {
    if &p[..4] != MAGIC {
        return None;
    }
    match p[6] {
        1 => Some(Purpose::Control),
        2 => Some(Purpose::Transfer),
        _ => None,
    }
}

async fn read_hs<S: AsyncRead + Unpin>(sock: &mut S, buf: &mut [u8]) -> Result<usize, HandshakeError> {
    let len = sock.read_u16().await? as usize;
    sock.read_exact(&mut buf[..len]).await?;
    Ok(len)
}

async fn write_hs<S: AsyncWrite + Unpin>(sock: &mut S, msg: &[u8]) -> Result<(), HandshakeError> {
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    sock.write_all(&out).await?;
    Ok(())
}

fn hello_bytes(hello: &Hello) -> Result<Vec<u8>, HandshakeError> {
    let mut v = Vec::new();
    ciborium::into_writer(hello, &mut v).map_err(|e| HandshakeError::BadHello(e.to_string()))?;
    Ok(v)
}

fn parse_hello(bytes: &[u8]) -> Result<Hello, HandshakeError> {
    if bytes.len() > MAX_HELLO {
        return Err(HandshakeError::BadHello("too large".into()));
    }
    let hello: Hello = frame::decode(bytes).map_err(|e| HandshakeError::BadHello(e.to_string()))?;
    hello.validate().map_err(HandshakeError::BadHello)?;
    Ok(hello)
}

fn remote_of(state: &snow::HandshakeState, hello: Hello, addr: SocketAddr, me: &Identity) -> Result<Remote, HandshakeError> {
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

fn builder(identity: &Identity, prologue: &[u8]) -> Result<snow::HandshakeState, snow::Error> {
    let params = NOISE_PARAMS.parse()?;
    snow::Builder::new(params)
        .local_private_key(identity.private_key())?
        .prologue(prologue)?
        .build_initiator()
}

fn responder(identity: &Identity, prologue: &[u8]) -> Result<snow::HandshakeState, snow::Error> {
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

fn finish(sock: TcpStream, hs: snow::HandshakeState, mut remote: Remote, purpose: Purpose) -> Result<SecureConn, HandshakeError> {
    let mut channel = [0u8; 8];
    channel.copy_from_slice(&hs.get_handshake_hash()[..8]);
    remote.channel = u64::from_be_bytes(channel);
    let transport = Arc::new(hs.into_stateless_transport_mode()?);
    let (rd, wr) = sock.into_split();
    Ok(SecureConn {
        reader: SecureReader::new(rd, transport.clone()),
        writer: SecureWriter::new(wr, transport),
        remote,
        purpose,
    })
}

/// The receiving half: decrypts records and hands out plaintext as frames or raw bytes.
pub struct SecureReader {
    sock: BufReader<OwnedReadHalf>,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    cipher: Vec<u8>,
    plain: Vec<u8>,
    start: usize,
    end: usize,
}

impl SecureReader {
    fn new(rd: OwnedReadHalf, transport: Arc<StatelessTransportState>) -> Self {
        SecureReader {
            sock: BufReader::with_capacity(WRITE_BATCH, rd),
            transport,
            nonce: 0,
            cipher: vec![0; NOISE_MAX_MESSAGE],
            plain: vec![0; NOISE_MAX_MESSAGE],
            start: 0,
            end: 0,
        }
    }

    /// Read and decrypt the next record. `Ok(false)` on a clean close at a record boundary.
    async fn next_record(&mut self) -> std::io::Result<bool> {
        let len = match self.sock.read_u16().await {
            Ok(len) => len as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        };
        if len < NOISE_TAG {
            return Err(invalid("record shorter than its tag"));
        }
        self.sock.read_exact(&mut self.cipher[..len]).await?;
        let n = self
            .transport
            .read_message(self.nonce, &self.cipher[..len], &mut self.plain)
            .map_err(|_| invalid("record failed authentication"))?;
        self.nonce += 1;
        self.start = 0;
        self.end = n;
        Ok(true)
    }

    /// Plaintext already decrypted and not yet consumed: reading that much will not wait.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Buffered plaintext, refilled from the socket when empty; empty only at a clean close.
    pub async fn read_some(&mut self, max: usize) -> std::io::Result<&[u8]> {
        while self.start == self.end {
            if !self.next_record().await? {
                return Ok(&[]);
            }
        }
        let n = max.min(self.end - self.start);
        let s = self.start;
        self.start += n;
        Ok(&self.plain[s..s + n])
    }

    pub async fn read_exact(&mut self, out: &mut [u8]) -> std::io::Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            let chunk = self.read_some(out.len() - filled).await?;
            if chunk.is_empty() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            out[filled..filled + chunk.len()].copy_from_slice(chunk);
            filled += chunk.len();
        }
        Ok(())
    }

    /// The next frame, or `None` when the peer closed cleanly between frames.
    pub async fn read_frame<T: DeserializeOwned>(&mut self, max: usize) -> Result<Option<T>, FrameError> {
        let mut header = [0u8; LEN_BYTES];
        let first = self.read_some(LEN_BYTES).await?;
        if first.is_empty() {
            return Ok(None);
        }
        let got = first.len();
        header[..got].copy_from_slice(first);
        self.read_exact(&mut header[got..]).await.map_err(truncated)?;
        let len = frame::body_len(header, max)?;
        let mut body = vec![0u8; len];
        self.read_exact(&mut body).await.map_err(truncated)?;
        frame::decode(&body).map(Some)
    }
}

fn truncated(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Truncated
    } else {
        e.into()
    }
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// The sending half: gathers plaintext into records, seals them, and writes them in batches.
pub struct SecureWriter {
    sock: OwnedWriteHalf,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl SecureWriter {
    fn new(wr: OwnedWriteHalf, transport: Arc<StatelessTransportState>) -> Self {
        SecureWriter {
            sock: wr,
            transport,
            nonce: 0,
            pending: Vec::with_capacity(NOISE_MAX_PLAINTEXT),
            out: Vec::with_capacity(WRITE_BATCH + NOISE_MAX_MESSAGE + 2),
        }
    }

    fn seal_pending(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let at = self.out.len();
        let sealed = self.pending.len() + NOISE_TAG;
        self.out.resize(at + 2 + sealed, 0);
        self.out[at..at + 2].copy_from_slice(&(sealed as u16).to_be_bytes());
        self.transport
            .write_message(self.nonce, &self.pending, &mut self.out[at + 2..])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.nonce += 1;
        self.pending.clear();
        Ok(())
    }

    fn queue_bytes(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let room = NOISE_MAX_PLAINTEXT - self.pending.len();
            let n = room.min(data.len());
            self.pending.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.pending.len() == NOISE_MAX_PLAINTEXT {
                self.seal_pending()?;
            }
        }
        Ok(())
    }

    /// Watch this connection as a control connection: faster than [`set_liveness`]'s default, and
    /// data the peer never acknowledges fails it as soon. Errors only if the socket is gone.
    pub fn watch_as_control(&self) -> std::io::Result<()> {
        let sock = socket2::SockRef::from(self.sock.as_ref());
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(CONTROL_PROBE_AFTER)
            .with_interval(CONTROL_PROBE_EVERY)
            .with_retries(CONTROL_PROBES);
        sock.set_tcp_keepalive(&keepalive)?;
        #[cfg(target_os = "linux")]
        sock.set_tcp_user_timeout(Some(CONTROL_GONE_AFTER))?;
        Ok(())
    }

    /// Queue a frame without writing: several frames can share one record.
    pub fn queue_frame<T: Serialize>(&mut self, msg: &T) -> Result<(), FrameError> {
        let mut buf = Vec::new();
        frame::encode(msg, &mut buf)?;
        self.queue_bytes(&buf)?;
        Ok(())
    }

    /// Raw bytes (file data); written once a batch is full.
    pub async fn write_raw(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.queue_bytes(data)?;
        if self.out.len() >= WRITE_BATCH {
            self.sock.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.seal_pending()?;
        if !self.out.is_empty() {
            self.sock.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), FrameError> {
        self.queue_frame(msg)?;
        self.flush().await?;
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.sock.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::wire::{ByeReason, ControlMsg, MAX_CONTROL_FRAME};
    use tokio::net::TcpListener;

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

    /// A v1 node (before verified chunks) dialling a transfer, and us dialling one: both ends
    /// hear what to update, and the control protocol is not affected.
    #[tokio::test]
    async fn an_old_transfer_peer_is_told_to_update() {
        let (addr, server) = answering().await;
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let mut old = preamble(Purpose::Transfer);
        old[4..6].copy_from_slice(&1u16.to_be_bytes());
        sock.write_all(&old).await.unwrap();
        let mut theirs = [0u8; PREAMBLE_LEN];
        sock.read_exact(&mut theirs).await.unwrap();
        assert_eq!(u16::from_be_bytes([theirs[4], theirs[5]]), TRANSFER_PROTOCOL_VERSION);
        let err = server.await.unwrap().err().unwrap().to_string();
        assert!(
            err.contains("older lanyard (transfer protocol v1") && err.contains("update lanyard"),
            "{err}"
        );

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
}
