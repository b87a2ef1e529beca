//! LocalSend v2 as bytes and crypto: the device's certificate ([`cert`]), the JSON shapes of
//! its HTTP API and announcements ([`dto`]), TLS configured the way LocalSend pins
//! certificates ([`tls`]), and an HTTPS accept loop that tells each request which certificate
//! its client presented ([`server`]), and the multicast group announcements go through
//! ([`multicast`]). What a request means is `node::localsend`'s business.

pub mod cert;
pub mod dto;
pub mod multicast;
pub mod server;
pub mod tls;

/// LocalSend's port, for HTTPS and for its multicast group alike.
pub const DEFAULT_PORT: u16 = 53317;
/// Every route is below this.
pub const API: &str = "/api/localsend";
