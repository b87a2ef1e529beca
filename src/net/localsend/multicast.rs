//! LocalSend's multicast groups: a UDP socket on its port (shared with a LocalSend app on the
//! same machine: address and port reuse) joined to the IPv4 group on every IPv4 interface, and
//! — where an interface has IPv6 — one joined to 1.18's link-local IPv6 group on each such
//! interface; datagrams sent out of each with TTL (hop limit) 1 so none leaves the local
//! network. Only ever opened when the node's multicast is on (see `NodeConfig::mdns`).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::dto::Announcement;

pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 167);
/// LocalSend 1.18's IPv6 group (link-local scope).
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff12, 0, 0, 0, 0, 0, 0xfd3a, 0xe420);
/// Largest datagram read; an announcement is a few hundred bytes.
pub const MAX_DATAGRAM: usize = 4096;

/// The IPv4 addresses of the interfaces that are up, loopback included (a device on this
/// machine, or in a test's namespace, is reached through it).
fn interfaces() -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| match i.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The indexes of the interfaces that have an IPv6 address, loopback left out (the group is
/// link-local: not routed over lo).
fn interfaces_v6() -> Vec<u32> {
    let mut v: Vec<u32> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| matches!(i.ip(), std::net::IpAddr::V6(_)) && !i.is_loopback())
        .filter_map(|i| i.index)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A socket joined to the IPv6 group on every interface with IPv6; `None` when there is none
/// (or IPv6 is off): the IPv4 group is enough then.
fn open_v6(port: u16) -> Option<UdpSocket> {
    let indexes = interfaces_v6();
    if indexes.is_empty() {
        return None;
    }
    let open = || -> Result<UdpSocket> {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_only_v6(true)?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)).into())?;
        s.set_multicast_hops_v6(1)?;
        s.set_multicast_loop_v6(true)?;
        let joined = indexes.iter().filter(|&&i| s.join_multicast_v6(&GROUP_V6, i).is_ok()).count();
        anyhow::ensure!(joined > 0, "no interface joined {GROUP_V6}");
        s.set_nonblocking(true)?;
        Ok(UdpSocket::from_std(s.into())?)
    };
    match open() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!("LocalSend's IPv6 group: {e:#}");
            None
        }
    }
}

pub struct Multicast {
    socket: UdpSocket,
    v6: Option<UdpSocket>,
    port: u16,
}

impl Multicast {
    pub fn open(port: u16) -> Result<Multicast> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).context("UDP socket")?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())
            .with_context(|| format!("cannot bind UDP port {port}"))?;
        s.set_multicast_ttl_v4(1)?;
        s.set_multicast_loop_v4(true)?;
        let mut joined = 0;
        for ip in interfaces() {
            if s.join_multicast_v4(&GROUP, &ip).is_ok() {
                joined += 1;
            }
        }
        if joined == 0 {
            s.join_multicast_v4(&GROUP, &Ipv4Addr::UNSPECIFIED)
                .context("cannot join LocalSend's multicast group")?;
        }
        s.set_nonblocking(true)?;
        Ok(Multicast {
            socket: UdpSocket::from_std(s.into())?,
            v6: open_v6(port),
            port,
        })
    }

    /// Send an announcement out of every interface.
    pub async fn send(&self, what: &Announcement) -> Result<()> {
        let bytes = serde_json::to_vec(what)?;
        let to = SocketAddr::V4(SocketAddrV4::new(GROUP, self.port));
        let sock = socket2::SockRef::from(&self.socket);
        let mut sent = 0;
        for ip in interfaces() {
            if sock.set_multicast_if_v4(&ip).is_ok() && self.socket.send_to(&bytes, to).await.is_ok() {
                sent += 1;
            }
        }
        // Each family on its own: one blocked (a firewall) leaves the other.
        let mut v4 = Ok(());
        if sent == 0 {
            v4 = self.socket.send_to(&bytes, to).await.map(drop).context("multicast send");
        }
        let mut sent_v6 = 0;
        if let Some(v6) = &self.v6 {
            let sock = socket2::SockRef::from(v6);
            for index in interfaces_v6() {
                let to = SocketAddr::V6(SocketAddrV6::new(GROUP_V6, self.port, 0, index));
                match sock.set_multicast_if_v6(index) {
                    Ok(()) => match v6.send_to(&bytes, to).await {
                        Ok(_) => sent_v6 += 1,
                        Err(e) => tracing::debug!("LocalSend's IPv6 group on interface {index}: {e}"),
                    },
                    Err(e) => tracing::debug!("LocalSend's IPv6 group on interface {index}: {e}"),
                }
            }
        }
        if sent_v6 > 0 { Ok(()) } else { v4 }
    }

    /// The next announcement that parses, with where it came from.
    /// A datagram from an IPv6 link-local address carries its interface (scope id), so the
    /// answer goes back out of it.
    pub async fn recv(&self) -> std::io::Result<(Announcement, SocketAddr)> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut buf6 = vec![0u8; if self.v6.is_some() { MAX_DATAGRAM } else { 0 }];
        loop {
            let (n, from, bytes) = match &self.v6 {
                None => {
                    let (n, from) = self.socket.recv_from(&mut buf).await?;
                    (n, from, &buf)
                }
                Some(v6) => tokio::select! {
                    r = self.socket.recv_from(&mut buf) => { let (n, from) = r?; (n, from, &buf) }
                    r = v6.recv_from(&mut buf6) => { let (n, from) = r?; (n, from, &buf6) }
                },
            };
            if let Ok(a) = serde_json::from_slice::<Announcement>(&bytes[..n]) {
                return Ok((a, from));
            }
        }
    }
}
