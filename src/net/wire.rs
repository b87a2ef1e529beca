//! What travels on the wire, and how big it may be. Every limit here is checked before memory
//! is allocated for the thing it limits.

use serde::{Deserialize, Serialize};

use crate::limits::{CHAT_REFUSAL_BYTES, MAX_REASON_BYTES};
pub use crate::limits::{
    MAX_CHAT_TEXT, MAX_CONTROL_FRAME, MAX_HINT_ADDR_BYTES, MAX_HINT_ADDRS, MAX_NICK_BYTES, MAX_PEER_HINTS, MAX_SOFTWARE_BYTES,
};
use crate::reason::Reason;

/// Bumped on any incompatible change of the control protocol; checked in the preamble of control
/// connections and advertised over mDNS.
pub const PROTOCOL_VERSION: u16 = 1;
/// The same for transfer connections, whose preamble carries it instead: v2 verified chunks on
/// arrival and relayed; v3 is v2 with adjacently tagged frames and a small file in one frame; v4
/// gives every stop, refusal and failure a reason code (`crate::reason`). A
/// node of another transfer version can still chat; a transfer between them stops at the
/// preamble with "update lanyard".
pub const TRANSFER_PROTOCOL_VERSION: u16 = 4;
/// Sent first on every connection, before Noise: magic + version, so that a version mismatch is
/// reported as such instead of as a failed decryption.
pub const MAGIC: &[u8; 4] = b"LNYD";
pub const PREAMBLE_LEN: usize = 8;

pub use crate::identity::NOISE_PARAMS;
/// Noise's own ceiling for one transport message, tag included.
pub const NOISE_MAX_MESSAGE: usize = 65535;
pub const NOISE_TAG: usize = 16;
pub const NOISE_MAX_PLAINTEXT: usize = NOISE_MAX_MESSAGE - NOISE_TAG;

/// A chat message id: 128 random bits as lowercase hex.
pub const CHAT_ID_LEN: usize = 32;

/// What a connection is for; chosen by the initiator in its hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The one long-lived connection per peer pair: presence, chat, control.
    Control,
    /// A connection of its own per transfer or share request, so bulk data never delays chat.
    Transfer,
}

/// Sent inside the Noise handshake (encrypted, and bound to the static key that sends it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub nick: String,
    /// The machine's host name, shown beside the nick.
    pub host: String,
    /// The port this node accepts connections on, if it listens at all (one-shot commands don't).
    pub listen_port: Option<u16>,
    pub software: String,
    /// Random per run of the sender's process: a connection from a new session means the peer
    /// restarted, so any older connection of it is stale. 0 from a node that doesn't say.
    #[serde(default)]
    pub session: u64,
}

impl Hello {
    /// Bounds on what a peer may claim; anything beyond ends the handshake.
    ///
    /// Only lengths: a nick or host with hostile characters (`carol\u{200b}`) is kept as
    /// received and neutralised wherever it is shown (`crate::text::printable` makes it visibly
    /// differ from `carol`). Refusing it here would cut off a peer whose only fault is an odd
    /// name, and the same nick arrives unchecked through mDNS and `Nick` messages anyway; our
    /// own nick is refused instead (`node::validate_nick`), so we never send one.
    pub fn validate(&self) -> Result<(), String> {
        if self.nick.is_empty() || self.nick.len() > MAX_NICK_BYTES {
            return Err(format!("nick must be 1 to {MAX_NICK_BYTES} bytes"));
        }
        if self.host.len() > MAX_NICK_BYTES {
            return Err(format!("host name over {MAX_NICK_BYTES} bytes"));
        }
        if self.software.len() > MAX_SOFTWARE_BYTES {
            return Err("software string too long".into());
        }
        Ok(())
    }
}

/// Messages on a control connection after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ControlMsg {
    /// Keepalive: liveness comes from the connection, not from mDNS records that linger.
    Ping,
    /// The sender changed its nick.
    Nick { nick: String },
    /// Clean goodbye, so the other side reports us down at once.
    Bye { reason: ByeReason },
    /// A chat line. The receiver stores it, then acknowledges; a repeated id is acknowledged
    /// again but not shown again.
    Chat {
        id: String,
        /// For the `#all` room rather than a direct conversation.
        room: bool,
        /// The sender's clock, Unix milliseconds.
        sent_ms: u64,
        text: String,
    },
    /// The chat message with this id is stored on the receiver.
    ChatAck { id: String },
    /// The receiver did not store the chat message with this id, for `reason` (a budget, for a
    /// person: "too many messages, try later"). Final: the sender shows it failed, never resends.
    ChatRefused { id: String, reason: String },
    /// Peer exchange: peers the sender is connected to now, and where it reaches them. Sent when
    /// a connection comes up, so one mDNS hit or one `--peer` leads to the whole lab. Claims, not
    /// facts: the receiver dials them expecting these ids, and only a handshake with the matching
    /// key makes one a peer.
    Peers { peers: Vec<PeerHint> },
    /// The sender starts a relayed send with this id, whose offer hashes to `digest`: the
    /// recipient takes the offer when a relay passes it on only if it matches, so no relay can
    /// change what the sender offered (and the offer is shown as the sender's).
    Vouch { transfer: String, digest: serde_bytes::ByteBuf },
    /// A recipient asks the sender for its vouch again (the first one may have been lost with a
    /// connection that was replaced); the sender answers with `Vouch` while the send runs.
    VouchRequest { transfer: String },
    /// A recipient of a relayed send tells its sender, over its own authenticated connection,
    /// how the offer that hashes to `digest` ended here: the only word on a recipient's fate a
    /// sender counts (a relay's report on the peers behind it is a claim). `finished`: it has
    /// every file it will get, `failed` of them did not arrive; else it ended early, `code`
    /// says why (a no or a cancel is not offered again). `reason`: why, in its words.
    Verdict {
        transfer: String,
        digest: serde_bytes::ByteBuf,
        finished: bool,
        files: u32,
        bytes: u64,
        failed: u32,
        code: Option<Reason>,
        reason: Option<String>,
    },
    /// The sender of this message ended the transfer with this id for good (told again over
    /// the control connection when the transfer's own connection could not carry it): the
    /// receiver of this message ends it too and drops its partial data. `code`: why, when it is
    /// not a cancel (a paused send whose sources changed or vanished cannot be resumed).
    Cancelled {
        transfer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<Reason>,
    },
    /// A message a later version added: ignored, so adding one needs no new protocol version.
    #[serde(other)]
    Unknown,
}

