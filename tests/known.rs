//! What a node keeps between runs: its nick, the peers it knows (and reaches again at once), who
//! is trusted, and which peers it has let go. In-process nodes on 127.0.0.1, mDNS off.

mod common;

use std::time::Duration;

use common::{PATIENCE, TestNode, connect};
use lanyard::identity::Identity;
use lanyard::node::api::{NodeConfig, NodeHandle};
use lanyard::node::events::Event;
use lanyard::store::{DB_FILE, Store, StoredPeer, unix_now};

/// A one-shot command's node: no listener, no mDNS, no `--peer`, and no nick given.
fn browsing(dir: &std::path::Path) -> NodeConfig {
    NodeConfig {
        nick: None,
        listen: None,
        ..NodeConfig::local("unused", dir.to_path_buf())
    }
}

#[tokio::test]
async fn a_nick_given_once_is_kept_until_changed() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeHandle::start(NodeConfig::local("ada", dir.path().to_path_buf())).await.unwrap();
    node.shutdown().await;
    drop(node);

    let node = NodeHandle::start(browsing(dir.path())).await.unwrap();
    assert_eq!(node.nick(), "ada", "no nick given: the stored one");
    node.set_nick("robert").await.unwrap();
    assert_eq!(
        lanyard::node::api::nick_in(dir.path(), None).unwrap(),
        "robert",
        "readable while the node runs"
    );
    node.shutdown().await;
    drop(node);

    let node = NodeHandle::start(browsing(dir.path())).await.unwrap();
    assert_eq!(node.nick(), "robert", "set_nick is kept too");
    node.shutdown().await;
    drop(node);
}

#[tokio::test]
async fn a_browsing_node_reaches_a_remembered_peer_without_being_told_where() {
    let mut ada = TestNode::start("ada").await;
    let mut bob = TestNode::start("bob").await;
    // Bob dials ada once by address, and so remembers where she listens.
    connect(&mut bob, &mut ada).await;
    let (ada_id, bob_id) = (ada.id(), bob.id());
    let dir = bob.stop().await;
    ada.expect_down(&bob_id).await;

    let bob = NodeHandle::start(browsing(dir.path())).await.unwrap();
    ada.expect_up(&bob_id).await;
    assert!(bob.wait_online(&ada_id, PATIENCE).await);
    assert_eq!(bob.resolve("ada", Duration::from_secs(1)).await.unwrap(), ada_id);
    bob.shutdown().await;
}

#[tokio::test]
async fn a_remembered_address_answered_by_another_key_is_refused() {
    let mut ada = TestNode::start("ada").await;
    let mut bob = TestNode::start("bob").await;
    connect(&mut bob, &mut ada).await;
    let (ada_id, ada_addr) = (ada.id(), ada.node.listen_addr().unwrap());
    let bob_dir = bob.stop().await;
    let _ada_dir = ada.stop().await;

    // Someone else now listens where ada did.
    let eve_dir = tempfile::tempdir().unwrap();
    let eve_config = NodeConfig {
        listen: Some(ada_addr),
        ..NodeConfig::local("eve", eve_dir.path().to_path_buf())
    };
    let eve = NodeHandle::start(eve_config).await.unwrap();
    let mut eve_events = eve.subscribe();

    let bob = NodeHandle::start(browsing(bob_dir.path())).await.unwrap();
    // Bob dials ada's last address once; eve's key answers there and bob refuses it.
    common::until("bob dialled ada's last address", || bob.tally().remembered_dialled >= 1).await;
    assert_eq!(bob.tally().remembered_other_key, 1, "the other key was refused");
    assert!(!bob.is_online(&ada_id), "ada is not online through eve's key");
    assert!(
        !bob.is_online(eve.id()) && bob.peer(eve.id()).is_none(),
        "eve was not let in under any id"
    );
    while let Ok(Some(e)) = eve_events.try_next() {
        let e = e.event;
        assert!(
            !matches!(e, Event::PeerUp { .. }),
            "the dialler stopped before saying who it is: {e:?}"
        );
    }
    bob.shutdown().await;
    eve.shutdown().await;
}

#[tokio::test]
async fn a_forgotten_peer_is_gone_now_and_pinned_afresh_if_it_comes_back() {
    let mut ada = TestNode::start("ada").await;
    let mut bob = TestNode::start("bob").await;
    // Bob keeps dialling ada (a --peer target), so he comes back after being dropped.
    connect(&mut bob, &mut ada).await;
    let bob_id = bob.id();
    assert!(ada.node.forget(&bob_id).await.unwrap());
    let down = ada.expect_down(&bob_id).await;
    assert!(matches!(&down, Event::PeerDown { reason, .. } if reason == "forgotten"), "{down:?}");
    ada.expect_up(&bob_id).await;
    assert!(ada.node.peers().iter().any(|p| p.id == bob_id && p.online));

    let stranger = Identity::generate().unwrap().id().clone();
    assert!(!ada.node.forget(&stranger).await.unwrap());
    assert!(ada.node.forget(ada.node.id()).await.is_err());
}

