//! The record layer: encrypted records of at most 64 KiB, each prefixed by its u16 length, one
//! plaintext byte stream per direction. The two directions have their own keys and nonce
//! counters (taken from snow's handshake, then sealed and opened in place with ring: the bytes
//! are those of snow's transport), so a connection splits into a reader and a writer that
//! different tasks own.

use bytes::BufMut;
use ring::aead;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::liveness::{CONTROL_GONE_AFTER, CONTROL_PROBE_AFTER, CONTROL_PROBE_EVERY, CONTROL_PROBES};
use crate::net::frame::{self, FrameError, LEN_BYTES};
use crate::net::wire::{NOISE_MAX_MESSAGE, NOISE_MAX_PLAINTEXT, NOISE_TAG};

/// Sealed bytes gathered before a socket write: fewer syscalls for bulk data.
pub(super) const WRITE_BATCH: usize = 256 * 1024;
/// A transfer connection reader's buffer: the most a socket read takes at once. Bulk data read
/// with `read_exact_into` bypasses it.
pub(super) const READ_BUFFER: usize = 1024 * 1024;
/// A control connection reader's buffer: two of the largest records. A peer that keeps sending
/// walks a reader's whole buffer (a partial record moves to the front only at its end), and an
/// allocator that hands out recycled pages makes even unread capacity resident: with the
/// transfer size a chat flood over hundreds of control connections held a MiB on each.
pub(super) const CONTROL_READ_BUFFER: usize = 2 * (2 + NOISE_MAX_MESSAGE);
/// Records per vectored write of `write_raw_in_place`: three slices each, well inside IOV_MAX.
pub(super) const VECTORED_RECORDS: usize = 64;
/// From this many bytes on, `read_exact_into` reads the socket straight into the caller's buffer.
pub(super) const DIRECT_READ_MIN: usize = 2 * NOISE_MAX_PLAINTEXT;

/// The handshake's two transport keys as (ours to send, theirs to receive). The records are
/// sealed with ring directly rather than through snow's transport, whose API takes separate
/// input and output buffers and so costs a copy of every byte each way; the bytes on the wire
/// are the same (Noise's AESGCM: AES-256-GCM, empty associated data, the nonce's counter
/// big-endian in its last 8 bytes).
pub(super) fn record_keys(hs: &mut snow::HandshakeState) -> Option<(RecordKey, RecordKey)> {
    let (initiator, responder) = hs.dangerously_get_raw_split();
    let key = |k: &[u8]| {
        aead::UnboundKey::new(&aead::AES_256_GCM, k)
            .map(|k| RecordKey {
                key: aead::LessSafeKey::new(k),
                nonce: 0,
            })
            .ok()
    };
    let (i, r) = (key(&initiator)?, key(&responder)?);
    Some(if hs.is_initiator() { (i, r) } else { (r, i) })
}

/// One direction's key and the counter its nonces come from.
pub(super) struct RecordKey {
    pub(super) key: aead::LessSafeKey,
    pub(super) nonce: u64,
}

impl RecordKey {
    /// The next record's nonce. Noise reserves the last counter value, and a repeated nonce would
    /// break the cipher, so the counter ends the connection rather than wrap (2^64 records: never).
    pub(super) fn next(&mut self) -> std::io::Result<aead::Nonce> {
        if self.nonce == u64::MAX {
            return Err(std::io::Error::other("record counter exhausted"));
        }
        let mut n = [0u8; aead::NONCE_LEN];
        n[4..].copy_from_slice(&self.nonce.to_be_bytes());
        self.nonce += 1;
        Ok(aead::Nonce::assume_unique_for_key(n))
    }

    /// Seal the next record's plaintext in place; the tag goes after it.
    pub(super) fn seal(&mut self, plain: &mut [u8]) -> std::io::Result<aead::Tag> {
        let nonce = self.next()?;
        self.key
            .seal_in_place_separate_tag(nonce, aead::Aad::empty(), plain)
            .map_err(|_| std::io::Error::other("sealing a record failed"))
    }

