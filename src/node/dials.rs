//! The gate every dial of a discovered peer passes: an mDNS record or another peer's list names
//! an id and addresses, and both are claims anyone can make up. Without a gate, 500 forged
//! records make the node dial a host of the attacker's choosing as fast as it can, and a list can
//! point it at any port of any machine. So, per target IP address and in all (`crate::limits`,
//! "Dials of discovered peers"):
//!
//! - at most one dial per [`DIAL_SPACING_PER_ADDRESS`] to one IP address, whatever port or id;
//! - at most [`DIAL_RATE`] dials a second in all (a bucket of as many);
//! - one dial at a time to one port: the next waits for the outcome of the last;
//! - a port that did not answer as lanyard (refused, silent, another protocol) is dialled again
//!   only after an exponential back-off, [`DIAL_BACKOFF_MIN`] doubling up to [`DIAL_BACKOFF_MAX`];
//! - where a lanyard key answered, dials expecting another id wait [`DIAL_ANSWERED_HOLD`]: the
//!   claim was already shown false, and a thousand made-up ids at one real node cost one dial.
//!
//! Pure bookkeeping over an injected clock, so the rules are unit-tested.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::identity::PeerId;
use crate::limits::{
    CONNECT_TIMEOUT, DIAL_ADDRS_KEPT, DIAL_ANSWERED_HOLD, DIAL_BACKOFF_MAX, DIAL_BACKOFF_MIN, DIAL_RATE, DIAL_SPACING_PER_ADDRESS,
    HANDSHAKE_TIMEOUT,
};
use crate::net::secure::HandshakeError;

/// Whether a dial may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Go,
    /// Not before then.
    Later(Instant),
}

/// What a dial found at its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A lanyard key answered (the one expected or not).
    Answered(PeerId),
    /// Nothing there that speaks lanyard: refused, silent, cut off, or another protocol.
    Failed,
}

impl Outcome {
    /// What a dial's result says about its address (`me`: our own id, for a dial that reached us).
    pub(crate) fn of<T>(result: &Result<T, HandshakeError>, expected: &PeerId, me: &PeerId) -> Outcome {
        match result {
            Ok(_) => Outcome::Answered(expected.clone()),
            Err(HandshakeError::IdMismatch { got, .. }) => Outcome::Answered(got.clone()),
            Err(HandshakeError::SelfConnection) => Outcome::Answered(me.clone()),
            // Another version of lanyard is there: a peer, not a stranger's port to spare.
            Err(HandshakeError::VersionMismatch { .. }) => Outcome::Answered(expected.clone()),
            Err(_) => Outcome::Failed,
        }
    }
}

#[derive(Debug)]
struct Port {
    /// Not dialled again before then (back-off after failures).
    next: Instant,
    failures: u32,
    /// A dial to it is under way (until then at the latest): the next waits for its outcome.
    busy_until: Option<Instant>,
    /// The key that last answered here, and when.
    answered: Option<(PeerId, Instant)>,
}

impl Port {
    fn new(now: Instant) -> Port {
        Port {
            next: now,
            failures: 0,
            busy_until: None,
            answered: None,
        }
    }
}

/// The longest a dial takes (connect, then handshake): a port whose outcome never came (the
/// dialler ended) is free again after it.
const DIAL_TAKES_AT_MOST: Duration = CONNECT_TIMEOUT.saturating_add(HANDSHAKE_TIMEOUT);

#[derive(Debug)]
pub(crate) struct DialGate {
    /// Per IP address: the earliest next dial.
    ips: HashMap<IpAddr, Instant>,
    ports: HashMap<SocketAddr, Port>,
    tokens: f64,
    refilled: Instant,
}

impl DialGate {
    pub(crate) fn new(now: Instant) -> DialGate {
        DialGate {
            ips: HashMap::new(),
            ports: HashMap::new(),
            tokens: f64::from(DIAL_RATE),
            refilled: now,
        }
    }

