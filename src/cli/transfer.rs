//! `send`, `ls` and `get` on a terminal: progress bars on stderr, results on stdout. The work
//! itself runs in the node ([`crate::node::api`]): this process's own, or the one already
//! running on the data dir.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output;
use crate::config::Config;
use crate::node::api::{EntryKind, FileFailure, Outcome, ShareEntry, TransferState, TransferView};
use crate::node::api::{Failure, Reply, Request};
use crate::node::control::Client;
use crate::text::{human_bytes, io_reason, one_line, plural, printable};

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

    fn update(&mut self, peer: &str, p: &TransferView) {
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
        match p.state {
            TransferState::Connecting => bar.set_message(format!("connecting to {}", printable(&p.nick))),
            TransferState::Waiting => bar.set_message(format!("waiting for {} to accept", printable(&p.nick))),
            _ => {
                let via = p.via.as_ref().map(|v| format!("via {}: ", printable(v))).unwrap_or_default();
                bar.set_message(format!("{via}{} ({}/{})", printable(&p.file), p.files_done, p.files))
            }
        }
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
        for FileFailure { path, reason, .. } in o.failed.iter().take(20) {
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
async fn run_with_bars(session: Client, request: Request, mut show: impl FnMut(&Reply)) -> Result<ExitCode> {
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
            Some(Reply::Failed { kind, message }) => break Err(Failure { kind, message }.into()),
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

pub(super) async fn send_command(config: &Config, peers: Vec<String>, paths: Vec<PathBuf>, pin: Option<String>) -> Result<ExitCode> {
    // A typo in a path is ours to report at once, named as typed: before any peer is looked up
    // or any node (this one or the running one) is asked. Following links, as sending does.
    for path in &paths {
        if let Err(e) = std::fs::metadata(path) {
            bail!("cannot send \"{}\": {}", printable(&path.to_string_lossy()), io_reason(&e));
        }
    }
    let paths = paths.iter().map(std::path::absolute).collect::<std::io::Result<Vec<_>>>()?;
    let session = Client::open(config.localsend_node()).await?;
    let relay = config.relay;
    run_with_bars(session, Request::Send { peers, paths, relay, pin }, |reply| match reply {
        Reply::Finished { peer, outcome } => outln!("{}", outcome_line(peer, outcome)),
        Reply::NotDelivered { peer, error } => outln!("{}: not delivered: {}", printable(peer), one_line(error)),
        _ => {}
    })
    .await
}

pub(super) async fn get_command(config: &Config, peer: String, paths: Vec<String>, to: Option<PathBuf>) -> Result<ExitCode> {
    let to = to.map(|t| std::path::absolute(&t)).transpose()?;
    let session = Client::open(config.browsing_node()).await?;
    run_with_bars(session, Request::Get { peer, paths, to }, |reply| {
        if let Reply::Finished { peer, outcome } = reply {
            outln!("{}", outcome_line(peer, outcome));
            for path in outcome.saved.iter().take(20) {
                outln!("  {}", printable(&path.to_string_lossy()));
            }
        }
    })
    .await
}

pub(super) async fn ls_command(config: &Config, peer: String, path: Option<String>, json: bool) -> Result<ExitCode> {
    let session = Client::open(config.browsing_node()).await?;
    let request = Request::List {
        peer,
        path: path.unwrap_or_default(),
    };
    let result = session
        .run(request, |reply| {
            if let Reply::Listing { entries, omitted } = reply {
                if json {
                    outln!("{}", output::json(&entries));
                } else {
                    outln!("{}", listing_table(&entries));
                }
                // On stderr: the JSON on stdout stays the same array of entries.
                if omitted > 0 {
                    eprintln!("{omitted} more not shown");
                }
            }
        })
        .await;
    session.close().await;
    result.map(|()| ExitCode::SUCCESS)
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
            failed: vec![FileFailure {
                path: "x\u{7}".into(),
                reason: "bad\nthing".into(),
                code: crate::node::api::Reason::Other,
            }],
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
