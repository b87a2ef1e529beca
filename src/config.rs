//! Configuration: command-line flags win over `LANYARD_*` environment variables (both handled by
//! clap), which win over the user's config file, which wins over the machine's
//! (`/etc/lanyard/config.toml`, see [`files`]), which wins over the platform defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

mod files;

pub use files::{ConfigFile, SYSTEM_CONFIG, SYSTEM_CONFIG_VAR, Source};
use files::{FileConfig, Wanted};

use crate::limits::MAX_NICK_BYTES;
use crate::node::{DEFAULT_PORT, NodeConfig};

/// A number from an undocumented environment variable that multi-host tests set to make a
/// node misbehave on purpose (a shorter stall limit, a relay that corrupts what it forwards).
/// Only with the `test-hooks` feature: without it the variable's name is not even in the
/// binary, and the hook is never set.
macro_rules! test_hook {
    ($name:literal) => {{
        #[cfg(feature = "test-hooks")]
        let value: Option<u64> = std::env::var($name).ok().and_then(|v| v.trim().parse().ok());
        #[cfg(not(feature = "test-hooks"))]
        let value: Option<u64> = None;
        value
    }};
}

#[derive(Parser, Debug)]
#[command(
    name = "lanyard",
    version,
    about = "Find the other machines in the lab, chat, and move files - in a terminal."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// A node whose port (not asked for by flag or variable) is taken tries this many after it: a
/// few users on one machine, not a port scan.
const PORTS_TRIED_AFTER: u16 = 32;

/// How `send` is written; said in its usage and when the `--` is forgotten.
const SEND_USAGE: &str = "lanyard send PEER... -- PATH...";

impl Cli {
    /// The command line of this process; exits with clap's message (and code) if it is wrong.
    pub fn from_env() -> Cli {
        Cli::try_from_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Like `try_parse_from`, with one mistake explained: `lanyard send ada file.pdf` takes
    /// every word as a recipient (paths come after `--`), so clap can only say that paths are
    /// missing, which leaves the user guessing.
    pub fn try_from_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::parse_noting_env(args).map_err(|e| {
            use clap::error::{ContextKind, ContextValue, ErrorKind};
            let missing = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::Strings(args)) => args.clone(),
                _ => Vec::new(),
            };
            let in_send = e
                .get(ContextKind::Usage)
                .is_some_and(|usage| usage.to_string().contains(SEND_USAGE));
            // Only paths missing: recipients were given, so the paths are among them or absent.
            let only_paths = missing.len() == 1 && missing[0].contains("PATH");
            if e.kind() == ErrorKind::MissingRequiredArgument && in_send && only_paths {
                clap::Error::raw(
                    ErrorKind::MissingRequiredArgument,
                    format!("put -- before the paths: {SEND_USAGE}\n"),
                )
            } else {
                e
            }
        })
    }

    /// Parsed, with the global options that came from `LANYARD_*` noted (`lanyard config` says
    /// where each setting came from).
    fn parse_noting_env<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.global.from_env = matches
            .ids()
            .filter(|id| matches.value_source(id.as_str()) == Some(clap::parser::ValueSource::EnvVariable))
            .map(|id| id.to_string())
            .collect();
        Ok(cli)
    }
}

