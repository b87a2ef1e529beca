//! The transfer commands as a script uses them: real processes of the binary on 127.0.0.1,
//! `--no-mdns`, exit codes and output.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_lanyard");

struct Serve {
    child: Child,
    addr: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, name: &str, extra: &[&str]) -> Serve {
    let mut child = Command::new(BIN)
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
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let port = v["addr"].as_str().unwrap().rsplit(':').next().unwrap().to_string();
    Serve {
        child,
        addr: format!("127.0.0.1:{port}"),
    }
}

fn lanyard(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
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

    let no = serve(dir.path(), "no", &[]);
    let out = lanyard(dir.path(), &["send", &yes1.addr, &no.addr, "--", src.to_str().unwrap()]);
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
fn a_missing_path_is_named_as_typed_before_any_peer_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let bob = serve(dir.path(), "bob", &["--accept-all"]);
    std::fs::write(dir.path().join("here.txt"), b"x").unwrap();
    let started = std::time::Instant::now();
    // An unknown nick too: looking it up would wait seconds, so a quick answer shows it wasn't.
    let out = Command::new(BIN)
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
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "{:?}", started.elapsed());
    assert!(!dir.path().join("bob/downloads/here.txt").exists(), "nothing was offered");
}
