//! The TUI without a terminal: `update` driven by messages and keys, and `view` drawn into
//! ratatui's `TestBackend` (snapshots in `src/ui/snapshots/`, reviewed by eye).

use std::path::{Path, PathBuf};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::{App, Cmd, Msg, Overlay};
use super::files::Entry;
use super::keys::Pane;
use super::view::{Theme, draw};
use crate::node::api::{ChatEntry, Delivery, Direction, OfferView, PeerId, PeerInfo, ROOM, TransferState, TransferView};
use crate::node::api::{FileFailure, Reason, Recipient, Reply, Request};
use crate::node::events::{Envelope, Event};
use crate::node::snapshot::{ConversationView, Me, Snapshot};

/// A fixed instant (2026-11-29 10:00 UTC), so that drawn times don't change.
const T0: u64 = 1_795_946_400_000;

pub(super) fn id(seed: u8) -> PeerId {
    // Deterministic ids: the snapshots must not change from run to run.
    let mut s = String::new();
    for i in 0..16 {
        s.push((b'a' + (seed + i) % 26) as char);
    }
    PeerId::parse(&s).expect("a valid id")
}

pub(super) fn peer(seed: u8, nick: &str, host: &str, online: bool) -> PeerInfo {
    let id = id(seed);
    PeerInfo {
        short_id: id.short().to_string(),
        id,
        nick: nick.into(),
        label: nick.into(),
        host: host.into(),
        online,
        addr: None,
        fingerprint: String::new(),
        trusted: false,
        last_seen: None,
        discovered: online,
        unread: 0,
        transfers: 0,
    }
}

fn transfer(seed: u8, peer: &PeerId, nick: &str, direction: Direction, state: TransferState, percent: u8) -> TransferView {
    TransferView {
        transfer: format!("{:016x}", seed),
        peer: peer.clone(),
        nick: nick.into(),
        direction,
        group: None,
        state,
        file: "lecture-notes-week-7.pdf".into(),
        file_bytes: 0,
        resumed: 0,
        file_size: 8 << 20,
        files_done: 1,
        files: 3,
        bytes: (24u64 << 20) * percent as u64 / 100,
        total: 24 << 20,
        percent,
        rate: 11 << 20,
        eta_secs: Some(42),
        failed: 0,
        message: (state == TransferState::Failed).then(|| "bob stopped receiving (connection lost); sending again resumes".into()),
        reason: (state == TransferState::Failed).then_some(crate::node::api::Reason::ConnectionLost),
        saved_to: (direction == Direction::Receive).then(|| "/home/ada/Downloads/lanyard".into()),
        name: String::new(),
        via: None,
        saved_as: None,
        failures: Vec::new(),
        started_ms: T0 + seed as u64 * 1000,
        ended_ms: state.is_finished().then_some(T0 + 60_000),
    }
}

/// A lab: ada (us), two peers called bob (told apart), one offline with history, chat with
/// delivery marks, transfers in every state.
pub(super) fn lab() -> App {
    let mut app = App::new(PathBuf::from("/home/ada/lab"), false, false);
    app.home = Some("/home/ada".into());
    app.update(Msg::Resize(120, 40));
    let bob = peer(1, "bob", "lab-02", true);
    let bob2 = peer(2, "bob", "lab-17", true);
    let mut cy = peer(3, "cy\u{202e}gnp.exe", "lab-05", false);
    cy.unread = 2;
    let mut dee = peer(4, "dee", "lab-09", true);
    dee.trusted = true;
    let me = Me {
        id: id(0),
        fingerprint: "e8e0 52e5".into(),
        nick: "ada".into(),
        host: "lab-01".into(),
        listen: Some("0.0.0.0:7717".into()),
        download_dir: "/home/ada/Downloads/lanyard".into(),
        shares: vec![],
        mdns: true,
    };
    let transfers = vec![
        transfer(1, &bob.id, "bob", Direction::Send, TransferState::Running, 45),
        transfer(2, &dee.id, "dee", Direction::Receive, TransferState::Running, 80),
        transfer(3, &bob2.id, "bob", Direction::Send, TransferState::Waiting, 0),
        transfer(4, &dee.id, "dee", Direction::Receive, TransferState::Done, 100),
        transfer(5, &bob.id, "bob", Direction::Send, TransferState::Failed, 30),
    ];
    let snapshot = Snapshot {
        seq: 10,
        me,
        peers: vec![bob.clone(), bob2, cy, dee],
        conversations: vec![ConversationView {
            conversation: ROOM.into(),
            last: None,
            unread: 1,
        }],
        transfers,
        offers: vec![],
        localsend: vec![crate::node::api::Device {
            alias: "Nice\u{1b}[31mOrange".into(),
            model: Some("Pixel 9".into()),
            kind: "mobile".into(),
            fingerprint: "3C120B5B6CD174BD8327A997D3AD92766696FB9D0D7CD0B0BD7E571BCDAB548B".into(),
            verified: true,
            addr: "10.0.0.7:53317".into(),
            seen_ms: 0,
        }],
        deposits: vec![],
    };
    app.update(Msg::Snapshot(Box::new(snapshot)));
    app.update(Msg::Local {
        dir: PathBuf::from("/home/ada/lab"),
        result: Ok(vec![
            Entry {
                name: "slides".into(),
                dir: true,
                size: 0,
            },
            Entry {
                name: "a-really-long-file-name-that-will-not-fit-anywhere.mp4".into(),
                dir: false,
                size: 734 << 20,
            },
            Entry {
                name: "report.pdf".into(),
                dir: false,
                size: 1_234_567,
            },
        ]),
    });
    // bob's conversation: our line delivered, his with an escape sequence, ours still queued.
    key(&mut app, KeyCode::Down);
    let conv = bob.id.to_string();
    let lines = vec![
        line(
            &conv,
            &id(0),
            "ada",
            true,
            "did you get the slides?",
            Some(Delivery::Delivered),
            &bob.id,
        ),
        line(&conv, &bob.id, "bob", false, "yes \u{1b}[2J thanks! 日本語 🎉", None, &bob.id),
        line(&conv, &id(0), "ada", true, "great, see you at 10", Some(Delivery::Queued), &bob.id),
    ];
    reply_history(&mut app, &conv, lines);
    app
}

fn line(conv: &str, from: &PeerId, nick: &str, outgoing: bool, text: &str, state: Option<Delivery>, to: &PeerId) -> ChatEntry {
    ChatEntry {
        id: format!("{:032x}", text.len() + outgoing as usize),
        conversation: conv.into(),
        from: from.clone(),
        nick: nick.into(),
        outgoing,
        room: false,
        sent_ms: T0,
        received_ms: T0,
        text: text.into(),
        state,
        recipients: state
            .map(|state| Recipient {
                peer: to.clone(),
                state,
                reason: None,
            })
            .into_iter()
            .collect(),
    }
}