/// Accepted before or after the subcommand.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Name shown to others, kept in the data dir until changed (default: your user name)
    #[arg(long, global = true, env = "LANYARD_NICK", value_name = "NAME")]
    pub nick: Option<String>,
    /// TCP port to accept peers on (default 7717; 0 picks a free one)
    #[arg(long, global = true, env = "LANYARD_PORT", value_name = "N")]
    pub port: Option<u16>,
    /// Identity and database (default: the platform data dir)
    #[arg(long, global = true, env = "LANYARD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where received files land (default: ~/Downloads/lanyard)
    #[arg(long, global = true, env = "LANYARD_DOWNLOAD_DIR", value_name = "DIR")]
    pub download_dir: Option<PathBuf>,
    /// Share DIR read-only with peers (repeatable; nothing is shared unless asked; in
    /// LANYARD_SHARE, colon-separated)
    #[arg(long = "share", global = true, env = "LANYARD_SHARE", value_name = "DIR", value_delimiter = ':')]
    pub shares: Vec<PathBuf>,
    /// Connect to HOST:PORT directly, for networks that block multicast; the peers it knows are
    /// found through it, so one per subnet is enough (repeatable; in LANYARD_PEER, comma-separated)
    #[arg(
        long = "peer",
        global = true,
        env = "LANYARD_PEER",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    pub peers: Vec<String>,
    /// For `send` and the TUI's push to several peers: upload to each in parallel instead of
    /// relaying through them (by default each recipient forwards what it verified to the next,
    /// in the order given); `--no-relay=false` relays even where the config file says not to
    #[arg(
        long,
        global = true,
        env = "LANYARD_NO_RELAY",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_relay: Option<bool>,
    /// Don't use multicast DNS (no discovery, no advertising)
    #[arg(long, global = true, env = "LANYARD_NO_MDNS", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub no_mdns: bool,
    /// Hold deposits for "anyone" (default), only "trusted" peers, or "none"
    #[arg(long, global = true, env = "LANYARD_DEPOSITS", value_name = "WHO")]
    pub deposits: Option<String>,
    /// Bytes one owner's deposits may take here (default 2 GiB; suffixes K, M, G)
    #[arg(long, global = true, env = "LANYARD_DEPOSIT_BUDGET", value_name = "SIZE")]
    pub deposit_budget: Option<String>,
    /// Bytes all deposits may take here (default 20 GiB; suffixes K, M, G)
    #[arg(long, global = true, env = "LANYARD_DEPOSIT_TOTAL", value_name = "SIZE")]
    pub deposit_total: Option<String>,
    /// How long a holder of your deposits may be away before another takes its copy (default 1h)
    #[arg(long, global = true, env = "LANYARD_DEPOSIT_REPAIR_AFTER", value_name = "DURATION")]
    pub deposit_repair_after: Option<String>,
    /// Don't speak LocalSend (no HTTPS API on its port, no LocalSend announcements)
    #[arg(long, global = true, env = "LANYARD_NO_LOCALSEND", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub no_localsend: bool,
    /// The TCP port LocalSend devices send to (default 53317; taken, a free one is used and said)
    #[arg(long, global = true, env = "LANYARD_LOCALSEND_PORT", value_name = "PORT")]
    pub localsend_port: Option<u16>,
    /// A PIN LocalSend devices must give before they may offer anything
    #[arg(long, global = true, env = "LANYARD_LOCALSEND_PIN", value_name = "PIN")]
    pub localsend_pin: Option<String>,
    /// Your config file (default: config.toml in the platform config dir, if there; a file named
    /// here must exist); read over the machine's, /etc/lanyard/config.toml
    #[arg(long, global = true, env = "LANYARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The ids of the options above whose value came from a `LANYARD_*` variable.
    #[arg(skip)]
    pub from_env: Vec<String>,
}

