//! How a connection notices that its peer's machine vanished (power, cable, sleep): the
//! kernel's keepalive probes and user timeout, set on every socket, tighter on control
//! connections.

use std::time::Duration;

use tokio::net::TcpStream;

/// Kernel-level liveness for every connection: a peer whose machine vanished (power, cable)
/// is detected by keepalive probes, and data it never acknowledges fails the socket, so no task
/// waits on it forever — also in the middle of a transfer, whose protocol may legitimately sit
/// idle while a person decides on an offer.
pub(super) fn set_liveness(sock: &TcpStream) -> std::io::Result<()> {
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