/// Answer the history call the selection made.
fn reply_history(app: &mut App, conv: &str, entries: Vec<ChatEntry>) {
    let tag = (1..100)
        .find(|t| app.pending_history(*t) == Some(conv.to_string()))
        .expect("a history call");
    app.update(Msg::Reply {
        tag,
        reply: Reply::History { entries },
    });
    app.update(Msg::Reply { tag, reply: Reply::Done });
}

pub(super) fn key(app: &mut App, code: KeyCode) -> Vec<Cmd> {
    app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

pub(super) fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

pub(super) fn screen(app: &App, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("a test terminal");
    terminal.draw(|f| draw(f, app, &Theme::mono())).expect("drawn");
    let buffer = terminal.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let mut row = String::new();
        let mut skip = 0;
        for x in 0..w {
            // A wide character's second cell is part of it.
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let symbol = buffer[(x, y)].symbol();
            skip = unicode_width::UnicodeWidthStr::width(symbol).saturating_sub(1);
            row.push_str(symbol);
        }
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out
}

fn offer(app: &mut App, from: &PeerId, names: &[&str]) {
    let o = OfferView {
        transfer: "00000000000000aa".into(),
        peer: from.clone(),
        nick: "dee".into(),
        host: "lab-09".into(),
        via: None,
        files: names.len() as u32 + 40,
        bytes: 3 << 30,
        names: names.iter().map(|s| s.to_string()).collect(),
        received_ms: T0,
        expires_ms: T0 + 300_000,
    };
    app.update(Msg::Node(Envelope {
        seq: 100,
        event: Event::Offer(o),
    }));
}

#[test]
fn panes_at_120_by_40() {
    let app = lab();
    insta::assert_snapshot!("lab_120x40", screen(&app, 120, 40));
}

#[test]
fn panes_at_80_by_24_with_files_focused() {
    let mut app = lab();
    app.update(Msg::Resize(80, 24));
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.focus, Pane::Local);
    insta::assert_snapshot!("lab_80x24_files", screen(&app, 80, 24));
}

#[test]
fn transfers_pane_at_80_by_24() {
    let mut app = lab();
    app.update(Msg::Resize(80, 24));
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.focus, Pane::Transfers);
    insta::assert_snapshot!("lab_80x24_transfers", screen(&app, 80, 24));
}

#[test]
fn offer_dialog_and_help() {
    let mut app = lab();
    let dee = app.peers.iter().find(|p| p.nick == "dee").unwrap().id.clone();
    offer(&mut app, &dee, &["photos/2026-11-28 001.jpg", "photos/\u{200f}gpj.exe", "notes.md"]);
    assert!(matches!(app.overlay, Some(Overlay::Offer { .. })));
    insta::assert_snapshot!("offer_120x40", screen(&app, 120, 40));
    app.update(Msg::Resize(80, 24));
    insta::assert_snapshot!("offer_80x24", screen(&app, 80, 24));
    // Esc puts it aside: it waits in Transfers; `?` opens help over everything.
    key(&mut app, KeyCode::Esc);
    assert!(app.overlay.is_none());
    assert_eq!(app.offers.len(), 1);
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("help_80x24", screen(&app, 80, 24));
    app.update(Msg::Resize(120, 40));
    insta::assert_snapshot!("help_120x40", screen(&app, 120, 40));
}

#[test]
fn nothing_from_the_network_reaches_the_screen_raw() {
    let app = lab();
    for (w, h) in [(120, 40), (80, 24)] {
        let s = screen(&app, w, h);
        assert!(!s.chars().any(|c| c.is_control() && c != '\n'), "{s}");
        assert!(!s.contains('\u{202e}') && !s.contains('\u{1b}'), "{s}");
    }
    let s = screen(&app, 120, 40);
    assert!(s.contains("cy\\u{202e}gnp.exe"), "the bidi override is shown, not obeyed:\n{s}");
    assert!(s.contains("yes \\u{1b}[2J thanks!"), "{s}");
}

#[test]
fn typing_sends_the_line_to_the_selected_conversation_and_keeps_drafts() {
    let mut app = lab();
    let bob = app.selected_conversation();
    key(&mut app, KeyCode::Enter);
    assert!(app.typing && app.focus == Pane::Chat);
    typed(&mut app, "q? hello");
    let cmds = key(&mut app, KeyCode::Enter);
    assert!(
        matches!(&cmds[..], [Cmd::Call { request: Request::Say { peer, text, queue: true, .. }, .. }] if *peer == bob && text == "q? hello"),
        "{cmds:?}"
    );
    // A draft stays with its conversation.
    typed(&mut app, "half a thou");
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.focus, Pane::Peers, "Esc goes back to where Enter came from");
    key(&mut app, KeyCode::Up);
    assert_eq!(app.selected_conversation(), ROOM);
    key(&mut app, KeyCode::Down);
    assert_eq!(app.conversation(&bob).unwrap().draft.value(), "half a thou");
    // `q` types while typing, and quits otherwise.
    key(&mut app, KeyCode::Enter);
    typed(&mut app, "q");
    assert!(!app.quit);
    key(&mut app, KeyCode::Esc);
    // With transfers running (the fixture's), quitting asks first: n stays, y quits.
    let running = app.transfers.iter().filter(|t| !t.state.is_finished()).count();
    assert!(running > 0);
    assert!(key(&mut app, KeyCode::Char('q')).is_empty() && !app.quit);
    assert!(matches!(app.overlay, Some(Overlay::ConfirmQuit { running: n }) if n == running));
    assert!(key(&mut app, KeyCode::Char('n')).is_empty() && !app.quit && app.overlay.is_none());
    key(&mut app, KeyCode::Char('q'));
    let cmds = key(&mut app, KeyCode::Char('y'));
    assert!(app.quit && cmds == [Cmd::Quit]);
}

#[test]
fn quitting_with_no_transfer_running_does_not_ask_and_ctrl_c_twice_always_quits() {
    let mut app = App::new(PathBuf::from("/"), false, false);
    assert!(key(&mut app, KeyCode::Char('q')) == [Cmd::Quit] && app.quit);
    let mut app = App::new(PathBuf::from("/"), false, false);
    app.transfers
        .push(transfer(1, &id(1), "bob", Direction::Send, TransferState::Running, 40));
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(app.update(Msg::Key(ctrl_c)).is_empty() && !app.quit);
    assert!(app.update(Msg::Key(ctrl_c)) == [Cmd::Quit] && app.quit);
}

