//! The faces without a screen: one-shot commands and `serve`. Each is a thin layer over a
//! [`NodeHandle`](crate::node::NodeHandle), reached through [`local::Session`].

pub mod local;
pub mod output;
mod serve;
mod transfer;

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::process::ExitCode;
use tokio::sync::mpsc;

use crate::config::{Cli, Command, Config};
use crate::identity::{Identity, ensure_private_dir};
use local::{Reply, Request, Session};

pub fn run(cli: Cli) -> Result<ExitCode> {
    let command = cli.command.clone().unwrap_or(Command::Tui);
    init_logging(matches!(command, Command::Serve { .. }));
    let config = Config::resolve(&cli.global)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match command {
            Command::Tui => {
                bail!("the terminal UI is not part of this build yet; run `lanyard serve` for a headless node, or see `lanyard --help`")
            }
            Command::Serve { accept_all, json } => serve::run(&config, accept_all, json).await,
            Command::Id { json } => id(&config, json),
            Command::Peers { wait, json } => peers(&config, wait, json).await,
            Command::Say {
                peer,
                text,
                queue,
                timeout,
            } => say(&config, peer, text, queue, timeout).await,
            Command::History { peer, limit, json } => history(&config, peer, limit, json).await,
            Command::Send { peers, paths } => transfer::send_command(&config, peers, paths).await,
            Command::Ls { peer, path, json } => transfer::ls_command(&config, peer, path, json).await,
            Command::Get { peer, paths, to } => transfer::get_command(&config, peer, paths, to).await,
        }
    })
}

fn init_logging(serving: bool) {
    // A one-shot command reports its failure as one line itself; its node's log stays quiet.
    let default = if serving { "warn,lanyard=info" } else { "error" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LANYARD_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

fn id(config: &Config, json: bool) -> Result<ExitCode> {
    let dir = ensure_private_dir(&config.data_dir)?;
    let identity = Identity::load_or_create(&dir)?;
    let nick = crate::node::nick::nick_in(&dir, config.nick_given.as_deref())?;
    if json {
        let v = serde_json::json!({ "id": identity.id(), "fingerprint": identity.fingerprint(), "nick": nick });
        println!("{v}");
    } else {
        println!("id           {}", identity.id());
        println!("fingerprint  {}", identity.fingerprint());
        println!("nick         {}", crate::text::printable(&nick));
    }
    Ok(ExitCode::SUCCESS)
}

async fn peers(config: &Config, wait: Option<f64>, json: bool) -> Result<ExitCode> {
    let session = Session::open(config).await?;
    let default_wait = if session.is_remote() { 0.0 } else { 2.0 };
    let wait = wait.unwrap_or(default_wait);
    if !(0.0..=3600.0).contains(&wait) {
        bail!("--wait must be between 0 and 3600 seconds");
    }
    let rx = session
        .request(Request::Peers {
            wait_ms: (wait * 1000.0) as u64,
        })
        .await?;
    let code = drain(rx, |reply| {
        if let Reply::Peers { peers } = reply {
            if json {
                println!("{}", serde_json::to_string(peers).unwrap_or_default());
            } else {
                println!("{}", output::peers_table(peers));
            }
        }
    })
    .await;
    session.close().await;
    code
}

async fn say(config: &Config, peer: String, text: String, queue: bool, timeout: f64) -> Result<ExitCode> {
    if !(0.0..=86_400.0).contains(&timeout) {
        bail!("--timeout must be between 0 and 86400 seconds");
    }
    // Refused here too, so an oversized line never travels to the running node.
    crate::node::chat::check_text(&text)?;
    let session = Session::open(config).await?;
    let request = Request::Say {
        peer,
        text,
        queue,
        timeout_ms: (timeout * 1000.0) as u64,
    };
    let result = match session.request(request).await {
        Ok(rx) => {
            drain(rx, |reply| match reply {
                Reply::Queued { id } if queue => eprintln!("queued (message {id})"),
                Reply::Delivered { id } => eprintln!("delivered (message {id})"),
                _ => {}
            })
            .await
        }
        Err(e) => Err(e),
    };
    session.close().await;
    result
}

async fn history(config: &Config, peer: String, limit: Option<usize>, json: bool) -> Result<ExitCode> {
    let session = Session::open(config).await?;
    let result = match session.request(Request::History { peer, limit }).await {
        Ok(rx) => {
            drain(rx, |reply| {
                if let Reply::History { entries } = reply {
                    let mut out = std::io::stdout().lock();
                    for e in entries {
                        let line = if json { output::json_line(e) } else { output::history_line(e) };
                        // A closed pipe (`| head`) ends the listing, not with a panic.
                        if writeln!(out, "{line}").is_err() {
                            break;
                        }
                    }
                }
            })
            .await
        }
        Err(e) => Err(e),
    };
    session.close().await;
    result
}

/// Feed replies to `show` until Done (exit 0) or Failed (error).
async fn drain(mut rx: mpsc::Receiver<Reply>, mut show: impl FnMut(&Reply)) -> Result<ExitCode> {
    while let Some(reply) = rx.recv().await {
        match reply {
            Reply::Done => return Ok(ExitCode::SUCCESS),
            Reply::Failed { message } => bail!(message),
            other => show(&other),
        }
    }
    bail!("the request ended without an answer")
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