    /// May `addr` be dialled now, expecting `expect` there? A `Go` counts as a dial made.
    pub(crate) fn ask(&mut self, addr: SocketAddr, expect: &PeerId, now: Instant) -> Verdict {
        let mut later = None;
        if let Some(port) = self.ports.get(&addr) {
            if let Some((who, at)) = &port.answered
                && who != expect
                && now < *at + DIAL_ANSWERED_HOLD
            {
                later = Some(*at + DIAL_ANSWERED_HOLD);
            }
            if now < port.next {
                later = later.max(Some(port.next));
            }
            if let Some(busy) = port.busy_until
                && now < busy
            {
                later = later.max(Some(busy));
            }
        }
        if let Some(next) = self.ips.get(&addr.ip())
            && now < *next
        {
            later = later.max(Some(*next));
        }
        if let Some(t) = later {
            return Verdict::Later(t);
        }
        let rate = f64::from(DIAL_RATE);
        self.tokens = (self.tokens + now.saturating_duration_since(self.refilled).as_secs_f64() * rate).min(rate);
        self.refilled = now;
        if self.tokens < 1.0 {
            return Verdict::Later(now + Duration::from_secs_f64((1.0 - self.tokens) / rate));
        }
        if !self.ports.contains_key(&addr) && !self.make_room(now) {
            // Full of addresses still backing off: a new one waits rather than the memory growing.
            return Verdict::Later(now + DIAL_BACKOFF_MIN);
        }
        self.tokens -= 1.0;
        self.ips.insert(addr.ip(), now + DIAL_SPACING_PER_ADDRESS);
        self.ports.entry(addr).or_insert_with(|| Port::new(now)).busy_until = Some(now + DIAL_TAKES_AT_MOST);
        Verdict::Go
    }

    /// Record what a dial allowed by [`ask`](Self::ask) found.
    pub(crate) fn outcome(&mut self, addr: SocketAddr, outcome: Outcome, now: Instant) {
        let port = self.ports.entry(addr).or_insert_with(|| Port::new(now));
        port.busy_until = None;
        match outcome {
            Outcome::Answered(id) => {
                port.failures = 0;
                port.next = now;
                port.answered = Some((id, now));
            }
            Outcome::Failed => {
                port.failures = port.failures.saturating_add(1);
                let doublings = port.failures.saturating_sub(1).min(16);
                let wait = DIAL_BACKOFF_MIN.saturating_mul(1 << doublings).min(DIAL_BACKOFF_MAX);
                port.next = port.next.max(now + wait);
            }
        }
    }

