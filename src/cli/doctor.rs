//! `lanyard doctor`: the checks of [`crate::node::api::examine`], a verdict per line, exit 1 when one
//! fails.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::config::Config;
use crate::node::api::{Exam, Verdict, examine};
use crate::text::printable;

pub async fn run(config: &Config, wait: f64) -> Result<ExitCode> {
    if !(0.5..=60.0).contains(&wait) {
        bail!("--wait must be between 0.5 and 60 seconds");
    }
    let running = super::running_listen_addr(config).await;
    let port = running
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(config.port);
    let exam = Exam {
        port,
        node_runs: running.is_some(),
        mdns: config.mdns,
        mdns_wait: Duration::from_secs_f64(wait),
    };
    let checks = examine(&exam).await;
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &checks {
        let verdict = match c.verdict {
            Verdict::Ok => "ok",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
            Verdict::Skipped => "skip",
        };
        outln!("{verdict:<4}  {:<width$}  {}", c.name, printable(&c.detail));
    }
    let failed: Vec<&str> = checks.iter().filter(|c| c.verdict == Verdict::Fail).map(|c| c.name).collect();
    if failed.is_empty() {
        outln!(
            "\nnothing wrong found from here; if peers still do not show up, check the firewalls between the machines, or give --peer HOST:PORT"
        );
        Ok(ExitCode::SUCCESS)
    } else {
        outln!("\nfailed: {}", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}
