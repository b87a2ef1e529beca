//! TUI figures (prints, never asserts on time). Everything on 127.0.0.1, no mDNS.
//!
//! - (a) draw: one frame of `ui::view::draw` into ratatui's `TestBackend` at 120×40 (through
//!   `Terminal::draw`, so the diff against the previous frame is included), with an `App` built
//!   through its public API: 100 peers, 10,000 lines in the open peer conversation, 50 running
//!   transfers (10 of them with that peer, so they are interleaved with its lines). Median, p99
//!   and max over FRAMES (200) frames, each after one progress event, then FRAMES frames of an
//!   unchanged state.
//! - (b) start to first frame: the release binary (`--no-mdns --port 0`, a data dir that exists
//!   already, and the first start on an empty one) from spawn until the word "Peers" of the first
//!   frame reaches the terminal; STARTS (10) runs, measured two ways: in a pseudo-terminal read
//!   by this process (exact), and in tmux (capture-pane polled every 2 ms; each poll is a tmux
//!   client process, so the figure carries a few ms of polling on top).
//! - (c) key to screen: KEYS (50) characters typed into `#all`'s input line, 15–45 ms apart
//!   (random, so keys do not lock to the frame clock of the progress bars), the time from
//!   writing a key to the terminal until it is drawn: first with
//!   nothing running, then while 1 GiB files stream into the TUI's node. The TUI is the receiver
//!   (its offer dialog answered with `a`, so the sender is trusted and the next sends need no
//!   answer); a one-shot `lanyard send` pushes a 1 GiB sparse file from another data dir, again
//!   and again (the received copy deleted after each). Three ways: the TUI with its own node in a
//!   pseudo-terminal; the TUI attached to a `serve --accept-all` on its data dir (the node's work
//!   in another process) in a pseudo-terminal; the TUI with its own node in tmux. With
//!   BASE_BIN set, instead: that binary against this build, the TUI with its own node in a
//!   pseudo-terminal, ROUNDS (3) rounds of one run each, alternating, then both pooled and the
//!   ratio this / base (the same machine and load for both).
//!
//! Run: `cargo bench --bench tui` (release build). FRAMES, STARTS, KEYS and BIG_MIB override
//! the counts; PARTS picks the parts (default `abc`); LANYARD_BIN runs another binary in (b)
//! and (c). Without tmux the tmux figures are skipped with a note. To compare with another
//! build: `BASE_BIN=/path/to/old/lanyard PARTS=c cargo bench --bench tui`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use lanyard::identity::Identity;
use lanyard::node::api::{ChatEntry, Delivery, Direction, PeerId, PeerInfo, ROOM, Recipient, Reply, Request, TransferState, TransferView};
use lanyard::node::events::{Envelope, Event};
use lanyard::node::snapshot::{ConversationView, Me, Snapshot};
use lanyard::ui::app::{App, Cmd, Msg};
use lanyard::ui::view::{self, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The binary (b) and (c) run: this build's, or LANYARD_BIN (to compare another build).
static BIN: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| std::env::var("LANYARD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lanyard").to_string()));
/// The bound on anything waited for (a guard against a hang, never a verdict).
static PATIENCE: std::sync::LazyLock<Duration> = std::sync::LazyLock::new(|| Duration::from_secs(count("PATIENCE", 120) as u64));
const COLS: u16 = 120;
const ROWS: u16 = 40;
/// What the key-latency runs type: a character nothing else on the screen contains.
const KEY: &str = "ж";
/// What Ctrl-C asks while a transfer runs (the run stops its sender just before it quits).
const QUIT_ASKS: &str = "pause them and quit?";

