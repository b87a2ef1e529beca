//! Networking, in layers: `wire` (messages and limits) → `frame` (length-prefixed CBOR) →
//! `secure` (Noise handshake and encrypted records over TCP); `discovery` (mDNS) beside them.
//!
//! Its files: `wire`, `frame`, `secure` (with `secure/handshake`, `secure/records`,
//! `secure/liveness`), `discovery`, `probe` (what `doctor` tries on this machine), and
//! `localsend/` (LocalSend v2 as bytes and crypto).

pub mod discovery;
pub mod frame;
pub mod localsend;
pub mod probe;
pub mod secure;
pub mod wire;
