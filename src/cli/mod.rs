//! The faces without a screen: one-shot commands and `serve`. Each is a thin layer over the
//! node's face API ([`crate::node::api`]), reached through a [`Client`]: the node already
//! running on the data dir, or one this process runs for the command's duration.
//!
//! Its files: `mod.rs` (one function per command), `serve` (the human log), `serve_json` (the
//! `--json` contract), `transfer` (bars and results of send/get/ls), `locker` (deposit, deposits,
//! retrieve, held), `history` (a conversation paged out), `output` (tables, times, JSON lines),
//! `setup` (`config`, completions, man pages), `doctor` (the checks printed).

/// `println!` for command output: a reader that went away ends the command quietly.
macro_rules! outln {
    ($($t:tt)*) => { $crate::cli::output::line(format_args!($($t)*)) };
}

mod doctor;
mod history;
mod locker;
pub mod output;
mod serve;
mod serve_json;
mod setup;
mod transfer;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::config::{Cli, Command, Config};
use crate::node::api::{Reply, Request};
use crate::node::control::Client;
use crate::text::{plural, printable};

pub fn run(cli: Cli) -> Result<ExitCode> {
    let command = cli.command.clone().unwrap_or(Command::Tui);
    init_logging(&command);
    // Made from the command line alone: a broken config file must not stop the packaging.
    match &command {
        Command::Completions { shell } => return setup::completions(*shell),
        Command::ManPages { dir } => return setup::man_pages(dir),
        _ => {}
    }
    let config = Config::resolve(&cli.global)?;
    if let (Some(note), false) = (&config.nick_cut, matches!(command, Command::Tui)) {
        eprintln!("lanyard: {note}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async move {
        match command {
            Command::Tui => crate::ui::run(&config).await,
            Command::Serve { accept_all, json } => serve::run(&config, accept_all, json).await,
            Command::Id { action: Some(action), .. } => locker::id_action(&config, action).await,
            Command::Id { json, action: None } => id(&config, json).await,
            Command::Peers { wait, json, scan } => peers(&config, wait, json, scan).await,
            Command::Say {
                peer,
                text,
                queue,
                timeout,
            } => say(&config, peer, text, queue, timeout).await,
            Command::History {
                peer,
                limit,
                before,
                after,
                json,
            } => history::run(&config, peer, limit, before, after, json).await,
            Command::Send { peers, paths, pin } => transfer::send_command(&config, peers, paths, pin).await,
            Command::Ls { peer, path, json } => transfer::ls_command(&config, peer, path, json).await,
            Command::Get { peer, paths, to } => transfer::get_command(&config, peer, paths, to).await,
            Command::Nick { name } => call(&config, Request::SetNick { nick: name.clone() }, |_| {})
                .await
                .inspect(|_| outln!("nick is now {}", printable(&name))),
            Command::Offers { json } => offers(&config, json).await,
            Command::Accept { offer, always } => {
                call(
                    &config,
                    Request::Answer {
                        offer,
                        accept: true,
                        always,
                    },
                    print_note,
                )
                .await
            }
            Command::Reject { offer } => {
                call(
                    &config,
                    Request::Answer {
                        offer,
                        accept: false,
                        always: false,
                    },
                    print_note,
                )
                .await
            }
            Command::Trust { peer } => call(&config, Request::Trust { peer, trusted: true }, print_note).await,
            Command::Untrust { peer } => call(&config, Request::Trust { peer, trusted: false }, print_note).await,
            Command::Transfers { json } => transfers(&config, json).await,
            Command::Cancel { transfer } => call(&config, Request::Cancel { transfer }, print_note).await,
            Command::Forget { peer } => call(&config, Request::Forget { peer }, print_note).await,
            Command::Deposit { replicas, to, drop, paths } => locker::deposit(&config, replicas, to, drop, paths).await,
            Command::Deposits { json } => locker::deposits(&config, json).await,
            Command::Retrieve { deposit, to } => locker::retrieve(&config, deposit, to).await,
            Command::Held { json, drop } => locker::held(&config, json, drop).await,
            Command::Config => setup::show_config(&config),
            Command::Doctor { wait } => doctor::run(&config, wait).await,
            Command::Completions { .. } | Command::ManPages { .. } => unreachable!("handled before the config is read"),
        }
    });
    // The node has stopped by now (its shutdown waited for its tasks); a blocking thread that
    // still runs must not keep the person's terminal: dropping the runtime would wait for it
    // without end.
    runtime.shutdown_timeout(crate::node::api::EXIT_WAIT);
    result
}

