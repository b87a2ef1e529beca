//! `send`, `ls` and `get`: the node side (run by [`super::local::execute`], in a one-shot node
//! or in the running node behind the control socket) and the terminal side (progress bars on
//! stderr, results on stdout).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use super::local::{Reply, Request, Session};
use super::output;
use crate::config::Config;
use crate::node::share::{EntryKind, ShareEntry};
use crate::node::transfer::Outcome;
use crate::node::{Event, NodeHandle, lock};
use crate::text::{human_bytes, io_reason, one_line, plural, printable};

/// How long a one-shot command waits to find a peer named by nick.
const RESOLVE_WAIT: Duration = Duration::from_secs(5);

type Labels = Arc<Mutex<HashMap<String, String>>>;

fn label_of(labels: &Labels, transfer: &str) -> Option<String> {
    lock(labels).get(transfer).cloned()
}

/// Forward progress events of our transfers until `work` ends; then return its result.
async fn with_progress<T>(
    mut events: broadcast::Receiver<Event>,
    labels: Labels,
    out: &mpsc::Sender<Reply>,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            r = &mut work => return r,
            e = events.recv() => match e {
                Ok(Event::Progress(p)) => {
                    if let Some(peer) = label_of(&labels, &p.transfer) {
                        let _ = out.try_send(Reply::Progress { peer, progress: p });
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return work.await,
            },
        }
    }
}

pub(super) async fn send(node: &NodeHandle, peers: Vec<String>, paths: Vec<PathBuf>, out: &mpsc::Sender<Reply>) -> Result<()> {
    if peers.is_empty() || paths.is_empty() {
        bail!("give at least one peer and one path: lanyard send PEER... -- PATH...");
    }
    let labels: Labels = Arc::default();
    let events = node.subscribe();
    let mut jobs = JoinSet::new();
    for spec in peers.clone() {
        let (node, paths, labels) = (node.clone(), paths.clone(), labels.clone());
        jobs.spawn(async move {
            let result = async {
                let id = node.resolve(&spec, RESOLVE_WAIT).await.map_err(|e| format!("{e:#}"))?;
                let task = node.send(&id, &paths).await.map_err(|e| format!("{e:#}"))?;
                lock(&labels).insert(task.id.clone(), spec.clone());
                task.wait().await.map_err(|e| e.to_string())
            }
            .await;
            (spec, result)
        });
    }
    let results = with_progress(events, labels, out, async {
        let mut results = Vec::new();
        while let Some(joined) = jobs.join_next().await {
            if let Ok(r) = joined {
                results.push(r);
            }
        }
        results
    })
    .await;
    let mut failed = 0;
    for (peer, result) in results {
        let reply = match result {
            Ok(outcome) => {
                failed += usize::from(!outcome.all_ok());
                Reply::Finished { peer, outcome }
            }
            Err(error) => {
                failed += 1;
                Reply::NotDelivered { peer, error }
            }
        };
        let _ = out.send(reply).await;
    }
    match failed {
        0 => Ok(()),
        n => Err(anyhow!("{n} of {} did not get every file", plural(peers.len(), "recipient"))),
    }
}

pub(super) async fn list(node: &NodeHandle, peer: &str, path: &str, out: &mpsc::Sender<Reply>) -> Result<()> {
    let id = node.resolve(peer, RESOLVE_WAIT).await?;
    let entries = node.list(&id, path).await?;
    let _ = out.send(Reply::Listing { entries }).await;
    Ok(())
}

pub(super) async fn get(node: &NodeHandle, peer: &str, paths: Vec<String>, to: Option<PathBuf>, out: &mpsc::Sender<Reply>) -> Result<()> {
    let id = node.resolve(peer, RESOLVE_WAIT).await?;
    let labels: Labels = Arc::default();
    let events = node.subscribe();
    let task = node.get(&id, &paths, to).await?;
    lock(&labels).insert(task.id.clone(), peer.to_string());
    let outcome = with_progress(events, labels, out, task.wait()).await?;
    let ok = outcome.all_ok();
    let failed = outcome.failed.len();
    let _ = out
        .send(Reply::Finished {
            peer: peer.to_string(),
            outcome,
        })
        .await;
    if !ok {
        bail!("{} did not arrive", plural(failed, "file"));
    }
    Ok(())
}

