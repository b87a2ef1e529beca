//! Probes a machine can run on itself to see why it finds no peers (`lanyard doctor`): its
//! addresses, the route multicast takes, a TCP port reached on its own addresses, and whether
//! an mDNS record it publishes is answered. Only [`mdns_answers_itself`] sends anything to the
//! network (multicast, like any mDNS node).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};

/// The mDNS group (RFC 6762).
pub const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
pub const MDNS_PORT: u16 = 5353;
/// Not lanyard's own service type, so no node takes the probe's record for a peer.
const PROBE_SERVICE: &str = "_lanyard-probe._tcp.local.";

/// An address of one of this machine's interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub interface: String,
    pub ip: IpAddr,
    pub up: bool,
}

/// Every address of every interface, loopback included.
pub fn addresses() -> Result<Vec<Address>> {
    let all = if_addrs::get_if_addrs().context("cannot list the network interfaces")?;
    Ok(all
        .into_iter()
        .map(|i| Address {
            up: i.is_oper_up() || i.oper_status == if_addrs::IfOperStatus::Unknown,
            ip: i.ip(),
            interface: i.name,
        })
        .collect())
}

/// The local address the kernel would send mDNS multicast from (a route lookup; nothing is sent).
pub fn multicast_source() -> Result<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("cannot open a UDP socket")?;
    socket
        .connect((MDNS_GROUP, MDNS_PORT))
        .context("no route for multicast (224.0.0.251): the machine has no default route nor one for 224.0.0.0/4")?;
    Ok(socket.local_addr()?.ip())
}

/// Connect to `addr` within `within`: an error says why not.
pub async fn tcp_reaches(addr: SocketAddr, within: Duration) -> Result<()> {
    match tokio::time::timeout(within, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e).with_context(|| format!("cannot connect to {addr}")),
        Err(_) => anyhow::bail!("no answer from {addr} in {} s (dropped by a firewall?)", within.as_secs_f32()),
    }
}

/// Publish a record with one mDNS responder and look it up with another, as a peer on the
/// link would: both go through the machine's own multicast (looped back by the kernel), so a
/// firewall that drops mDNS here stops it. How long the answer took, or `None` within `wait`.
pub fn mdns_answers_itself(port: u16, wait: Duration) -> Result<Option<Duration>> {
    let responder = ServiceDaemon::new().context("cannot start mDNS")?;
    let browser = ServiceDaemon::new().context("cannot start mDNS")?;
    let name = format!("probe-{:016x}", rand::random::<u64>());
    let host = format!("{name}.local.");
    let info = ServiceInfo::new(
        PROBE_SERVICE,
        &name,
        &host,
        "",
        port,
        None::<std::collections::HashMap<String, String>>,
    )
    .context("bad mDNS record")?
    .enable_addr_auto();
    let fullname = info.get_fullname().to_string();
    responder.register(info).context("cannot register the probe's mDNS record")?;
    let started = Instant::now();
    let events = browser.browse(PROBE_SERVICE).context("cannot browse mDNS")?;
    let mut answered = None;
    while let Some(left) = wait.checked_sub(started.elapsed()) {
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(found)) if found.fullname == fullname => {
                answered = Some(started.elapsed());
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = responder.unregister(&fullname);
    for daemon in [browser, responder] {
        let _ = daemon.shutdown();
    }
    Ok(answered)
}
