//! Control messages: what decodes round-trips, and `validate` passes exactly the messages
//! within the limits of `net/wire.rs`.
#![no_main]

use lanyard_fuzz::{invariants, message_target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| message_target(data, lanyard_fuzz::control_msg, invariants::control_msg));
