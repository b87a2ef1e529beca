//! LocalSend's multicast group: one UDP socket on its port (shared with a LocalSend app on the
//! same machine: address and port reuse), joined on every IPv4 interface, datagrams sent out of
//! each with TTL 1 so none leaves the local network. Only ever opened when the node's
//! multicast is on (see `NodeConfig::mdns`).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::dto::Announcement;

pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 167);
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

pub struct Multicast {
    socket: UdpSocket,
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
        if sent == 0 {
            self.socket.send_to(&bytes, to).await.context("multicast send")?;
        }
        Ok(())
    }

    /// The next announcement that parses, with where it came from.
    pub async fn recv(&self) -> std::io::Result<(Announcement, SocketAddr)> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, from) = self.socket.recv_from(&mut buf).await?;
            if let Ok(a) = serde_json::from_slice::<Announcement>(&buf[..n]) {
                return Ok((a, from));
            }
        }
    }
}
