//! lanyard: find the other machines in a computer lab, chat with them, and move files — in a
//! terminal. Every instance is a server and a client at once.
//!
//! Layout, from the bottom up (a module imports only from the ones above it in this list):
//! - [`text`]: neutralising hostile text (control characters, escapes, bidi and invisible marks).
//! - [`limits`]: every budget a peer can run into (connections, deadlines, memory, disk, rows).
//! - [`reason`]: why a transfer or connection ended, as a code on the wire and in every face.
//! - `tasks`: the node's tasks, each with a name, so shutdown can say which did not end.
//! - [`identity`]: the node's static keypair, its [`identity::PeerId`] and fingerprint.
//! - `net`: bytes and crypto: wire messages and limits, frames, the Noise channel, mDNS.
//! - [`store`]: the SQLite database in the data dir.
//! - [`node`]: meaning: peers, chat, transfers, shares, and the face API (snapshot, events,
//!   calls, the local control socket). Every face is a thin layer over it.
//! - [`config`]: flags, `LANYARD_*` variables and the config file → one [`config::Config`].
//! - [`cli`]: the faces without a screen: one-shot commands and `serve`.
//! - [`ui`]: the terminal UI, the face people launch (`lanyard`).
//!
//! `net` and everything in `node` but its face API (`api`, `control`, `events`, `snapshot`) are
//! private to the crate. `fuzzing` (hidden, only with the `test-hooks` feature) opens the wire and
//! the private checks to the fuzz targets and the tests that play a hostile peer.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod limits;
pub(crate) mod net;
pub mod node;
pub mod reason;
pub mod store;
pub(crate) mod tasks;
pub mod text;
pub mod ui;