#[test]
fn delivery_marks_follow_the_events() {
    let mut app = lab();
    let bob = app.selected_peer().unwrap().id.clone();
    let queued = app.conversation(bob.as_str()).unwrap().lines[2].id.clone();
    app.update(Msg::Node(Envelope {
        seq: 11,
        event: Event::ChatSent {
            to: bob.clone(),
            ids: vec![queued.clone()],
        },
    }));
    let state = |app: &App| app.conversation(bob.as_str()).unwrap().lines[2].state;
    assert_eq!(state(&app), Some(Delivery::Sent));
    app.update(Msg::Node(Envelope {
        seq: 12,
        event: Event::ChatDelivered {
            id: queued.clone(),
            to: bob.clone(),
        },
    }));
    assert_eq!(state(&app), Some(Delivery::Delivered));
    // A late "sent" after "delivered" (or an old event) changes nothing.
    app.update(Msg::Node(Envelope {
        seq: 13,
        event: Event::ChatSent {
            to: bob.clone(),
            ids: vec![queued],
        },
    }));
    assert_eq!(state(&app), Some(Delivery::Delivered));
}

#[test]
fn a_refused_line_shows_failed_with_the_reason_and_stays_failed() {
    let mut app = lab();
    let bob = app.selected_peer().unwrap().id.clone();
    let queued = app.conversation(bob.as_str()).unwrap().lines[2].id.clone();
    app.update(Msg::Node(Envelope {
        seq: 11,
        event: Event::ChatRefused {
            id: queued.clone(),
            to: bob.clone(),
            reason: "too many messages, try later".into(),
        },
    }));
    let state = |app: &App| app.conversation(bob.as_str()).unwrap().lines[2].state;
    assert_eq!(state(&app), Some(Delivery::Refused));
    let status = app.status_text().unwrap_or_default().to_string();
    assert!(status.contains("refused: too many messages, try later"), "{status}");
    assert!(screen(&app, 120, 30).contains("✗ refused: too many messages, try later"));
    app.update(Msg::Node(Envelope {
        seq: 12,
        event: Event::ChatSent {
            to: bob.clone(),
            ids: vec![queued],
        },
    }));
    assert_eq!(state(&app), Some(Delivery::Refused), "final");
}

#[test]
fn lines_elsewhere_raise_that_rows_unread_and_ring_when_unfocused() {
    let mut app = App::new(PathBuf::from("/"), false, true);
    let cy = peer(3, "cy", "lab-05", true);
    app.update(Msg::Node(Envelope {
        seq: 1,
        event: Event::PeerUp {
            id: cy.id.clone(),
            nick: "cy".into(),
            host: "lab-05".into(),
            addr: "10.0.0.5:7717".into(),
        },
    }));
    app.update(Msg::Focus(false));
    let cmds = app.update(Msg::Node(Envelope {
        seq: 2,
        event: Event::ChatReceived {
            id: "1".into(),
            from: cy.id.clone(),
            nick: "cy".into(),
            room: false,
            text: "psst".into(),
            sent_ms: T0,
            unread: 1,
        },
    }));
    assert_eq!(cmds, [Cmd::Bell]);
    assert_eq!(app.unread(cy.id.as_str()), 1);
    // Opening it marks it read.
    app.update(Msg::Focus(true));
    let cmds = key(&mut app, KeyCode::Down);
    assert!(
        cmds.iter().any(|c| matches!(
            c,
            Cmd::Call {
                request: Request::MarkRead { .. },
                ..
            }
        )),
        "{cmds:?}"
    );
    assert_eq!(app.unread(cy.id.as_str()), 0);
}

#[test]
fn s_sends_to_the_marked_peers_and_g_gets_from_the_remote_column() {
    let mut app = lab();
    // Mark both bobs (Space moves on), then send report.pdf from the local column.
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::Char(' '));
    assert_eq!(app.marked_peers.len(), 2);
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::End);
    // To several peers: asked once, naming them; the footer said so before.
    let s = screen(&app, 120, 40);
    assert!(s.contains("s send to bob@lab-02, bob@lab-17"), "{s}");
    assert!(s.contains("2 marked"), "{s}");
    assert!(key(&mut app, KeyCode::Char('s')).is_empty());
    assert!(matches!(&app.overlay, Some(Overlay::ConfirmSend { peers, .. }) if peers.len() == 2));
    let s = screen(&app, 120, 40);
    assert!(s.contains("send 1 item to bob@lab-02, bob@lab-17? y/n"), "{s}");
    let cmds = key(&mut app, KeyCode::Char('y'));
    assert!(app.marked_peers.is_empty(), "marks are used up once the send starts");
    match &cmds[..] {
        [
            Cmd::Call {
                request: Request::Send { peers, paths, .. },
                ..
            },
        ] => {
            assert_eq!(peers.len(), 2);
            assert_eq!(paths, &[Path::new("/home/ada/lab/report.pdf")]);
        }
        other => panic!("{other:?}"),
    }
    // The remote column lists the selected peer's shares once.
    let cmds = key(&mut app, KeyCode::Tab);
    assert!(
        matches!(&cmds[..], [Cmd::Call { request: Request::List { path, .. }, .. }] if path.is_empty()),
        "{cmds:?}"
    );
    assert!(key(&mut app, KeyCode::Char('g')).is_empty(), "nothing listed yet, nothing to get");
}

#[test]
fn a_lagging_face_resyncs_and_old_events_are_ignored() {
    let mut app = lab();
    let cmds = app.update(Msg::Lagged);
    assert!(matches!(
        &cmds[..],
        [Cmd::Call {
            request: Request::Snapshot,
            ..
        }]
    ));
    let before = app.peers.len();
    app.update(Msg::Node(Envelope {
        seq: 5,
        event: Event::PeerForgotten {
            id: app.peers[0].id.clone(),
        },
    }));
    assert_eq!(app.peers.len(), before, "an event the snapshot already holds is skipped");
}