/// Carrying this identity to another machine.
#[derive(Subcommand, Debug, Clone)]
pub enum IdAction {
    /// Write the identity (key and nick) to FILE, encrypted with a passphrase (asked on the
    /// terminal, or LANYARD_PASSPHRASE)
    Export {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Make the identity in FILE this data dir's (same owner of the same deposits); no node may
    /// run on the data dir meanwhile
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Over the data dir's own identity (kept beside it, renamed)
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Start the terminal UI (the default): peers, chat, files and transfers by keyboard
    Tui,
    /// Run a headless node: advertise, answer, receive
    Serve {
        /// Accept every incoming offer without asking
        #[arg(long)]
        accept_all: bool,
        /// One JSON event per line on stdout
        #[arg(long)]
        json: bool,
    },
    /// Discover and list peers, then exit
    Peers {
        /// Seconds to discover before listing (default 2 on its own; 0 through a running node)
        #[arg(long, value_name = "SECS")]
        wait: Option<f64>,
        /// One JSON array of peers
        #[arg(long)]
        json: bool,
    },
    /// Send a chat line to PEER (nick, id prefix or HOST:PORT) or '#all'; exit 0 once delivered
    Say {
        /// Nick (NICK@HOST or NICK#ID when several share it), id prefix, HOST:PORT, or '#all' for every online peer
        peer: String,
        /// The message (at most 16 KiB)
        text: String,
        /// Return once stored; the running node (or the next one on this data dir) delivers it
        #[arg(long)]
        queue: bool,
        /// Seconds to wait for the acknowledgement
        #[arg(long, value_name = "SECS", default_value_t = 10.0)]
        timeout: f64,
    },
    /// Print stored chat history with PEER or '#all'
    History {
        /// Nick (NICK@HOST or NICK#ID when several share it), id prefix, HOST:PORT, or '#all'
        peer: String,
        /// Only N lines (the last N, or the N next to --before/--after)
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Only lines before this message id
        #[arg(long, value_name = "ID", conflicts_with = "after")]
        before: Option<String>,
        /// Only lines after this message id
        #[arg(long, value_name = "ID")]
        after: Option<String>,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Push files and folders to one or more peers (note the `--` before the paths); exit 0 once
    /// every copy is verified
    #[command(override_usage = SEND_USAGE)]
    Send {
        /// Recipients: nick (NICK@HOST or NICK#ID when several share it), id prefix or HOST:PORT
        // Its own id: "peers" is the global --peer option, which must still work after `send`.
        #[arg(id = "recipients", required = true, value_name = "PEER")]
        peers: Vec<String>,
        /// Files and folders to send (after `--`)
        #[arg(last = true, required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// The PIN a LocalSend recipient asks for
        #[arg(long, value_name = "PIN")]
        pin: Option<String>,
    },
    /// List a peer's shared folders
    Ls {
        /// Nick (NICK@HOST or NICK#ID when several share it), id prefix or HOST:PORT
        peer: String,
        /// Folder to list ("share/sub"); the list of shares when absent
        path: Option<String>,
        /// One JSON array of {name, kind, size, modified}
        #[arg(long)]
        json: bool,
    },
    /// Pull files or folders from a peer's shares, verified and resumable
    Get {
        /// Nick (NICK@HOST or NICK#ID when several share it), id prefix or HOST:PORT
        peer: String,
        /// Files or folders as `lanyard ls` shows them ("share/sub/report.pdf")
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
        /// Where to put them (default: the download dir)
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
    },
    /// Keep files and folders on several lab machines for yourself, to retrieve from any machine
    Deposit {
        /// Verified copies to keep (on as many machines)
        #[arg(long, default_value_t = 2, value_name = "N")]
        replicas: u32,
        /// Put the copies on these peers (repeatable; default: chosen among the peers online)
        #[arg(long = "to", value_name = "PEER")]
        to: Vec<String>,
        /// Remove the deposit NAME (or id) from every holder instead
        #[arg(long, value_name = "NAME", conflicts_with_all = ["paths", "replicas", "to"])]
        drop: Option<String>,
        /// Files and folders to deposit (each one deposit, under its own name)
        #[arg(value_name = "PATH", required_unless_present = "drop")]
        paths: Vec<PathBuf>,
    },
    /// List your deposits: size, hash, replicas wanted and verified, and each holder
    Deposits {
        /// One JSON object per deposit
        #[arg(long)]
        json: bool,
    },
    /// Bring one of your deposits back from any holder online, verified (never overwrites)
    Retrieve {
        /// Its name or id (as `lanyard deposits` shows)
        deposit: String,
        /// Where to put it (default: the download dir)
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
    },
    /// List what this machine holds for others, and how much of its budgets is used
    Held {
        /// One JSON object per deposit, then one for the budgets
        #[arg(long)]
        json: bool,
        /// Free what is held for OWNER (id, id prefix or nick), or the deposit ID
        #[arg(long, value_name = "OWNER|ID")]
        drop: Option<String>,
    },
    /// Print this node's id, fingerprint and nick
    #[command(args_conflicts_with_subcommands = true)]
    Id {
        /// One JSON object
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: Option<IdAction>,
    },
    /// Set the nick kept in the data dir (told to connected peers when a node runs)
    Nick {
        /// The new nick (1 to 64 bytes, no control or invisible characters)
        name: String,
    },
    /// List incoming offers waiting for an answer, with the command to answer each
    Offers {
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Accept a waiting offer (its id, or the first 4+ characters of it)
    Accept {
        /// Its id, or the first 4+ characters of it (see `lanyard offers`)
        #[arg(value_name = "OFFER")]
        offer: String,
        /// Also accept every later offer from this peer (trust it)
        #[arg(long)]
        always: bool,
    },
    /// Reject a waiting offer
    Reject {
        /// Its id, or the first 4+ characters of it (see `lanyard offers`)
        #[arg(value_name = "OFFER")]
        offer: String,
    },
    /// Accept files from PEER without asking from now on
    Trust {
        /// Nick (NICK@HOST or NICK#ID when several share it), id prefix or HOST:PORT
        peer: String,
    },
    /// Ask again before accepting files from PEER
    Untrust {
        /// Nick (NICK@HOST or NICK#ID when several share it), id prefix or HOST:PORT
        peer: String,
    },
    /// List running and recent transfers
    Transfers {
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Cancel a running transfer (both ends drop its partial data)
    Cancel {
        /// Its id, or the first 4+ characters of it (see `lanyard transfers`)
        #[arg(value_name = "TRANSFER")]
        transfer: String,
    },
    /// Drop a peer's record and pinned key, and the addresses pinned to it
    Forget {
        /// Nick (NICK@HOST or NICK#ID when several share it), id prefix, or HOST:PORT (the peer
        /// pinned there, answering or not)
        peer: String,
    },
    /// Print the settings in force and where each came from (default, system file, user file,
    /// environment, flag)
    Config,
    /// Check what can be checked from this machine when no peer shows up: interfaces, the
    /// multicast route, the port, mDNS answered by this machine itself; a verdict per check
    Doctor {
        /// Seconds to wait for this machine's own mDNS answer
        #[arg(long, value_name = "SECS", default_value_t = 3.0)]
        wait: f64,
    },
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (lanyard.1 and one per command) into DIR (for packaging)
    #[command(hide = true)]
    ManPages {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Everything resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The nick given this time (flag, `LANYARD_NICK` or the config file). A node stores it in
    /// the data dir; `None` leaves it to the stored one, else the default
    /// ([`crate::node::nick`]).
    pub nick_given: Option<String>,
    /// Said once at start when the nick given was longer than a nick may be and was cut to
    /// fit (a name is not worth refusing to start over).
    pub nick_cut: Option<String>,
    pub port: u16,
    /// The port was asked for (`--port`, `LANYARD_PORT`): taken, it is an error. Otherwise (the
    /// default, or a config file's) a node moves to the next free one, so two users can run
    /// lanyard on one machine.
    pub port_fixed: bool,
    pub data_dir: PathBuf,
    pub download_dir: PathBuf,
    pub shares: Vec<PathBuf>,
    pub peers: Vec<String>,
    pub mdns: bool,
    /// A send to several peers is relayed through them (else parallel uploads).
    pub relay: bool,
    /// Whose deposits this node holds and how much; when its own are repaired.
    pub locker: crate::node::locker::LockerConfig,
    /// Speak LocalSend (a serving node: its HTTPS API).
    pub localsend: bool,
    pub localsend_port: u16,
    pub localsend_pin: Option<String>,
    /// Each setting as in force, and where it came from (`lanyard config`).
    pub settings: Vec<Setting>,
    /// The config files looked at, machine's first.
    pub files: Vec<ConfigFile>,
}

/// One setting in force, shown by `lanyard config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The config file's key (the long flag's name).
    pub key: &'static str,
    pub value: String,
    pub from: Source,
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "lanyard")
}

/// A value from the command line or the environment, else the user's file, else the machine's.
fn layered<T>(given: Option<(T, Source)>, user: Option<T>, system: Option<T>) -> Option<(T, Source)> {
    given
        .or(user.map(|v| (v, Source::UserFile)))
        .or(system.map(|v| (v, Source::SystemFile)))
}

fn show_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

impl Config {
    /// The settings in force: flags, then `LANYARD_*`, then the user's config file, then the
    /// machine's, then the defaults.
    pub fn resolve(args: &GlobalArgs) -> Result<Config> {
        Config::resolve_under(args, Wanted::system())
    }

    /// [`resolve`](Self::resolve) under this machine-wide file.
    fn resolve_under(args: &GlobalArgs, system: Wanted) -> Result<Config> {
        let user = match &args.config {
            Some(path) => Some(Wanted {
                path: path.clone(),
                must_exist: true,
            }),
            None => project_dirs().map(|d| Wanted {
                path: d.config_dir().join("config.toml"),
                must_exist: false,
            }),
        };
        Config::resolve_from(args, system, user)
    }

    fn resolve_from(args: &GlobalArgs, system: Wanted, user: Option<Wanted>) -> Result<Config> {
        let base = directories::BaseDirs::new();
        let home = base.as_ref().map(|b| b.home_dir());
        let (sys, sys_file) = system.load(Source::SystemFile, home)?;
        let (usr, usr_file) = match user {
            Some(wanted) => {
                let (config, file) = wanted.load(Source::UserFile, home)?;
                (config, Some(file))
            }
            None => (FileConfig::default(), None),
        };
        let (usr_locker, sys_locker) = (usr.locker_keys(), sys.locker_keys());
        let given = |id: &str| {
            if args.from_env.iter().any(|e| e == id) {
                Source::Env
            } else {
                Source::Flag
            }
        };
        let mut settings = Vec::new();
        let mut show = |key: &'static str, value: String, from: Source| settings.push(Setting { key, value, from });

        let mut nick = layered(args.nick.clone().map(|n| (n, given("nick"))), usr.nick, sys.nick);
        let mut nick_cut = None;
        if let Some((nick, _)) = &mut nick {
            if nick.len() > MAX_NICK_BYTES {
                let mut end = MAX_NICK_BYTES;
                while !nick.is_char_boundary(end) {
                    end -= 1;
                }
                nick.truncate(end);
                nick_cut = Some(format!(
                    "the nick was cut to {MAX_NICK_BYTES} bytes, the most a nick may have: {}",
                    crate::text::printable(nick)
                ));
            }
            crate::node::validate_nick(nick)?;
        }
        match &nick {
            Some((n, from)) => show("nick", n.clone(), *from),
            None => show("nick", "the one kept in the data dir, else your user name".into(), Source::Default),
        }
        let (port, port_from) =
            layered(args.port.map(|p| (p, given("port"))), usr.port, sys.port).unwrap_or((DEFAULT_PORT, Source::Default));
        let port_fixed = port_from >= Source::Env;
        let moves = if port_fixed || port == 0 {
            ""
        } else {
            " (the next free one if taken)"
        };
        show("port", format!("{port}{moves}"), port_from);
        let default_data_dir = project_dirs().map(|d| (d.data_dir().to_path_buf(), Source::Default));
        let (data_dir, from) = layered(args.data_dir.clone().map(|d| (d, given("data_dir"))), usr.data_dir, sys.data_dir)
            .or(default_data_dir)
            .context("no data dir: give --data-dir (no home directory found)")?;
        show("data-dir", data_dir.display().to_string(), from);
        let default_download_dir = || {
            let user = directories::UserDirs::new();
            let platform = user.as_ref().and_then(|u| u.download_dir().map(Path::to_path_buf));
            default_download_dir(platform, home.map(Path::to_path_buf)).map(|d| (d, Source::Default))
        };
        let given_download = args.download_dir.clone().map(|d| (d, given("download_dir")));
        let (download_dir, from) = layered(given_download, usr.download_dir, sys.download_dir)
            .or_else(default_download_dir)
            .context("no download dir: give --download-dir (no home directory found)")?;
        show("download-dir", download_dir.display().to_string(), from);
        let given_shares = Some(args.shares.clone()).filter(|s| !s.is_empty()).map(|s| (s, given("shares")));
        let (shares, from) = layered(given_shares, usr.share, sys.share).unwrap_or_default();
        show("share", show_paths(&shares), from);
        let given_peers = Some(args.peers.clone()).filter(|p| !p.is_empty()).map(|p| (p, given("peers")));
        let (peers, from) = layered(given_peers, usr.peer, sys.peer).unwrap_or_default();
        show("peer", peers.join(", "), from);
        // Only turning it off is a flag.
        let given_mdns = args.no_mdns.then(|| (false, given("no_mdns")));
        let (mdns, from) = layered(given_mdns, usr.mdns, sys.mdns).unwrap_or((true, Source::Default));
        show("mdns", mdns.to_string(), from);
        // The flag (or its variable) wins over the files, either way.
        let given_relay = args.no_relay.map(|no| (!no, given("no_relay")));
        let (relay, from) = layered(given_relay, usr.relay, sys.relay).unwrap_or((true, Source::Default));
        show("relay", relay.to_string(), from);
        let locker = resolve_locker(args, &usr_locker, &sys_locker, &mut show, &given)?;
        let given_localsend = args.no_localsend.then(|| (false, given("no_localsend")));
        let (localsend, from) = layered(given_localsend, usr.localsend, sys.localsend).unwrap_or((true, Source::Default));
        show("localsend", localsend.to_string(), from);
        let (localsend_port, from) = layered(
            args.localsend_port.map(|p| (p, given("localsend_port"))),
            usr.localsend_port,
            sys.localsend_port,
        )
        .unwrap_or((crate::node::localsend::DEFAULT_PORT, Source::Default));
        show("localsend-port", localsend_port.to_string(), from);
        let pin = layered(
            args.localsend_pin.clone().map(|p| (p, given("localsend_pin"))),
            usr.localsend_pin,
            sys.localsend_pin,
        );
        // The PIN itself is not shown.
        show(
            "localsend-pin",
            if pin.is_some() { "set" } else { "none" }.into(),
            pin.as_ref().map_or(Source::Default, |p| p.1),
        );
        Ok(Config {
            locker,
            nick_given: nick.map(|(n, _)| n),
            nick_cut,
            port,
            port_fixed,
            data_dir,
            download_dir,
            shares,
            peers,
            mdns,
            relay,
            localsend,
            localsend_port,
            localsend_pin: pin.map(|p| p.0),
            settings,
            files: [Some(sys_file), usr_file].into_iter().flatten().collect(),
        })
    }

    /// A node that serves: listens on the port and, with mDNS, advertises.
    pub fn serving_node(&self, accept_all: bool) -> NodeConfig {
        NodeConfig {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], self.port))),
            listen_fallback: if self.port_fixed { 0 } else { PORTS_TRIED_AFTER },
            advertise: true,
            accept_all,
            resume: true,
            localsend: self.localsend.then(|| crate::node::localsend::LocalSendConfig {
                listen: SocketAddr::from(([0, 0, 0, 0], self.localsend_port)),
                pin: self.localsend_pin.clone(),
                multicast: self.mdns,
            }),
            ..self.browsing_node()
        }
    }

    /// A one-shot node that also finds and reaches LocalSend devices (`peers`, `send`): its
    /// LocalSend API on a free port for as long as it runs, so devices can answer it.
    pub fn localsend_node(&self) -> NodeConfig {
        NodeConfig {
            localsend: self.localsend.then(|| crate::node::localsend::LocalSendConfig {
                listen: SocketAddr::from(([0, 0, 0, 0], 0)),
                pin: None,
                multicast: self.mdns,
            }),
            ..self.browsing_node()
        }
    }

    /// A node for a one-shot command: dials and browses, neither listens nor advertises.
    pub fn browsing_node(&self) -> NodeConfig {
        NodeConfig {
            nick: self.nick_given.clone(),
            data_dir: self.data_dir.clone(),
            download_dir: self.download_dir.clone(),
            shares: self.shares.clone(),
            listen: None,
            listen_fallback: 0,
            manual_peers: self.peers.clone(),
            mdns: self.mdns,
            advertise: false,
            accept_all: false,
            db_budget: Default::default(),
            stall_timeout: test_hook!("LANYARD_TEST_STALL_SECS")
                .map(std::time::Duration::from_secs)
                .unwrap_or(crate::limits::TRANSFER_STALL),
            control_idle_limit: crate::limits::CONTROL_IDLE_LIMIT,
            resume: false,
            locker: self.locker.clone(),
            localsend: None,
            #[cfg(feature = "test-hooks")]
            corrupt_forward: test_hook!("LANYARD_TEST_CORRUPT_FORWARD"),
            #[cfg(feature = "test-hooks")]
            relay_tamper: None,
        }
    }
}

