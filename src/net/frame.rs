//! Frames: a big-endian u32 length, then that many bytes of CBOR. The length is checked against
//! the caller's bound before a single byte of the body is allocated.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const LEN_BYTES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Append one frame holding `msg` to `out`.
pub fn encode<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    ciborium::into_writer(msg, &mut *out).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = u32::try_from(out.len() - start - LEN_BYTES).map_err(|_| FrameError::Malformed("frame too large".into()))?;
    out[start..start + LEN_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// The body length announced by a header, refused if over `max`.
pub fn body_len(header: [u8; LEN_BYTES], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decode a body; trailing bytes count as malformed so a frame means exactly one value.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let mut cursor = std::io::Cursor::new(body);
    let value = ciborium::from_reader(&mut cursor).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if cursor.position() as usize != body.len() {
        return Err(FrameError::Malformed("trailing bytes after the value".into()));
    }
    Ok(value)
}

/// Read one frame from a plain stream (the local control socket). `Ok(None)` on a clean end
/// between frames; an end inside a header, like one inside a body, is a cut frame.
pub async fn read<T: DeserializeOwned, R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; LEN_BYTES];
    if r.read(&mut header[..1]).await? == 0 {
        return Ok(None);
    }
    r.read_exact(&mut header[1..]).await.map_err(truncated)?;
    let len = body_len(header, max)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(truncated)?;
    decode(&body).map(Some)
}

fn truncated(e: std::io::Error) -> FrameError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => e.into(),
    }
}

pub async fn write<T: Serialize, W: AsyncWrite + Unpin>(w: &mut W, msg: &T) -> Result<(), FrameError> {
    let mut buf = Vec::new();
    encode(msg, &mut buf)?;
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::wire::{ByeReason, ControlMsg, MAX_CONTROL_FRAME};

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode(&ControlMsg::Nick { nick: "ada".into() }, &mut buf).unwrap();
        encode(&ControlMsg::Ping, &mut buf).unwrap();
        let len = body_len(buf[..4].try_into().unwrap(), MAX_CONTROL_FRAME).unwrap();
        let first: ControlMsg = decode(&buf[4..4 + len]).unwrap();
        assert_eq!(first, ControlMsg::Nick { nick: "ada".into() });
        let rest = &buf[4 + len..];
        let len2 = body_len(rest[..4].try_into().unwrap(), MAX_CONTROL_FRAME).unwrap();
        assert_eq!(decode::<ControlMsg>(&rest[4..4 + len2]).unwrap(), ControlMsg::Ping);
    }

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        let err = body_len(u32::MAX.to_be_bytes(), MAX_CONTROL_FRAME).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed() {
        assert!(decode::<ControlMsg>(&[0xff, 0x00, 0x13]).is_err());
        let mut buf = Vec::new();
        encode(&ControlMsg::Ping, &mut buf).unwrap();
        let mut body = buf[4..].to_vec();
        body.push(0);
        assert!(matches!(decode::<ControlMsg>(&body), Err(FrameError::Malformed(_))));
        // A CBOR byte string claiming 4 GiB inside a tiny frame must fail, not allocate.
        assert!(decode::<ControlMsg>(&[0x5b, 0, 0, 0, 1, 0, 0, 0, 0]).is_err());
    }

    #[tokio::test]
    async fn stream_read_write() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write(
            &mut a,
            &ControlMsg::Bye {
                reason: ByeReason::Leaving,
            },
        )
        .await
        .unwrap();
        drop(a);
        let got: Option<ControlMsg> = read(&mut b, 1024).await.unwrap();
        assert_eq!(
            got,
            Some(ControlMsg::Bye {
                reason: ByeReason::Leaving
            })
        );
        assert!(read::<ControlMsg, _>(&mut b, 1024).await.unwrap().is_none());
    }

    /// Found by the `frame` fuzz target: 1 to 3 bytes of a header at the end of the stream were
    /// taken for a clean end.
    #[tokio::test]
    async fn a_stream_cut_inside_a_header_is_truncated() {
        let mut buf = Vec::new();
        encode(&ControlMsg::Ping, &mut buf).unwrap();
        let whole = buf.len();
        buf.extend_from_slice(&[0, 0, 0, 8]);
        for cut in whole + 1..whole + LEN_BYTES {
            let mut r = &buf[..cut];
            assert_eq!(read::<ControlMsg, _>(&mut r, 1024).await.unwrap(), Some(ControlMsg::Ping));
            assert!(
                matches!(read::<ControlMsg, _>(&mut r, 1024).await, Err(FrameError::Truncated)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_message_of_a_later_version_is_ignored_not_fatal() {
        #[derive(serde::Serialize)]
        struct Later {
            t: &'static str,
            payload: Vec<u32>,
        }
        let mut buf = Vec::new();
        encode(
            &Later {
                t: "file_hint",
                payload: vec![1, 2, 3],
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(decode::<ControlMsg>(&buf[4..]).unwrap(), ControlMsg::Unknown);
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let n = rng.random_range(0..64);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            let _ = decode::<ControlMsg>(&bytes);
        }
    }
}