// ---- the terminal side ----

/// Live bars on stderr, one per peer.
struct Bars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            bars: HashMap::new(),
        }
    }

    fn update(&mut self, peer: &str, p: &crate::node::transfer::Progress) {
        let multi = &self.multi;
        let bar = self.bars.entry(peer.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(p.total));
            let style = ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(printable(peer).into_owned());
            bar
        });
        bar.set_length(p.total);
        bar.set_position(p.bytes);
        bar.set_message(format!("{} ({}/{})", printable(&p.file), p.files_done, p.files));
    }

    fn finish(&mut self, peer: &str) {
        if let Some(bar) = self.bars.remove(peer) {
            bar.finish_and_clear();
        }
    }
}

fn outcome_line(peer: &str, o: &Outcome) -> String {
    let resumed = if o.resumed > 0 {
        format!(", {} resumed", human_bytes(o.resumed))
    } else {
        String::new()
    };
    let renamed = saved_as_text(o);
    if o.all_ok() {
        format!(
            "{}: {}, {} verified{resumed}{renamed}",
            printable(peer),
            plural(o.files, "file"),
            human_bytes(o.bytes)
        )
    } else {
        let mut s = format!(
            "{}: {} verified{renamed}; {} failed:",
            printable(peer),
            plural(o.files, "file"),
            o.failed.len()
        );
        for (path, reason) in o.failed.iter().take(20) {
            s.push_str(&format!("\n  {}: {}", printable(path), one_line(reason)));
        }
        s
    }
}

/// ` → saved as "report (1).pdf"` when the receiver chose other names; the first two of many.
fn saved_as_text(o: &Outcome) -> String {
    const SHOWN: usize = 2;
    if o.saved_as.is_empty() {
        return String::new();
    }
    let names: Vec<String> = o
        .saved_as
        .iter()
        .take(SHOWN)
        .map(|(_, saved)| format!("\"{}\"", one_line(saved)))
        .collect();
    let more = match o.saved_as.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(" → saved as {}{more}", names.join(", "))
}

/// Run a transfer request, drawing its progress. Ctrl-C stops this command; the transfer itself
/// belongs to whichever node runs it: this process's own (it stops too, and its partial data is
/// kept, so the same command resumes) or the node already running on the data dir (it carries on).
async fn run_with_bars(session: Session, request: Request, mut show: impl FnMut(&Reply)) -> Result<ExitCode> {
    let interrupted = if session.is_remote() {
        "interrupted: the lanyard node running on this data dir carries on with the transfer"
    } else {
        "interrupted; run the same command again to resume"
    };
    let mut rx = session.request(request).await?;
    let mut bars = Bars::new();
    let result = loop {
        let reply = tokio::select! {
            r = rx.recv() => r,
            _ = super::interrupted() => break Err(anyhow!(interrupted)),
        };
        match reply {
            None => break Err(anyhow!("the request ended without an answer")),
            Some(Reply::Progress { peer, progress }) => bars.update(&peer, &progress),
            Some(Reply::Done) => break Ok(ExitCode::SUCCESS),
            Some(Reply::Failed { message }) => break Err(anyhow!(message)),
            Some(other) => {
                if let Reply::Finished { peer, .. } | Reply::NotDelivered { peer, .. } = &other {
                    bars.finish(peer);
                }
                show(&other);
            }
        }
    };
    let _ = bars.multi.clear();
    session.close().await;
    result
}

