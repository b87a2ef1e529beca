//! The Deposits column and `d` / `g`, driven through `update` and drawn into a `TestBackend`
//! (snapshots in `src/ui/snapshots/`).

use std::path::PathBuf;

use ratatui::crossterm::event::KeyCode;

use super::app::{App, Cmd, Health, Msg, Overlay};
use super::keys::{Context, Pane};
use super::tests::{id, key, lab, screen, typed};
use crate::node::api::{DepositReport, DepositView, HolderView, Outcome, PeerId, Reply, Request, Retrieved};
use crate::node::events::{Envelope, Event};

fn holder(p: &PeerId, nick: &str, online: bool, verified: bool) -> HolderView {
    HolderView {
        id: p.to_string(),
        nick: nick.into(),
        online,
        last_seen: None,
        verified,
        last_verified_ms: 0,
    }
}

fn deposit(n: u8, name: &str, bytes: u64, wanted: u32, holders: Vec<HolderView>) -> DepositView {
    DepositView {
        id: format!("{n:032x}"),
        name: name.into(),
        bytes,
        files: 1,
        hash: "00".repeat(32),
        replicas_wanted: wanted,
        replicas_verified: holders.iter().filter(|h| h.verified).count() as u32,
        holders,
        created_ms: 0,
    }
}

/// Two deposits: thesis.pdf on bob (online), cy (offline, with a hostile nick) and dee (lost
/// its copy); notes/ on both bobs.
fn deposits() -> Vec<DepositView> {
    vec![
        deposit(
            1,
            "thesis.pdf",
            20 << 20,
            3,
            vec![
                holder(&id(1), "bob", true, true),
                holder(&id(3), "cy\u{202e}gnp.exe", false, true),
                holder(&id(4), "dee", true, false),
            ],
        ),
        deposit(
            2,
            "notes",
            3 << 20,
            2,
            vec![holder(&id(1), "bob", true, true), holder(&id(2), "bob", true, true)],
        ),
    ]
}

fn event(app: &mut App, seq: u64, event: Event) {
    app.update(Msg::Node(Envelope { seq, event }));
}

/// The lab with my deposits reported, and the Deposits column focused (3, L, Tab).
fn locker() -> App {
    let mut app = lab();
    event(&mut app, 50, Event::Deposits { deposits: deposits() });
    key(&mut app, KeyCode::Char('3'));
    key(&mut app, KeyCode::Char('L'));
    assert_eq!(app.focus, Pane::Local, "L shows the locker in the right column, the focus stays");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.focus, Pane::Deposits);
    app
}

#[test]
fn the_deposits_column_marks_each_copy_and_follows_the_node() {
    let mut app = locker();
    let s = screen(&app, 80, 24);
    insta::assert_snapshot!("deposits_80x24", s);
    assert!(s.contains("✓ bob") && s.contains("✗ dee") && s.contains("◌ cy"), "{s}");
    assert!(s.contains("2/3") && s.contains("2/2"), "{s}");
    assert!(!s.contains('\u{202e}'), "a holder's nick is peer text: {s}");
    // bob goes offline: his copies are still verified, shown as waiting for him.
    event(
        &mut app,
        51,
        Event::PeerDown {
            id: id(1),
            nick: "bob".into(),
            reason: "gone".into(),
        },
    );
    assert_eq!(app.health(&app.deposits[0].holders[0]), Health::Offline);
    assert!(screen(&app, 80, 24).contains("◌ bob"));
    // A repair copied thesis.pdf to bob@lab-17: the node's next list is what is drawn.
    let mut now = deposits();
    now[0].holders[2] = holder(&id(2), "bob", true, true);
    now[0].replicas_verified = 3;
    event(&mut app, 52, Event::Deposits { deposits: now });
    let s = screen(&app, 80, 24);
    assert!(s.contains("3/3") && !s.contains("✗ dee"), "{s}");
    // Every deposit gone: the column says how to make one.
    event(&mut app, 53, Event::Deposits { deposits: vec![] });
    assert!(screen(&app, 80, 24).contains("d in the local column deposits"));
    // L again: the selected peer's shares, and the focus with them.
    key(&mut app, KeyCode::Char('L'));
    assert_eq!(app.focus, Pane::Remote);
}