#[test]
fn a_click_focuses_and_selects_and_the_wheel_scrolls() {
    use ratatui::crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let mut app = lab();
    let areas = super::layout::Areas::new(ratatui::layout::Rect::new(0, 0, 120, 40), app.focus);
    let click = |x: u16, y: u16| MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: x,
        row: y,
        modifiers: KeyModifiers::NONE,
    };
    // The third entry of the local column (its title row, then slides/, the .mp4, report.pdf).
    app.update(Msg::Mouse(click(areas.local.x + 2, areas.local.y + 3)));
    assert_eq!(app.focus, Pane::Local);
    assert_eq!(app.local.list.current().unwrap().name, "report.pdf");
    // The #all row of Peers.
    app.update(Msg::Mouse(click(areas.peers.x + 2, areas.peers.y + 1)));
    assert_eq!((app.focus, app.selected_conversation()), (Pane::Peers, ROOM.to_string()));
    let wheel = MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: areas.peers.x + 2,
        row: areas.peers.y + 2,
        modifiers: KeyModifiers::NONE,
    };
    app.update(Msg::Mouse(wheel));
    assert_eq!(app.peer_cursor, 1);
}

#[test]
fn tiny_and_huge_terminals_draw_without_panicking() {
    let mut app = lab();
    for (w, h) in [(1, 1), (20, 6), (40, 10), (300, 100)] {
        app.update(Msg::Resize(w, h));
        for overlay in [
            None,
            Some(Overlay::Help { scroll: 0 }),
            Some(Overlay::AddPeer {
                trying: None,
                error: Some("no answer from 10.0.0.5:7717: connection refused".into()),
            }),
        ] {
            app.overlay = overlay;
            let _ = screen(&app, w, h);
        }
    }
}

#[test]
fn history_in_chunks_keeps_its_order_and_older_pages_come_on_scrolling_up() {
    let mut app = lab();
    let bob = app.selected_peer().unwrap().id.clone();
    let conv = bob.to_string();
    // A fresh conversation whose newest page arrives in two chunks, oldest first.
    app.conversations.remove(&conv);
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Down);
    let tag = (1..200)
        .find(|t| app.pending_history(*t) == Some(conv.clone()))
        .expect("a history call");
    let page = |from: usize, to: usize| -> Vec<ChatEntry> {
        (from..to)
            .map(|i| {
                let mut e = line(&conv, &bob, "bob", false, &format!("line {i}"), None, &bob);
                e.id = format!("{i:032x}");
                e
            })
            .collect()
    };
    for chunk in [page(100, 350), page(350, 600)] {
        app.update(Msg::Reply {
            tag,
            reply: Reply::History { entries: chunk },
        });
    }
    app.update(Msg::Reply { tag, reply: Reply::Done });
    let texts: Vec<String> = app.conversation(&conv).unwrap().lines.iter().map(|l| l.text.clone()).collect();
    assert_eq!(texts.first().map(String::as_str), Some("line 100"));
    assert_eq!(texts.last().map(String::as_str), Some("line 599"));
    assert!(texts.windows(2).all(|w| w[0] < w[1] || w[0].len() < w[1].len()));
    // Scrolling to the top asks for the page before the oldest line, once.
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.focus, Pane::Chat);
    let cmds = key(&mut app, KeyCode::Home);
    match &cmds[..] {
        [
            Cmd::Call {
                request: Request::History { before: Some(id), .. },
                ..
            },
        ] => assert_eq!(id, &format!("{:032x}", 100)),
        other => panic!("{other:?}"),
    }
    assert!(key(&mut app, KeyCode::Up).is_empty(), "one request at a time");
    assert_eq!(app.conversation(&conv).unwrap().scroll, 499, "the oldest line stays on screen");
}

#[test]
fn an_offer_waits_while_someone_types() {
    let mut app = lab();
    key(&mut app, KeyCode::Enter);
    typed(&mut app, "hello wor");
    let dee = app.peers.iter().find(|p| p.nick == "dee").unwrap().id.clone();
    offer(&mut app, &dee, &["f.txt"]);
    assert!(app.overlay.is_none(), "the dialog must not take the keyboard mid-sentence");
    typed(&mut app, "ld again");
    assert_eq!(
        app.conversation(&app.selected_conversation()).unwrap().draft.value(),
        "hello world again"
    );
    assert!(app.status_text().is_some_and(|s| s.contains("offers")));
    key(&mut app, KeyCode::Esc);
    assert!(matches!(app.overlay, Some(Overlay::Offer { .. })));
}

#[test]
fn a_click_in_a_scrolled_list_picks_the_row_under_it() {
    use ratatui::crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let mut app = lab();
    let many: Vec<Entry> = (0..100)
        .map(|i| Entry {
            name: format!("f{i:03}"),
            dir: false,
            size: 1,
        })
        .collect();
    app.update(Msg::Local {
        dir: PathBuf::from("/home/ada/lab"),
        result: Ok(many),
    });
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::End);
    let areas = super::layout::Areas::new(ratatui::layout::Rect::new(0, 0, 120, 40), app.focus);
    // The list shows its last rows: the bottom row is f099, the one above it f098.
    let bottom = areas.local.y + areas.local.height - 1;
    app.update(Msg::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: areas.local.x + 2,
        row: bottom - 1,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.local.list.current().unwrap().name, "f098");
}

#[test]
fn a_nick_shaped_like_another_peers_id_is_shown_with_its_host() {
    let mut app = App::new(PathBuf::from("/home/ada/lab"), false, false);
    app.update(Msg::Resize(80, 24));
    let bob = peer(1, "bob", "lab-02", true);
    let impostor = peer(7, bob.id.short(), "lab-66", true);
    let snapshot = Snapshot {
        seq: 1,
        me: Me {
            id: id(0),
            fingerprint: "e8e0 52e5".into(),
            nick: "ada".into(),
            host: "lab-01".into(),
            listen: None,
            download_dir: "/home/ada/Downloads/lanyard".into(),
            shares: vec![],
            mdns: false,
        },
        peers: vec![bob.clone(), impostor.clone()],
        conversations: vec![],
        transfers: vec![],
        offers: vec![],
        localsend: vec![],
        deposits: vec![],
    };
    app.update(Msg::Snapshot(Box::new(snapshot)));
    let shown = format!("{}@lab-66", bob.id.short());
    assert_eq!(app.peer_name(&impostor.id), shown);
    assert_eq!(app.peer_name(&bob.id), "bob");
    // Its conversation: the peer list, the chat title and its lines all carry the host.
    while app.selected_peer().map(|p| &p.id) != Some(&impostor.id) {
        key(&mut app, KeyCode::Down);
    }
    let conv = impostor.id.to_string();
    let lines = vec![line(&conv, &impostor.id, bob.id.short(), false, "it's me, bob", None, &impostor.id)];
    reply_history(&mut app, &conv, lines);
    let s = screen(&app, 80, 24);
    assert!(s.matches(&shown).count() >= 2, "{s}");
    insta::assert_snapshot!("id_shaped_nick_80x24", s);
}

