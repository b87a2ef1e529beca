//! Configuration: command-line flags win over `LANYARD_*` environment variables (both handled by
//! clap), which win over the config file, which wins over the platform defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::node::{DEFAULT_PORT, NodeConfig};

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
        Cli::try_parse_from(args).map_err(|e| {
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
    /// Config file (default: config.toml in the platform config dir, if there; a file named here
    /// must exist)
    #[arg(long, global = true, env = "LANYARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// Print this node's id, fingerprint and nick
    Id {
        /// One JSON object
        #[arg(long)]
        json: bool,
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
}

/// The config file's keys: the long flag names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    nick: Option<String>,
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    download_dir: Option<PathBuf>,
    #[serde(default)]
    share: Vec<PathBuf>,
    #[serde(default)]
    peer: Vec<String>,
    mdns: Option<bool>,
    relay: Option<bool>,
}

/// Everything resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The nick given this time (flag, `LANYARD_NICK` or the config file). A node stores it in
    /// the data dir; `None` leaves it to the stored one, else the default
    /// ([`crate::node::nick`]).
    pub nick_given: Option<String>,
    pub port: u16,
    pub data_dir: PathBuf,
    pub download_dir: PathBuf,
    pub shares: Vec<PathBuf>,
    pub peers: Vec<String>,
    pub mdns: bool,
    /// A send to several peers is relayed through them (else parallel uploads).
    pub relay: bool,
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "lanyard")
}

impl Config {
    pub fn resolve(args: &GlobalArgs) -> Result<Config> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None => match project_dirs().map(|d| d.config_dir().join("config.toml")) {
                Some(path) if path.exists() => read_file_config(&path)?,
                _ => FileConfig::default(),
            },
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .or_else(|| project_dirs().map(|d| d.data_dir().to_path_buf()));
        let data_dir = data_dir.context("no data dir: give --data-dir (no home directory found)")?;
        let download_dir = args
            .download_dir
            .clone()
            .or(file.download_dir)
            .or_else(|| {
                let user = directories::UserDirs::new();
                let platform = user.as_ref().and_then(|u| u.download_dir().map(Path::to_path_buf));
                default_download_dir(platform, user.map(|u| u.home_dir().to_path_buf()))
            })
            .context("no download dir: give --download-dir (no home directory found)")?;
        let nick_given = args.nick.clone().or(file.nick);
        if let Some(nick) = &nick_given {
            crate::node::validate_nick(nick)?;
        }
        Ok(Config {
            nick_given,
            port: args.port.or(file.port).unwrap_or(DEFAULT_PORT),
            data_dir,
            download_dir,
            shares: if args.shares.is_empty() { file.share } else { args.shares.clone() },
            peers: if args.peers.is_empty() { file.peer } else { args.peers.clone() },
            mdns: !args.no_mdns && file.mdns.unwrap_or(true),
            // The flag (or its variable) wins over the file, either way.
            relay: args.no_relay.map_or(file.relay.unwrap_or(true), |no| !no),
        })
    }

    /// A node that serves: listens on the port and, with mDNS, advertises.
    pub fn serving_node(&self, accept_all: bool) -> NodeConfig {
        NodeConfig {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], self.port))),
            advertise: true,
            accept_all,
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
            manual_peers: self.peers.clone(),
            mdns: self.mdns,
            advertise: false,
            accept_all: false,
            db_budget: Default::default(),
            stall_timeout: test_hook("LANYARD_TEST_STALL_SECS")
                .map(std::time::Duration::from_secs)
                .unwrap_or(crate::limits::TRANSFER_STALL),
            corrupt_forward: test_hook("LANYARD_TEST_CORRUPT_FORWARD"),
            relay_tamper: None,
        }
    }
}

/// A number from an undocumented environment variable that multi-host tests set to make a
/// node misbehave on purpose (a shorter stall limit, a relay that corrupts what it forwards).
fn test_hook(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn read_file_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("bad config file {}", path.display()))
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
            Some(Command::Send { peers, paths }) => {
                assert_eq!(peers, vec!["bob", "10.0.0.9:7717"]);
                assert_eq!(paths, vec![PathBuf::from("a.pdf"), PathBuf::from("b")]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn relaying_is_on_unless_a_flag_the_environment_or_the_file_turns_it_off() {
        let global = |args: &[&str]| Config::resolve(&parse(args).global).unwrap().relay;
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
        let c = Config::resolve(&parse(&["lanyard", "--config", cfg, "--data-dir", "/tmp/x"]).global).unwrap();
        assert_eq!((c.nick_given.as_deref(), c.port, c.mdns), (Some("from-file"), 9000, false));
        assert_eq!(c.peers, vec!["a:1"]);
        let c =
            Config::resolve(&parse(&["lanyard", "--config", cfg, "--data-dir", "/tmp/x", "--nick", "flag", "--port", "1"]).global).unwrap();
        assert_eq!((c.nick_given.as_deref(), c.port), (Some("flag"), 1));
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
            Some(Command::Send { peers, paths }) => {
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
        let err = Config::resolve(&parse(&["lanyard", "--config", file.to_str().unwrap()]).global).unwrap_err();
        assert!(format!("{err:#}").contains("bad config file"));
    }
}