/// One peer in a `Peers` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHint {
    pub id: String,
    /// `IP:PORT` where the sender reaches it, in the order it would try them.
    pub addrs: Vec<String>,
}

/// A well-formed chat id: exactly [`CHAT_ID_LEN`] lowercase hex digits.
pub fn valid_chat_id(id: &str) -> bool {
    id.len() == CHAT_ID_LEN && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ControlMsg {
    /// The sender's word that relayed send `transfer` offers what hashes to `digest`.
    pub fn vouch(transfer: String, digest: &[u8; 32]) -> ControlMsg {
        ControlMsg::Vouch {
            transfer,
            digest: serde_bytes::ByteBuf::from(digest.to_vec()),
        }
    }

    /// Bounds a peer's control message must respect; a violation ends the connection.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            ControlMsg::Chat { id, text, .. } => {
                if !valid_chat_id(id) {
                    return Err("malformed chat id".into());
                }
                if text.len() > MAX_CHAT_TEXT {
                    return Err(format!("chat text over {MAX_CHAT_TEXT} bytes"));
                }
                Ok(())
            }
            ControlMsg::ChatAck { id } if !valid_chat_id(id) => Err("malformed chat ack id".into()),
            ControlMsg::ChatRefused { id, .. } if !valid_chat_id(id) => Err("malformed chat refusal id".into()),
            ControlMsg::ChatRefused { reason, .. } if reason.len() > CHAT_REFUSAL_BYTES => {
                Err(format!("chat refusal reason over {CHAT_REFUSAL_BYTES} bytes"))
            }
            ControlMsg::Nick { nick } if nick.is_empty() || nick.len() > MAX_NICK_BYTES => {
                Err(format!("nick must be 1 to {MAX_NICK_BYTES} bytes"))
            }
            ControlMsg::Vouch { transfer, digest } if transfer.len() > 64 || digest.len() != 32 => Err("malformed vouch".into()),
            ControlMsg::VouchRequest { transfer } if transfer.len() > 64 => Err("malformed vouch request".into()),
            ControlMsg::Cancelled { transfer, .. } if transfer.len() > 64 => Err("malformed cancel".into()),
            ControlMsg::Verdict {
                transfer, digest, reason, ..
            } if transfer.len() > 64 || digest.len() != 32 || reason.as_ref().is_some_and(|e| e.len() > MAX_REASON_BYTES) => {
                Err("malformed verdict".into())
            }
            ControlMsg::Peers { peers } => {
                if peers.len() > MAX_PEER_HINTS {
                    return Err(format!("over {MAX_PEER_HINTS} peers in one list"));
                }
                for hint in peers {
                    if hint.addrs.len() > MAX_HINT_ADDRS {
                        return Err(format!("a listed peer with over {MAX_HINT_ADDRS} addresses"));
                    }
                    if hint.addrs.iter().any(|a| a.len() > MAX_HINT_ADDR_BYTES) {
                        return Err(format!("a listed address over {MAX_HINT_ADDR_BYTES} bytes"));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ByeReason {
    /// The node is shutting down.
    Leaving,
    /// Both sides dialled at once; this connection lost, the other one carries on.
    Duplicate,
    /// Refused: all connection slots (or all those for new peers) are in use.
    Busy,
    /// Refused: the dialling address already holds its share of the connections.
    TooManyFromAddress,
    /// Refused: another node with the same identity (key) connected here after this one; two
    /// nodes cannot share one identity.
    SameIdentity,
}

impl ByeReason {
    /// What to tell a person when a peer refused the connection with this goodbye.
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            ByeReason::Busy => Some("busy: all connection slots are in use"),
            ByeReason::TooManyFromAddress => Some("too many connections from your address"),
            ByeReason::SameIdentity => {
                Some("another lanyard node runs with this identity (the same key, after `lanyard id import` elsewhere?): stop one of them")
            }
            ByeReason::Leaving | ByeReason::Duplicate => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `control_msg` fuzz target: `validate` passed any nick (the bound was checked
    /// only where the message is handled).
    #[test]
    fn a_nick_is_validated_within_its_bound() {
        let nick = |n: &str| ControlMsg::Nick { nick: n.into() }.validate();
        assert!(nick("").is_err());
        assert!(nick(&"n".repeat(MAX_NICK_BYTES + 1)).is_err());
        assert!(nick(&"n".repeat(MAX_NICK_BYTES)).is_ok());
        assert!(nick("ada").is_ok());
    }
}