/// A relayed send of big.bin from ada to bob, carol and dee (bob verified, carol receiving
/// through bob, dee said no), a receive from dee through bob saved under a free name, a
/// cancelled one and a failed one with a long message.
fn relayed_lab() -> App {
    let mut app = lab();
    let (bob, dee) = (id(1), id(4));
    let carol = id(5);
    app.peers.push(peer(5, "carol", "lab-03", true));
    let group = |mut t: TransferView| {
        t.group = Some("00000000000000ee".into());
        t.name = "big.bin".into();
        (t.files, t.files_done) = (1, 0);
        t
    };
    let mut to_bob = group(transfer(11, &bob, "bob", Direction::Send, TransferState::Done, 100));
    to_bob.files_done = 1;
    let mut to_carol = group(transfer(12, &carol, "carol", Direction::Send, TransferState::Running, 26));
    to_carol.via = Some("bob".into());
    let mut to_dee = group(transfer(13, &dee, "dee", Direction::Send, TransferState::Rejected, 0));
    (to_dee.bytes, to_dee.message, to_dee.reason) = (0, Some("rejected".into()), Some(crate::node::api::Reason::Rejected));
    let mut from_dee = transfer(14, &dee, "dee", Direction::Receive, TransferState::Done, 100);
    from_dee.name = "project/ (214 files)".into();
    from_dee.via = Some("bob".into());
    from_dee.saved_as = Some("/home/ada/Downloads/lanyard/project (1)".into());
    let mut cancelled = transfer(15, &bob, "bob", Direction::Send, TransferState::Cancelled, 30);
    (cancelled.name, cancelled.message) = ("report.pdf".into(), Some("cancelled".into()));
    cancelled.reason = Some(crate::node::api::Reason::CancelledBySender);
    let mut failed = transfer(16, &bob, "bob", Direction::Receive, TransferState::Failed, 30);
    failed.name = "a.txt and 2 more (3 files)".into();
    failed.failed = 2;
    failed.failures = vec![
        FileFailure {
            path: "notes/n1.txt".into(),
            reason: "chunk 0 of \"notes/n1.txt\" failed verification".into(),
            code: Reason::BadData,
        },
        FileFailure {
            path: "notes/n2.txt".into(),
            reason: "it changed while being sent".into(),
            code: Reason::SourceChanged,
        },
    ];
    failed.message = Some(format!(
        "chunk 3 of \"image.bin\" failed verification: the data from bob was corrupted; {} the 3 MiB verified before it are kept",
        "and a long explanation that goes on well past the width of any row, ".repeat(3)
    ));
    app.transfers = vec![to_bob, to_carol, to_dee, from_dee, cancelled, failed];
    app.update(Msg::Resize(100, 30));
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.focus, Pane::Transfers);
    app
}

#[test]
fn every_transfer_row_tells_the_truth_for_each_recipient() {
    let app = relayed_lab();
    let s = screen(&app, 100, 30);
    insta::assert_snapshot!("relayed_rows_100x30", s);
    // The group counts what is true: bob verified, carol a quarter, dee nothing: 41% of the three.
    assert!(s.contains("to 3 peers: 1 done, 41%"), "{s}");
    let row = |who: &str| s.lines().find(|l| l.contains(who)).unwrap_or_default().to_string();
    assert!(row("→ bob").contains("big.bin") && row("→ bob").contains("✓"), "{s}");
    assert!(row("→ carol").contains("via bob") && row("→ carol").contains("26%"), "{s}");
    assert!(row("→ dee").contains("dee said no"), "{s}");
    assert!(row("← dee via bob").contains("project/ (214 files)"), "{s}");
    assert!(row("← dee via bob").contains("→ ~/Downloads/lanyard/project (1)"), "{s}");
    assert!(row("→ bob@lab-02 report.pdf").contains("cancelled by you"), "{s}");
    for doubled in ["rejected: rejected", "cancelled: cancelled", "1 file "] {
        assert!(!s.contains(doubled), "{doubled:?} in\n{s}");
    }
}

#[test]
fn enter_on_a_transfer_row_opens_its_details_whole_and_esc_closes_them() {
    let mut app = relayed_lab();
    // The send to carol: every recipient of its group.
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    assert!(matches!(&app.overlay, Some(Overlay::Transfer { id, .. }) if id == "000000000000000c"));
    let s = screen(&app, 100, 30);
    insta::assert_snapshot!("relayed_details_100x30", s);
    assert!(
        s.contains("to 3 peers: 1 done, 41%") && s.contains("carol: via bob") && s.contains("dee: dee said no"),
        "{s}"
    );
    key(&mut app, KeyCode::Esc);
    assert!(app.overlay.is_none());
    // The failed receive: each file that failed and the whole message, wrapped, not cut.
    for _ in 0..4 {
        key(&mut app, KeyCode::Down);
    }
    key(&mut app, KeyCode::Enter);
    let s = screen(&app, 100, 30);
    insta::assert_snapshot!("failed_details_100x30", s);
    // The overlay's own text, between its borders, line after line.
    let inside = |l: &str| {
        let (a, b) = (l.find('┃')?, l.rfind('┃')?);
        (b > a).then(|| l[a + '┃'.len_utf8()..b].trim().to_string())
    };
    let text: String = s.lines().filter_map(inside).collect::<Vec<_>>().join(" ");
    assert!(text.contains("the 3 MiB verified before it are kept"), "{s}");
    assert!(text.contains("✗ notes/n2.txt: it changed while being sent"), "{s}");
    // It scrolls, and Esc closes it.
    key(&mut app, KeyCode::Down);
    assert!(matches!(app.overlay, Some(Overlay::Transfer { scroll: 1, .. })));
    key(&mut app, KeyCode::Esc);
    assert!(app.overlay.is_none());
}

