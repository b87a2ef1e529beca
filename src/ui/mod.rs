//! The terminal UI: what a person in the lab launches. Elm-shaped: [`app::App`] is the state,
//! [`app::App::update`] the only place it changes (keys, node events and replies in; commands
//! out as data), [`view::draw`] paints it and nothing else. This module is the loop around them:
//! it drains a burst of messages, updates, then draws once: at once after a key, at most ~30
//! times a second for everything else. It runs on a thread of its own, so a receive busy on the
//! node's runtime never holds a frame.
//!
//! The UI talks to the node only through the face API ([`crate::node::control::Client`]): its
//! own node, or — when `serve` already runs on the data dir — that one, over the control socket.
//!
//! Its files: `mod.rs` (the loop), `app` (the state and `update`; each pane's keys in
//! `app/peer_keys`, `app/chat_keys`, `app/file_keys`, `app/transfer_keys`), `keys` (the keymap
//! table), `help` (the help overlay's rows), `layout` (where panes go), `files` (the file
//! columns' state), `input` (line editing), `watch` (the local folder watched), `view/` (drawing),
//! `tests` (`update` and drawing checked against snapshots in `snapshots/`), `deposit_tests`
//! (the same for the Deposits column, `d` and `g`).

pub mod app;
pub mod files;
pub mod help;
pub mod input;
pub mod keys;
pub mod layout;
pub mod view;
mod watch;

#[cfg(test)]
mod deposit_tests;
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
use tokio::sync::{mpsc, oneshot};

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
    let (tx, rx) = mpsc::channel::<Msg>(4096);
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
    let jobs = Jobs {
        node: tokio::runtime::Handle::current(),
        client: client.clone(),
        tx: tx.clone(),
        watch,
    };

    let mut terminal = enter()?;
    read_terminal_events(tx.clone());
    drop(tx);
    if let Ok(size) = terminal.size() {
        app.update(Msg::Resize(size.width, size.height));
    }
    let started = Instant::now();
    let first = app.start();
    jobs.carry_out(first);

    // The loop runs on a thread and runtime of its own: a key is drawn without waiting for a
    // worker of the node's runtime (busy decrypting a receive) or for its timers.
    let (stop, stopped) = oneshot::channel::<()>();
    let (done, finished) = oneshot::channel::<Result<()>>();
    let ui = std::thread::Builder::new().name("lanyard-ui".into()).spawn(move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .context("cannot start the UI's runtime")
            .and_then(|rt| rt.block_on(frames(app, &mut terminal, rx, jobs, theme, started, stopped)));
        // Its cursor restore done before the main thread leaves the screen.
        drop(terminal);
        let _ = done.send(result);
    });
    if let Err(e) = ui {
        leave();
        return Err(anyhow::Error::new(e).context("cannot start the UI's thread"));
    }
    // A terminal closed (SIGHUP) or a `kill` (SIGTERM) still restores it and stops the node.
    let mut hangup = signal(tokio::signal::unix::SignalKind::hangup());
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate());
    let mut finished = std::pin::pin!(finished);
    let mut stop = Some(stop);
    let ended = loop {
        tokio::select! {
            ended = &mut finished => break ended,
            _ = hangup.recv() => {}
            _ = terminate.recv() => {}
        }
        if let Some(stop) = stop.take() {
            let _ = stop.send(());
        }
    };
    leave();
    // An error: the loop's thread panicked (ratatui's hook put the screen back already).
    let result = ended.unwrap_or_else(|_| Err(anyhow::anyhow!("the UI stopped unexpectedly")));
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

/// Input that a person made: drawn at once. Everything else (progress, a peer's line) waits
/// for the frame cap, so a burst of events is one frame.
fn by_hand(msg: &Msg) -> bool {
    match msg {
        Msg::Key(_) | Msg::Paste(_) | Msg::Resize(..) => true,
        Msg::Mouse(m) => !matches!(m.kind, event::MouseEventKind::Moved),
        _ => false,
    }
}

/// The loop: drain a burst of messages, update, then draw once — at once after a key, at most
/// every FRAME otherwise. Until `q`, the node going away or `stop`.
async fn frames(
    mut app: App,
    terminal: &mut Term,
    mut rx: mpsc::Receiver<Msg>,
    jobs: Jobs,
    theme: view::Theme,
    started: Instant,
    mut stop: oneshot::Receiver<()>,
) -> Result<()> {
    let mut ticks = tokio::time::interval(TICK);
    let mut last_frame: Option<Instant> = None;
    let mut dirty = true;
    let mut urgent = false;
    loop {
        let due = last_frame.map_or_else(Instant::now, |at| at + FRAME);
        if dirty && (urgent || Instant::now() >= due) {
            terminal.draw(|f| view::draw(f, &app, &theme)).context("cannot draw")?;
            last_frame = Some(Instant::now());
            dirty = false;
            urgent = false;
        }
        let first = tokio::select! {
            m = rx.recv() => m,
            _ = ticks.tick() => Some(Msg::Tick(started.elapsed())),
            // The frame cap is over: draw what changed meanwhile.
            _ = tokio::time::sleep_until(due.into()), if dirty => continue,
            _ = &mut stop => return Ok(()),
        };
        let Some(first) = first else { return Ok(()) };
        // Everything already waiting, then one frame.
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(msg) = next.take() {
            let quiet_tick = matches!(msg, Msg::Tick(_)) && app.status_text().is_none();
            urgent |= by_hand(&msg);
            let cmds = app.update(msg);
            dirty |= !quiet_tick;
            jobs.carry_out(cmds);
            handled += 1;
            if handled < 1024 {
                next = rx.try_recv().ok();
            }
        }
        if app.quit {
            return Ok(());
        }
    }
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
        Some(Reply::Failed { kind, message }) => return Err(crate::node::api::Failure { kind, message }.into()),
        _ => anyhow::bail!("the node did not start its event stream"),
    }
    tokio::spawn(async move {
        while let Some(reply) = replies.recv().await {
            let msg = match reply {
                Reply::Event(e) => Msg::Node(e),
                Reply::Lagged { .. } => Msg::Lagged,
                Reply::Failed { message, .. } => Msg::NodeGone(message),
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

/// Where the loop's commands run: requests on the node's runtime, folder reads on its
/// blocking pool; never on the UI's thread.
struct Jobs {
    node: tokio::runtime::Handle,
    client: Arc<Client>,
    tx: mpsc::Sender<Msg>,
    watch: Arc<std::sync::Mutex<watch::FolderWatch>>,
}

impl Jobs {
    fn carry_out(&self, cmds: Vec<Cmd>) {
        for cmd in cmds {
            match cmd {
                Cmd::Call { tag, request } => {
                    let (client, tx) = (self.client.clone(), self.tx.clone());
                    self.node.spawn(async move {
                        match client.request(request).await {
                            Ok(mut replies) => {
                                while let Some(reply) = replies.recv().await {
                                    if tx.send(Msg::Reply { tag, reply }).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(e) => {
                                let reply = Reply::Failed {
                                    kind: crate::node::api::FailKind::of(&e),
                                    message: format!("{e:#}"),
                                };
                                let _ = tx.send(Msg::Reply { tag, reply }).await;
                            }
                        }
                    });
                }
                Cmd::ListLocal(dir) => {
                    let (tx, watch) = (self.tx.clone(), self.watch.clone());
                    self.node.spawn_blocking(move || {
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

fn leave() {
    let _ = execute!(
        std::io::stdout(),
        ratatui::crossterm::cursor::Show,
        DisableMouseCapture,
        DisableBracketedPaste,
        DisableFocusChange
    );
    ratatui::restore();
}
