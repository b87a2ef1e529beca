//! Offer validation: a manifest is accepted exactly when its names are safe and consistent.
#![no_main]

use lanyard::fuzzing::transfer::wire::Item;
use lanyard_fuzz::{invariants, message_target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| message_target(data, lanyard_fuzz::items, |items: &Vec<Item>| invariants::offer(items)));