    /// Open the next record, whose sealed bytes are `buf[from..]`, into the front of `buf`.
    /// `None` if it fails authentication (or is shorter than its tag).
    pub(super) fn open_within(&mut self, buf: &mut [u8], from: usize) -> Option<usize> {
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
    pub(super) sock: OwnedReadHalf,
    pub(super) key: RecordKey,
    /// `[start, plain)` is decrypted and not yet handed out; `[plain, raw)` is the dead space
    /// of the lengths and tags already used; `[raw, len)` is received and not yet decrypted.
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
    pub(super) plain: usize,
    pub(super) raw: usize,
    /// A record failed authentication: reported once the plaintext before it is used up.
    pub(super) forged: bool,
}

impl SecureReader {
    pub(super) fn new(rd: OwnedReadHalf, key: RecordKey, capacity: usize) -> Self {
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
    pub(super) async fn fill(&mut self, want: usize) -> std::io::Result<bool> {
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
    pub(super) async fn read_direct(&mut self, out: &mut Vec<u8>, left: usize) -> std::io::Result<()> {
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

pub(super) fn truncated(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Truncated
    } else {
        e.into()
    }
}

pub(super) fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

pub(super) fn cut_record() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed inside a record")
}

/// The fewest bytes on the wire that carry `plain` bytes of plaintext (full records).
pub(super) fn wire_len(plain: usize) -> usize {
    plain.saturating_add((2 + NOISE_TAG) * plain.div_ceil(NOISE_MAX_PLAINTEXT))
}

/// Open every complete record in `buf[*raw..]`, each one's plaintext moved down to `*plain` so
/// the plaintext stays one run; stops at an incomplete record or once `*plain >= stop`. `Err` if
/// a record fails authentication (or is shorter than its tag); the plaintext before it stands.
pub(super) fn open_records(key: &mut RecordKey, buf: &mut [u8], plain: &mut usize, raw: &mut usize, stop: usize) -> Result<(), ()> {
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
    pub(super) sock: OwnedWriteHalf,
    pub(super) key: RecordKey,
    /// Sealed records, then the open record (if `open` says where its length field is): its
    /// plaintext so far, to be sealed when full or flushed.
    pub(super) out: Vec<u8>,
    pub(super) open: Option<usize>,
    /// A socket write is under way, or was dropped before it finished.
    pub(super) torn: bool,
}

impl SecureWriter {
    /// `capacity`: what the batch buffer starts with (it grows to a batch if needed). A control
    /// connection writes small frames: an allocator that hands out recycled pages makes even an
    /// unwritten capacity resident, so it is kept to one record there.
    pub(super) fn new(wr: OwnedWriteHalf, key: RecordKey, capacity: usize) -> Self {
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
    pub(super) fn check_whole(&self) -> std::io::Result<()> {
        if self.torn {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "an earlier write on this connection was cut short",
            ));
        }
        Ok(())
    }

    /// Whether a write was dropped part-way (nothing more can be said on this connection).
    #[cfg(test)]
    pub fn is_torn(&self) -> bool {
        self.torn
    }

    pub(super) fn seal_open(&mut self) -> std::io::Result<()> {
        let Some(at) = self.open.take() else {
            return Ok(());
        };
        let tag = self.key.seal(&mut self.out[at + 2..])?;
        self.out.extend_from_slice(tag.as_ref());
        let sealed = (self.out.len() - at - 2) as u16;
        self.out[at..at + 2].copy_from_slice(&sealed.to_be_bytes());
        Ok(())
    }

    pub(super) fn queue_bytes(&mut self, mut data: &[u8]) -> std::io::Result<()> {
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
    pub(super) async fn write_out(&mut self) -> std::io::Result<()> {
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

    /// Watch this connection as a control connection: faster than `set_liveness`'s default, and
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
