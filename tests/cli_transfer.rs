//! The transfer commands as a script uses them: real processes of the binary on 127.0.0.1,
//! `--no-mdns`, exit codes and output.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_lanyard");

struct Serve {
    child: Child,
    addr: String,
    data: PathBuf,
    events: BufReader<ChildStdout>,
}

impl Serve {
    /// The next `serve --json` line with this `event` (the test's deadline is the harness's).
    fn next_event(&mut self, event: &str) -> serde_json::Value {
        loop {
            let mut line = String::new();
            assert!(self.events.read_line(&mut line).unwrap() > 0, "serve ended before {event}");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["v"], 1, "{line}");
            if v["event"] == event {
                return v;
            }
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, name: &str, extra: &[&str]) -> Serve {
    let mut child = Command::new(BIN)
        .env("LANYARD_NO_LOCALSEND", "1")
        .args(["serve", "--json", "--no-mdns", "--port", "0", "--nick", name])
        .arg("--data-dir")
        .arg(dir.join(name).join("data"))
        .arg("--download-dir")
        .arg(dir.join(name).join("downloads"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut events = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    events.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "listening", "{line}");
    let port = v["addr"].as_str().unwrap().rsplit(':').next().unwrap().to_string();
    Serve {
        child,
        addr: format!("127.0.0.1:{port}"),
        data: dir.join(name).join("data"),
        events,
    }
}

/// A one-shot command against a running serve's data dir.
fn at(serve: &Serve, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .env("LANYARD_NO_LOCALSEND", "1")
        .arg("--no-mdns")
        .arg("--data-dir")
        .arg(&serve.data)
        .args(args)
        .output()
        .unwrap()
}

fn lanyard_spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(BIN)
        .env("LANYARD_NO_LOCALSEND", "1")
        .args(["--no-mdns", "--nick", "cli"])
        .arg("--data-dir")
        .arg(dir.join("cli-data"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn lanyard(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .env("LANYARD_NO_LOCALSEND", "1")
        .args(["--no-mdns", "--nick", "cli"])
        .arg("--data-dir")
        .arg(dir.join("cli-data"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn send_to_several_recipients_reports_each_and_exits_by_the_worst() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("report.pdf");
    std::fs::write(&src, b"%PDF").unwrap();
    let yes1 = serve(dir.path(), "yes1", &["--accept-all"]);
    let yes2 = serve(dir.path(), "yes2", &["--accept-all"]);
    let out = lanyard(dir.path(), &["send", &yes1.addr, &yes2.addr, "--", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in ["yes1", "yes2"] {
        assert_eq!(std::fs::read(dir.path().join(name).join("downloads/report.pdf")).unwrap(), b"%PDF");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().filter(|l| l.contains("1 file, 4 B verified")).count(), 2, "{stdout}");

    // A plain serve keeps the offer waiting; someone on that machine rejects it.
    let mut no = serve(dir.path(), "no", &[]);
    let send = lanyard_spawn(dir.path(), &["send", &yes1.addr, &no.addr, "--", src.to_str().unwrap()]);
    let offer = no.next_event("offer");
    assert_eq!(offer["files"], 1);
    let id = offer["transfer"].as_str().unwrap().to_string();
    assert_eq!(offer["accept"], format!("lanyard accept {id}"));
    let out = at(&no, &["reject", &id[..6]]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rejected offer"));
    let out = send.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("{}: not delivered: rejected", no.addr)), "{stdout}");
    // yes1 has a report.pdf from the first send: the sender is told the name it got instead.
    assert!(
        stdout.contains(&format!("{}: 1 file, 4 B verified → saved as \"report (1).pdf\"", yes1.addr)),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 of 2 recipients"), "{stderr}");
    assert!(!dir.path().join("no/downloads/report.pdf").exists());
}

#[test]
fn ls_and_get_from_a_share() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("docs");
    std::fs::create_dir_all(share.join("sub")).unwrap();
    std::fs::write(share.join("sub/a.txt"), b"aaa").unwrap();
    let sharer = serve(dir.path(), "sharer", &["--share", share.to_str().unwrap()]);
    let out = lanyard(dir.path(), &["ls", &sharer.addr, "docs/sub", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "a.txt");
    assert_eq!(v[0]["size"], 3);

    let to = dir.path().join("got");
    let out = lanyard(dir.path(), &["get", &sharer.addr, "docs/sub", "--to", to.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(to.join("sub/a.txt")).unwrap(), b"aaa");

    let out = lanyard(
        dir.path(),
        &["get", &sharer.addr, "docs/../../etc/passwd", "--to", to.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not allowed") && stderr.lines().count() == 1, "{stderr}");
}

#[test]
fn offers_wait_for_an_answer_from_any_face() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("notes.txt");
    std::fs::write(&src, b"hello").unwrap();
    let mut ada = serve(dir.path(), "ada", &[]);

    // Nothing waits yet; the commands that need the running node find it.
    let out = at(&ada, &["offers"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no offers are waiting"));

    let send = lanyard_spawn(dir.path(), &["send", &ada.addr, "--", src.to_str().unwrap()]);
    let id = ada.next_event("offer")["transfer"].as_str().unwrap().to_string();
    let out = at(&ada, &["offers", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["transfer"], id.as_str());
    assert_eq!(listed["names"][0], "notes.txt");
    let out = at(&ada, &["offers"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("lanyard accept {id}")) && text.contains("1 file, 5 B"),
        "{text}"
    );

    // Accept, trusting the sender: the next send needs no answer.
    let out = at(&ada, &["accept", &id, "--always"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = send.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(dir.path().join("ada/downloads/notes.txt")).unwrap(), b"hello");
    assert_eq!(ada.next_event("trust_changed")["trusted"], true);

    let out = lanyard(dir.path(), &["send", &ada.addr, "--", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("ada/downloads/notes (1).txt").exists());

    // Both transfers are in the running node's list, finished.
    let out = at(&ada, &["transfers", "--json"]);
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["state"] == "done" && r["direction"] == "receive"), "{rows:?}");

    // A wrong id is a clear error; so are these commands without a running node.
    let out = at(&ada, &["accept", "ffffffff"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no offer"));
    let out = lanyard(dir.path(), &["offers"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lanyard node is running"));
}

#[test]
fn trust_untrust_and_forget_work_without_a_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.txt");
    std::fs::write(&src, b"a").unwrap();
    let ada = serve(dir.path(), "ada", &["--accept-all"]);
    // The one-shot's data dir learns ada by sending to her.
    let out = lanyard(dir.path(), &["send", &ada.addr, "--", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Ada goes away: she remembers this data dir's node and would dial it back whenever one of
    // the commands below brings it up, making it know her again between the two forgets.
    drop(ada);
    let out = lanyard(dir.path(), &["trust", "ada"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted without asking"));
    let out = lanyard(dir.path(), &["peers", "--json", "--wait", "0"]);
    let peers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(peers[0]["trusted"], true, "{peers}");
    let out = lanyard(dir.path(), &["untrust", "ada"]);
    assert!(out.status.success());
    let out = lanyard(dir.path(), &["forget", "ada"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = lanyard(dir.path(), &["forget", "ada"]);
    assert!(!out.status.success(), "forgotten means unknown");
}

#[test]
fn a_missing_path_is_named_as_typed_before_any_peer_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let bob = serve(dir.path(), "bob", &["--accept-all"]);
    std::fs::write(dir.path().join("here.txt"), b"x").unwrap();
    // An unknown nick too: the path is refused first, with nothing about the nick.
    let out = Command::new(BIN)
        .env("LANYARD_NO_LOCALSEND", "1")
        .current_dir(dir.path())
        .args(["--no-mdns", "--nick", "cli", "--data-dir"])
        .arg(dir.path().join("cli-data"))
        .args(["send", &bob.addr, "nobody-by-this-name", "--", "here.txt", "nope.pdf"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "lanyard: cannot send \"nope.pdf\": no such file or directory\n"
    );
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!dir.path().join("bob/downloads/here.txt").exists(), "nothing was offered");
}
