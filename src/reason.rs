//! Why a transfer (or a connection) ended, as a code both ends and every face agree on. A
//! peer's own words may come with a code, but only the code is ever acted on: text is shown
//! as the peer's, never matched.
//!
//! On the wire a code is its snake_case name. A code this build does not know (a later
//! version's) reads as [`Reason::Other`], so adding one needs no new protocol version.
//!
//! Imports nothing from the crate, so the wire (net/) and the meaning (node/) share it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident = $code:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $name,)*
        }

        impl Reason {
            /// Every code, for tests and documentation.
            pub const ALL: &'static [Reason] = &[$(Reason::$name,)*];

            /// The code as it is written on the wire and in JSON.
            pub fn code(self) -> &'static str {
                match self {
                    $(Reason::$name => $code,)*
                }
            }

            /// The code written as `code`; a code from a later version is [`Reason::Other`].
            pub fn from_code(code: &str) -> Reason {
                match code {
                    $($code => Reason::$name,)*
                    _ => Reason::Other,
                }
            }
        }
    };
}

reasons! {
    /// The sender cancelled: both ends drop the partial data.
    CancelledBySender = "cancelled_by_sender",
    /// The receiver cancelled: both ends drop the partial data.
    CancelledByReceiver = "cancelled_by_receiver",
    /// The program at that end stopped (quit, Ctrl-C, SIGTERM): partial data is kept for a
    /// resume.
    Stopped = "stopped",
    /// A person (or the receiver's policy) said no.
    Rejected = "rejected",
    /// A pull (list or get) was refused: nothing shared, no such path.
    Refused = "refused",
    /// Nobody answered the offer in time.
    Expired = "expired",
    /// No connection slot was free.
    Busy = "busy",
    /// The offer does not fit the receiver's free space (told before anything moved).
    NoSpace = "no_space",
    /// The receiver's disk filled up while writing: partial data is kept.
    DiskFull = "disk_full",
    /// Another disk error (permission, I/O): partial data is kept.
    DiskError = "disk_error",
    /// Data failed its hash: it was corrupted on the way or at the source.
    BadData = "bad_data",
    /// An encrypted record failed authentication: altered on the way (possible tampering).
    Tampered = "tampered",
    /// A source file changed or vanished after it was offered.
    SourceChanged = "source_changed",
    /// Nothing moved for the stall limit.
    Stalled = "stalled",
    /// The connection broke (peer crashed, network gone): nothing was said.
    ConnectionLost = "connection_lost",
    /// The peer could not be reached.
    Unreachable = "unreachable",
    /// The peer broke the protocol.
    Protocol = "protocol",
    /// Another peer of a relayed send took this receive over.
    Superseded = "superseded",
    /// A relayed offer could not be confirmed with the peer that started it (its vouch did not
    /// come): a no to the relay, not to the files.
    Unconfirmed = "unconfirmed",
    /// A LocalSend device wants a PIN, or refused the one given: ask the person for it.
    PinRequired = "pin_required",
    /// Anything else, and any code this build does not know.
    Other = "other",
}

impl Reason {
    /// A cancel, by either end: partial data goes on both sides.
    pub fn is_cancel(self) -> bool {
        matches!(self, Reason::CancelledBySender | Reason::CancelledByReceiver)
    }

    /// Partial data is kept for a resume after an end for this reason.
    pub fn keeps_partial(self) -> bool {
        !self.is_cancel() && self != Reason::Rejected
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Reason, D::Error> {
        struct Code;
        impl serde::de::Visitor<'_> for Code {
            type Value = Reason;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a reason code")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Reason, E> {
                Ok(Reason::from_code(v))
            }
        }
        // Borrowed or not, a string: no allocation for a code however long a peer makes it
        // (the frame it came in is bounded already).
        d.deserialize_str(Code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out
    }

    #[test]
    fn every_code_round_trips_as_its_name() {
        let mut seen = std::collections::HashSet::new();
        for &r in Reason::ALL {
            assert!(seen.insert(r.code()), "{} twice", r.code());
            let back: Reason = ciborium::from_reader(&cbor(&r)[..]).unwrap();
            assert_eq!(back, r);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{}\"", r.code()));
            assert_eq!(Reason::from_code(r.code()), r);
        }
    }

    #[test]
    fn an_unknown_code_reads_as_other_instead_of_failing() {
        for code in ["eaten_by_a_grue", "", "CANCELLED_BY_SENDER", "stopped "] {
            let back: Reason = ciborium::from_reader(&cbor(&code)[..]).unwrap();
            assert_eq!(back, Reason::Other, "{code:?}");
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Msg {
            code: Reason,
            text: Option<String>,
        }
        #[derive(Serialize)]
        struct Later<'a> {
            code: &'a str,
            text: Option<&'a str>,
        }
        let later = cbor(&Later {
            code: "quota_exceeded",
            text: Some("over quota"),
        });
        let back: Msg = ciborium::from_reader(&later[..]).unwrap();
        assert_eq!(
            back,
            Msg {
                code: Reason::Other,
                text: Some("over quota".into())
            }
        );
    }

    #[test]
    fn a_code_that_is_not_a_string_is_malformed() {
        assert!(ciborium::from_reader::<Reason, _>(&cbor(&7u32)[..]).is_err());
    }

    #[test]
    fn only_a_cancel_drops_partial_data() {
        for &r in Reason::ALL {
            assert_eq!(r.keeps_partial(), !r.is_cancel() && r != Reason::Rejected, "{r}");
        }
        assert!(Reason::Stopped.keeps_partial());
        assert!(!Reason::CancelledBySender.keeps_partial());
    }
}
