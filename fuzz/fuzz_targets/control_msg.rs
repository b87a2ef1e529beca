//! Control messages: what decodes round-trips, and `validate` passes exactly the messages
//! within the limits of `net/wire.rs`.
#![no_main]

use lanyard::net::wire::ControlMsg;
use lanyard_fuzz::{control_msg, invariants, raw_or};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let msg = match raw_or(data) {
        (Some(bytes), _) => invariants::body::<ControlMsg>(bytes),
        (None, mut u) => control_msg(&mut u).ok(),
    };
    if let Some(msg) = msg {
        invariants::control_msg(&msg);
    }
});