#[test]
fn help_at_80_by_24_scrolls_to_its_end_with_the_quit_key_and_the_legend() {
    let mut app = lab();
    app.update(Msg::Resize(80, 24));
    key(&mut app, KeyCode::Char('?'));
    assert!(screen(&app, 80, 24).contains("more below ↓"));
    key(&mut app, KeyCode::End);
    let end = screen(&app, 80, 24);
    assert!(!end.contains("more below"), "{end}");
    assert!(end.contains(" q ") && end.contains("quit"), "{end}");
    for symbol in ["●", "○", "◌", "★", "⇅", "✓✓", "✓ 3/5", "▸", "late"] {
        assert!(end.contains(symbol), "{symbol} missing from the legend:\n{end}");
    }
    insta::assert_snapshot!("help_80x24_end", end);
    // Down past the end stays at the end (no blank overshoot); Home is the top again.
    let at_end = app.overlay.clone();
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(app.overlay, at_end);
    key(&mut app, KeyCode::Home);
    assert_eq!(app.overlay, Some(Overlay::Help { scroll: 0 }));
    key(&mut app, KeyCode::PageDown);
    assert!(matches!(app.overlay, Some(Overlay::Help { scroll }) if scroll > 5));
    // Every binding of the table appears somewhere in the help, at 80x24.
    let mut seen = String::new();
    key(&mut app, KeyCode::Home);
    loop {
        let s = screen(&app, 80, 24);
        seen.push_str(&s);
        if !s.contains("more below") {
            break;
        }
        key(&mut app, KeyCode::PageDown);
    }
    for b in super::keys::BINDINGS {
        let first_word = b.help.split(' ').next().unwrap_or_default();
        assert!(seen.contains(first_word), "{:?} not in help", b.help);
    }
}

#[test]
fn the_footer_names_who_s_sends_to() {
    let mut app = lab();
    app.update(Msg::Resize(80, 24));
    key(&mut app, KeyCode::Char('3'));
    assert_eq!(app.focus, Pane::Local);
    let s = screen(&app, 80, 24);
    assert!(s.contains("s send to bob@lab-02"), "{s}");
    // Marks: the footer and the Files title follow them, and the Peers title counts them.
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::Char('3'));
    let s = screen(&app, 80, 24);
    assert!(s.contains("2 marked"), "{s}");
    assert!(s.contains("s sends to bob@lab-17, dee"), "{s}");
    insta::assert_snapshot!("recipients_80x24", s);
    // #all selected, nothing marked: nobody, and the footer says so.
    app.marked_peers.clear();
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Home);
    key(&mut app, KeyCode::Char('3'));
    assert!(screen(&app, 80, 24).contains("s send (pick a peer)"));
    assert!(key(&mut app, KeyCode::Char('s')).is_empty());
}

#[test]
fn a_send_to_the_one_selected_peer_is_not_asked() {
    let mut app = lab();
    key(&mut app, KeyCode::Char('3'));
    key(&mut app, KeyCode::End);
    let cmds = key(&mut app, KeyCode::Char('s'));
    assert!(
        matches!(&cmds[..], [Cmd::Call { request: Request::Send { peers, .. }, .. }] if peers.len() == 1),
        "{cmds:?}"
    );
    assert!(app.overlay.is_none());
    // A dropped file is asked about, naming the recipient.
    let dropped = std::env::temp_dir();
    app.update(Msg::Paste(dropped.display().to_string()));
    assert!(matches!(&app.overlay, Some(Overlay::ConfirmSend { dropped: true, .. })));
    let s = screen(&app, 120, 40);
    assert!(s.contains("send 1 file to bob@lab-02? y/n"), "{s}");
    key(&mut app, KeyCode::Char('n'));
    assert!(app.overlay.is_none());
}

#[test]
fn numbers_focus_panes_and_o_brings_back_a_waiting_offer() {
    let mut app = lab();
    for (k, pane) in [('2', Pane::Chat), ('3', Pane::Local), ('4', Pane::Transfers), ('1', Pane::Peers)] {
        key(&mut app, KeyCode::Char(k));
        assert_eq!(app.focus, pane);
    }
    let s = screen(&app, 120, 40);
    for title in ["[1] Peers", "[2] Chat", "[3] Files", "[4] Transfers"] {
        assert!(s.contains(title), "{title}:\n{s}");
    }
    assert!(key(&mut app, KeyCode::Char('o')).is_empty());
    assert!(app.status_text().is_some_and(|s| s.contains("no offers")));
    let dee = app.peers.iter().find(|p| p.nick == "dee").unwrap().id.clone();
    offer(&mut app, &dee, &["a.txt"]);
    key(&mut app, KeyCode::Esc);
    assert!(app.overlay.is_none());
    assert!(screen(&app, 120, 40).contains("1 offers waiting: o"));
    key(&mut app, KeyCode::Char('o'));
    assert!(matches!(app.overlay, Some(Overlay::Offer { .. })));
}

#[test]
fn two_offers_say_one_of_two_and_where_files_go() {
    let mut app = lab();
    app.update(Msg::Resize(80, 24));
    let dee = app.peers.iter().find(|p| p.nick == "dee").unwrap().id.clone();
    offer(&mut app, &dee, &["a.txt"]);
    let mut second = app.offers[0].clone();
    second.transfer = "00000000000000bb".into();
    app.update(Msg::Node(Envelope {
        seq: 101,
        event: Event::Offer(second),
    }));
    let s = screen(&app, 80, 24);
    assert!(s.contains("offer 1 of 2"), "{s}");
    assert!(s.contains("go to /home/ada/Downloads/lanyard"), "{s}");
    insta::assert_snapshot!("offer_1_of_2_80x24", s);
}

#[test]
fn the_local_column_follows_its_folder_and_d_goes_to_the_downloads() {
    let mut app = lab();
    key(&mut app, KeyCode::Char('3'));
    // The watcher's word for another folder is stale; for this one it lists again.
    assert!(app.update(Msg::LocalChanged(PathBuf::from("/elsewhere"))).is_empty());
    assert_eq!(
        app.update(Msg::LocalChanged(PathBuf::from("/home/ada/lab"))),
        [Cmd::ListLocal(PathBuf::from("/home/ada/lab"))]
    );
    assert_eq!(key(&mut app, KeyCode::Char('r')), [Cmd::ListLocal(PathBuf::from("/home/ada/lab"))]);
    // Something arrives; D shows the download dir with it standing out, D again goes back.
    let dee = app.peers.iter().find(|p| p.nick == "dee").unwrap().id.clone();
    app.update(Msg::Node(Envelope {
        seq: 50,
        event: Event::FilesReceived {
            transfer: "t".into(),
            peer: dee,
            files: vec![crate::node::events::ReceivedFile {
                path: "/home/ada/Downloads/lanyard/photos/001.jpg".into(),
                size: 1,
            }],
        },
    }));
    let downloads = PathBuf::from("/home/ada/Downloads/lanyard");
    let shift_d = KeyEvent::new(KeyCode::Char('D'), KeyModifiers::SHIFT);
    assert_eq!(app.update(Msg::Key(shift_d)), [Cmd::ListLocal(downloads.clone())]);
    app.update(Msg::Local {
        dir: downloads,
        result: Ok(vec![
            Entry {
                name: "photos".into(),
                dir: true,
                size: 0,
            },
            Entry {
                name: "old.pdf".into(),
                dir: false,
                size: 10,
            },
        ]),
    });
    let s = screen(&app, 120, 40);
    assert!(s.contains("▸photos/"), "{s}");
    assert!(s.contains(" old.pdf"), "{s}");
    assert!(s.contains("downloads: /home/ada/Downloads/lanyard"), "{s}");
    assert_eq!(app.update(Msg::Key(shift_d)), [Cmd::ListLocal(PathBuf::from("/home/ada/lab"))]);
}