pub(super) async fn send_command(config: &Config, peers: Vec<String>, paths: Vec<PathBuf>) -> Result<ExitCode> {
    // A typo in a path is ours to report at once, named as typed: before any peer is looked up
    // or any node (this one or the running one) is asked. Following links, as sending does.
    for path in &paths {
        if let Err(e) = std::fs::metadata(path) {
            bail!("cannot send \"{}\": {}", printable(&path.to_string_lossy()), io_reason(&e));
        }
    }
    let paths = paths.iter().map(std::path::absolute).collect::<std::io::Result<Vec<_>>>()?;
    let session = Session::open(config).await?;
    run_with_bars(session, Request::Send { peers, paths }, |reply| match reply {
        Reply::Finished { peer, outcome } => println!("{}", outcome_line(peer, outcome)),
        Reply::NotDelivered { peer, error } => println!("{}: not delivered: {}", printable(peer), one_line(error)),
        _ => {}
    })
    .await
}

pub(super) async fn get_command(config: &Config, peer: String, paths: Vec<String>, to: Option<PathBuf>) -> Result<ExitCode> {
    let to = to.map(|t| std::path::absolute(&t)).transpose()?;
    let session = Session::open(config).await?;
    run_with_bars(session, Request::Get { peer, paths, to }, |reply| {
        if let Reply::Finished { peer, outcome } = reply {
            println!("{}", outcome_line(peer, outcome));
            for path in outcome.saved.iter().take(20) {
                println!("  {}", printable(&path.to_string_lossy()));
            }
        }
    })
    .await
}

pub(super) async fn ls_command(config: &Config, peer: String, path: Option<String>, json: bool) -> Result<ExitCode> {
    let session = Session::open(config).await?;
    let rx = session
        .request(Request::List {
            peer,
            path: path.unwrap_or_default(),
        })
        .await?;
    let code = super::drain(rx, |reply| {
        if let Reply::Listing { entries } = reply {
            if json {
                println!("{}", output::json(entries));
            } else {
                println!("{}", listing_table(entries));
            }
        }
    })
    .await;
    session.close().await;
    code
}

fn listing_table(entries: &[ShareEntry]) -> String {
    if entries.is_empty() {
        return "(empty)".into();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let (name, size) = match e.kind {
                EntryKind::Dir => (format!("{}/", e.name), String::new()),
                EntryKind::File => (e.name.clone(), human_bytes(e.size)),
            };
            vec![
                name,
                size,
                e.modified
                    .map(|secs| output::utc_minute(secs.saturating_mul(1000)))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["NAME", "SIZE", "MODIFIED (UTC)"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_and_results_neutralise_names() {
        let entries = vec![ShareEntry {
            name: "a\u{1b}[2J".into(),
            kind: EntryKind::File,
            size: 2048,
            modified: Some(0),
        }];
        let t = listing_table(&entries);
        assert!(!t.contains('\u{1b}') && t.contains("2.00 KiB"), "{t}");
        let o = Outcome {
            failed: vec![("x\u{7}".into(), "bad\nthing".into())],
            ..Outcome::default()
        };
        let one = Outcome {
            files: 1,
            bytes: 1,
            ..Outcome::default()
        };
        assert_eq!(outcome_line("bob", &one), "bob: 1 file, 1 B verified");
        let two = Outcome {
            files: 2,
            bytes: 3 << 20,
            ..Outcome::default()
        };
        assert_eq!(outcome_line("bob", &two), "bob: 2 files, 3.00 MiB verified");
        let renamed = Outcome {
            saved_as: vec![("report.pdf".into(), "report (1).pdf".into())],
            ..one.clone()
        };
        assert_eq!(
            outcome_line("bob", &renamed),
            "bob: 1 file, 1 B verified → saved as \"report (1).pdf\""
        );
        let many = Outcome {
            saved_as: (1..=5).map(|i| (format!("f{i}"), format!("f{i} (1)"))).collect(),
            ..two.clone()
        };
        assert_eq!(
            outcome_line("bob", &many),
            "bob: 2 files, 3.00 MiB verified → saved as \"f1 (1)\", \"f2 (1)\" and 3 more"
        );
        let line = outcome_line("bob\u{1b}", &o);
        assert!(
            !line.contains('\u{1b}') && !line.contains('\u{7}') && line.contains("bad thing"),
            "{line}"
        );
    }
}
