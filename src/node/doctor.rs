//! `lanyard doctor`: what one machine can find out on its own about why it sees no peers, as a
//! verdict per check. The probes are in [`crate::net::probe`]; this is what they mean.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::net::probe;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Works, but not as a lab needs it.
    Warn,
    Fail,
    /// Not checked (mDNS turned off).
    Skipped,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

/// What to check.
#[derive(Debug, Clone)]
pub struct Exam {
    /// The port peers dial: the running node's, else the one a node would take.
    pub port: u16,
    /// A node runs on the data dir and listens on `port`.
    pub node_runs: bool,
    /// mDNS is on (else its check is skipped: it sends multicast).
    pub mdns: bool,
    /// How long to wait for this machine's own mDNS answer.
    pub mdns_wait: Duration,
}

pub async fn examine(exam: &Exam) -> Vec<Check> {
    let addresses = probe::addresses().unwrap_or_default();
    let own: Vec<&probe::Address> = addresses.iter().filter(|a| a.up && !a.ip.is_loopback() && a.ip.is_ipv4()).collect();
    let mut checks = vec![interfaces(&own), multicast_route(&addresses)];
    checks.push(tcp_port(exam, &own).await);
    checks.push(mdns(exam).await);
    checks
}

fn check(name: &'static str, verdict: Verdict, detail: impl Into<String>) -> Check {
    Check {
        name,
        verdict,
        detail: detail.into(),
    }
}

fn interfaces(own: &[&probe::Address]) -> Check {
    if own.is_empty() {
        return check(
            "interfaces",
            Verdict::Fail,
            "no interface with an IPv4 address is up besides loopback: this machine is on no network",
        );
    }
    let list: Vec<String> = own.iter().map(|a| format!("{} {}", a.interface, a.ip)).collect();
    check("interfaces", Verdict::Ok, list.join(", "))
}

fn multicast_route(addresses: &[probe::Address]) -> Check {
    const NAME: &str = "multicast route";
    match probe::multicast_source() {
        Ok(ip) if ip.is_loopback() => check(
            NAME,
            Verdict::Warn,
            "multicast (224.0.0.251) would leave by loopback only: other machines will not hear this one's mDNS",
        ),
        Ok(ip) => {
            let interface = addresses.iter().find(|a| a.ip == ip).map(|a| a.interface.as_str()).unwrap_or("?");
            check(NAME, Verdict::Ok, format!("224.0.0.251 (mDNS) leaves by {interface} from {ip}"))
        }
        Err(e) => check(NAME, Verdict::Fail, format!("{e:#}")),
    }
}

async fn tcp_port(exam: &Exam, own: &[&probe::Address]) -> Check {
    const NAME: &str = "tcp port";
    // Without a node, listen for the probe: the port a node here would take.
    let _listener = if exam.node_runs {
        None
    } else {
        match tokio::net::TcpListener::bind((IpAddr::from([0, 0, 0, 0]), exam.port)).await {
            Ok(l) => Some(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return check(
                    NAME,
                    Verdict::Warn,
                    format!(
                        "port {} is taken by another program (another user's lanyard?): a node here would listen on the next free one",
                        exam.port
                    ),
                );
            }
            Err(e) => return check(NAME, Verdict::Fail, format!("cannot listen on port {}: {e}", exam.port)),
        }
    };
    if own.is_empty() {
        return check(NAME, Verdict::Skipped, "no address of this machine to reach it on");
    }
    let mut reached = Vec::new();
    let mut failed = Vec::new();
    for a in own {
        let addr = SocketAddr::new(a.ip, exam.port);
        match probe::tcp_reaches(addr, Duration::from_secs(2)).await {
            Ok(()) => reached.push(addr.to_string()),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    let whose = if exam.node_runs {
        "the running node's"
    } else {
        "a test listener's"
    };
    if failed.is_empty() {
        check(
            NAME,
            Verdict::Ok,
            format!(
                "{} ({whose}) reached on {}; other machines also need it open in their firewall's path",
                exam.port,
                reached.join(", ")
            ),
        )
    } else {
        check(
            NAME,
            Verdict::Fail,
            format!(
                "{} ({whose}): {}; open TCP port {} in the firewall",
                exam.port,
                failed.join("; "),
                exam.port
            ),
        )
    }
}

async fn mdns(exam: &Exam) -> Check {
    const NAME: &str = "multicast (mDNS)";
    if !exam.mdns {
        return check(
            NAME,
            Verdict::Skipped,
            "mDNS is off (--no-mdns): only --peer HOST:PORT finds others",
        );
    }
    let (port, wait) = (exam.port, exam.mdns_wait);
    let answered = tokio::task::spawn_blocking(move || probe::mdns_answers_itself(port, wait)).await;
    match answered {
        Ok(Ok(Some(after))) => check(
            NAME,
            Verdict::Ok,
            format!(
                "this machine's own mDNS record answered in {:.1} s (UDP 5353 passes here)",
                after.as_secs_f32()
            ),
        ),
        Ok(Ok(None)) => check(
            NAME,
            Verdict::Fail,
            format!(
                "no answer to this machine's own mDNS query in {} s: multicast (UDP 5353, 224.0.0.251) is dropped here \
                 (a firewall?) or the interface does not do multicast; open it, or give --peer HOST:PORT",
                wait.as_secs_f32()
            ),
        ),
        Ok(Err(e)) => check(NAME, Verdict::Fail, format!("{e:#}")),
        Err(e) => check(NAME, Verdict::Fail, format!("the mDNS check stopped: {e}")),
    }
}
