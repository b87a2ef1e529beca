//! `deposit`, `deposits`, `retrieve` and `held` on a terminal. The work runs in the node
//! (`crate::node::api`); results go to stdout, one line each, or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{Context, Result};

use super::{call, output, print_note};
use crate::config::{Config, IdAction};
use crate::node::api::{DepositView, HolderView, MAX_IDENTITY_EXPORT, Reply, Request};
use crate::text::{human_bytes, printable};

pub async fn deposit(config: &Config, replicas: u32, to: Vec<String>, drop: Option<String>, paths: Vec<PathBuf>) -> Result<ExitCode> {
    if let Some(deposit) = drop {
        return call(config, Request::DropDeposit { deposit }, print_note).await;
    }
    let paths = paths.iter().map(std::path::absolute).collect::<std::io::Result<Vec<_>>>()?;
    call(config, Request::Deposit { paths, replicas, to }, |reply| {
        let Reply::Deposited(r) = reply else { return };
        let d = &r.deposit;
        let holders: Vec<String> = d.holders.iter().filter(|h| h.verified).map(holder_name).collect();
        let mark = if r.complete { "deposited" } else { "NOT fully deposited" };
        outln!(
            "{mark} {} ({}, id {}): {} of {} copies verified, on {}",
            printable(&d.name),
            human_bytes(d.bytes),
            &d.id[..12.min(d.id.len())],
            d.replicas_verified,
            d.replicas_wanted,
            if holders.is_empty() {
                "no holder".to_string()
            } else {
                holders.join(", ")
            }
        );
        if !r.note.is_empty() {
            outln!("  {}", printable(&r.note));
        }
        for why in &r.refused {
            outln!("  not placed on {}", printable(why));
        }
    })
    .await
}

fn holder_name(h: &HolderView) -> String {
    if h.nick.is_empty() {
        h.id[..8.min(h.id.len())].to_string()
    } else {
        printable(&h.nick).into_owned()
    }
}

/// ✓ verified, ◌ holder offline, ✗ lost.
fn mark(h: &HolderView) -> &'static str {
    match (h.verified, h.online) {
        (true, true) => "✓",
        (true, false) => "◌",
        (false, _) => "✗",
    }
}

fn when(ms: u64) -> String {
    if ms == 0 { "never".into() } else { output::utc_minute(ms) }
}

fn deposit_lines(d: &DepositView) -> Vec<String> {
    let mut out = vec![format!(
        "{}  {}  {} of {} verified  id {}  hash {}",
        printable(&d.name),
        human_bytes(d.bytes),
        d.replicas_verified,
        d.replicas_wanted,
        &d.id[..12.min(d.id.len())],
        &d.hash[..16.min(d.hash.len())]
    )];
    for h in &d.holders {
        let seen = match (h.online, h.last_seen) {
            (true, _) => "online".to_string(),
            (false, Some(s)) => format!("last seen {}", output::utc_minute(s * 1000)),
            (false, None) => "offline".to_string(),
        };
        out.push(format!(
            "  {} {}  {seen}  last verified {}",
            mark(h),
            holder_name(h),
            when(h.last_verified_ms)
        ));
    }
    out
}

pub async fn deposits(config: &Config, json: bool) -> Result<ExitCode> {
    call(config, Request::Deposits, |reply| {
        let Reply::Deposits { deposits } = reply else { return };
        if json {
            for d in &deposits {
                outln!("{}", output::json_line(d));
            }
            return;
        }
        if deposits.is_empty() {
            outln!("no deposits (make one with `lanyard deposit PATH`)");
        }
        for d in &deposits {
            for line in deposit_lines(d) {
                outln!("{line}");
            }
        }
    })
    .await
}

pub async fn retrieve(config: &Config, deposit: String, to: Option<PathBuf>) -> Result<ExitCode> {
    let to = to.map(|t| std::path::absolute(&t)).transpose()?;
    call(config, Request::Retrieve { deposit, to }, |reply| {
        let Reply::Retrieved(r) = reply else { return };
        for s in &r.skipped {
            eprintln!("skipped {}", printable(s));
        }
        let o = &r.outcome;
        outln!(
            "retrieved {} from {}: {}, {} verified, into {}",
            printable(&r.name),
            printable(&r.from),
            crate::text::plural(o.files, "file"),
            human_bytes(o.bytes),
            printable(&r.saved_to)
        );
    })
    .await
}

