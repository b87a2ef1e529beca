//! `lanyard serve`: a headless node. With `--json`, the versioned event lines of
//! [`super::serve_json`]; otherwise one log a person can read: human units, each offer with the
//! command that answers it, progress every few seconds.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::output::utc_clock_now;
use super::serve_json;
use crate::config::Config;
use crate::node::api::{Direction, NodeHandle, TransferState, TransferView};
use crate::node::control;
use crate::node::events::{Envelope, Event, RecvError};
use crate::text::{human_bytes, plural, printable};

/// A running transfer's progress is logged at most this often (its changes of state always).
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Output gathered before a write, at most (roughly).
const MAX_BATCH_BYTES: usize = 64 << 10;

pub async fn run(config: &Config, accept_all: bool, json: bool) -> Result<ExitCode> {
    let node = NodeHandle::start(config.serving_node(accept_all)).await?;
    // Offers from untrusted peers wait for `lanyard accept` (or the TUI) instead of being
    // refused because no one here could answer.
    let _answerer = node.answer_offers();
    // Subscribed before anything can happen that subscribers care about, except `Listening`,
    // which is printed from the handle directly.
    let mut events = node.subscribe();
    control::serve_socket(node.clone()).await?;
    let mut log = Log {
        json,
        lines: String::new(),
        progress: HashMap::new(),
    };
    log.starting(&node, accept_all);
    log.flush();
    // One listener for the whole run: a signal that arrives while events are being written
    // is kept for the next look, not lost with a listener made afresh each time.
    let interrupted = super::interrupted();
    tokio::pin!(interrupted);
    'run: loop {
        let first = tokio::select! {
            _ = &mut interrupted => break,
            e = events.next() => e,
        };
        // Every event already waiting goes out in one write (a burst of received files is
        // thousands of lines); the output is flushed whenever nothing more is waiting.
        let mut next = Some(first);
        while let Some(e) = next.take() {
            match e {
                Ok(Envelope {
                    event: Event::Listening { .. },
                    ..
                }) => {}
                Ok(envelope) => log.event(&envelope, &node),
                Err(RecvError::Lagged(l)) => log.lagged(l.missed),
                Err(RecvError::Closed) => {
                    log.flush();
                    break 'run;
                }
            }
            if log.lines.len() >= MAX_BATCH_BYTES {
                log.flush();
            }
            next = events.try_next().transpose();
        }
        log.flush();
    }
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

struct Log {
    json: bool,
    lines: String,
    /// Per running transfer: when its progress was last logged, and in which state.
    progress: HashMap<String, (Instant, TransferState)>,
}

impl Log {
    fn push(&mut self, line: &str) {
        self.lines.push_str(line);
        self.lines.push('\n');
    }

    fn human(&mut self, text: &str) {
        let line = format!("{} {text}", utc_clock_now());
        self.push(&line);
    }

    fn flush(&mut self) {
        if self.lines.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout (a pipe whose reader left) must not kill the node.
        let _ = out.write_all(self.lines.as_bytes());
        let _ = out.flush();
        self.lines.clear();
    }

