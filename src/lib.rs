//! lanyard: find the other machines in a computer lab, chat with them, and move files — in a
//! terminal. Every instance is a server and a client at once.
//!
//! Layout:
//! - [`config`]: flags, `LANYARD_*` variables and the config file → one [`config::Config`].
//! - [`identity`]: the node's static keypair, its [`identity::PeerId`] and fingerprint.
//! - [`net`]: wire messages and limits, the frame codec, the Noise secure channel, mDNS.
//! - [`node`]: the core. A [`node::NodeHandle`] drives discovery, connections, chat
//!   ([`node::chat`]: delivery, offline queue, history) and the store, and reports
//!   [`node::Event`]s; every face is a thin layer over it.
//! - [`store`]: the SQLite database in the data dir.
//! - [`share`]: the folders served read-only with `--share`.
//! - [`transfer`]: pushing and pulling files, verified and resumable.
//! - [`cli`]: the one-shot commands, `serve --json`, and the local control socket.
//! - [`ui`]: terminal presentation helpers (the TUI grows here).

pub mod cli;
pub mod config;
pub mod identity;
pub mod net;
pub mod node;
pub mod share;
pub mod store;
pub mod transfer;
pub mod ui;
