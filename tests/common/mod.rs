//! Helpers for in-process tests: real nodes on 127.0.0.1, mDNS off (multicast never leaves the
//! machine from a test outside a namespace).
//!
//! Timing rule for every test: wait for the event, never for a while. A deadline only stops a
//! hang, so it is [`PATIENCE`] (generous: a loaded machine must never hit it); a passing test
//! never waits for it. A check that something does *not* happen may use a short window.
#![allow(dead_code)]

use std::io::Write;
use std::time::Duration;

use lanyard::identity::PeerId;
use lanyard::node::api::{NodeConfig, NodeHandle};
use lanyard::node::events::Event;
use tempfile::TempDir;

/// The bound on anything a test waits for: only a guard against a hang, never a measurement.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Start a node. A node shut down before has released the data dir (shutdown waits for all its
/// tasks first), so a restart needs no retry.
pub async fn start_node(config: NodeConfig) -> NodeHandle {
    match NodeHandle::start(config.clone()).await {
        Ok(n) => n,
        Err(e) => panic!("start {:?}: {e:#}", config.nick),
    }
}

pub struct TestNode {
    pub node: NodeHandle,
    pub events: lanyard::node::events::Subscription,
    pub dir: TempDir,
}

impl TestNode {
    pub async fn start(nick: &str) -> TestNode {
        Self::start_in(nick, tempfile::tempdir().expect("tempdir")).await
    }

    /// Start a node whose config `adjust` changes first (a shorter deadline, say).
    pub async fn start_with(nick: &str, adjust: impl FnOnce(&mut NodeConfig)) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = NodeConfig::local(nick, dir.path().to_path_buf());
        adjust(&mut config);
        let node = start_node(config).await;
        let events = node.subscribe();
        TestNode { node, events, dir }
    }

    /// Start (or restart) a node on an existing data dir.
    pub async fn start_in(nick: &str, dir: TempDir) -> TestNode {
        let node = start_node(NodeConfig::local(nick, dir.path().to_path_buf())).await;
        let events = node.subscribe();
        TestNode { node, events, dir }
    }

    pub fn addr(&self) -> String {
        self.node.listen_addr().expect("listening").to_string()
    }

    pub fn id(&self) -> PeerId {
        self.node.id().clone()
    }

    /// The first event matching `pred` within `window`, if any: for checks that something does
    /// *not* happen (a short window is fine there).
    pub async fn next_event(&mut self, window: Duration, pred: impl Fn(&Event) -> bool) -> Option<Event> {
        let wait = async {
            loop {
                match self.events.recv().await {
                    Ok(e) if pred(&e) => return Some(e),
                    Ok(_) | Err(lanyard::node::events::RecvError::Lagged(_)) => {}
                    Err(lanyard::node::events::RecvError::Closed) => return None,
                }
            }
        };
        tokio::time::timeout(window, wait).await.ok().flatten()
    }

    /// Every event already queued, without waiting; panics if the stream lagged (a check of
    /// what did not happen must see everything that did).
    pub fn queued(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.events.try_next().expect("the event stream lagged or closed") {
            out.push(e.event);
        }
        out
    }

    /// Wait for the first event matching `pred`; fails the test only after [`PATIENCE`].
    pub async fn expect_event(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        self.next_event(PATIENCE, pred)
            .await
            .unwrap_or_else(|| panic!("no {what} within {} s", PATIENCE.as_secs()))
    }

    pub async fn expect_up(&mut self, id: &PeerId) -> Event {
        self.expect_event("peer_up", |e| matches!(e, Event::PeerUp { id: i, .. } if i == id))
            .await
    }

    pub async fn expect_down(&mut self, id: &PeerId) -> Event {
        self.expect_event("peer_down", |e| matches!(e, Event::PeerDown { id: i, .. } if i == id))
            .await
    }

    /// Shut down and hand back the data dir, for a restart.
    pub async fn stop(self) -> TempDir {
        self.node.shutdown().await;
        self.dir
    }
}

/// Connect `a` to `b` by address and wait until both see each other.
pub async fn connect(a: &mut TestNode, b: &mut TestNode) {
    a.node.add_peer(&b.addr());
    let (ida, idb) = (a.id(), b.id());
    a.expect_up(&idb).await;
    b.expect_up(&ida).await;
}

