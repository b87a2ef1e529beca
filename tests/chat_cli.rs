//! `lanyard say` and `lanyard history` as a script runs them: the built binary, handing its work
//! to a node that runs on the same data dir (over the control socket), or running its own.

mod common;

use std::path::Path;
use std::process::Output;

use common::{PATIENCE, start_node};
use lanyard::node::api::{ChatTarget, Delivery, NodeConfig, NodeHandle};
use lanyard::node::control::serve_socket;
use lanyard::node::events::Event;

async fn start(nick: &str, dir: &Path) -> NodeHandle {
    start_node(NodeConfig::local(nick, dir.to_path_buf())).await
}

/// `say` waits for the acknowledgement this long (its default, 10 s, is for people; a test only
/// needs a guard against a hang).
const SAY_TIMEOUT: &str = "120";

/// Run the binary with `data_dir`, no multicast and no config file but an empty one.
async fn lanyard(data_dir: &Path, args: &[&str]) -> Output {
    let config = data_dir.parent().unwrap().join("empty-config.toml");
    std::fs::write(&config, "").unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lanyard"))
        .env("LANYARD_NO_LOCALSEND", "1")
        .args(["--no-mdns", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env("LANYARD_CONFIG", &config)
        .env_remove("LANYARD_PEER")
        .output()
        .await
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn say_and_history_through_the_running_node() {
    let root = tempfile::tempdir().unwrap();
    let (da, db) = (root.path().join("ada"), root.path().join("bob"));
    let ada = start("ada", &da).await;
    serve_socket(ada.clone()).await.unwrap();
    let bob = start("bob", &db).await;
    ada.add_peer(&bob.listen_addr().unwrap().to_string());
    assert!(ada.wait_online(bob.id(), PATIENCE).await);
    let mut at_ada = ada.subscribe();
    let mut at_bob = bob.subscribe();

    let o = lanyard(&da, &["say", "--timeout", SAY_TIMEOUT, "bob", "from a script \u{1b}[31m"]).await;
    assert!(o.status.success(), "say failed: {}", stderr(&o));
    // The running node sent it: it is in its history, delivered, and it told its subscribers.
    let h = ada.history(bob.id().as_str(), 10).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].state, Some(Delivery::Delivered));
    loop {
        if let Event::ChatQueued { text, .. } = tokio::time::timeout(PATIENCE, at_ada.recv()).await.unwrap().unwrap() {
            assert_eq!(text, "from a script \u{1b}[31m");
            break;
        }
    }
    loop {
        if let Event::ChatReceived { text, nick, .. } = tokio::time::timeout(PATIENCE, at_bob.recv()).await.unwrap().unwrap() {
            assert_eq!((nick.as_str(), text.as_str()), ("ada", "from a script \u{1b}[31m"));
            break;
        }
    }

    let o = lanyard(&da, &["say", "--timeout", SAY_TIMEOUT, "#all", "to the room"]).await;
    assert!(o.status.success(), "say #all failed: {}", stderr(&o));
    let reply = bob.say(&ChatTarget::Peer(ada.id().clone()), "reply \u{9b}2J").await.unwrap();
    assert!(bob.wait_delivered(&reply, PATIENCE).await.unwrap());

    let o = lanyard(&da, &["history", "bob"]).await;
    assert!(o.status.success(), "history failed: {}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].ends_with("ada: from a script \\u{1b}[31m  ✓✓"), "{text}");
    assert!(lines[1].ends_with("bob: reply \\u{9b}2J"), "{text}");
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");

    let o = lanyard(&da, &["history", "#all", "--json"]).await;
    assert!(o.status.success(), "history --json failed: {}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let objects: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 1, "{text}");
    assert_eq!(objects[0]["text"], "to the room");
    assert_eq!(objects[0]["state"], "delivered");
    assert_eq!(objects[0]["room"], true);

    // Errors: one clear line, non-zero exit.
    let o = lanyard(&da, &["say", "nobody", "hi"]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no peer called \"nobody\""), "{}", stderr(&o));
    let long = "x".repeat(16 * 1024 + 1);
    let o = lanyard(&da, &["say", "bob", &long]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("too long"), "{}", stderr(&o));

    // bob goes away: a wait times out (kept), --queue returns at once, and both go out when
    // bob is back.
    let bob_dir = db.clone();
    let bob_id = bob.id().clone();
    let mut at_ada = ada.subscribe();
    bob.shutdown().await;
    drop(bob);
    let gone = async {
        while ada.is_online(&bob_id) {
            if let Err(lanyard::node::events::RecvError::Closed) = at_ada.recv().await {
                panic!("ada's event stream ended");
            }
        }
    };
    tokio::time::timeout(PATIENCE, gone).await.expect("ada never saw bob go");
    let o = lanyard(&da, &["say", "--timeout", "0.5", "bob", "are you there?"]).await;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not delivered within 0.5 s; kept in the queue"),
        "{}",
        stderr(&o)
    );
    let o = lanyard(&da, &["say", "--queue", "bob", "queued for later"]).await;
    assert!(o.status.success(), "say --queue failed: {}", stderr(&o));
    let bob = start("bob", &bob_dir).await;
    bob.add_peer(&ada.listen_addr().unwrap().to_string());
    for e in ada.history(bob.id().as_str(), 10).await.unwrap().into_iter().filter(|e| e.outgoing) {
        assert!(ada.wait_delivered(&e.id, PATIENCE).await.unwrap(), "{:?} not delivered", e.text);
    }
    let got: Vec<String> = bob
        .history(ada.id().as_str(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect();
    assert_eq!(
        got,
        ["from a script \u{1b}[31m", "reply \u{9b}2J", "are you there?", "queued for later"]
    );

    // A nick given to any command sticks: also to the node that runs, which tells its peers.
    let mut at_bob = bob.subscribe();
    let o = lanyard(&da, &["--nick", "ada-2", "peers", "--wait", "0"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ada.nick(), "ada-2");
    loop {
        if let Event::PeerRenamed { new, .. } = tokio::time::timeout(PATIENCE, at_bob.recv()).await.unwrap().unwrap() {
            assert_eq!(new, "ada-2");
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn say_without_a_running_node_runs_its_own() {
    let root = tempfile::tempdir().unwrap();
    let (ds, db) = (root.path().join("script"), root.path().join("bob"));
    let bob = start("bob", &db).await;
    let mut at_bob = bob.subscribe();
    let addr = bob.listen_addr().unwrap().to_string();
    let o = lanyard(&ds, &["say", "--nick", "script", "--timeout", SAY_TIMEOUT, &addr, "one-shot"]).await;
    assert!(o.status.success(), "say failed: {}", stderr(&o));
    loop {
        if let Event::ChatReceived { text, nick, .. } = tokio::time::timeout(PATIENCE, at_bob.recv()).await.unwrap().unwrap() {
            assert_eq!((nick.as_str(), text.as_str()), ("script", "one-shot"));
            break;
        }
    }
    // Its own node is gone, its history stays; a known peer is found by nick while offline.
    let o = lanyard(&ds, &["history", "bob", "--json"]).await;
    assert!(o.status.success(), "history failed: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(String::from_utf8(o.stdout).unwrap().trim()).unwrap();
    assert_eq!((v["text"].as_str(), v["state"].as_str()), (Some("one-shot"), Some("delivered")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_line_survives_kill_9_right_after_the_ack() {
    use tokio::io::AsyncBufReadExt;
    let root = tempfile::tempdir().unwrap();
    let (da, db) = (root.path().join("ada"), root.path().join("bob"));
    let config = root.path().join("empty-config.toml");
    std::fs::write(&config, "").unwrap();
    let mut bob = tokio::process::Command::new(env!("CARGO_BIN_EXE_lanyard"))
        .env("LANYARD_NO_LOCALSEND", "1")
        .args(["serve", "--json", "--no-mdns", "--port", "0", "--nick", "bob", "--data-dir"])
        .arg(&db)
        .env("LANYARD_CONFIG", &config)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(bob.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().unwrap();
    let listening: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(listening["event"], "listening", "{first}");
    let port = listening["addr"].as_str().unwrap().rsplit_once(':').unwrap().1.to_string();
    let bob_id = lanyard::identity::PeerId::parse(listening["id"].as_str().unwrap()).unwrap();

    let ada = start("ada", &da).await;
    ada.add_peer(&format!("127.0.0.1:{port}"));
    assert!(ada.wait_online(&bob_id, PATIENCE).await);
    let text = "acknowledged, then the power cord";
    let id = ada.say(&ChatTarget::Peer(bob_id), text).await.unwrap();
    assert!(ada.wait_delivered(&id, PATIENCE).await.unwrap());
    bob.start_kill().unwrap();
    bob.wait().await.unwrap();

    let conn = rusqlite::Connection::open(db.join("lanyard.sqlite3")).unwrap();
    let stored: String = conn
        .query_row(
            "SELECT text FROM messages WHERE id = ?1 AND sender = ?2",
            [&id, ada.id().as_str()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, text);
}

/// A conversation longer than a page (the node answers at most `limits::HISTORY_PAGE` lines a
/// call) comes out whole and in order through `lanyard history`, which pages; the windows of
/// --limit / --before / --after too; an unknown cursor is an error, not an empty listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_through_a_long_conversation() {
    let root = tempfile::tempdir().unwrap();
    let (da, db) = (root.path().join("ada"), root.path().join("bob"));
    let lifted = |nick: &str, dir: &Path| {
        let mut c = NodeConfig::local(nick, dir.to_path_buf());
        c.db_budget.rate_lines = u32::MAX;
        c.db_budget.stranger_bytes = u64::MAX;
        c.db_budget.strangers_bytes = u64::MAX;
        c
    };
    let ada = start_node(lifted("ada", &da)).await;
    let bob = start_node(lifted("bob", &db)).await;
    ada.add_peer(&bob.listen_addr().unwrap().to_string());
    assert!(ada.wait_online(bob.id(), PATIENCE).await);
    let n = lanyard::limits::HISTORY_PAGE * 2 + 234;
    let to_bob = ChatTarget::Peer(bob.id().clone());
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(ada.say(&to_bob, &format!("line {i}")).await.unwrap());
    }
    assert!(ada.wait_delivered(ids.last().unwrap(), PATIENCE).await.unwrap());
    let bob_id = bob.id().to_string();
    ada.shutdown().await;
    bob.shutdown().await;
    drop((ada, bob));

    let texts = |o: &Output| -> Vec<String> {
        assert!(o.status.success(), "history failed: {}", stderr(o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                l.split_once(": ")
                    .map(|(_, t)| t.trim_end_matches('✓').trim_end().to_string())
                    .unwrap_or_default()
            })
            .collect()
    };
    let want = |r: std::ops::Range<usize>| -> Vec<String> { r.map(|i| format!("line {i}")).collect() };

    assert_eq!(texts(&lanyard(&da, &["history", &bob_id]).await), want(0..n));
    let o = lanyard(&da, &["history", &bob_id, "--json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let json: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(json, want(0..n));
    assert_eq!(
        texts(&lanyard(&da, &["history", &bob_id, "--limit", "700"]).await),
        want(n - 700..n)
    );
    assert_eq!(
        texts(&lanyard(&da, &["history", &bob_id, "--before", &ids[1000], "--limit", "600"]).await),
        want(400..1000)
    );
    assert_eq!(texts(&lanyard(&da, &["history", &bob_id, "--before", &ids[3]]).await), want(0..3));
    assert_eq!(
        texts(&lanyard(&da, &["history", &bob_id, "--after", &ids[100]]).await),
        want(101..n)
    );
    assert_eq!(
        texts(&lanyard(&da, &["history", &bob_id, "--after", &ids[100], "--limit", "550"]).await),
        want(101..651)
    );

    let unknown = "0".repeat(32);
    let o = lanyard(&da, &["history", &bob_id, "--before", &unknown]).await;
    assert!(!o.status.success(), "an unknown cursor must fail");
    assert!(stderr(&o).contains(&format!("no message {unknown}")), "{}", stderr(&o));
}