pub async fn held(config: &Config, json: bool, drop: Option<String>) -> Result<ExitCode> {
    if let Some(spec) = drop {
        return call(config, Request::DropHeld { spec }, print_note).await;
    }
    call(config, Request::Held, |reply| {
        let Reply::Held(h) = reply else { return };
        if json {
            for d in &h.held {
                outln!("{}", output::json_line(d));
            }
            let budgets = serde_json::json!({
                "policy": h.policy, "per_owner": h.per_owner, "total": h.total, "used": h.used
            });
            outln!("{}", output::json_value_line(budgets));
            return;
        }
        let rows: Vec<Vec<String>> = h
            .held
            .iter()
            .map(|d| {
                let owner = if d.owner_nick.is_empty() {
                    d.owner[..8].to_string()
                } else {
                    format!("{} ({})", d.owner_nick, &d.owner[..8])
                };
                vec![
                    owner,
                    d.name.clone(),
                    human_bytes(d.bytes),
                    d.id[..12].to_string(),
                    output::utc_minute(d.renewed_ms),
                ]
            })
            .collect();
        if rows.is_empty() {
            outln!("holding nothing for anyone");
        } else {
            outln!("{}", output::table(&["OWNER", "NAME", "SIZE", "ID", "RENEWED"], &rows));
        }
        outln!(
            "holding {} of {} in all; at most {} per owner; deposits from {}",
            human_bytes(h.used),
            human_bytes(h.total),
            human_bytes(h.per_owner),
            h.policy
        );
    })
    .await
}

/// `id export` / `id import`.
pub async fn id_action(config: &Config, action: IdAction) -> Result<ExitCode> {
    match action {
        IdAction::Export { file } => {
            let pass = passphrase(true)?;
            let sealed = crate::node::api::export_identity(&config.data_dir, &pass)?;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .with_context(|| format!("cannot create {} (it must not exist yet)", file.display()))?;
            out.write_all(&sealed)?;
            out.sync_all()?;
            outln!(
                "identity written to {}; import it with `lanyard id import FILE`",
                printable(&file.display().to_string())
            );
        }
        IdAction::Import { file, replace } => {
            let mut sealed = Vec::new();
            std::fs::File::open(&file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .take(MAX_IDENTITY_EXPORT as u64 + 1)
                .read_to_end(&mut sealed)?;
            let pass = passphrase(false)?;
            let (id, nick) = crate::node::api::import_identity(&config.data_dir, &sealed, &pass, replace)?;
            let nick = nick.map(|n| format!(" ({})", printable(&n))).unwrap_or_default();
            outln!("this data dir is now {id}{nick}: `lanyard deposits` lists its deposits");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The passphrase: LANYARD_PASSPHRASE, else asked on the terminal without echo (twice when it
/// protects a new file).
fn passphrase(new: bool) -> Result<String> {
    if let Ok(p) = std::env::var("LANYARD_PASSPHRASE") {
        return Ok(p);
    }
    let first = ask_hidden("passphrase: ")?;
    if new && ask_hidden("again: ")? != first {
        anyhow::bail!("the passphrases differ");
    }
    Ok(first)
}

/// One line from the terminal with echo off (restored however this ends).
fn ask_hidden(prompt: &str) -> Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, Termios, tcgetattr, tcsetattr};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask the passphrase on: set LANYARD_PASSPHRASE")?;
    let saved = tcgetattr(&tty).context("cannot read the terminal's settings: set LANYARD_PASSPHRASE")?;
    struct Restore<'a>(&'a std::fs::File, Termios);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let _ = tcsetattr(self.0, OptionalActions::Now, &self.1);
        }
    }
    let _restore = Restore(&tty, saved.clone());
    let mut quiet = saved;
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    tcsetattr(&tty, OptionalActions::Now, &quiet)?;
    let mut writer = &tty;
    writer.write_all(prompt.as_bytes())?;
    let mut line = String::new();
    std::io::BufReader::new(&tty).read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
