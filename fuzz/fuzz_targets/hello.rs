//! The hello inside the handshake: what decodes round-trips, and `validate` passes exactly the
//! hellos within the limits.
#![no_main]

use lanyard_fuzz::{invariants, message_target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| message_target(data, lanyard_fuzz::hello, invariants::hello));