/// A size as a person writes it: bytes, or with K, M, G or T (powers of 1024).
fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit.trim().trim_end_matches(['B', 'b', 'i']).to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => anyhow::bail!("not a size: {s} (write e.g. 500M or 2G)"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("not a size: {s} (write e.g. 500M or 2G)"))?;
    n.checked_mul(1u64 << shift).ok_or_else(|| anyhow::anyhow!("size too large: {s}"))
}

/// The locker's settings: flag or variable, then the files, then the defaults.
fn resolve_locker(
    args: &GlobalArgs,
    usr: &FileConfig,
    sys: &FileConfig,
    show: &mut impl FnMut(&'static str, String, Source),
    given: &impl Fn(&str) -> Source,
) -> Result<crate::node::locker::LockerConfig> {
    use crate::node::locker::{LockerConfig, Policy};
    let mut out = LockerConfig::default();
    // Test hook: scrub every N seconds whatever was verified over N seconds ago.
    if let Some(secs) = test_hook!("LANYARD_TEST_SCRUB_SECS") {
        out.scrub_every = std::time::Duration::from_secs(secs.max(1));
        out.scrub_age = out.scrub_every;
    }
    let pick = |flag: &Option<String>, id: &str, u: &Option<String>, s: &Option<String>| {
        layered(flag.clone().map(|v| (v, given(id))), u.clone(), s.clone())
    };
    if let Some((v, from)) = pick(&args.deposits, "deposits", &usr.deposits, &sys.deposits) {
        out.policy = Policy::parse(&v)?;
        show("deposits", v, from);
    } else {
        show("deposits", out.policy.as_str().into(), Source::Default);
    }
    match pick(&args.deposit_budget, "deposit_budget", &usr.deposit_budget, &sys.deposit_budget) {
        Some((v, from)) => {
            out.per_owner = parse_size(&v).context("deposit-budget")?;
            show("deposit-budget", v, from);
        }
        None => show("deposit-budget", crate::text::human_bytes(out.per_owner), Source::Default),
    }
    match pick(&args.deposit_total, "deposit_total", &usr.deposit_total, &sys.deposit_total) {
        Some((v, from)) => {
            out.total = parse_size(&v).context("deposit-total")?;
            show("deposit-total", v, from);
        }
        None => show("deposit-total", crate::text::human_bytes(out.total), Source::Default),
    }
    let repair = pick(
        &args.deposit_repair_after,
        "deposit_repair_after",
        &usr.deposit_repair_after,
        &sys.deposit_repair_after,
    );
    match repair {
        Some((v, from)) => {
            out.repair_after = humantime::parse_duration(&v).with_context(|| format!("deposit-repair-after: not a duration: {v}"))?;
            show("deposit-repair-after", v, from);
        }
        None => show(
            "deposit-repair-after",
            humantime::format_duration(out.repair_after).to_string(),
            Source::Default,
        ),
    }
    Ok(out)
}

/// The platform's download dir + `lanyard`, else `~/Downloads/lanyard` (Linux without XDG user
/// dirs has none): received files are meant to be found, so never a hidden folder.
fn default_download_dir(platform: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    platform.or_else(|| home.map(|h| h.join("Downloads"))).map(|d| d.join("lanyard"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    /// Resolved as `lanyard` would, but never under this machine's /etc/lanyard/config.toml.
    fn resolve(args: &GlobalArgs) -> Result<Config> {
        let absent = tempfile::tempdir().unwrap().path().join("system.toml");
        Config::resolve_under(
            args,
            Wanted {
                path: absent,
                must_exist: false,
            },
        )
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        let a = parse(&["lanyard", "--nick", "ada", "--port", "0", "serve", "--json"]);
        let b = parse(&["lanyard", "serve", "--json", "--nick", "ada", "--port", "0"]);
        assert_eq!(a.global.nick, b.global.nick);
        assert_eq!(a.global.port, Some(0));
        assert_eq!(b.global.port, Some(0));
        let c = parse(&["lanyard", "peers", "--peer", "10.0.0.1:7717", "--peer", "h:1", "--no-mdns"]);
        assert_eq!(c.global.peers, vec!["10.0.0.1:7717", "h:1"]);
        assert!(c.global.no_mdns);
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
        // Every subcommand takes the global options after itself.
        for sub in [
            "serve",
            "peers",
            "id",
            "say ada hi",
            "history ada",
            "ls ada",
            "get ada x",
            "send ada -- x",
            "nick ada",
            "offers",
            "accept 1a2b",
            "reject 1a2b",
            "trust ada",
            "untrust ada",
            "transfers",
            "cancel 1a2b",
            "forget ada",
            "config",
            "doctor",
            "completions bash",
        ] {
            let mut args = vec!["lanyard"];
            args.extend(sub.split(' '));
            let at = args.iter().position(|a| *a == "--").unwrap_or(args.len());
            for (i, a) in ["--peer", "h:1", "--no-mdns", "--nick", "n"].into_iter().enumerate() {
                args.insert(at + i, a);
            }
            let c = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{sub}: {e}"));
            assert_eq!(c.global.peers, vec!["h:1"], "{sub}");
        }
    }

    #[test]
    fn send_takes_global_options_after_its_recipients_too() {
        let c = parse(&[
            "lanyard",
            "send",
            "--peer",
            "10.0.0.9:7717",
            "bob",
            "10.0.0.9:7717",
            "--no-mdns",
            "--",
            "a.pdf",
            "b",
        ]);
        assert_eq!(c.global.peers, vec!["10.0.0.9:7717"]);
        assert!(c.global.no_mdns);
        match c.command {
            Some(Command::Send { peers, paths, .. }) => {
                assert_eq!(peers, vec!["bob", "10.0.0.9:7717"]);
                assert_eq!(paths, vec![PathBuf::from("a.pdf"), PathBuf::from("b")]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn relaying_is_on_unless_a_flag_the_environment_or_the_file_turns_it_off() {
        let global = |args: &[&str]| resolve(&parse(args).global).unwrap().relay;
        // Not the developer's own config file.
        let empty = tempfile::tempdir().unwrap();
        let none = empty.path().join("config.toml");
        std::fs::write(&none, "").unwrap();
        let none = none.to_str().unwrap();
        assert!(global(&[
            "lanyard",
            "--config",
            none,
            "--data-dir",
            "/tmp/x",
            "send",
            "a",
            "b",
            "--",
            "f"
        ]));
        assert!(!global(&[
            "lanyard",
            "--data-dir",
            "/tmp/x",
            "send",
            "a",
            "b",
            "--no-relay",
            "--",
            "f"
        ]));
        assert!(!global(&["lanyard", "--no-relay", "--data-dir", "/tmp/x"]));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "relay = false\n").unwrap();
        assert!(!global(&["lanyard", "--config", file.to_str().unwrap(), "--data-dir", "/tmp/x"]));
        // The flag wins over the file both ways.
        assert!(global(&[
            "lanyard",
            "--config",
            file.to_str().unwrap(),
            "--no-relay=false",
            "--data-dir",
            "/tmp/x"
        ]));
        assert!(!global(&["lanyard", "--config", none, "--no-relay=true", "--data-dir", "/tmp/x"]));
    }

    #[test]
    fn file_fills_what_flags_leave_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "nick = \"from-file\"\nport = 9000\nmdns = false\npeer = [\"a:1\"]\n").unwrap();
        let cfg = file.to_str().unwrap();
        let c = resolve(&parse(&["lanyard", "--config", cfg, "--data-dir", "/tmp/x"]).global).unwrap();
        assert_eq!((c.nick_given.as_deref(), c.port, c.mdns), (Some("from-file"), 9000, false));
        assert_eq!(c.peers, vec!["a:1"]);
        let c = resolve(&parse(&["lanyard", "--config", cfg, "--data-dir", "/tmp/x", "--nick", "flag", "--port", "1"]).global).unwrap();
        assert_eq!((c.nick_given.as_deref(), c.port), (Some("flag"), 1));
    }

    #[test]
    fn a_nick_too_long_is_cut_to_fit_at_start_and_said() {
        let long = "é".repeat(40);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "").unwrap();
        let cfg = file.to_str().unwrap();
        let c = Config::resolve(&parse(&["lanyard", "--config", cfg, "--data-dir", "/tmp/x", "--nick", &long]).global).unwrap();
        let nick = c.nick_given.unwrap();
        assert_eq!(nick, "é".repeat(32));
        assert!(c.nick_cut.is_some_and(|n| n.contains("64 bytes")));
    }

    /// Resolved with these machine and user files (never the real ones).
    fn layered_config(args: &[&str], system: &str, user: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let (sys, usr) = (dir.path().join("system.toml"), dir.path().join("user.toml"));
        std::fs::write(&sys, system).unwrap();
        std::fs::write(&usr, user).unwrap();
        let wanted = |path: &Path| Wanted {
            path: path.to_path_buf(),
            must_exist: true,
        };
        Config::resolve_from(&parse(args).global, wanted(&sys), Some(wanted(&usr))).unwrap()
    }

    fn from(config: &Config, key: &str) -> (String, Source) {
        let s = config.settings.iter().find(|s| s.key == key).unwrap();
        (s.value.clone(), s.from)
    }

    #[test]
    fn the_machine_file_is_read_under_the_users_and_both_under_flags() {
        let system = "port = 7800\npeer = [\"10.0.1.5:7717\", \"10.0.2.5:7717\"]\nshare = [\"/srv/course\"]\nmdns = false\n";
        let c = layered_config(&["lanyard", "--data-dir", "/tmp/x"], system, "");
        assert_eq!((c.port, c.port_fixed, c.mdns), (7800, false, false));
        assert_eq!(c.peers, vec!["10.0.1.5:7717", "10.0.2.5:7717"]);
        assert_eq!(c.shares, vec![PathBuf::from("/srv/course")]);
        assert_eq!(from(&c, "port").1, Source::SystemFile);
        assert_eq!(from(&c, "relay"), ("true".into(), Source::Default));
        assert_eq!(from(&c, "data-dir"), ("/tmp/x".into(), Source::Flag));
        assert!(c.files.iter().all(|f| f.read));

        // The user's file replaces what it sets, a whole list included; the rest stays.
        let c = layered_config(
            &["lanyard", "--data-dir", "/tmp/x"],
            system,
            "port = 9000\npeer = []\nmdns = true\n",
        );
        assert_eq!((c.port, c.mdns), (9000, true));
        assert!(c.peers.is_empty());
        assert_eq!(c.shares, vec![PathBuf::from("/srv/course")]);
        assert_eq!(from(&c, "port").1, Source::UserFile);
        assert_eq!(from(&c, "peer").1, Source::UserFile);
        assert_eq!(from(&c, "share").1, Source::SystemFile);

        // Flags win over both files; a port asked for is not moved when taken.
        let c = layered_config(
            &["lanyard", "--data-dir", "/tmp/x", "--port", "7717", "--peer", "h:1", "--no-mdns"],
            system,
            "port = 9000\nmdns = true\n",
        );
        assert_eq!((c.port, c.port_fixed, c.mdns), (7717, true, false));
        assert_eq!(c.peers, vec!["h:1"]);
        assert_eq!(from(&c, "port").1, Source::Flag);
        assert_eq!(from(&c, "mdns").1, Source::Flag);
    }

    #[test]
    fn a_setting_from_the_environment_says_so() {
        let mut cli = parse(&["lanyard", "--port", "7720", "--data-dir", "/tmp/x"]);
        // What parsing notes when LANYARD_PORT gave the value.
        cli.global.from_env = vec!["port".into()];
        let dir = tempfile::tempdir().unwrap();
        let absent = |name: &str| Wanted {
            path: dir.path().join(name),
            must_exist: false,
        };
        let c = Config::resolve_from(&cli.global, absent("system.toml"), Some(absent("user.toml"))).unwrap();
        assert_eq!(from(&c, "port"), ("7720".into(), Source::Env));
        assert!(c.port_fixed, "a port from LANYARD_PORT is asked for: taken, it is an error");
        assert!(c.files.iter().all(|f| !f.read));
    }

    #[test]
    fn downloads_land_in_a_visible_folder() {
        let home = Some(PathBuf::from("/home/ada"));
        assert_eq!(
            default_download_dir(Some("/home/ada/Téléchargements".into()), home.clone()),
            Some(PathBuf::from("/home/ada/Téléchargements/lanyard"))
        );
        assert_eq!(default_download_dir(None, home), Some(PathBuf::from("/home/ada/Downloads/lanyard")));
        assert_eq!(default_download_dir(None, None), None);
    }

    #[test]
    fn send_takes_peers_then_paths_after_the_separator() {
        let c = parse(&[
            "lanyard",
            "send",
            "ada",
            "10.0.0.2:7717",
            "--no-mdns",
            "--",
            "a.pdf",
            "--weird name",
        ]);
        match c.command {
            Some(Command::Send { peers, paths, .. }) => {
                assert_eq!(peers, vec!["ada", "10.0.0.2:7717"]);
                assert_eq!(paths, vec![PathBuf::from("a.pdf"), PathBuf::from("--weird name")]);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["lanyard", "send", "ada"]).is_err(), "paths are required");
        for forgot in [
            &["lanyard", "send", "ada", "file.pdf"][..],
            &["lanyard", "--no-mdns", "send", "ada"],
        ] {
            let err = Cli::try_from_args(forgot).unwrap_err().to_string();
            assert_eq!(err, "error: put -- before the paths: lanyard send PEER... -- PATH...\n");
        }
        // Other mistakes keep clap's own message.
        let err = Cli::try_from_args(["lanyard", "send", "--", "x"]).unwrap_err().to_string();
        assert!(err.contains("<PEER>"), "{err}");
        let err = Cli::try_from_args(["lanyard", "get", "ada"]).unwrap_err().to_string();
        assert!(err.contains("<PATH>") && !err.contains("put --"), "{err}");
        let g = parse(&["lanyard", "get", "ada", "docs/a", "docs/b", "--to", "/tmp/x"]);
        assert!(matches!(g.command, Some(Command::Get { ref paths, to: Some(_), .. }) if paths.len() == 2));
    }

    #[test]
    fn bad_config_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "nikc = 1\n").unwrap();
        let err = resolve(&parse(&["lanyard", "--config", file.to_str().unwrap()]).global).unwrap_err();
        assert!(format!("{err:#}").contains("bad config file"));
    }
}