#[test]
fn d_asks_how_many_copies_then_deposits_the_marked_files() {
    let mut app = lab();
    key(&mut app, KeyCode::Char('3'));
    key(&mut app, KeyCode::End);
    assert!(key(&mut app, KeyCode::Char('d')).is_empty());
    assert_eq!(app.context(), Context::Replicas);
    assert_eq!(app.replicas.value(), "2", "two copies unless said otherwise");
    insta::assert_snapshot!("deposit_ask_80x24", screen(&app, 80, 24));
    // Not a count: said in place, nothing starts.
    key(&mut app, KeyCode::Backspace);
    typed(&mut app, "0");
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert!(matches!(&app.overlay, Some(Overlay::Deposit { error: Some(_), .. })));
    key(&mut app, KeyCode::Backspace);
    typed(&mut app, "3");
    let cmds = key(&mut app, KeyCode::Enter);
    let tag = match &cmds[..] {
        [
            Cmd::Call {
                tag,
                request: Request::Deposit { paths, replicas, to },
            },
        ] => {
            assert_eq!(paths, &[PathBuf::from("/home/ada/lab/report.pdf")]);
            assert_eq!(*replicas, 3);
            assert!(to.is_empty(), "placed by the node among the peers online");
            *tag
        }
        other => panic!("{other:?}"),
    };
    assert!(app.overlay.is_none() && app.locker, "the Deposits column shows how it goes");
    let mut d = deposit(3, "report.pdf", 1_234_567, 3, vec![holder(&id(1), "bob", true, true)]);
    d.replicas_verified = 1;
    let report = DepositReport {
        deposit: d,
        complete: false,
        refused: vec!["dee: dee holds at most 2 GiB for you; 1.8 GiB used".into()],
        note: "placed on bob".into(),
    };
    app.update(Msg::Reply {
        tag,
        reply: Reply::Deposited(Box::new(report)),
    });
    let status = app.status_text().unwrap_or_default().to_string();
    assert!(
        status.contains("placed on bob") && status.contains("1 of 3") && status.contains("2 GiB"),
        "{status}"
    );
    // Esc on the question deposits nothing.
    key(&mut app, KeyCode::Char('d'));
    assert!(key(&mut app, KeyCode::Esc).is_empty());
    assert!(app.overlay.is_none());
}

#[test]
fn g_retrieves_the_deposit_under_the_cursor_into_the_download_dir() {
    let mut app = locker();
    key(&mut app, KeyCode::Down);
    let cmds = key(&mut app, KeyCode::Char('g'));
    let tag = match &cmds[..] {
        [
            Cmd::Call {
                tag,
                request: Request::Retrieve { deposit, to: None },
            },
        ] => {
            assert_eq!(deposit, &format!("{:032x}", 2));
            *tag
        }
        other => panic!("{other:?}"),
    };
    let r = Retrieved {
        id: format!("{:032x}", 2),
        name: "notes".into(),
        from: "bob".into(),
        saved_to: "/home/ada/Downloads/lanyard/notes (1)".into(),
        outcome: Outcome::default(),
        skipped: vec![],
    };
    app.update(Msg::Reply {
        tag,
        reply: Reply::Retrieved(Box::new(r)),
    });
    assert_eq!(
        app.status_text(),
        Some("notes retrieved from bob into /home/ada/Downloads/lanyard/notes (1)")
    );
    // r asks the holders again (a node call; the column changes when its answer comes).
    let cmds = key(&mut app, KeyCode::Char('r'));
    assert!(
        matches!(
            &cmds[..],
            [Cmd::Call {
                request: Request::Deposits,
                ..
            }]
        ),
        "{cmds:?}"
    );
}
