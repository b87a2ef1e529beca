//! Transfer messages: what decodes round-trips; manifests, saved-as names and reasons in them
//! are checked as the receiver checks them.
#![no_main]

use lanyard_fuzz::{invariants, message_target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| message_target(data, lanyard_fuzz::transfer_msg, invariants::transfer_msg));