    fn starting(&mut self, node: &NodeHandle, accept_all: bool) {
        let addr = node.listen_addr().map(|a| a.to_string()).unwrap_or_default();
        if self.json {
            let envelope = Envelope {
                seq: 0,
                event: Event::Listening {
                    id: node.id().clone(),
                    nick: node.nick(),
                    addr,
                },
            };
            for line in serve_json::lines(&envelope) {
                self.push(&line);
            }
            if let Some(message) = node.port_moved() {
                let warning = Envelope {
                    seq: 0,
                    event: Event::Warning { message },
                };
                for line in serve_json::lines(&warning) {
                    self.push(&line);
                }
            }
            return;
        }
        let config = node.config();
        self.human(&format!(
            "serving as {} (id {}, fingerprint {}) on {addr}",
            printable(&node.nick()),
            node.id(),
            node.fingerprint()
        ));
        let shares = if config.shares.is_empty() {
            "nothing (add --share DIR)".to_string()
        } else {
            config
                .shares
                .iter()
                .map(|s| printable(&s.display().to_string()).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(moved) = node.port_moved() {
            self.human(&format!("note: {moved}"));
        }
        if let Some(ls) = node.localsend() {
            self.human(&format!(
                "LocalSend devices reach this node on TCP port {} (fingerprint {}…)",
                ls.port,
                &ls.fingerprint[..16]
            ));
        }
        self.human(&format!("sharing {shares}"));
        let answer = if accept_all {
            "every offer is accepted (--accept-all)"
        } else {
            "offers from untrusted peers wait for `lanyard accept`"
        };
        self.human(&format!(
            "files land in {}; {answer}",
            printable(&config.download_dir.display().to_string())
        ));
    }

    fn lagged(&mut self, missed: u64) {
        if self.json {
            let line = serve_json::lagged(missed);
            self.push(&line);
        } else {
            self.human(&format!("warning: {} not shown (output too slow)", plural(missed, "event")));
        }
    }

    fn event(&mut self, envelope: &Envelope, node: &NodeHandle) {
        if self.json {
            for line in serve_json::lines(envelope) {
                self.push(&line);
            }
            return;
        }
        if let Some(text) = self.human_text(&envelope.event, node) {
            self.human(&text);
        }
    }

    /// A running transfer's line, unless one was logged recently in the same state.
    fn progress_text(&mut self, p: &TransferView) -> Option<String> {
        if p.state.is_finished() {
            self.progress.remove(&p.transfer);
            return None;
        }
        let now = Instant::now();
        if let Some((at, state)) = self.progress.get(&p.transfer)
            && *state == p.state
            && now.duration_since(*at) < PROGRESS_EVERY
        {
            return None;
        }
        self.progress.insert(p.transfer.clone(), (now, p.state));
        let who = format!("{} ({})", printable(&p.nick), p.peer.short());
        Some(match (p.state, p.direction) {
            (TransferState::Connecting, _) => return None,
            (TransferState::Waiting, Direction::Send) => format!("transfer {}: waiting for {who} to accept", p.transfer),
            (TransferState::Waiting, Direction::Receive) => return None,
            (_, direction) => {
                let verb = match direction {
                    Direction::Send => "to",
                    Direction::Receive => "from",
                };
                let file = if p.file.is_empty() {
                    String::new()
                } else {
                    format!(", {}", printable(&p.file))
                };
                let eta = p.eta_secs.map(|s| format!(", {s} s left")).unwrap_or_default();
                format!(
                    "transfer {} {verb} {who}: {} of {} ({}%), {}/s{eta}{file}",
                    p.transfer,
                    human_bytes(p.bytes),
                    human_bytes(p.total),
                    p.percent,
                    human_bytes(p.rate),
                )
            }
        })
    }

    fn human_text(&mut self, event: &Event, node: &NodeHandle) -> Option<String> {
        Some(match event {
            Event::Listening { .. } | Event::ChatRead { .. } | Event::ChatSent { .. } | Event::TransferStarted(_) => return None,
            Event::PeerDiscovered { .. } | Event::PeerLost { .. } => return None,
            // The whole record again, for screens; each change has its own `Deposit` line.
            Event::Deposits { .. } => return None,
            Event::LocalSendDevice { device: d } => format!(
                "LocalSend device {} ({}, {}, {}) at {}",
                printable(&d.alias),
                d.kind,
                printable(d.model.as_deref().unwrap_or("?")),
                crate::cli::output::short_fingerprint(d),
                d.addr
            ),
            Event::PeerUp { id, nick, host, addr } => format!("{} ({}, {}) is up at {addr}", printable(nick), id.short(), printable(host)),
            Event::PeerDown { id, nick, reason } => format!("{} ({}) is down: {}", printable(nick), id.short(), printable(reason)),
            Event::PeerRenamed { id, old, new } => format!("{} ({}) is now called {}", printable(old), id.short(), printable(new)),
            Event::PeerForgotten { id } => format!("forgot peer {}", id.short()),
            Event::TrustChanged { id, trusted } => {
                let who = printable(&node.peer_label(id.as_str())).into_owned();
                if *trusted {
                    format!("files from {who} are now accepted without asking")
                } else {
                    format!("files from {who} need an answer again")
                }
            }
            Event::Warning { message } => format!("warning: {}", printable(message)),
            Event::Deposit {
                deposit,
                name,
                change,
                peer,
            } => format!(
                "deposit {} ({}): {change}, {}",
                printable(name),
                &deposit[..12.min(deposit.len())],
                peer.short()
            ),
            Event::ChatReceived {
                from, nick, room, text, ..
            } => {
                let place = if *room { " in #all" } else { "" };
                format!("{} ({}){place}: {}", printable(nick), from.short(), printable(text))
            }
            Event::ChatQueued { id, to, text, .. } => format!(
                "you to {}: {} (queued, message {})",
                printable(&node.peer_label(to)),
                printable(text),
                &id[..id.len().min(8)]
            ),
            Event::ChatRequeued { to, ids } => format!(
                "{} to {} queued again (the connection ended before they were acknowledged)",
                plural(ids.len() as u64, "message"),
                printable(&node.peer_label(to.as_str()))
            ),
            Event::ChatDelivered { id, to } => format!(
                "message {} delivered to {}",
                &id[..id.len().min(8)],
                printable(&node.peer_label(to.as_str()))
            ),
            Event::ChatRefused { id, to, reason } => format!(
                "message {} refused by {}: {}",
                &id[..id.len().min(8)],
                printable(&node.peer_label(to.as_str())),
                printable(reason)
            ),
            Event::Offer(o) => {
                let names = o.names.iter().map(|n| printable(n).into_owned()).collect::<Vec<_>>().join(", ");
                let more = if (o.names.len() as u32) < o.files { ", …" } else { "" };
                format!(
                    "{} ({}){} offers {}, {}: {names}{more}\n    accept: lanyard accept {}    reject: lanyard reject {}    (declined in 5 minutes without an answer)",
                    printable(&o.nick),
                    o.peer.short(),
                    super::output::via(o),
                    plural(u64::from(o.files), "file"),
                    human_bytes(o.bytes),
                    o.transfer,
                    o.transfer
                )
            }
            Event::OfferClosed { transfer, reason } => match reason.as_str() {
                "accepted" | "rejected" => format!("offer {transfer} {reason}"),
                "expired" => format!("offer {transfer} declined: nobody answered in time"),
                _ => format!("offer {transfer} withdrawn by its sender"),
            },
            Event::Progress(p) => return self.progress_text(p),
            Event::FilesReceived { files, .. } => {
                let first = files.first()?;
                if files.len() == 1 {
                    format!("received {} ({})", printable(&first.path), human_bytes(first.size))
                } else {
                    let bytes = files.iter().map(|f| f.size).sum();
                    format!(
                        "received {} ({}), first {}",
                        plural(files.len() as u64, "file"),
                        human_bytes(bytes),
                        printable(&first.path)
                    )
                }
            }
            Event::Done {
                transfer,
                files,
                bytes,
                failed,
                ..
            } => match failed {
                0 => format!(
                    "transfer {transfer} done: {}, {}, all verified",
                    plural(u64::from(*files), "file"),
                    human_bytes(*bytes)
                ),
                n => format!(
                    "transfer {transfer} done: {} verified, {} failed",
                    plural(u64::from(*files), "file"),
                    n
                ),
            },
            Event::Error { transfer, message, .. } => format!("transfer {transfer} failed: {}", printable(message)),
            Event::Cancelled { transfer, reason, .. } => format!("transfer {transfer} cancelled: {}", printable(reason)),
        })
    }
}