/// Whether a test that needs root (to mount a tmpfs, say) must run rather than skip: in CI
/// (`CI` set) or with `LANYARD_REQUIRE_ROOT=1`. `.ci/run` sets the latter.
pub fn root_required() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("LANYARD_REQUIRE_ROOT") || set("CI")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A test that cannot run here: fails it where it is required to run ([`root_required`]),
/// otherwise says `SKIP <test>: <why>` where it can be seen — on the terminal, past the test
/// harness's output capture — and the caller returns.
pub fn skip(test: &str, why: &str) {
    if root_required() {
        panic!("{test} cannot run: {why} (required: LANYARD_REQUIRE_ROOT=1 or CI is set)");
    }
    let line = format!("SKIP {test}: {why} (not counted as a pass; run as root to include it)\n");
    // Straight to the file descriptor: `eprintln!` would be captured and hidden on success.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A tmpfs mounted on a fresh temporary dir with `options` (e.g. "size=2m"), unmounted when
/// dropped; `None` (after [`skip`]) when it cannot be mounted here.
pub fn tmpfs(test: &str, options: &str) -> Option<Tmpfs> {
    if !is_root() {
        skip(test, "needs root to mount a tmpfs");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir.path())
        .output();
    match out {
        Ok(o) if o.status.success() => Some(Tmpfs { dir }),
        Ok(o) => {
            let why = format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&o.stderr).trim());
            skip(test, &why);
            None
        }
        Err(e) => {
            skip(test, &format!("cannot run mount: {e}"));
            None
        }
    }
}

pub struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("--lazy").arg(self.dir.path()).status();
    }
}

/// Wait until `cond` holds, for state that has no event to wait on (the file system, the
/// database of a running node); fails the test only after [`PATIENCE`].
pub async fn until(what: &str, cond: impl Fn() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not within {} s", PATIENCE.as_secs()));
}

/// What a hand-made client (a hostile peer in a test) says in its handshake.
pub fn mallory_hello() -> lanyard::fuzzing::net::wire::Hello {
    lanyard::fuzzing::net::wire::Hello {
        nick: "mallory".into(),
        host: "evil".into(),
        listen_port: None,
        software: "test".into(),
        session: 1,
    }
}

/// A transfer connection to `node` as `me`, speaking the real preamble and handshake.
pub async fn dial_transfer_as(node: &NodeHandle, me: &lanyard::identity::Identity) -> lanyard::fuzzing::net::secure::SecureConn {
    let sock = tokio::net::TcpStream::connect(node.listen_addr().expect("listening"))
        .await
        .expect("connect");
    lanyard::fuzzing::net::secure::connect(
        sock,
        me,
        &mallory_hello(),
        lanyard::fuzzing::net::wire::Purpose::Transfer,
        Some(node.id()),
    )
    .await
    .expect("handshake")
}

/// A node with a download folder of its own, for pushes and pulls.
pub struct FileNode {
    pub handle: NodeHandle,
    _dir: TempDir,
    pub downloads: std::path::PathBuf,
}

/// A node on 127.0.0.1 whose download folder is `downloads` in its own temp dir.
pub async fn file_node(nick: &str, tweak: impl FnOnce(&mut NodeConfig)) -> FileNode {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::local(nick, dir.path().join("data"));
    config.download_dir = dir.path().join("downloads");
    tweak(&mut config);
    let downloads = config.download_dir.clone();
    FileNode {
        handle: start_node(config).await,
        _dir: dir,
        downloads,
    }
}

/// `from` learns `to` by address; returns `to`'s id as `from` sees it.
pub async fn link(from: &FileNode, to: &FileNode) -> PeerId {
    let addr = to.handle.listen_addr().unwrap().to_string();
    from.handle.resolve(&addr, PATIENCE).await.unwrap()
}

/// Deterministic, incompressible-looking bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Write `data` to `path`, making its folders.
pub fn write(path: &std::path::Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// The partial files a receive left in `downloads`.
pub fn partials(downloads: &std::path::Path) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(downloads.join(".lanyard-partial")) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The first event matching `f`, within [`PATIENCE`].
pub async fn wait_for<T>(rx: &mut lanyard::node::events::Subscription, mut f: impl FnMut(&Event) -> Option<T>) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some(t) = f(&e) {
                        return t;
                    }
                }
                Err(lanyard::node::events::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("event did not come")
}