    /// Forget what no longer holds anything back, when the table is full. False: still full.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.ports.len() < DIAL_ADDRS_KEPT {
            return true;
        }
        self.ports.retain(|_, p| {
            p.next > now
                || p.busy_until.is_some_and(|b| b > now)
                || p.answered.as_ref().is_some_and(|(_, at)| now < *at + DIAL_ANSWERED_HOLD)
        });
        self.ips.retain(|_, next| *next > now);
        self.ports.len() < DIAL_ADDRS_KEPT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn id() -> PeerId {
        Identity::generate().unwrap().id().clone()
    }

    #[test]
    fn one_address_is_dialled_at_most_twice_a_second_whatever_the_port_or_id() {
        let t0 = Instant::now();
        let mut g = DialGate::new(t0);
        let mut dials = 0;
        // 1,000 made-up peers, each at its own port of one host, asked every 10 ms for 10 s.
        let ids: Vec<PeerId> = (0..4).map(|_| id()).collect();
        for step in 0..1000u32 {
            let now = t0 + Duration::from_millis(10) * step;
            for (i, who) in ids.iter().enumerate() {
                let port = 2000 + (step as usize * 4 + i) % 1000;
                if g.ask(a(&format!("10.0.0.9:{port}")), who, now) == Verdict::Go {
                    dials += 1;
                    g.outcome(a(&format!("10.0.0.9:{port}")), Outcome::Answered(who.clone()), now);
                }
            }
        }
        assert!((19..=21).contains(&dials), "{dials} dials in 10 s");
    }

    #[test]
    fn dials_in_all_are_bounded_by_the_bucket() {
        let t0 = Instant::now();
        let mut g = DialGate::new(t0);
        let who = id();
        let mut dials = 0;
        // 100 distinct hosts asked every 10 ms for 5 s.
        for step in 0..500u32 {
            let now = t0 + Duration::from_millis(10) * step;
            for host in 0..100 {
                if g.ask(a(&format!("10.1.{host}.1:7717")), &who, now) == Verdict::Go {
                    dials += 1;
                }
            }
        }
        let most = DIAL_RATE as usize * 6;
        assert!(dials <= most && dials >= most - 2 * DIAL_RATE as usize, "{dials} dials in 5 s");
    }

    #[test]
    fn a_port_that_does_not_speak_lanyard_is_backed_off_exponentially_up_to_a_cap() {
        let t0 = Instant::now();
        let mut g = DialGate::new(t0);
        let ssh = a("10.0.0.9:2222");
        let mut at = Vec::new();
        let mut now = t0;
        let ids: Vec<PeerId> = (0..3).map(|_| id()).collect();
        let mut asks = ids.iter().cycle();
        while now < t0 + Duration::from_secs(600) {
            // Several ids want it, all the time.
            let who = asks.next().unwrap();
            if g.ask(ssh, who, now) == Verdict::Go {
                at.push(now - t0);
                g.outcome(ssh, Outcome::Failed, now);
            }
            now += Duration::from_millis(100);
        }
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] >= DIAL_BACKOFF_MIN, "{gaps:?}");
        for w in gaps.windows(2) {
            assert!(w[1] >= w[0], "the waits never shrink: {gaps:?}");
        }
        assert!(gaps.iter().all(|g| *g <= DIAL_BACKOFF_MAX + Duration::from_millis(200)), "{gaps:?}");
        assert!(at.len() <= 16, "{} dials in 10 minutes: {at:?}", at.len());
        // One that answers is dialled again as soon as the address' spacing allows.
        let mut g = DialGate::new(t0);
        assert_eq!(g.ask(ssh, &id(), t0), Verdict::Go);
        g.outcome(ssh, Outcome::Failed, t0);
        assert!(matches!(g.ask(ssh, &id(), t0 + Duration::from_millis(600)), Verdict::Later(_)));
        let back = t0 + DIAL_BACKOFF_MIN;
        let who = id();
        assert_eq!(g.ask(ssh, &who, back), Verdict::Go);
        g.outcome(ssh, Outcome::Answered(who.clone()), back);
        assert_eq!(g.ask(ssh, &who, back + DIAL_SPACING_PER_ADDRESS), Verdict::Go);
    }

    #[test]
    fn one_dial_at_a_time_to_one_port() {
        let t0 = Instant::now();
        let mut g = DialGate::new(t0);
        let at = a("10.0.0.2:7717");
        let (x, y) = (id(), id());
        assert_eq!(g.ask(at, &x, t0), Verdict::Go);
        let later = t0 + Duration::from_secs(2);
        assert_eq!(
            g.ask(at, &y, later),
            Verdict::Later(t0 + DIAL_TAKES_AT_MOST),
            "the first is under way"
        );
        assert_eq!(
            g.ask(a("10.0.0.2:7718"), &y, later),
            Verdict::Go,
            "another port of that host is not"
        );
        g.outcome(at, Outcome::Answered(y.clone()), later);
        assert_eq!(g.ask(at, &y, later + DIAL_SPACING_PER_ADDRESS), Verdict::Go);
    }

    #[test]
    fn where_a_key_answered_other_ids_wait() {
        let t0 = Instant::now();
        let mut g = DialGate::new(t0);
        let (bob, forged) = (id(), id());
        let at = a("10.0.0.2:7717");
        assert_eq!(g.ask(at, &forged, t0), Verdict::Go);
        g.outcome(at, Outcome::Answered(bob.clone()), t0);
        let soon = t0 + Duration::from_secs(1);
        assert_eq!(g.ask(at, &id(), soon), Verdict::Later(t0 + DIAL_ANSWERED_HOLD));
        assert_eq!(g.ask(at, &bob, soon), Verdict::Go, "the key that answered is dialled");
        assert_eq!(g.ask(at, &forged, t0 + DIAL_ANSWERED_HOLD + Duration::from_secs(1)), Verdict::Go);
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut g = DialGate::new(t0);
        let who = id();
        let mut now = t0;
        for i in 0..(DIAL_ADDRS_KEPT as u32 + 100) {
            now += Duration::from_millis(60);
            let addr = SocketAddr::new(IpAddr::from(std::net::Ipv4Addr::from((10u32 << 24) | i)), 7717);
            if g.ask(addr, &who, now) == Verdict::Go {
                g.outcome(addr, Outcome::Failed, now);
            }
        }
        assert!(g.ports.len() <= DIAL_ADDRS_KEPT);
    }
}