fn count(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// "median X ms, p99 Y ms, max Z ms (n)" of some durations.
fn summary(times: &[Duration]) -> String {
    if times.is_empty() {
        return "no samples".into();
    }
    let mut t = times.to_vec();
    t.sort();
    let at = |p: f64| ms(t[((t.len() as f64 - 1.0) * p).round() as usize]);
    format!(
        "median {:.3} ms, p99 {:.3} ms, min {:.3} ms, max {:.3} ms (n={})",
        at(0.5),
        at(0.99),
        ms(t[0]),
        ms(t[t.len() - 1]),
        t.len()
    )
}

fn main() -> Result<()> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("lanyard TUI figures: release build, {cores} cores ({cpu}); binary {}", *BIN);
    let tmux = Command::new("tmux").arg("-V").output().map(|o| o.status.success()).unwrap_or(false);
    if !tmux {
        println!("note: tmux not found: the tmux figures are skipped (apt-get install tmux)");
    }
    let started = Instant::now();
    // PARTS=abc (the default) runs all three; e.g. PARTS=c only the key latency.
    let parts = std::env::var("PARTS").unwrap_or_else(|_| "abc".into());
    if parts.contains('a') {
        draw_frames()?;
    }
    if parts.contains('b') {
        start_to_first_frame(tmux)?;
    }
    if parts.contains('c') {
        key_to_screen(tmux)?;
    }
    println!("(all of it took {:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

// ---- (a) one frame of the view ----

fn new_id() -> Result<PeerId> {
    Ok(Identity::generate()?.id().clone())
}

fn transfer(i: usize, peer: &PeerInfo, now: u64) -> TransferView {
    let total = 700_000_000 + i as u64 * 10_000_000;
    let bytes = total / 100 * (i as u64 % 100);
    TransferView {
        transfer: format!("{:016x}", 0x1000 + i),
        peer: peer.id.clone(),
        nick: peer.nick.clone(),
        direction: if i.is_multiple_of(2) { Direction::Send } else { Direction::Receive },
        group: None,
        state: TransferState::Running,
        file: format!("lecture-{i:02} network programming.mp4"),
        file_bytes: bytes,
        resumed: 0,
        file_size: total,
        files_done: 0,
        files: 1,
        bytes,
        total,
        percent: (i % 100) as u8,
        rate: 80_000_000 + i as u64 * 1_000_000,
        eta_secs: Some(5 + i as u64),
        failed: 0,
        message: None,
        reason: None,
        saved_to: None,
        name: format!("lecture-{i:02} network programming.mp4"),
        via: None,
        saved_as: None,
        failures: Vec::new(),
        // Interleaved with the conversation's lines (which span the last 10,000 s).
        started_ms: now - 10_000_000 + i as u64 * 150_000,
        ended_ms: None,
    }
}

fn draw_frames() -> Result<()> {
    let frames = count("FRAMES", 200);
    let cwd = tempfile::tempdir()?;
    for i in 0..60 {
        std::fs::write(cwd.path().join(format!("handout-{i:02}.pdf")), vec![0u8; i * 1000])?;
    }
    std::fs::create_dir(cwd.path().join("td1"))?;
    let now = now_ms();
    let me = Me {
        id: new_id()?,
        fingerprint: "91da 58d8 297d efb5 b7f1 9401 3f4f 7e6b".into(),
        nick: "me".into(),
        host: "lab-00".into(),
        listen: Some("0.0.0.0:7717".into()),
        download_dir: "/home/me/Downloads/lanyard".into(),
        shares: Vec::new(),
        mdns: false,
    };
    let mut peers = Vec::new();
    for i in 0..100 {
        let id = new_id()?;
        peers.push(PeerInfo {
            short_id: id.short().to_string(),
            id,
            nick: format!("student{i:02}"),
            label: format!("student{i:02}"),
            host: format!("lab-{i:02}"),
            online: i % 4 != 3,
            addr: Some(format!("127.0.0.1:{}", 7000 + i)),
            fingerprint: String::new(),
            trusted: i % 10 == 0,
            last_seen: Some(now / 1000 - 60),
            discovered: i % 4 != 3,
            unread: (i % 7) as u32,
            transfers: 0,
        });
    }
    let snapshot = Snapshot {
        seq: 1,
        me: me.clone(),
        peers: peers.clone(),
        conversations: vec![ConversationView {
            conversation: ROOM.to_string(),
            last: None,
            unread: 0,
        }],
        // The 40 transfers with other peers; the selected peer's 10 come as events below.
        transfers: Vec::new(),
        offers: Vec::new(),
        localsend: Vec::new(),
        deposits: Vec::new(),
    };

    let mut app = App::new(cwd.path().to_path_buf(), false, false);
    app.update(Msg::Resize(COLS, ROWS));
    app.update(Msg::Snapshot(Box::new(snapshot)));
    let listing = lanyard::ui::files::read_local(cwd.path()).map_err(anyhow::Error::msg)?;
    app.update(Msg::Local {
        dir: cwd.path().to_path_buf(),
        result: Ok(listing),
    });
    // Down from #all: the first peer's conversation opens and asks for its history.
    let cmds = app.update(Msg::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE)));
    let selected = app.selected_peer().context("no peer selected after Down")?.clone();
    let tag = cmds
        .iter()
        .find_map(|c| match c {
            Cmd::Call {
                tag,
                request: Request::History { peer, .. },
            } if *peer == selected.id.to_string() => Some(*tag),
            _ => None,
        })
        .context("Down did not ask for the selected conversation's history")?;
    let lines = 10_000;
    let entries: Vec<ChatEntry> = (0..lines)
        .map(|i| {
            let outgoing = i % 3 == 0;
            let at = now - 10_000_000 + i as u64 * 1000;
            let text = match i % 5 {
                0 => format!("line {i}: ok"),
                1 => format!("line {i}: did you get the slides for the socket lab? the ones with the select() loop"),
                2 => format!(
                    "line {i}: {}",
                    "a long line that wraps over several rows of the chat pane ".repeat(3)
                ),
                3 => format!("line {i}: ✓ thanks"),
                _ => format!("line {i}: see you in room 204 at 14:00"),
            };
            ChatEntry {
                id: format!("{i:016x}"),
                conversation: selected.id.to_string(),
                from: if outgoing { me.id.clone() } else { selected.id.clone() },
                nick: if outgoing { me.nick.clone() } else { selected.nick.clone() },
                outgoing,
                room: false,
                sent_ms: at,
                received_ms: at,
                text,
                state: outgoing.then_some(Delivery::Delivered),
                recipients: if outgoing {
                    vec![Recipient {
                        peer: selected.id.clone(),
                        state: Delivery::Delivered,
                        reason: None,
                    }]
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    app.update(Msg::Reply {
        tag,
        reply: Reply::History { entries },
    });
    app.update(Msg::Reply { tag, reply: Reply::Done });
    let others: Vec<&PeerInfo> = peers.iter().filter(|p| p.id != selected.id).collect();
    let mut seq = 1;
    let mut live = Vec::new();
    for i in 0..50 {
        let peer = if i < 10 { &selected } else { others[i % others.len()] };
        let t = transfer(i, peer, now);
        seq += 1;
        app.update(Msg::Node(Envelope {
            seq,
            event: Event::TransferStarted(t.clone()),
        }));
        live.push(t);
    }
    let open = app.conversation(&selected.id.to_string()).map_or(0, |c| c.lines.len());
    let running = app.transfers.iter().filter(|t| t.state == TransferState::Running).count();
    ensure!(
        app.peers.len() == 100 && open == lines && running == 50,
        "state not as meant: {} peers, {open} lines, {running} running",
        app.peers.len()
    );

    let theme = Theme::colour();
    let mut terminal = Terminal::new(TestBackend::new(COLS, ROWS))?;
    for _ in 0..20 {
        terminal.draw(|f| view::draw(f, &app, &theme))?;
    }
    let mut after_progress = Vec::with_capacity(frames);
    for i in 0..frames {
        let mut t = live[i % live.len()].clone();
        t.bytes = (t.bytes + 3_000_000).min(t.total - 1);
        t.file_bytes = t.bytes;
        t.percent = (t.bytes * 100 / t.total) as u8;
        let n = live.len();
        live[i % n] = t.clone();
        seq += 1;
        app.update(Msg::Node(Envelope {
            seq,
            event: Event::Progress(t),
        }));
        let t0 = Instant::now();
        terminal.draw(|f| view::draw(f, &app, &theme))?;
        after_progress.push(t0.elapsed());
    }
    let mut unchanged = Vec::with_capacity(frames);
    for _ in 0..frames {
        let t0 = Instant::now();
        terminal.draw(|f| view::draw(f, &app, &theme))?;
        unchanged.push(t0.elapsed());
    }
    // The same on the #all room (its 0 lines here) for scale: what the 10,000 lines cost.
    app.update(Msg::Key(KeyEvent::new(KeyCode::Up, KeyModifiers::NONE)));
    let mut room = Vec::with_capacity(frames);
    for _ in 0..frames {
        let t0 = Instant::now();
        terminal.draw(|f| view::draw(f, &app, &theme))?;
        room.push(t0.elapsed());
    }
    println!("\n(a) one frame of view::draw into TestBackend {COLS}x{ROWS} (Terminal::draw, diff included), colour theme;");
    println!(
        "    App: 100 peers (75 online), {lines} lines in the open peer conversation, 50 running transfers (10 with that peer), 61 local entries"
    );
    println!("    after one progress event: {}", summary(&after_progress));
    println!("    state unchanged:          {}", summary(&unchanged));
    println!(
        "    #all selected instead (empty room; same peers and transfers): {}",
        summary(&room)
    );
    Ok(())
}

// ---- a pseudo-terminal that this process reads ----

struct Pty {
    master: File,
    child: Child,
    out: Arc<(Mutex<Vec<u8>>, Condvar)>,
}

/// A private HOME and XDG dirs under `home`, no LANYARD_* from our environment, no bell.
fn isolate(cmd: &mut Command, home: &Path) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LANYARD_") || k == "NO_COLOR" || k == "TMUX" {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("LANYARD_BELL", "off");
}

fn ensure_home(home: &Path) -> Result<()> {
    for d in [".config", ".local/share", ".local/state", ".cache", "run"] {
        std::fs::create_dir_all(home.join(d))?;
    }
    Ok(())
}

impl Pty {
    /// Start `bin args` on a new pseudo-terminal of COLS×ROWS.
    fn spawn(bin: &str, args: &[String], home: &Path, cwd: &Path) -> Result<(Pty, Instant)> {
        // SAFETY: plain libc calls on fds this function owns; the pre_exec closure only calls
        // async-signal-safe functions (setsid, ioctl).
        unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            ensure!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
            let master = File::from_raw_fd(m);
            ensure!(
                libc::grantpt(m) == 0 && libc::unlockpt(m) == 0,
                "grantpt/unlockpt: {}",
                std::io::Error::last_os_error()
            );
            let mut name = [0 as libc::c_char; 128];
            ensure!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()) == 0, "ptsname_r failed");
            let ws = libc::winsize {
                ws_row: ROWS,
                ws_col: COLS,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            libc::ioctl(m, libc::TIOCSWINSZ, &ws);
            let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            ensure!(s >= 0, "open the pty's slave: {}", std::io::Error::last_os_error());
            let slave = File::from_raw_fd(s);
            let mut cmd = Command::new(bin);
            cmd.args(args)
                .env("LANYARD_NO_LOCALSEND", "1")
                .current_dir(cwd)
                .env("TERM", "xterm-256color")
                .stdin(Stdio::from(slave.try_clone()?))
                .stdout(Stdio::from(slave.try_clone()?))
                .stderr(Stdio::from(slave));
            isolate(&mut cmd, home);
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
            let t0 = Instant::now();
            let child = cmd.spawn().context("cannot start lanyard")?;
            drop(cmd); // the parent's copies of the slave
            let out = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
            let (reader, sink) = (master.try_clone()?, out.clone());
            std::thread::spawn(move || {
                let mut reader = reader;
                let mut buf = [0u8; 65536];
                // Ends with EIO once the child and everything holding the slave are gone.
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.0.lock().unwrap().extend_from_slice(&buf[..n]);
                    sink.1.notify_all();
                }
            });
            Ok((Pty { master, child, out }, t0))
        }
    }

    fn len(&self) -> usize {
        self.out.0.lock().unwrap().len()
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.master.write_all(bytes)?;
        Ok(())
    }

    /// Wait until `needle` shows up in the output after byte `from`; when it was seen.
    fn wait(&self, from: usize, needle: &str) -> Option<Instant> {
        let needle = needle.as_bytes();
        let deadline = Instant::now() + *PATIENCE;
        let (lock, cv) = &*self.out;
        let mut out = lock.lock().unwrap();
        loop {
            if out.len() >= from + needle.len() && out[from..].windows(needle.len()).any(|w| w == needle) {
                return Some(Instant::now());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            out = cv.wait_timeout(out, left).unwrap().0;
        }
    }

    /// `needle` is in the output after byte `from`, now.
    fn has(&self, from: usize, needle: &str) -> bool {
        let out = self.out.0.lock().unwrap();
        out.len() >= from && out[from..].windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    /// Ctrl-C, and `y` if it asks first (a receive the stopped sender left is not over yet);
    /// then the exit status.
    fn quit(mut self) -> Result<std::process::ExitStatus> {
        let from = self.len();
        let _ = self.send(b"\x03");
        let deadline = Instant::now() + *PATIENCE;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                break;
            }
            if self.has(from, QUIT_ASKS) {
                let _ = self.send(b"y");
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        wait_exit(&mut self.child)
    }
}

/// A child killed if it is still running when dropped (an error path).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_exit(child: &mut Child) -> Result<std::process::ExitStatus> {
    let deadline = Instant::now() + *PATIENCE;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            bail!("lanyard did not exit within {:?}; killed", *PATIENCE);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- tmux, on a socket of its own ----

struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(dir: &Path) -> Result<Tmux> {
        let t = Tmux {
            socket: dir.join("tmux.sock"),
        };
        t.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "bench",
            "-x",
            &COLS.to_string(),
            "-y",
            &ROWS.to_string(),
            "sleep 600",
        ])?;
        t.run(&["set-option", "-t", "bench", "remain-on-exit", "on"])?;
        Ok(t)
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tmux")
            .env_remove("TMUX")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()?;
        ensure!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run `BIN args` in the pane (replacing what ran there); when the tmux client was started.
    fn respawn(&self, args: &[String], home: &Path, cwd: &Path) -> Result<Instant> {
        let q = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let h = home.display().to_string();
        let env = format!(
            "env -u NO_COLOR HOME={} XDG_CONFIG_HOME={} XDG_DATA_HOME={} XDG_STATE_HOME={} XDG_CACHE_HOME={} XDG_RUNTIME_DIR={} LANYARD_BELL=off",
            q(&h),
            q(&format!("{h}/.config")),
            q(&format!("{h}/.local/share")),
            q(&format!("{h}/.local/state")),
            q(&format!("{h}/.cache")),
            q(&format!("{h}/run"))
        );
        let line = format!(
            "cd {} && exec {env} {} {}",
            q(&cwd.display().to_string()),
            q(&BIN),
            args.iter().map(|a| q(a)).collect::<Vec<_>>().join(" ")
        );
        let t0 = Instant::now();
        self.run(&["respawn-pane", "-k", "-t", "bench", &line])?;
        Ok(t0)
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "bench"]).unwrap_or_default()
    }

    /// Poll the screen every 2 ms until `ok` holds; when it was seen.
    fn wait(&self, ok: impl Fn(&str) -> bool) -> Option<Instant> {
        let deadline = Instant::now() + *PATIENCE;
        loop {
            if ok(&self.screen()) {
                return Some(Instant::now());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn keys(&self, keys: &[&str]) -> Result<()> {
        let mut args = vec!["send-keys", "-t", "bench"];
        args.extend_from_slice(keys);
        self.run(&args).map(drop)
    }

    fn dead(&self) -> bool {
        self.run(&["display-message", "-p", "-t", "bench", "#{pane_dead}"])
            .is_ok_and(|s| s.trim() == "1")
    }

    /// Ctrl-C (and `y` if it asks first), and wait for the pane's process to end.
    fn quit(&self) -> Result<()> {
        self.keys(&["C-c"])?;
        let deadline = Instant::now() + *PATIENCE;
        let mut asked = false;
        while !self.dead() {
            ensure!(Instant::now() < deadline, "lanyard in tmux did not exit");
            if !asked && self.screen().contains(QUIT_ASKS) {
                self.keys(&["y"])?;
                asked = true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

// ---- (b) start to first frame ----

fn start_to_first_frame(tmux: bool) -> Result<()> {
    let starts = count("STARTS", 10);
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    ensure_home(&home)?;
    let args = |data: &str| -> Vec<String> {
        let d = dir.path().join(data);
        vec![
            "--no-mdns".into(),
            "--port".into(),
            "0".into(),
            "--data-dir".into(),
            d.display().to_string(),
            "--download-dir".into(),
            d.join("dl").display().to_string(),
        ]
    };
    let mut first = Vec::new();
    let mut warm = Vec::new();
    for i in 0..=starts {
        // Run 0 is the first start on an empty data dir (creates the key and the database).
        let (pty, t0) = Pty::spawn(&BIN, &args("pty"), &home, dir.path())?;
        let seen = pty.wait(0, "Peers").context("no first frame in the pty")?;
        let st = pty.quit()?;
        ensure!(st.success(), "lanyard exited {st}");
        if i == 0 { &mut first } else { &mut warm }.push(seen - t0);
    }
    println!("\n(b) start to first frame (release binary, --no-mdns --port 0, {COLS}x{ROWS}, no peers):");
    println!(
        "    pseudo-terminal read by the bench, first start on an empty data dir: {}",
        summary(&first)
    );
    println!(
        "    pseudo-terminal, data dir already there:                         {}",
        summary(&warm)
    );
    if !tmux {
        println!("    tmux: skipped (not installed)");
        return Ok(());
    }
    let t = Tmux::start(dir.path())?;
    let mut first = Vec::new();
    let mut warm = Vec::new();
    for i in 0..=starts {
        let t0 = t.respawn(&args("tmux"), &home, dir.path())?;
        let seen = t.wait(|s| s.contains("Peers")).context("no first frame in tmux")?;
        t.quit()?;
        if i == 0 { &mut first } else { &mut warm }.push(seen - t0);
    }
    println!(
        "    tmux (respawn-pane, then capture-pane every 2 ms), first start: {}",
        summary(&first)
    );
    println!(
        "    tmux, data dir already there:                                  {}",
        summary(&warm)
    );
    Ok(())
}

// ---- (c) key to screen while files stream in ----

/// Pushes BIG to the TUI's node again and again with one-shot `lanyard send`s from their own
/// data dir, deleting each received copy, until stopped.
struct Sender {
    stop: Arc<AtomicBool>,
    busy: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    busy_time: Arc<Mutex<Duration>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Sender {
    fn start(big: PathBuf, port: u16, data: PathBuf, home: PathBuf, received: PathBuf) -> Sender {
        let stop = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let busy_time = Arc::new(Mutex::new(Duration::ZERO));
        let (s, b, d, by, bt) = (stop.clone(), busy.clone(), done.clone(), bytes.clone(), busy_time.clone());
        let thread = std::thread::spawn(move || -> Result<()> {
            let size = std::fs::metadata(&big)?.len();
            while !s.load(Ordering::SeqCst) {
                let mut cmd = Command::new(&*BIN);
                cmd.args([
                    "send",
                    &format!("127.0.0.1:{port}"),
                    "--no-mdns",
                    "--port",
                    "0",
                    "--nick",
                    "bench-sender",
                    "--data-dir",
                ])
                .arg(&data)
                .arg("--")
                .arg(&big)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
                isolate(&mut cmd, &home);
                let t0 = Instant::now();
                let mut child = cmd.spawn()?;
                b.store(true, Ordering::SeqCst);
                let ok = loop {
                    if let Some(st) = child.try_wait()? {
                        break st.success();
                    }
                    if s.load(Ordering::SeqCst) {
                        let _ = child.kill();
                        let _ = child.wait();
                        break false;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                };
                b.store(false, Ordering::SeqCst);
                *bt.lock().unwrap() += t0.elapsed();
                if ok {
                    d.fetch_add(1, Ordering::SeqCst);
                    by.fetch_add(size, Ordering::SeqCst);
                }
                // Room for the next copy.
                for e in std::fs::read_dir(&received)?.flatten() {
                    if e.file_name() != ".lanyard-partial" {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            Ok(())
        });
        Sender {
            stop,
            busy,
            done,
            bytes,
            busy_time,
            thread: Some(thread),
        }
    }

    fn busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// Stop; (sends finished, bytes they moved, time spent sending).
    fn stop(mut self) -> Result<(u64, u64, Duration)> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().map_err(|_| anyhow::anyhow!("the sender thread panicked"))??;
        }
        Ok((
            self.done.load(Ordering::SeqCst),
            self.bytes.load(Ordering::SeqCst),
            *self.busy_time.lock().unwrap(),
        ))
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A port free on 127.0.0.1 right now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Bytes in the partial files of the receive under way.
fn partial_bytes(received: &Path) -> u64 {
    std::fs::read_dir(received.join(".lanyard-partial"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The partial file of a running receive has bytes in it.
fn receiving(received: &Path) -> bool {
    std::fs::read_dir(received.join(".lanyard-partial"))
        .map(|rd| rd.flatten().any(|e| e.metadata().is_ok_and(|m| m.is_file() && m.len() > 0)))
        .unwrap_or(false)
}

fn wait_until(what: &str, ok: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + *PATIENCE;
    while !ok() {
        ensure!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

#[derive(Default)]
struct KeyRun {
    idle: Vec<Duration>,
    during: Vec<Duration>,
    between: Vec<Duration>,
    sends: (u64, u64, Duration),
}

impl KeyRun {
    /// Pool another run's figures into these.
    fn add(&mut self, other: KeyRun) {
        self.idle.extend(other.idle);
        self.during.extend(other.during);
        self.between.extend(other.between);
        self.sends = (
            self.sends.0 + other.sends.0,
            self.sends.1 + other.sends.1,
            self.sends.2 + other.sends.2,
        );
    }
}

fn key_to_screen(tmux: bool) -> Result<()> {
    let keys = count("KEYS", 50);
    let big_mib = count("BIG_MIB", 1024) as u64;
    let dir = tempfile::tempdir()?;
    let big = dir.path().join("big.bin");
    File::create(&big)?.set_len(big_mib << 20)?; // sparse
    println!(
        "\n(c) key to screen: {keys} keys typed into #all's input 15-45 ms apart, first with nothing running, then while {big_mib} MiB sparse \
         files stream into the TUI's own node (one-shot `lanyard send` from another data dir on 127.0.0.1, again and again; each received \
         copy deleted):"
    );
    if let Ok(base) = std::env::var("BASE_BIN") {
        return compare(&base, dir.path(), &big, keys);
    }
    let run = key_run(&BIN, dir.path(), &big, keys, None, false)?;
    print_keys("the TUI runs its own node; pseudo-terminal read by the bench", &run);
    let run = key_run(&BIN, dir.path(), &big, keys, None, true)?;
    print_keys(
        "the TUI attached to a `serve --accept-all` on its data dir (the node's work in another process); pseudo-terminal",
        &run,
    );
    if tmux {
        let run = key_run(&BIN, dir.path(), &big, keys, Some(Tmux::start(dir.path())?), false)?;
        print_keys("the TUI runs its own node; tmux (send-keys -l, then capture-pane every 2 ms)", &run);
    } else {
        println!("    tmux: skipped (not installed)");
    }
    Ok(())
}

/// BASE_BIN against this build, the TUI with its own node in a pseudo-terminal: ROUNDS (3)
/// rounds, each running the base and then this build (the sender is this build's both times),
/// so load that comes and goes on the machine falls on both. Prints each side pooled over the
/// rounds and the ratio this / base.
fn compare(base: &str, dir: &Path, big: &Path, keys: usize) -> Result<()> {
    let rounds = count("ROUNDS", 3);
    println!(
        "    this build ({}) against BASE_BIN ({base}), {rounds} rounds of one run each, own node, pseudo-terminal",
        *BIN
    );
    let (mut b, mut t) = (KeyRun::default(), KeyRun::default());
    for round in 0..rounds {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load = load.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        let rb = key_run(base, dir, big, keys, None, false)?;
        let rt = key_run(&BIN, dir, big, keys, None, false)?;
        println!(
            "    round {}: load average {load}; while a file streamed in: base {}, this {}",
            round + 1,
            brief(&rb.during),
            brief(&rt.during)
        );
        b.add(rb);
        t.add(rt);
    }
    print_keys("base (BASE_BIN), all rounds", &b);
    print_keys("this build, all rounds", &t);
    let ratio = |f: fn(&[Duration]) -> Duration, a: &[Duration], z: &[Duration]| ms(f(z)) / ms(f(a)).max(1e-9);
    println!(
        "    ratio this / base: while a file streamed in, median {:.2}, p99 {:.2}; idle median {:.2}",
        ratio(median, &b.during, &t.during),
        ratio(p99, &b.during, &t.during),
        ratio(median, &b.idle, &t.idle)
    );
    Ok(())
}

fn at(times: &[Duration], p: f64) -> Duration {
    let mut t = times.to_vec();
    t.sort();
    t.get(((t.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn median(times: &[Duration]) -> Duration {
    at(times, 0.5)
}

fn p99(times: &[Duration]) -> Duration {
    at(times, 0.99)
}

/// "median X / p99 Y ms (n)".
fn brief(times: &[Duration]) -> String {
    format!("median {:.1} / p99 {:.1} ms (n={})", ms(median(times)), ms(p99(times)), times.len())
}

fn print_keys(how: &str, run: &KeyRun) {
    let (sends, bytes, busy) = run.sends;
    println!("    {how}:");
    println!("      idle (no transfer):      {}", summary(&run.idle));
    println!("      while a file streamed in: {}", summary(&run.during));
    if !run.between.is_empty() {
        println!("      between two sends:        {}", summary(&run.between));
    }
    println!(
        "      meanwhile {:.2} GiB arrived ({sends} sends finished, the last one cut off) in {:.1} s of sending = {:.0} MB/s \
         (each one-shot's start and offer included)",
        bytes as f64 / (1u64 << 30) as f64,
        busy.as_secs_f64(),
        bytes as f64 / busy.as_secs_f64().max(1e-9) / 1e6
    );
}

enum Face {
    Pty(Pty),
    Tmux(Tmux),
}

impl Face {
    /// Wait until `text` shows (pty: in the output after byte `from`); when it did.
    fn seen(&self, from: usize, text: &str) -> Option<Instant> {
        match self {
            Face::Pty(p) => p.wait(from, text),
            Face::Tmux(t) => t.wait(|s| s.contains(text)),
        }
    }

    /// A key: the bytes a terminal sends for it, and its tmux name.
    fn press(&mut self, bytes: &[u8], tmux: &str) -> Result<()> {
        match self {
            Face::Pty(p) => p.send(bytes),
            Face::Tmux(t) => t.keys(&[tmux]),
        }
    }

    /// Type KEY; how long until it is drawn. `k` keys were typed since the input was empty.
    fn type_key(&mut self, k: usize) -> Result<Duration> {
        let (t0, at) = match self {
            Face::Pty(p) => {
                let from = p.len();
                let t0 = Instant::now();
                p.send(KEY.as_bytes())?;
                (t0, p.wait(from, KEY))
            }
            Face::Tmux(t) => {
                let t0 = Instant::now();
                t.keys(&["-l", KEY])?;
                (t0, t.wait(|s| s.matches(KEY).count() > k))
            }
        };
        match at {
            Some(at) => Ok(at - t0),
            None => bail!("key {k} never showed; the screen's last bytes: {}", self.tail()),
        }
    }

    /// What the terminal showed last, for an error message.
    fn tail(&self) -> String {
        match self {
            Face::Pty(p) => {
                let out = p.out.0.lock().unwrap();
                String::from_utf8_lossy(&out[out.len().saturating_sub(3000)..]).into_owned()
            }
            Face::Tmux(t) => t.screen(),
        }
    }

    /// Ctrl-W: delete the typed word, and wait until it is gone.
    fn clear_input(&mut self) -> Result<()> {
        self.press(b"\x17", "C-w")?;
        match self {
            Face::Pty(_) => std::thread::sleep(Duration::from_millis(300)),
            Face::Tmux(t) => {
                t.wait(|s| !s.contains(KEY)).context("Ctrl-W did not clear the input")?;
            }
        }
        Ok(())
    }
}

fn pause() {
    std::thread::sleep(Duration::from_millis(rand::random_range(15..=45)));
}

/// `attached`: a `serve --accept-all` runs on the TUI's data dir and the TUI attaches to it.
/// `bin` is the TUI (and serve) that runs; the sender is always this build's BIN.
fn key_run(bin: &str, dir: &Path, big: &Path, keys: usize, tmux: Option<Tmux>, attached: bool) -> Result<KeyRun> {
    let kind = match (&tmux, attached) {
        (Some(_), _) => "tmux",
        (None, true) => "attached",
        (None, false) => "pty",
    };
    // Fresh dirs for every run: a data dir that trusts the sender already would not ask.
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let tag = format!("{kind}-{}", RUNS.fetch_add(1, Ordering::SeqCst));
    let home = dir.join(format!("home-{tag}"));
    ensure_home(&home)?;
    let tui_data = dir.join(format!("tui-{tag}"));
    let received = tui_data.join("dl");
    std::fs::create_dir_all(&received)?;
    let port = free_port()?;
    let args: Vec<String> = vec![
        "--no-mdns".into(),
        "--port".into(),
        port.to_string(),
        "--nick".into(),
        "bench-tui".into(),
        "--data-dir".into(),
        tui_data.display().to_string(),
        "--download-dir".into(),
        received.display().to_string(),
    ];
    let serve = if attached {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .env("LANYARD_NO_LOCALSEND", "1")
            .arg("--accept-all")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        isolate(&mut cmd, &home);
        let child = cmd.spawn()?;
        wait_until("serve's control socket", || tui_data.join("control.sock").exists())?;
        Some(KillOnDrop(child))
    } else {
        None
    };
    let mut face = match tmux {
        None => Face::Pty(Pty::spawn(bin, &args, &home, dir)?.0),
        Some(t) => {
            t.respawn(&args, &home, dir)?;
            Face::Tmux(t)
        }
    };
    face.seen(0, "Peers").context("the TUI did not start")?;
    // Enter on #all (the cursor's row): typing into the room's input line.
    face.press(b"\r", "Enter")?;
    std::thread::sleep(Duration::from_millis(300)); // let the Enter land before timing keys
    let mut idle = Vec::new();
    for k in 0..keys {
        pause();
        idle.push(face.type_key(k)?);
    }
    face.clear_input()?;

    let mark = match &face {
        Face::Pty(p) => p.len(),
        Face::Tmux(_) => 0,
    };
    let sender = Sender::start(
        big.to_path_buf(),
        port,
        dir.join(format!("sender-{tag}")),
        home.clone(),
        received.clone(),
    );
    if attached {
        // serve --accept-all answers.
        wait_until("the first receive to start", || receiving(&received))?;
    } else {
        // The first offer asks, once we stop typing (an offer never takes the keyboard from
        // someone typing); `a` accepts it and trusts the sender, so the next sends just run.
        face.seen(mark, "offers").context("no word of the offer")?;
        face.press(b"\x1b", "Escape")?;
        face.seen(mark, "Incoming files").context("no offer dialog")?;
        face.press(b"a", "a")?;
        wait_until("the first receive to start", || receiving(&received))?;
        // Esc went back to Peers, on #all: Enter opens it and types again, the draft kept.
        face.press(b"\r", "Enter")?;
        std::thread::sleep(Duration::from_millis(300));
    }
    let (mut during, mut between) = (Vec::new(), Vec::new());
    for k in 0..keys {
        pause();
        let busy = sender.busy() && receiving(&received);
        let took = face.type_key(k)?;
        if busy { &mut during } else { &mut between }.push(took);
    }
    let cut_off = partial_bytes(&received);
    let (finished, bytes, busy) = sender.stop()?;
    let sends = (finished, bytes + cut_off, busy);
    match face {
        Face::Pty(p) => {
            let st = p.quit()?;
            ensure!(st.success(), "the TUI exited {st}");
        }
        Face::Tmux(t) => t.quit()?,
    }
    if let Some(mut serve) = serve {
        // SIGTERM: serve's own way out.
        // SAFETY: a plain kill(2) of our own child's pid.
        unsafe { libc::kill(serve.0.id() as libc::pid_t, libc::SIGTERM) };
        wait_exit(&mut serve.0)?;
    }
    Ok(KeyRun {
        idle,
        during,
        between,
        sends,
    })
}