#[tokio::test]
async fn forgetting_an_offline_peer_survives_a_restart() {
    let mut ada = TestNode::start("ada").await;
    let mut cyd = TestNode::start("cyd").await;
    connect(&mut cyd, &mut ada).await;
    let cyd_id = cyd.id();
    let _cyd_dir = cyd.stop().await;
    ada.expect_down(&cyd_id).await;
    assert!(ada.node.forget(&cyd_id).await.unwrap());
    assert!(ada.node.peer(&cyd_id).is_none());
    let ada = TestNode::start_in("ada", ada.stop().await).await;
    assert!(ada.node.peers().is_empty(), "{:?}", ada.node.peers());
}

#[tokio::test]
async fn trust_is_kept() {
    let mut ada = TestNode::start("ada").await;
    let mut bob = TestNode::start("bob").await;
    connect(&mut bob, &mut ada).await;
    let bob_id = bob.id();
    ada.node.set_trusted(&bob_id, true).await.unwrap();
    assert!(ada.node.peer(&bob_id).unwrap().trusted);
    let ada = TestNode::start_in("ada", ada.stop().await).await;
    assert!(ada.node.peer(&bob_id).unwrap().trusted);
    ada.node.set_trusted(&bob_id, false).await.unwrap();
    assert!(!ada.node.peer(&bob_id).unwrap().trusted);
    let stranger = Identity::generate().unwrap().id().clone();
    assert!(ada.node.set_trusted(&stranger, true).await.is_err());
}

#[tokio::test]
async fn peers_unseen_for_a_day_are_let_go_unless_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let record = |nick: &str, last_seen: u64| {
        let ident = Identity::generate().unwrap();
        StoredPeer {
            id: ident.id().clone(),
            public_key: ident.public_key().to_vec(),
            nick: nick.into(),
            host: "h".into(),
            // Nobody listens there: the start-up dial finds no one and changes nothing.
            listen_addr: Some("127.0.0.1:1".into()),
            last_seen: Some(last_seen),
            trusted: false,
        }
    };
    let now = unix_now();
    let (old, trusted, recent) = (
        record("old", now - 2 * 86_400),
        record("trusted", now - 2 * 86_400),
        record("recent", now - 60),
    );
    {
        std::fs::create_dir_all(dir.path()).unwrap();
        let store = Store::open(&dir.path().join(DB_FILE)).unwrap();
        for p in [&old, &trusted, &recent] {
            store.upsert_peer(p, "127.0.0.1:1").unwrap();
        }
        store.set_trusted(&trusted.id, true).unwrap();
    }
    let node = NodeHandle::start(NodeConfig::local("me", dir.path().to_path_buf())).await.unwrap();
    let mut listed: Vec<String> = node.peers().into_iter().map(|p| p.nick).collect();
    listed.sort();
    assert_eq!(listed, ["recent", "trusted"]);
    let err = node.resolve("old", Duration::from_millis(100)).await.unwrap_err();
    assert!(err.to_string().contains("no peer called"), "{err}");
    let stored = Store::open(&dir.path().join(DB_FILE)).unwrap().pinned_key(&old.id).unwrap();
    assert!(stored.is_none(), "pruned from the store, pinned key and all");
    node.shutdown().await;
}

/// `lanyard id --json` in a private HOME, with `env` on top; its nick.
fn id_nick(home: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lanyard"));
    cmd.env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("USER", "uu")
        .env("LANYARD_NO_LOCALSEND", "1")
        .envs(env.iter().copied())
        .args(["id", "--json"])
        .args(args);
    let out = cmd.output().expect("lanyard runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v["nick"].as_str().expect("a nick").to_string()
}

#[test]
fn any_command_given_a_nick_keeps_it_for_the_next() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    assert_eq!(id_nick(home, &[], &[]), "uu", "none given or stored: the user name");
    assert_eq!(id_nick(home, &[], &["--nick", "ada"]), "ada");
    assert_eq!(id_nick(home, &[], &[]), "ada", "kept in the data dir");
    assert_eq!(id_nick(home, &[("LANYARD_NICK", "bee")], &[]), "bee");
    assert_eq!(id_nick(home, &[], &[]), "bee");
}
