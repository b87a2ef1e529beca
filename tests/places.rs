//! What a node keeps between runs. In-process nodes on 127.0.0.1, mDNS off, and the binary for
//! `lanyard id`.

use lanyard::node::{NodeConfig, NodeHandle};

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
        lanyard::node::nick::nick_in(dir.path(), None).unwrap(),
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

/// `lanyard id --json` in a private HOME, with `env` on top; its nick.
fn id_nick(home: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lanyard"));
    cmd.env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("USER", "uu")
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
