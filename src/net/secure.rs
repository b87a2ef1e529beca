//! The secure channel: a plaintext preamble (magic, protocol version, purpose), then a Noise XX
//! handshake that authenticates both static keys, then encrypted records of at most 64 KiB, each
//! prefixed by its u16 length. Frames (see `frame`) and raw file bytes ride on top as one
//! plaintext byte stream per direction.
//!
//! The two directions have their own keys and nonce counters (taken from snow's handshake,
//! then sealed and opened in place with ring: the bytes are those of snow's transport), so a
//! connection splits into a reader and a writer that different tasks own.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BufMut;
use ring::aead;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
/// A transfer connection reader's buffer: the most a socket read takes at once. Bulk data read
/// with `read_exact_into` bypasses it.
const READ_BUFFER: usize = 1024 * 1024;
/// A control connection reader's buffer: two of the largest records. A peer that keeps sending
/// walks a reader's whole buffer (a partial record moves to the front only at its end), and an
/// allocator that hands out recycled pages makes even unread capacity resident: with the
/// transfer size a chat flood over hundreds of control connections held a MiB on each.
const CONTROL_READ_BUFFER: usize = 2 * (2 + NOISE_MAX_MESSAGE);
/// Records per vectored write of `write_raw_in_place`: three slices each, well inside IOV_MAX.
const VECTORED_RECORDS: usize = 64;
/// From this many bytes on, `read_exact_into` reads the socket straight into the caller's buffer.
const DIRECT_READ_MIN: usize = 2 * NOISE_MAX_PLAINTEXT;

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

