//! Setting lanyard up on a lab machine, through the binary: the machine's config file under the
//! user's (`lanyard config` says where each setting came from), a second user's node on a taken
//! port, shell completions and man pages. mDNS is always off here.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use common::PATIENCE;

/// The binary with a private HOME and the machine-wide file given (never /etc's).
fn lanyard(home: &Path, system_config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lanyard"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("LANYARD_SYSTEM_CONFIG", system_config)
        .env("LANYARD_NO_MDNS", "1")
        .env("LANYARD_NO_LOCALSEND", "1");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status, text(&out.stderr));
    text(&out.stdout)
}

/// The `lanyard config` line of `key`.
fn line<'a>(shown: &'a str, key: &str) -> &'a str {
    shown
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no {key} line in:\n{shown}"))
}

#[test]
fn config_shows_the_machines_settings_under_the_users_and_the_environment() {
    let home = tempfile::tempdir().unwrap();
    let system = home.path().join("system.toml");
    std::fs::write(
        &system,
        "peer = [\"10.0.1.5:7717\"]\nshare = [\"~/course\"]\nrelay = false\nport = 7800\n",
    )
    .unwrap();
    std::fs::create_dir_all(home.path().join("config/lanyard")).unwrap();
    std::fs::write(home.path().join("config/lanyard/config.toml"), "relay = true\n").unwrap();

    let shown = ok(lanyard(home.path(), &system)
        .env("LANYARD_PORT", "7900")
        .args(["config", "--download-dir", "/tmp/in"])
        .output()
        .unwrap());
    assert!(
        line(&shown, "peer").contains("10.0.1.5:7717") && line(&shown, "peer").ends_with("[system file]"),
        "{shown}"
    );
    let course = home.path().join("course");
    assert!(line(&shown, "share").contains(course.to_str().unwrap()), "{shown}");
    assert!(
        line(&shown, "relay").contains("true") && line(&shown, "relay").ends_with("[user file]"),
        "{shown}"
    );
    assert!(
        line(&shown, "port").contains("7900") && line(&shown, "port").ends_with("[environment LANYARD_PORT]"),
        "{shown}"
    );
    assert!(line(&shown, "download-dir").ends_with("[flag --download-dir]"), "{shown}");
    assert!(line(&shown, "mdns").ends_with("[environment LANYARD_NO_MDNS]"), "{shown}");
    assert!(shown.contains(&format!("{}  (read)", system.display())), "{shown}");

    // What the machine may not set is refused in one line, naming the file.
    std::fs::write(&system, "nick = \"lab\"\n").unwrap();
    let out = lanyard(home.path(), &system).arg("config").output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("each user's own") && err.contains("system.toml") && err.lines().count() == 1,
        "{err}"
    );
}

/// `serve --json` on `data_dir`, its events read on a thread.
struct Serve {
    child: Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Serve {
    fn start(cmd: &mut Command) -> Serve {
        let mut child = cmd
            .args(["serve", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str(&line).expect("JSON")).is_err() {
                    break;
                }
            }
        });
        Serve { child, lines }
    }

    fn expect(&self, event: &str) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        while let Ok(v) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if v["event"] == event {
                return v;
            }
        }
        panic!("no {event} event");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port_of(addr: &serde_json::Value) -> u16 {
    addr.as_str()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap()
}

#[test]
fn a_second_users_node_takes_the_next_free_port_unless_one_was_asked_for() {
    let home = tempfile::tempdir().unwrap();
    // The machine's port, free a moment ago (the default, 7717, may be in use by anything).
    let port = std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let system = home.path().join("system.toml");
    std::fs::write(&system, format!("port = {port}\n")).unwrap();
    let node = |user: &str| {
        let mut cmd = lanyard(home.path(), &system);
        cmd.args(["--data-dir", home.path().join(user).to_str().unwrap()]);
        cmd
    };
    let ada = Serve::start(&mut node("ada"));
    assert_eq!(port_of(&ada.expect("listening")["addr"]), port);
    let bob = Serve::start(&mut node("bob"));
    let bob_port = port_of(&bob.expect("listening")["addr"]);
    assert!(bob_port > port, "bob listens on {bob_port}, after {port}");
    let said = bob.expect("warning");
    let message = said["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("port {port} is taken")) && message.contains(&bob_port.to_string()),
        "{message}"
    );
    // `id` asks the running node where it listens.
    let id: serde_json::Value = serde_json::from_str(&ok(node("bob").args(["id", "--json"]).output().unwrap())).unwrap();
    assert_eq!(port_of(&id["listen"]), bob_port, "{id}");

    // Asked for by flag, a taken port is an error.
    let out = node("cyd").args(["serve", "--port", &port.to_string()]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("cannot listen on port {port}")),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_definition() {
    let home = tempfile::tempdir().unwrap();
    let none = home.path().join("absent.toml");
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef lanyard"),
        ("fish", "complete -c lanyard"),
    ] {
        let script = ok(lanyard(home.path(), &none).args(["completions", shell]).output().unwrap());
        assert!(script.contains(marker) && script.contains("doctor"), "{shell}:\n{script}");
    }
    let dir = home.path().join("man");
    ok(lanyard(home.path(), &none)
        .args(["man-pages", dir.to_str().unwrap()])
        .output()
        .unwrap());
    let page = std::fs::read_to_string(dir.join("lanyard.1")).unwrap();
    assert!(page.contains(".TH lanyard") && page.contains("doctor"), "{page}");
    assert!(dir.join("lanyard-send.1").exists());
}
