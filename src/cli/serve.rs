//! `lanyard serve`: a headless node. With `--json`, one event per line on stdout; otherwise a
//! line a person can read.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::output::json_line;
use crate::config::Config;
use crate::node::transfer::Direction;
use crate::node::{Event, NodeHandle};
use crate::text::{human_bytes, plural, printable};

pub async fn run(config: &Config, accept_all: bool, json: bool) -> Result<ExitCode> {
    let node = NodeHandle::start(config.serving_node(accept_all)).await?;
    // Subscribed before anything can happen that subscribers care about, except `Listening`,
    // which is printed from the handle directly.
    let mut events = node.subscribe();
    super::local::serve_socket(node.clone()).await?;
    let listening = Event::Listening {
        id: node.id().clone(),
        nick: node.nick(),
        addr: node.listen_addr().map(|a| a.to_string()).unwrap_or_default(),
    };
    let mut lines = String::new();
    push_line(&mut lines, &listening, json, &node);
    write_lines(&mut lines);
    // One listener for the whole run: a signal that arrives while events are being written
    // is kept for the next look, not lost with a listener made afresh each time.
    let interrupted = super::interrupted();
    tokio::pin!(interrupted);
    loop {
        let first = tokio::select! {
            _ = &mut interrupted => break,
            e = events.recv() => e,
        };
        // Every event already waiting goes out in one write (a burst of received files is
        // thousands of lines); the output is flushed whenever nothing more is waiting.
        let mut next = Some(first);
        let mut closed = false;
        while let Some(e) = next.take() {
            match e {
                Ok(Event::Listening { .. }) => {}
                Ok(event) => push_line(&mut lines, &event, json, &node),
                Err(RecvError::Lagged(n)) => push_line(
                    &mut lines,
                    &Event::Warning {
                        message: format!("{} dropped (output too slow)", plural(n, "event")),
                    },
                    json,
                    &node,
                ),
                Err(RecvError::Closed) => {
                    closed = true;
                    break;
                }
            }
            if lines.len() >= MAX_BATCH_BYTES {
                write_lines(&mut lines);
            }
            next = match events.try_recv() {
                Ok(e) => Some(Ok(e)),
                Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                Err(TryRecvError::Empty) => None,
            };
        }
        write_lines(&mut lines);
        if closed {
            break;
        }
    }
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Output gathered before a write, at most (roughly).
const MAX_BATCH_BYTES: usize = 64 << 10;

fn push_line(lines: &mut String, event: &Event, json: bool, node: &NodeHandle) {
    let line = if json { json_line(event) } else { human(event, node) };
    lines.push_str(&line);
    lines.push('\n');
}

fn write_lines(lines: &mut String) {
    if lines.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    // A closed stdout (a pipe whose reader left) must not kill the node.
    let _ = out.write_all(lines.as_bytes());
    let _ = out.flush();
    lines.clear();
}

fn human(event: &Event, node: &NodeHandle) -> String {
    let time = super::output::utc_clock_now();
    let text = match event {
        Event::Listening { id, nick, addr } => {
            format!(
                "serving as {} (id {id}, fingerprint {}) on {addr}",
                printable(nick),
                node.fingerprint()
            )
        }
        Event::PeerUp { id, nick, host, addr } => format!("{} ({}, {}) is up at {addr}", printable(nick), id.short(), printable(host)),
        Event::PeerDown { id, nick, reason } => format!("{} ({}) is down: {}", printable(nick), id.short(), printable(reason)),
        Event::PeerRenamed { id, old, new } => format!("{} ({}) is now called {}", printable(old), id.short(), printable(new)),
        Event::Warning { message } => format!("warning: {}", printable(message)),
        Event::ChatReceived {
            from, nick, room, text, ..
        } => {
            let place = if *room { " in #all" } else { "" };
            format!("{} ({}){place}: {}", printable(nick), from.short(), printable(text))
        }
        Event::ChatQueued { id, to, text, .. } => {
            let to = node.peer_label(to);
            format!(
                "you to {}: {} (queued, message {})",
                printable(&to),
                printable(text),
                &id[..id.len().min(8)]
            )
        }
        Event::ChatDelivered { id, to } => {
            let to = node.peer_label(to.as_str());
            format!("message {} delivered to {}", &id[..id.len().min(8)], printable(&to))
        }
        Event::Offer {
            transfer,
            nick,
            files,
            bytes,
            ..
        } => format!(
            "{} offers {} ({}), transfer {transfer}",
            printable(nick),
            plural(*files, "file"),
            human_bytes(*bytes)
        ),
        Event::Progress(p) => {
            let verb = match p.direction {
                Direction::Send => "sending",
                Direction::Receive => "receiving",
            };
            let file = if p.file.is_empty() {
                String::new()
            } else {
                format!(" {}", printable(&p.file))
            };
            format!(
                "transfer {} {verb}{file}: {} of {} ({}%)",
                p.transfer,
                human_bytes(p.bytes),
                human_bytes(p.total),
                p.percent
            )
        }
        Event::FileReceived { path, size, .. } => format!("received {} ({})", printable(path), human_bytes(*size)),
        Event::Done {
            transfer,
            files,
            bytes,
            failed,
            ..
        } => match failed {
            0 => format!(
                "transfer {transfer} done: {}, {}, all verified",
                plural(*files, "file"),
                human_bytes(*bytes)
            ),
            n => format!("transfer {transfer} done: {} verified, {n} failed", plural(*files, "file")),
        },
        Event::Error { transfer, message, .. } => format!("transfer {transfer} failed: {}", printable(message)),
        Event::Cancelled { transfer, reason, .. } => format!("transfer {transfer} cancelled: {}", printable(reason)),
    };
    format!("{time} {text}")
}