#[test]
fn add_peer_takes_a_host_without_port_and_shows_a_failure_in_place() {
    let mut app = lab();
    key(&mut app, KeyCode::Char('+'));
    typed(&mut app, "10.0.0.5");
    let cmds = key(&mut app, KeyCode::Enter);
    let tag = match &cmds[..] {
        [
            Cmd::Call {
                tag,
                request: Request::AddPeer { addr, wait: true },
            },
        ] => {
            assert_eq!(addr, "10.0.0.5:7717");
            *tag
        }
        other => panic!("{other:?}"),
    };
    assert!(screen(&app, 80, 24).contains("connecting to 10.0.0.5:7717…"));
    let why = "no answer from 10.0.0.5:7717: connection refused";
    app.update(Msg::Reply {
        tag,
        reply: Reply::Failed {
            kind: crate::node::api::FailKind::Unreachable,
            message: why.into(),
        },
    });
    assert!(
        matches!(app.overlay, Some(Overlay::AddPeer { .. })),
        "stays open to fix the address"
    );
    assert!(screen(&app, 80, 24).contains(why));
    // Fixed and answered: the dialog closes and the new peer is selected.
    key(&mut app, KeyCode::Backspace);
    typed(&mut app, "6:9000");
    let cmds = key(&mut app, KeyCode::Enter);
    let Some(Cmd::Call { tag, .. }) = cmds.first() else {
        panic!("{cmds:?}")
    };
    let eve = peer(9, "eve", "lab-30", true);
    app.update(Msg::Reply {
        tag: *tag,
        reply: Reply::Peers {
            peers: vec![eve.clone()],
            localsend: Vec::new(),
        },
    });
    assert!(app.overlay.is_none());
    assert_eq!(app.selected_peer().map(|p| p.id.clone()), Some(eve.id));
    // Nonsense is refused before anything is dialled.
    key(&mut app, KeyCode::Char('+'));
    typed(&mut app, "host:notaport");
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert!(screen(&app, 80, 24).contains("is not HOST or HOST:PORT"));
}

#[test]
fn slash_nick_renames_and_a_long_nick_is_refused_with_the_limit() {
    let mut app = lab();
    key(&mut app, KeyCode::Enter);
    let long = "n".repeat(70);
    typed(&mut app, &format!("/nick {long}"));
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    let status = app.status_text().unwrap_or_default().to_string();
    assert!(status.contains("1 to 64 bytes") && status.contains("70 bytes"), "{status}");
    let conv = app.selected_conversation();
    assert!(
        app.conversation(&conv).unwrap().draft.value().starts_with("/nick"),
        "kept to be fixed"
    );
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Enter);
    for _ in 0..80 {
        key(&mut app, KeyCode::Backspace);
    }
    typed(&mut app, "/nick ada lovelace");
    let cmds = key(&mut app, KeyCode::Enter);
    let tag = match &cmds[..] {
        [
            Cmd::Call {
                tag,
                request: Request::SetNick { nick },
            },
        ] if nick == "ada lovelace" => *tag,
        other => panic!("{other:?}"),
    };
    app.update(Msg::Reply { tag, reply: Reply::Done });
    assert_eq!(app.me.as_ref().map(|m| m.nick.as_str()), Some("ada lovelace"));
    // "/nickname" is a chat line like any other.
    typed(&mut app, "/nickname is a word");
    let cmds = key(&mut app, KeyCode::Enter);
    assert!(
        matches!(
            &cmds[..],
            [Cmd::Call {
                request: Request::Say { .. },
                ..
            }]
        ),
        "{cmds:?}"
    );
}

#[test]
fn long_nicks_keep_the_sender_column_narrow_and_marks_stay_with_their_words() {
    let mut app = lab();
    app.update(Msg::Resize(80, 24));
    let bob = app.selected_peer().unwrap().id.clone();
    let conv = bob.to_string();
    let long_nick = "bob-with-a-nick-of-forty-eight-bytes-long-indeed";
    let bob_index = app.peers.iter().position(|p| p.id == bob).unwrap();
    app.peers[bob_index].nick = long_nick.into();
    let c = app.conversations.get_mut(&conv).unwrap();
    c.lines.push(line(
        &conv,
        &bob,
        long_nick,
        false,
        "a line from someone with a long name",
        None,
        &bob,
    ));
    // A line whose mark would land exactly at the start of a row on its own.
    let mut mine = line(&conv, &id(0), "ada", true, &"x".repeat(40), Some(Delivery::Delivered), &bob);
    mine.id = "mine".into();
    c.lines.push(mine);
    let s = screen(&app, 80, 24);
    assert!(!s.contains(long_nick), "{s}");
    assert!(s.contains("bob-wit…-indeed") || s.contains("…"), "{s}");
    for row in s.lines() {
        let inside = row.trim_matches(|c| c == '│' || c == ' ');
        assert!(inside != "✓✓" && inside != "✓", "a mark alone on a row:\n{s}");
    }
}

#[test]
fn a_room_line_that_caught_up_says_it_is_late() {
    let mut app = lab();
    key(&mut app, KeyCode::Home);
    let dee = app.peers.iter().find(|p| p.nick == "dee").unwrap().id.clone();
    let mut late = line(ROOM, &dee, "dee", false, "said while you were away", None, &dee);
    late.room = true;
    late.sent_ms = T0;
    late.received_ms = T0 + 3_600_000;
    let mut fresh = line(ROOM, &dee, "dee", false, "said just now", None, &dee);
    fresh.room = true;
    fresh.id = "fresh".into();
    reply_history(&mut app, ROOM, vec![late, fresh]);
    let s = screen(&app, 120, 40);
    assert!(s.contains("said while you were away late, said 10:00"), "{s}");
    assert!(!s.contains("said just now late"), "{s}");
}

