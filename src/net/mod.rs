//! Networking, in layers: `wire` (messages and limits) → `frame` (length-prefixed CBOR) →
//! `secure` (Noise handshake and encrypted records over TCP); `discovery` (mDNS) beside them.

pub mod discovery;
pub mod frame;
pub mod localsend;
pub mod probe;
pub mod secure;
pub mod wire;
