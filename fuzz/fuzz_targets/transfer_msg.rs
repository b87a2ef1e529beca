//! Transfer messages: what decodes round-trips; manifests, saved-as names and reasons in them
//! are checked as the receiver checks them.
#![no_main]

use lanyard::node::transfer::wire::TransferMsg;
use lanyard_fuzz::{invariants, raw_or, transfer_msg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let msg = match raw_or(data) {
        (Some(bytes), _) => invariants::body::<TransferMsg>(bytes),
        (None, mut u) => transfer_msg(&mut u).ok(),
    };
    if let Some(msg) = msg {
        invariants::transfer_msg(&msg);
    }
});
