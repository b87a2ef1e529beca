//! Offer validation: a manifest is accepted exactly when its names are safe and consistent.
#![no_main]

use lanyard::net::frame;
use lanyard::node::transfer::wire::Item;
use lanyard_fuzz::{invariants, items, raw_or};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let items = match raw_or(data) {
        (Some(bytes), _) => frame::decode::<Vec<Item>>(bytes).ok(),
        (None, mut u) => items(&mut u).ok(),
    };
    if let Some(items) = items {
        invariants::offer(&items);
    }
});
