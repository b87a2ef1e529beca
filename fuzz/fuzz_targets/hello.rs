//! The hello inside the handshake: what decodes round-trips, and `validate` passes exactly the
//! hellos within the limits.
#![no_main]

use lanyard::net::wire::Hello;
use lanyard_fuzz::{hello, invariants, raw_or};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let h = match raw_or(data) {
        (Some(bytes), _) => invariants::body::<Hello>(bytes),
        (None, mut u) => hello(&mut u).ok(),
    };
    if let Some(h) = h {
        invariants::hello(&h);
    }
});
