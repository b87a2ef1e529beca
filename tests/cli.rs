//! The binary as a user runs it: `id`, `serve --json`, `peers` through a running node's control
//! socket, and errors as one clear line with a non-zero exit. mDNS is always off here.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use common::PATIENCE;

fn lanyard(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lanyard"));
    // A private HOME/XDG: never read or write the real user's config and data.
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("LANYARD_SYSTEM_CONFIG", "/dev/null")
        .env("LANYARD_NO_MDNS", "1")
        .env("LANYARD_NO_LOCALSEND", "1");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("lanyard runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Serve {
    child: Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Serve {
    fn start(home: &Path, args: &[&str]) -> Serve {
        let mut child = lanyard(home)
            .args(["serve", "--json", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&line).expect("every line is JSON");
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Serve { child, lines }
    }

    fn expect(&self, event: &str) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        while let Ok(v) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            assert!(v["ts_ms"].is_u64(), "{v}");
            if v["event"] == event {
                return v;
            }
        }
        panic!("no {event} event");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SIGTERM, as a service manager would: the node says goodbye and exits 0. (Sent
        // directly: were it not sent, the wait below would never end.)
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill has no memory-safety preconditions; the child is ours and not yet reaped.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[test]
fn id_is_created_once_and_kept() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("d");
    let d = dir.to_str().unwrap();
    let first = run(lanyard(home.path()).args(["id", "--json", "--data-dir", d, "--nick", "ada"]));
    assert!(first.status.success(), "{}", stderr(&first));
    let v: serde_json::Value = serde_json::from_str(&stdout(&first)).unwrap();
    assert_eq!(v["nick"], "ada");
    assert_eq!(v["id"].as_str().unwrap().len(), 16);
    let again = run(lanyard(home.path()).args(["--data-dir", d, "id", "--json", "--nick", "ada"]));
    assert_eq!(stdout(&first), stdout(&again), "same id after a restart");
    let human = stdout(&run(lanyard(home.path()).args(["id", "--data-dir", d])));
    assert!(
        human.contains("fingerprint") && human.contains(v["id"].as_str().unwrap()),
        "{human}"
    );
}

#[test]
fn a_world_readable_key_is_one_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("d");
    let d = dir.to_str().unwrap();
    assert!(run(lanyard(home.path()).args(["id", "--data-dir", d])).status.success());
    std::fs::set_permissions(dir.join("identity.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(lanyard(home.path()).args(["id", "--data-dir", d]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn serve_json_and_peers_through_the_running_node() {
    let home = tempfile::tempdir().unwrap();
    let (da, db) = (home.path().join("a"), home.path().join("b"));
    let a = Serve::start(home.path(), &["--data-dir", da.to_str().unwrap(), "--nick", "ada"]);
    let listening = a.expect("listening");
    let port = listening["addr"].as_str().unwrap().rsplit(':').next().unwrap().to_string();
    let b = Serve::start(
        home.path(),
        &[
            "--data-dir",
            db.to_str().unwrap(),
            "--nick",
            "bob",
            "--peer",
            &format!("127.0.0.1:{port}"),
        ],
    );
    let up = a.expect("peer_up");
    assert_eq!(up["nick"], "bob");

    // `peers` on a's data dir while a runs: it must go through a's control socket (starting a
    // node of its own would fail on the lock) and list bob, online.
    let o = run(lanyard(home.path()).args(["peers", "--json", "--data-dir", da.to_str().unwrap()]));
    assert!(o.status.success(), "{}", stderr(&o));
    let peers: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(peers[0]["nick"], "bob", "{peers}");
    assert_eq!(peers[0]["online"], true);
    let table = stdout(&run(lanyard(home.path()).args(["peers", "--data-dir", da.to_str().unwrap()])));
    assert!(
        table.starts_with("NICK") && table.contains("bob") && table.contains("online"),
        "{table}"
    );

    drop(b);
    let down = a.expect("peer_down");
    assert_eq!(down["reason"], "left");
}

#[test]
fn peers_without_a_running_node_uses_manual_peers() {
    let home = tempfile::tempdir().unwrap();
    let da = home.path().join("a");
    let a = Serve::start(home.path(), &["--data-dir", da.to_str().unwrap(), "--nick", "ada"]);
    let addr = a.expect("listening")["addr"].as_str().unwrap().replace("0.0.0.0", "127.0.0.1");
    // `peers --wait SECS` lists what it found in that time, so a loaded machine may need longer
    // than the first try gives it: each try waits twice as long, until ada is there, online.
    let mut wait = 1;
    let started = Instant::now();
    loop {
        let o = run(lanyard(home.path())
            .args(["--peer", &addr, "peers", "--json", "--nick", "probe", "--data-dir"])
            .arg(home.path().join("p"))
            .args(["--wait", &wait.to_string()]));
        assert!(o.status.success(), "{}", stderr(&o));
        let peers: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        if peers[0]["nick"] == "ada" && peers[0]["online"] == true {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "ada never listed online: {peers}");
        wait *= 2;
    }
}

#[test]
fn usage_errors_are_clear() {
    let home = tempfile::tempdir().unwrap();
    let o = run(lanyard(home.path())
        .args(["peers", "--wait", "-3", "--data-dir"])
        .arg(home.path().join("x")));
    assert!(!o.status.success());
    let o = run(lanyard(home.path())
        .args(["--nick", "bad\u{1b}[2J", "id", "--data-dir"])
        .arg(home.path().join("x")));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("control characters"), "{}", stderr(&o));
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = run(lanyard(home.path())
        .args(["serve", "--port", &port, "--data-dir"])
        .arg(home.path().join("y")));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&format!("cannot listen on port {port}")), "{err}");
}

#[test]
fn send_without_the_separator_says_how_to_write_it() {
    let home = tempfile::tempdir().unwrap();
    let o = run(lanyard(home.path()).args(["send", "ada", "file.pdf"]));
    assert_eq!(o.status.code(), Some(2), "a usage error");
    assert_eq!(stderr(&o), "error: put -- before the paths: lanyard send PEER... -- PATH...\n");
    assert!(stdout(&o).is_empty());
}

#[test]
fn two_peers_with_one_nick_are_one_clear_error_and_each_has_a_name_to_type() {
    let home = tempfile::tempdir().unwrap();
    let da = home.path().join("a");
    let a = Serve::start(home.path(), &["--data-dir", da.to_str().unwrap(), "--nick", "ada"]);
    let port = a.expect("listening")["addr"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let ada = format!("127.0.0.1:{port}");
    let bobs: Vec<Serve> = ["b1", "b2"]
        .iter()
        .map(|d| {
            Serve::start(
                home.path(),
                &["--data-dir", home.path().join(d).to_str().unwrap(), "--nick", "bob", "--peer", &ada],
            )
        })
        .collect();
    let ids: Vec<String> = bobs
        .iter()
        .map(|b| b.expect("listening")["id"].as_str().unwrap().to_string())
        .collect();
    for _ in &bobs {
        a.expect("peer_up");
    }
    let at_a = |args: &[&str]| run(lanyard(home.path()).args(args).args(["--data-dir", da.to_str().unwrap()]));

    let o = at_a(&["say", "bob", "hello?"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("matches 2 peers"), "{err}");
    for id in &ids {
        assert!(err.contains(&id[..8]), "{err}");
    }

    // `peers` shows each with the form that names it (both run on this host: the id tells).
    let table = stdout(&at_a(&["peers"]));
    let o = at_a(&["peers", "--json"]);
    let peers: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for id in &ids {
        let label = format!("bob#{}", &id[..8]);
        assert!(table.contains(&label), "{table}");
        assert!(peers.as_array().unwrap().iter().any(|p| p["label"] == label.as_str()), "{peers}");
    }
    let o = at_a(&["say", &format!("bob#{}", &ids[1][..8]), "hello, second bob"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = bobs[1].expect("chat_received");
    assert_eq!(line["text"], "hello, second bob");
}

/// `lanyard peers | head`: a reader that leaves early ends the command quietly, never with a
/// panic and a backtrace.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let home = tempfile::tempdir().unwrap();
    let d = home.path().join("d");
    let d = d.to_str().unwrap();
    for args in [vec!["id", "--data-dir", d], vec!["peers", "--wait", "0", "--data-dir", d]] {
        ends_quietly_with_its_reader_gone(home.path(), &args);
    }
}

/// Run `lanyard ARGS` with its stdout closed before anything is written: it must exit 0 and say
/// nothing.
fn ends_quietly_with_its_reader_gone(home: &Path, args: &[&str]) {
    let mut child = lanyard(home)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lanyard runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{args:?}: {:?} {}", out.status, stderr(&out));
    assert_eq!(stderr(&out), "", "{args:?}");
}

/// `lanyard offers | head`, `history | head`, `peers --json | head -c 10`: every command that
/// lists something, through a running node, ends quietly when its reader is gone.
#[test]
fn every_listing_command_ends_quietly_on_a_closed_pipe() {
    let home = tempfile::tempdir().unwrap();
    let (da, db) = (home.path().join("a"), home.path().join("b"));
    let da = da.to_str().unwrap();
    let a = Serve::start(home.path(), &["--data-dir", da, "--nick", "ada"]);
    let listening = a.expect("listening");
    let port = listening["addr"].as_str().unwrap().rsplit(':').next().unwrap().to_string();
    let _b = Serve::start(
        home.path(),
        &[
            "--data-dir",
            db.to_str().unwrap(),
            "--nick",
            "bob",
            "--peer",
            &format!("127.0.0.1:{port}"),
        ],
    );
    a.expect("peer_up");
    // Something to list in every listing.
    for to in ["#all", "bob"] {
        let o = run(lanyard(home.path()).args(["say", to, "hello", "--data-dir", da]));
        assert!(o.status.success(), "{}", stderr(&o));
    }
    for args in [
        vec!["offers"],
        vec!["history", "#all"],
        vec!["history", "#all", "--json"],
        vec!["history", "bob"],
        vec!["peers", "--json"],
        vec!["peers"],
        vec!["transfers"],
        vec!["id", "--json"],
    ] {
        // The listing is there to be written when the pipe is open.
        let args = [args.as_slice(), &["--data-dir", da]].concat();
        let listed = run(lanyard(home.path()).args(&args));
        assert!(
            listed.status.success() && !listed.stdout.is_empty(),
            "{args:?}: {}",
            stderr(&listed)
        );
        ends_quietly_with_its_reader_gone(home.path(), &args);
    }
}

/// Everything in the data dir is the owner's alone: files 0600, the dir 0700, from the first
/// run (whatever the umask) and again after someone loosened them.
#[test]
fn the_data_dir_and_every_file_in_it_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let d = home.path().join("d");
    let modes = || -> Vec<(String, u32)> {
        let mut out = vec![("(dir)".to_string(), std::fs::metadata(&d).unwrap().permissions().mode() & 0o777)];
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            out.push((
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().permissions().mode() & 0o777,
            ));
        }
        out
    };
    let private = |m: &[(String, u32)]| m.iter().all(|(name, mode)| *mode == if name == "(dir)" { 0o700 } else { 0o600 });
    // A node runs (the lock, the database and its journal made) and says something (written).
    let serve = Serve::start(home.path(), &["--data-dir", d.to_str().unwrap()]);
    serve.expect("listening");
    let o = run(lanyard(home.path()).args(["peers", "--data-dir", d.to_str().unwrap()]));
    assert!(o.status.success(), "{}", stderr(&o));
    let running = modes();
    drop(serve);
    let first = modes();
    assert!(
        first.iter().any(|(n, _)| n == "lanyard.sqlite3") && first.iter().any(|(n, _)| n == "lock"),
        "{first:?}"
    );
    assert!(private(&running) && private(&first), "running {running:?}, after {first:?}");
    // Loosened by hand (all but the key, which is refused rather than mended).
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, _) in &first[1..] {
        if name != "identity.key" {
            std::fs::set_permissions(d.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let o = run(lanyard(home.path()).args(["peers", "--wait", "0", "--data-dir", d.to_str().unwrap()]));
    assert!(o.status.success(), "{}", stderr(&o));
    let again = modes();
    assert!(private(&again), "{again:?}");
}