fn finish(sock: TcpStream, mut hs: snow::HandshakeState, mut remote: Remote, purpose: Purpose) -> Result<SecureConn, HandshakeError> {
    if !hs.is_handshake_finished() {
        return Err(HandshakeError::Noise("handshake not finished".into()));
    }
    let mut channel = [0u8; 8];
    channel.copy_from_slice(&hs.get_handshake_hash()[..8]);
    remote.channel = u64::from_be_bytes(channel);
    let (send, recv) = record_keys(&mut hs)?;
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

/// The handshake's two transport keys as (ours to send, theirs to receive). The records are
/// sealed with ring directly rather than through snow's transport, whose API takes separate
/// input and output buffers and so costs a copy of every byte each way; the bytes on the wire
/// are the same (Noise's AESGCM: AES-256-GCM, empty associated data, the nonce's counter
/// big-endian in its last 8 bytes).
fn record_keys(hs: &mut snow::HandshakeState) -> Result<(RecordKey, RecordKey), HandshakeError> {
    let (initiator, responder) = hs.dangerously_get_raw_split();
    let key = |k: &[u8]| {
        aead::UnboundKey::new(&aead::AES_256_GCM, k)
            .map(|k| RecordKey {
                key: aead::LessSafeKey::new(k),
                nonce: 0,
            })
            .map_err(|_| HandshakeError::Noise("bad transport key".into()))
    };
    let (i, r) = (key(&initiator)?, key(&responder)?);
    Ok(if hs.is_initiator() { (i, r) } else { (r, i) })
}

/// One direction's key and the counter its nonces come from.
struct RecordKey {
    key: aead::LessSafeKey,
    nonce: u64,
}

impl RecordKey {
    /// The next record's nonce. Noise reserves the last counter value, and a repeated nonce would
    /// break the cipher, so the counter ends the connection rather than wrap (2^64 records: never).
    fn next(&mut self) -> std::io::Result<aead::Nonce> {
        if self.nonce == u64::MAX {
            return Err(std::io::Error::other("record counter exhausted"));
        }
        let mut n = [0u8; aead::NONCE_LEN];
        n[4..].copy_from_slice(&self.nonce.to_be_bytes());
        self.nonce += 1;
        Ok(aead::Nonce::assume_unique_for_key(n))
    }

    /// Seal the next record's plaintext in place; the tag goes after it.
    fn seal(&mut self, plain: &mut [u8]) -> std::io::Result<aead::Tag> {
        let nonce = self.next()?;
        self.key
            .seal_in_place_separate_tag(nonce, aead::Aad::empty(), plain)
            .map_err(|_| std::io::Error::other("sealing a record failed"))
    }

    /// Open the next record, whose sealed bytes are `buf[from..]`, into the front of `buf`.
    /// `None` if it fails authentication (or is shorter than its tag).
    fn open_within(&mut self, buf: &mut [u8], from: usize) -> Option<usize> {
        let nonce = self.next().ok()?;
        self.key.open_within(nonce, aead::Aad::empty(), buf, from..).map(|p| p.len()).ok()
    }
}

/// The receiving half: decrypts records and hands out plaintext as frames or raw bytes.
///
/// One buffer does everything: the socket is read into its free end in big pieces, and each
/// complete record is decrypted where it lies, its plaintext shifted down to join the plaintext
/// before it (ring decrypts from one place to another at no extra cost), so the plaintext is one
/// contiguous run and no byte is copied between reading and handing out.
pub struct SecureReader {
    sock: OwnedReadHalf,
    key: RecordKey,
    /// `[start, plain)` is decrypted and not yet handed out; `[plain, raw)` is the dead space
    /// of the lengths and tags already used; `[raw, len)` is received and not yet decrypted.
    buf: Vec<u8>,
    start: usize,
    plain: usize,
    raw: usize,
    /// A record failed authentication: reported once the plaintext before it is used up.
    forged: bool,
}

impl SecureReader {
    fn new(rd: OwnedReadHalf, key: RecordKey, capacity: usize) -> Self {
        SecureReader {
            sock: rd,
            key,
            // Capacity only: pages never written (an idle control connection's) cost no memory.
            buf: Vec::with_capacity(capacity),
            start: 0,
            plain: 0,
            raw: 0,
            forged: false,
        }
    }

    /// Read until some plaintext is ready. `Ok(false)` on a clean close at a record boundary.
    /// A read takes what the socket has, up to the next record or `want` more plaintext bytes
    /// if that is more: small reads for frames leave bulk data to [`Self::read_exact_into`].
    /// Cancel-safe: what one socket read brought is accounted before the next await.
    async fn fill(&mut self, want: usize) -> std::io::Result<bool> {
        loop {
            if self.plain > self.start {
                return Ok(true);
            }
            if self.forged {
                return Err(invalid("record failed authentication"));
            }
            // Nothing left to hand out: move the partial record (if any) to the front, where the
            // largest record fits after it.
            let partial = self.buf.len() - self.raw;
            if partial == 0 {
                self.buf.clear();
                self.raw = 0;
            } else if self.raw + 2 + NOISE_MAX_MESSAGE > self.buf.capacity() {
                self.buf.copy_within(self.raw.., 0);
                self.buf.truncate(partial);
                self.raw = 0;
            }
            self.start = self.raw;
            self.plain = self.raw;
            let room = self.buf.capacity() - self.buf.len();
            let limit = wire_len(want).max(2 + NOISE_MAX_MESSAGE).min(room);
            let n = self.sock.read_buf(&mut (&mut self.buf).limit(limit)).await?;
            if n == 0 {
                return if self.buf.len() == self.raw { Ok(false) } else { Err(cut_record()) };
            }
            self.forged = open_records(&mut self.key, &mut self.buf, &mut self.plain, &mut self.raw, usize::MAX).is_err();
        }
    }

    /// Plaintext already decrypted and not yet consumed: reading that much will not wait.
    pub fn buffered(&self) -> usize {
        self.plain - self.start
    }

    /// Buffered plaintext, refilled from the socket when empty; empty only at a clean close.
    /// Cancel-safe: dropped before it returns, it has consumed nothing.
    pub async fn read_some(&mut self, max: usize) -> std::io::Result<&[u8]> {
        if !self.fill(max).await? {
            return Ok(&[]);
        }
        let n = max.min(self.plain - self.start);
        let s = self.start;
        self.start += n;
        Ok(&self.buf[s..s + n])
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

    /// Append exactly `len` bytes of plaintext to `out` (file data after a `Data` frame). What is
    /// already decrypted is copied; the rest is read from the socket straight into `out`'s spare
    /// room and decrypted there, so bulk data is never copied in user space (only the bytes of
    /// the last record that belong to what follows come back to the reader's buffer). `out`
    /// needs no zeroing; this reserves the room itself (about `len` + 0.03% + 64 KiB, given back
    /// by the truncation at the end only as length, not capacity, so a reused `out` stops
    /// growing). An end of the stream before `len` bytes is `UnexpectedEof`. Not cancel-safe:
    /// dropped part-way, an unknown part of the bytes has been consumed, so drop it only
    /// together with the connection.
    pub async fn read_exact_into(&mut self, out: &mut Vec<u8>, len: usize) -> std::io::Result<()> {
        let have = len.min(self.buffered());
        // Room for the direct read up front, so it never moves what was copied here.
        out.reserve(if len - have >= DIRECT_READ_MIN {
            wire_len(len) + 2 + NOISE_MAX_MESSAGE
        } else {
            len
        });
        out.extend_from_slice(&self.buf[self.start..self.start + have]);
        self.start += have;
        let mut left = len - have;
        if left >= DIRECT_READ_MIN && !self.forged {
            return self.read_direct(out, left).await;
        }
        while left > 0 {
            let chunk = self.read_some(left).await?;
            if chunk.is_empty() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            out.extend_from_slice(chunk);
            left -= chunk.len();
        }
        Ok(())
    }

    /// [`Self::read_exact_into`]'s bulk: the reader's plaintext is used up. Reads are sized to
    /// end no later than the last record holding wanted bytes, so at most that record's tail
    /// overshoots.
    async fn read_direct(&mut self, out: &mut Vec<u8>, left: usize) -> std::io::Result<()> {
        let base = out.len();
        let end = base + left;
        out.reserve(wire_len(left) + 2 + NOISE_MAX_MESSAGE);
        // A record begun in the buffer continues here.
        out.extend_from_slice(&self.buf[self.raw..]);
        self.buf.clear();
        (self.start, self.plain, self.raw) = (0, 0, 0);
        let (mut plain, mut raw) = (base, base);
        loop {
            if open_records(&mut self.key, out, &mut plain, &mut raw, end).is_err() {
                return Err(invalid("record failed authentication"));
            }
            if plain >= end {
                break;
            }
            // The rest of the record begun (its length says how much), then the least that
            // carries the plaintext still missing after it.
            let begun = out.len() - raw;
            let want = if begun >= 2 {
                let len = u16::from_be_bytes([out[raw], out[raw + 1]]) as usize;
                2 + len - begun + wire_len((end - plain).saturating_sub(len.saturating_sub(NOISE_TAG)))
            } else {
                wire_len(end - plain) - begun
            };
            out.reserve(want);
            if self.sock.read_buf(&mut out.limit(want)).await? == 0 {
                return Err(cut_record());
            }
        }
        // What the last record held beyond `len`, and any record begun after it, go back.
        self.buf.extend_from_slice(&out[end..plain]);
        self.plain = self.buf.len();
        self.raw = self.plain;
        self.buf.extend_from_slice(&out[raw..]);
        out.truncate(end);
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
        // A frame already decrypted whole is decoded where it lies.
        if self.buffered() >= len {
            let s = self.start;
            self.start += len;
            return frame::decode(&self.buf[s..s + len]).map(Some);
        }
        let mut body = Vec::new();
        self.read_exact_into(&mut body, len).await.map_err(truncated)?;
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

fn cut_record() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed inside a record")
}

/// The fewest bytes on the wire that carry `plain` bytes of plaintext (full records).
fn wire_len(plain: usize) -> usize {
    plain.saturating_add((2 + NOISE_TAG) * plain.div_ceil(NOISE_MAX_PLAINTEXT))
}

/// Open every complete record in `buf[*raw..]`, each one's plaintext moved down to `*plain` so
/// the plaintext stays one run; stops at an incomplete record or once `*plain >= stop`. `Err` if
/// a record fails authentication (or is shorter than its tag); the plaintext before it stands.
fn open_records(key: &mut RecordKey, buf: &mut [u8], plain: &mut usize, raw: &mut usize, stop: usize) -> Result<(), ()> {
    while *plain < stop && buf.len() - *raw >= 2 {
        let len = u16::from_be_bytes([buf[*raw], buf[*raw + 1]]) as usize;
        let body = *raw + 2;
        if buf.len() - body < len {
            break;
        }
        *plain += key.open_within(&mut buf[*plain..body + len], body - *plain).ok_or(())?;
        *raw = body + len;
    }
    Ok(())
}

/// The sending half: gathers plaintext into records, seals them, and writes them in batches.
///
/// Plaintext is copied once, into the open record at the end of `out`, and sealed there; a full
/// batch of sealed records goes to the socket in one write.
///
/// A write dropped part-way (its task cancelled) may leave a record half on the wire, or
/// records sealed and never sent: anything written after that would fail authentication at
/// the peer, which must mean tampering and nothing else. So such a writer is torn: it writes
/// nothing more, and the peer sees the connection close inside a record (a lost connection).
/// A caller that wants to say something after a write it gave up on must let that write finish.
pub struct SecureWriter {
    sock: OwnedWriteHalf,
    key: RecordKey,
    /// Sealed records, then the open record (if `open` says where its length field is): its
    /// plaintext so far, to be sealed when full or flushed.
    out: Vec<u8>,
    open: Option<usize>,
    /// A socket write is under way, or was dropped before it finished.
    torn: bool,
}

impl SecureWriter {
    /// `capacity`: what the batch buffer starts with (it grows to a batch if needed). A control
    /// connection writes small frames: an allocator that hands out recycled pages makes even an
    /// unwritten capacity resident, so it is kept to one record there.
    fn new(wr: OwnedWriteHalf, key: RecordKey, capacity: usize) -> Self {
        SecureWriter {
            sock: wr,
            key,
            // Capacity only, as the reader's: a quiet connection touches a few pages of it.
            out: Vec::with_capacity(capacity),
            open: None,
            torn: false,
        }
    }

    /// An earlier write was dropped part-way: nothing more may follow it.
    fn check_whole(&self) -> std::io::Result<()> {
        if self.torn {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "an earlier write on this connection was cut short",
            ));
        }
        Ok(())
    }

    /// Whether a write was dropped part-way (nothing more can be said on this connection).
    pub fn is_torn(&self) -> bool {
        self.torn
    }

    fn seal_open(&mut self) -> std::io::Result<()> {
        let Some(at) = self.open.take() else {
            return Ok(());
        };
        let tag = self.key.seal(&mut self.out[at + 2..])?;
        self.out.extend_from_slice(tag.as_ref());
        let sealed = (self.out.len() - at - 2) as u16;
        self.out[at..at + 2].copy_from_slice(&sealed.to_be_bytes());
        Ok(())
    }

    fn queue_bytes(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let at = match self.open {
                Some(at) => at,
                None => {
                    let at = self.out.len();
                    self.out.extend_from_slice(&[0, 0]);
                    self.open = Some(at);
                    at
                }
            };
            let room = NOISE_MAX_PLAINTEXT - (self.out.len() - at - 2);
            let n = room.min(data.len());
            self.out.extend_from_slice(&data[..n]);
            data = &data[n..];
            if n == room {
                self.seal_open()?;
            }
        }
        Ok(())
    }

    /// Write every queued record; the caller has sealed them all.
    async fn write_out(&mut self) -> std::io::Result<()> {
        debug_assert!(self.open.is_none());
        self.check_whole()?;
        if !self.out.is_empty() {
            self.torn = true;
            self.sock.write_all(&self.out).await?;
            self.torn = false;
            self.out.clear();
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

    /// Raw bytes (file data), copied once into records; written when a batch is full. A batch
    /// is written only where a record ends, so no unsealed plaintext is ever moved: up to a
    /// record more than [`WRITE_BATCH`] waits in memory.
    pub async fn write_raw(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = match (WRITE_BATCH.checked_sub(self.out.len()), self.open) {
                (Some(room), _) if room > 0 => room,
                (_, Some(at)) => NOISE_MAX_PLAINTEXT - (self.out.len() - at - 2),
                (_, None) => NOISE_MAX_PLAINTEXT,
            }
            .min(data.len());
            self.queue_bytes(&data[..n])?;
            data = &data[n..];
            if self.out.len() >= WRITE_BATCH && self.open.is_none() {
                self.write_out().await?;
            }
        }
        Ok(())
    }

    /// [`Self::write_raw`] without copying the bulk: the full records in `data` are sealed where
    /// they lie and written at once with one vectored write, so afterwards `data` holds ciphertext
    /// (pass a buffer about to be refilled). Only the bytes that complete the record open before
    /// (after queued frames) and the tail after the last full record are copied, into the writer,
    /// and the tail waits there as the open record: the bytes on the wire are exactly those of
    /// `write_raw`.
    pub async fn write_raw_in_place(&mut self, data: &mut [u8]) -> std::io::Result<()> {
        self.check_whole()?;
        let head = match self.open {
            Some(at) => NOISE_MAX_PLAINTEXT - (self.out.len() - at - 2),
            None => 0,
        }
        .min(data.len());
        let full = (data.len() - head) / NOISE_MAX_PLAINTEXT * NOISE_MAX_PLAINTEXT;
        if full == 0 {
            // Not one whole record to seal in place: batched like any small write.
            return self.write_raw(data).await;
        }
        self.queue_bytes(&data[..head])?;
        let (body, tail) = data[head..].split_at_mut(full);
        // From the first record sealed here until the last is written, a drop tears the stream.
        self.torn = true;
        for group in body.chunks_mut(VECTORED_RECORDS * NOISE_MAX_PLAINTEXT) {
            // Each record: its length, its sealed bytes (in `group`), its tag.
            let mut meta = Vec::with_capacity(group.len() / NOISE_MAX_PLAINTEXT * (2 + NOISE_TAG));
            for record in group.chunks_mut(NOISE_MAX_PLAINTEXT) {
                meta.extend_from_slice(&(NOISE_MAX_MESSAGE as u16).to_be_bytes());
                meta.extend_from_slice(self.key.seal(record)?.as_ref());
            }
            let mut slices = vec![std::io::IoSlice::new(&self.out)];
            for (record, meta) in group.chunks(NOISE_MAX_PLAINTEXT).zip(meta.chunks(2 + NOISE_TAG)) {
                slices.push(std::io::IoSlice::new(&meta[..2]));
                slices.push(std::io::IoSlice::new(record));
                slices.push(std::io::IoSlice::new(&meta[2..]));
            }
            let mut slices = &mut slices[..];
            while !slices.is_empty() {
                let n = self.sock.write_vectored(slices).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                std::io::IoSlice::advance_slices(&mut slices, n);
            }
            self.out.clear();
        }
        self.torn = false;
        self.write_raw(tail).await
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.seal_open()?;
        self.write_out().await
    }

    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), FrameError> {
        self.queue_frame(msg)?;
        self.flush().await?;
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        if !self.torn {
            let _ = self.flush().await;
        }
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