#[test]
fn a_warning_while_alone_stays_in_the_empty_room_until_a_peer_is_online() {
    let mut app = App::new(PathBuf::from("/home/ada/lab"), false, false);
    app.update(Msg::Resize(80, 24));
    let hint = "no peer found in 10 s: check that the firewall lets multicast DNS (UDP port 5353) and TCP port 7717 \
                through; `lanyard doctor` checks what it can";
    app.update(Msg::Node(Envelope {
        seq: 1,
        event: Event::Warning { message: hint.into() },
    }));
    // Longer than any status line: the whole of it is in #all, wrapped.
    app.update(Msg::Tick(std::time::Duration::from_secs(60)));
    let shown = screen(&app, 80, 24);
    for part in ["no peer found", "5353", "doctor"] {
        assert!(shown.contains(part), "{part}:\n{shown}");
    }
    let bob = peer(1, "bob", "lab-02", true);
    app.update(Msg::Node(Envelope {
        seq: 2,
        event: Event::PeerUp {
            id: bob.id.clone(),
            nick: "bob".into(),
            host: "lab-02".into(),
            addr: "10.0.0.2:7717".into(),
        },
    }));
    let shown = screen(&app, 80, 24);
    assert!(!shown.contains("5353"), "a peer is online:\n{shown}");
}

/// The tag of the one call among `cmds`, and its request.
fn the_call(cmds: &[Cmd]) -> (u64, Request) {
    match cmds {
        [Cmd::Call { tag, request }] => (*tag, request.clone()),
        other => panic!("one call expected: {other:?}"),
    }
}

/// A send row to a LocalSend device, as the node reports it.
fn device_row(seq: u64, tid: &str, device: &PeerId, state: TransferState, reason: Option<Reason>) -> Msg {
    let mut t = transfer(9, device, "NiceOrange", Direction::Send, state, 0);
    t.transfer = tid.into();
    t.reason = reason;
    t.message = reason.map(|_| "the device wants a PIN (send --pin PIN)".to_string());
    Msg::Node(Envelope {
        seq,
        event: Event::Progress(t),
    })
}

#[test]
fn s_sends_to_a_localsend_device_and_its_pin_is_asked_when_it_wants_one() {
    let mut app = lab();
    let device = crate::node::api::device_id(&app.localsend[0].fingerprint);
    // The device's row follows the peers' and can be selected: the footer names it.
    key(&mut app, KeyCode::End);
    assert_eq!(app.selected_id(), Some(device.clone()));
    assert_eq!(
        app.selected_conversation(),
        device.to_string(),
        "its text messages are its conversation"
    );
    key(&mut app, KeyCode::Char('3'));
    key(&mut app, KeyCode::End);
    let s = screen(&app, 120, 40);
    assert!(s.contains("s sends to Nice"), "{s}");
    let (tag, request) = the_call(&key(&mut app, KeyCode::Char('s')));
    match &request {
        Request::Send { peers, pin, .. } => {
            assert_eq!(peers, &[device.to_string()]);
            assert_eq!(pin, &None);
        }
        other => panic!("{other:?}"),
    }
    // The node's first word about it, then the device answers 401: the PIN is asked.
    app.update(device_row(200, "ls1", &device, TransferState::Connecting, None));
    app.update(Msg::Reply {
        tag,
        reply: Reply::Progress {
            peer: device.to_string(),
            progress: app.transfers.iter().find(|t| t.transfer == "ls1").cloned().expect("the row"),
        },
    });
    assert!(app.overlay.is_none());
    app.update(device_row(201, "ls1", &device, TransferState::Rejected, Some(Reason::PinRequired)));
    assert!(matches!(&app.overlay, Some(Overlay::Pin { wrong: false, .. })), "{:?}", app.overlay);
    typed(&mut app, "4321");
    insta::assert_snapshot!("pin_80x24", screen(&app, 80, 24));
    let s = screen(&app, 80, 24);
    assert!(!s.contains("4321"), "the PIN is not shown: {s}");
    let (tag, request) = the_call(&key(&mut app, KeyCode::Enter));
    assert!(app.overlay.is_none());
    match &request {
        Request::Send { peers, pin, paths, .. } => {
            assert_eq!(peers, &[device.to_string()]);
            assert_eq!(pin.as_deref(), Some("4321"));
            assert_eq!(paths, &[Path::new("/home/ada/lab/report.pdf")]);
        }
        other => panic!("{other:?}"),
    }
    // Refused again, its row's end seen before the call's first reply: asked again, saying so.
    app.update(device_row(202, "ls2", &device, TransferState::Rejected, Some(Reason::PinRequired)));
    assert!(app.overlay.is_none(), "not before the request is known");
    app.update(Msg::Reply {
        tag,
        reply: Reply::Progress {
            peer: device.to_string(),
            progress: app.transfers.iter().find(|t| t.transfer == "ls2").cloned().expect("the row"),
        },
    });
    assert!(matches!(&app.overlay, Some(Overlay::Pin { wrong: true, .. })), "{:?}", app.overlay);
    assert!(screen(&app, 80, 24).contains("refused that PIN"));
    // Esc gives up: nothing is sent.
    assert!(key(&mut app, KeyCode::Esc).is_empty());
    assert!(app.overlay.is_none());
    // Another refusal (declined) asks nothing; a running send to it is cancelled with `x`.
    app.update(device_row(203, "ls3", &device, TransferState::Rejected, Some(Reason::Rejected)));
    assert!(app.overlay.is_none());
    app.update(device_row(204, "ls4", &device, TransferState::Running, None));
    key(&mut app, KeyCode::Char('4'));
    app.transfer_cursor = app.transfers.iter().position(|t| t.transfer == "ls4").expect("its row");
    let (_, request) = the_call(&key(&mut app, KeyCode::Char('x')));
    assert!(matches!(&request, Request::Cancel { transfer } if transfer == "ls4"), "{request:?}");
    // Marked with Space like a peer.
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::End);
    key(&mut app, KeyCode::Char(' '));
    assert!(app.marked_peers.contains(&device));
}

#[test]
fn a_receive_whose_bytes_went_on_in_a_new_transfer_says_so_not_failed() {
    let mut app = lab();
    let bob = id(1);
    let mut old = transfer(21, &bob, "bob", Direction::Receive, TransferState::Failed, 30);
    old.name = "big.bin".into();
    old.reason = Some(Reason::Superseded);
    old.message = Some("sent again: its bytes go on in transfer 0000000000000016".into());
    app.transfers = vec![old];
    let s = screen(&app, 120, 40);
    let row = s.lines().find(|l| l.contains("big.bin")).unwrap_or_default().to_string();
    assert!(row.contains("sent again: its bytes go on in transfer"), "{s}");
    assert!(!row.contains("failed"), "{row}");
}