fn init_logging(command: &Command) {
    // A one-shot command reports its failure as one line itself, and `serve` writes its own
    // log of events: the tracing log stays quiet unless LANYARD_LOG asks. The TUI owns the
    // screen: nothing may write to it, so it logs only when asked, to LANYARD_LOG_FILE.
    let default = match command {
        Command::Serve { .. } => "warn",
        Command::Tui => "off",
        _ => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LANYARD_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    if matches!(command, Command::Tui) {
        let file = std::env::var_os("LANYARD_LOG_FILE").and_then(|p| std::fs::File::options().create(true).append(true).open(p).ok());
        if let Some(file) = file {
            let _ = tracing_subscriber::fmt()
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .with_env_filter(filter)
                .try_init();
        }
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// The client for a request: the running node for what only it knows, else whichever runs.
async fn client_for(config: &Config, request: &Request) -> Result<Client> {
    if request.needs_running_node() {
        Client::attach(&config.data_dir).await
    } else {
        Client::open(config.browsing_node()).await
    }
}

/// Run one request to its end, showing its replies; exit 0 on Done.
pub(crate) async fn call(config: &Config, request: Request, show: impl FnMut(Reply)) -> Result<ExitCode> {
    let client = client_for(config, &request).await?;
    let result = client.run(request, show).await;
    client.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

fn print_note(reply: Reply) {
    if let Reply::Note { text } = reply {
        outln!("{}", printable(&text));
    }
}

async fn id(config: &Config, json: bool) -> Result<ExitCode> {
    let me = crate::node::api::identity_of(&config.data_dir)?;
    let nick = crate::node::api::nick_in(&config.data_dir, config.nick_given.as_deref())?;
    let listen = running_listen_addr(config).await;
    if json {
        let v = serde_json::json!({ "id": me.0, "fingerprint": me.1, "nick": nick, "listen": listen });
        outln!("{v}");
    } else {
        outln!("id           {}", me.0);
        outln!("fingerprint  {}", me.1);
        outln!("nick         {}", printable(&nick));
        match listen {
            Some(addr) => outln!("listening    {addr}"),
            None => {
                let or_next = if config.port_fixed || config.port == 0 {
                    ""
                } else {
                    ", or the next free one"
                };
                outln!(
                    "listening    no node runs on this data dir (one would take port {}{or_next})",
                    config.port
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the node running on the data dir accepts peers (its port may not be the one asked
/// for, when that was taken), or `None` when none runs there.
async fn running_listen_addr(config: &Config) -> Option<String> {
    let client = Client::attach(&config.data_dir).await.ok()?;
    let mut listen = None;
    let _ = client
        .run(Request::Snapshot, |reply| {
            if let Reply::Snapshot(snapshot) = reply {
                listen = snapshot.me.listen;
            }
        })
        .await;
    client.close().await;
    listen
}

async fn peers(config: &Config, wait: Option<f64>, json: bool, scan: bool) -> Result<ExitCode> {
    let client = Client::open(config.localsend_node()).await?;
    let default_wait = if client.is_remote() { 0.0 } else { 2.0 };
    let wait = wait.unwrap_or(default_wait);
    if !(0.0..=3600.0).contains(&wait) {
        client.close().await;
        bail!("--wait must be between 0 and 3600 seconds");
    }
    let request = Request::Peers {
        wait_ms: (wait * 1000.0) as u64,
        scan,
    };
    let result = client
        .run(request, |reply| {
            if let Reply::Note { text } = &reply {
                eprintln!("{}", crate::text::printable(text));
            }
            if let Reply::Peers { peers, localsend } = reply {
                if json {
                    outln!("{}", output::peers_json(&peers, &localsend));
                } else {
                    outln!("{}", output::peers_table(&peers));
                    if !localsend.is_empty() {
                        outln!("\n{}", output::localsend_table(&localsend));
                    }
                }
            }
        })
        .await;
    client.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn say(config: &Config, peer: String, text: String, queue: bool, timeout: f64) -> Result<ExitCode> {
    if !(0.0..=86_400.0).contains(&timeout) {
        bail!("--timeout must be between 0 and 86400 seconds");
    }
    // Refused here too, so an oversized line never travels to the running node.
    crate::node::api::check_text(&text)?;
    let request = Request::Say {
        peer,
        text,
        queue,
        timeout_ms: (timeout * 1000.0) as u64,
    };
    call(config, request, |reply| match reply {
        Reply::Queued { id } if queue => eprintln!("queued (message {id})"),
        Reply::Delivered { id } => eprintln!("delivered (message {id})"),
        _ => {}
    })
    .await
}

async fn offers(config: &Config, json: bool) -> Result<ExitCode> {
    call(config, Request::Offers, |reply| {
        let Reply::Offers { offers } = reply else { return };
        if json {
            for o in &offers {
                outln!("{}", output::json_line(o));
            }
            return;
        }
        if offers.is_empty() {
            outln!("no offers are waiting");
        }
        for o in &offers {
            outln!("{}", output::offer_text(o));
        }
    })
    .await
}

async fn transfers(config: &Config, json: bool) -> Result<ExitCode> {
    call(config, Request::Transfers, |reply| {
        let Reply::Transfers { transfers } = reply else { return };
        if json {
            for t in &transfers {
                outln!("{}", output::json_line(t));
            }
        } else if transfers.is_empty() {
            outln!("no transfers yet");
        } else {
            outln!("{}", output::transfers_table(&transfers));
            let running = transfers.iter().filter(|t| !t.state.is_finished()).count();
            if running > 0 {
                outln!(
                    "\n{} running; stop one with `lanyard cancel TRANSFER`",
                    plural(running as u64, "transfer")
                );
            }
        }
    })
    .await
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
