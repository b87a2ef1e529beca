//! The terminal UI: what a person in the lab launches. Elm-shaped: [`app::App`] is the state,
//! [`app::App::update`] the only place it changes (keys, node events and replies in; commands
//! out as data), [`view::draw`] paints it and nothing else. This module is the loop around them:
//! it drains a burst of messages, updates, then draws once, at most ~30 times a second.
//!
//! The UI talks to the node only through the face API ([`crate::node::control::Client`]): its
//! own node, or — when `serve` already runs on the data dir — that one, over the control socket.

pub mod app;
pub mod files;
pub mod help;
pub mod input;
pub mod keys;
pub mod layout;
pub mod view;
mod watch;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use ratatui::crossterm::event::{
    self, DisableBracketedPaste, DisableFocusChange, DisableMouseCapture, EnableBracketedPaste, EnableFocusChange, EnableMouseCapture,
};
use ratatui::crossterm::execute;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::node::api::{Reply, Request};
use crate::node::control::{Client, serve_socket};
use app::{App, Cmd, Msg};

/// Frames at most this often: a burst of events is drawn once.
const FRAME: Duration = Duration::from_millis(33);
/// How often time passes for the UI (status lines expire).
const TICK: Duration = Duration::from_millis(250);

pub async fn run(config: &Config) -> Result<ExitCode> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!("the lanyard UI needs a terminal; for a node without one run `lanyard serve`");
    }
    let client = Arc::new(Client::open(config.serving_node(false)).await?);
    // Our own node is the lab machine's node: it answers one-shot commands and asks us about
    // offers. An attached UI leaves both to the node that runs.
    let _answerer = match client.as_ref() {
        Client::Local(node) => {
            serve_socket(node.clone()).await?;
            Some(node.answer_offers())
        }
        Client::Remote(_) => None,
    };
    let (tx, mut rx) = mpsc::channel::<Msg>(4096);
    subscribe(&client, tx.clone()).await?;

    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let bell = !matches!(std::env::var("LANYARD_BELL").as_deref(), Ok("off" | "0" | "no"));
    let mut app = App::new(cwd, client.is_remote(), bell);
    app.relay = config.relay;
    if let Client::Local(node) = client.as_ref()
        && let Some(moved) = node.port_moved()
    {
        app.note(moved);
    }
    if let Some(note) = &config.nick_cut {
        app.note(note.clone());
    }
    let watch = Arc::new(std::sync::Mutex::new(watch::FolderWatch::new(tx.clone())));
    let theme = view::Theme::from_env();

    let mut terminal = enter()?;
    read_terminal_events(tx.clone());
    if let Ok(size) = terminal.size() {
        app.update(Msg::Resize(size.width, size.height));
    }
    let started = Instant::now();
    let first = app.start();
    carry_out(first, &client, &tx, &watch);

    let mut ticks = tokio::time::interval(TICK);
    // A terminal closed (SIGHUP) or a `kill` (SIGTERM) still restores it and stops the node.
    let mut hangup = signal(tokio::signal::unix::SignalKind::hangup());
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate());
    let mut last_frame: Option<Instant> = None;
    let mut dirty = true;
    let result = loop {
        if dirty {
            if let Some(at) = last_frame
                && at.elapsed() < FRAME
            {
                tokio::time::sleep(FRAME - at.elapsed()).await;
                // Keys typed during the wait go into this frame, not the next one.
                while let Ok(msg) = rx.try_recv() {
                    let cmds = app.update(msg);
                    carry_out(cmds, &client, &tx, &watch);
                }
                if app.quit {
                    break Ok(());
                }
            }
            if let Err(e) = terminal.draw(|f| view::draw(f, &app, &theme)) {
                break Err(anyhow::Error::new(e).context("cannot draw"));
            }
            last_frame = Some(Instant::now());
            dirty = false;
        }
        let first = tokio::select! {
            m = rx.recv() => m,
            _ = ticks.tick() => Some(Msg::Tick(started.elapsed())),
            _ = hangup.recv() => break Ok(()),
            _ = terminate.recv() => break Ok(()),
        };
        let Some(first) = first else { break Ok(()) };
        // Everything already waiting, then one frame.
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(msg) = next.take() {
            let quiet_tick = matches!(msg, Msg::Tick(_)) && app.status_text().is_none();
            let cmds = app.update(msg);
            dirty |= !quiet_tick;
            carry_out(cmds, &client, &tx, &watch);
            handled += 1;
            if handled < 1024 {
                next = rx.try_recv().ok();
            }
        }
        if app.quit {
            break Ok(());
        }
    };
    leave(&mut terminal);
    match Arc::try_unwrap(client) {
        Ok(client) => client.close().await,
        // A request still holds it: stop our own node all the same.
        Err(client) => {
            if let Client::Local(node) = client.as_ref() {
                node.shutdown().await;
            }
        }
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// A signal stream, or one that never fires where signals can't be had.
fn signal(kind: tokio::signal::unix::SignalKind) -> Signal {
    Signal(tokio::signal::unix::signal(kind).ok())
}

struct Signal(Option<tokio::signal::unix::Signal>);

impl Signal {
    async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Subscribe before the first snapshot, so no event falls between them.
async fn subscribe(client: &Client, tx: mpsc::Sender<Msg>) -> Result<()> {
    let mut replies = client.request(Request::Subscribe).await?;
    match replies.recv().await {
        Some(Reply::Subscribed { .. }) => {}
        Some(Reply::Failed { message }) => anyhow::bail!(message),
        _ => anyhow::bail!("the node did not start its event stream"),
    }
    tokio::spawn(async move {
        while let Some(reply) = replies.recv().await {
            let msg = match reply {
                Reply::Event(e) => Msg::Node(e),
                Reply::Lagged { .. } => Msg::Lagged,
                Reply::Failed { message } => Msg::NodeGone(message),
                Reply::Done => Msg::NodeGone("it shut down".into()),
                _ => continue,
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Msg::NodeGone("the event stream ended".into())).await;
    });
    Ok(())
}

fn carry_out(cmds: Vec<Cmd>, client: &Arc<Client>, tx: &mpsc::Sender<Msg>, watch: &Arc<std::sync::Mutex<watch::FolderWatch>>) {
    for cmd in cmds {
        match cmd {
            Cmd::Call { tag, request } => {
                let (client, tx) = (client.clone(), tx.clone());
                tokio::spawn(async move {
                    match client.request(request).await {
                        Ok(mut replies) => {
                            while let Some(reply) = replies.recv().await {
                                if tx.send(Msg::Reply { tag, reply }).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            let reply = Reply::Failed { message: format!("{e:#}") };
                            let _ = tx.send(Msg::Reply { tag, reply }).await;
                        }
                    }
                });
            }
            Cmd::ListLocal(dir) => {
                let (tx, watch) = (tx.clone(), watch.clone());
                tokio::task::spawn_blocking(move || {
                    // Watched before it is read: a change in between is listed again, not lost.
                    if let Ok(mut w) = watch.lock() {
                        w.follow(&dir);
                    }
                    let result = files::read_local(&dir);
                    let _ = tx.blocking_send(Msg::Local { dir, result });
                });
            }
            Cmd::Bell => {
                let mut out = std::io::stdout();
                let _ = out.write_all(b"\x07");
                let _ = out.flush();
            }
            Cmd::Quit => {}
        }
    }
}

/// Keys, mouse, paste, resize and focus, read on a thread of their own (crossterm's read
/// blocks) and handed to the loop.
fn read_terminal_events(tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        loop {
            let msg = match event::read() {
                Ok(event::Event::Key(k)) if k.kind != event::KeyEventKind::Release => Msg::Key(k),
                Ok(event::Event::Mouse(m)) => Msg::Mouse(m),
                Ok(event::Event::Paste(s)) => Msg::Paste(s),
                Ok(event::Event::Resize(w, h)) => Msg::Resize(w, h),
                Ok(event::Event::FocusGained) => Msg::Focus(true),
                Ok(event::Event::FocusLost) => Msg::Focus(false),
                Ok(_) => continue,
                Err(_) => return,
            };
            if tx.blocking_send(msg).is_err() {
                return;
            }
        }
    });
}

type Term = ratatui::DefaultTerminal;

/// The alternate screen, raw mode, mouse, paste and focus reports; undone on the way out and
/// also by a panic (ratatui's hook restores the screen, ours the rest first).
fn enter() -> Result<Term> {
    let terminal = ratatui::try_init().context("cannot set up the terminal (is this a terminal?)")?;
    let _ = execute!(std::io::stdout(), EnableMouseCapture, EnableBracketedPaste, EnableFocusChange);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(std::io::stdout(), DisableMouseCapture, DisableBracketedPaste, DisableFocusChange);
        previous(info);
    }));
    Ok(terminal)
}

fn leave(terminal: &mut Term) {
    let _ = terminal.show_cursor();
    let _ = execute!(std::io::stdout(), DisableMouseCapture, DisableBracketedPaste, DisableFocusChange);
    ratatui::restore();
}
