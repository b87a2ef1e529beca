//! Share requests: a requested path resolves inside its share or not at all, through `..`,
//! links out, link cycles and dangling links alike.
#![no_main]

use std::sync::OnceLock;

use lanyard_fuzz::invariants::{self, ShareFixture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static FIXTURE: OnceLock<ShareFixture> = OnceLock::new();
    let fx = FIXTURE.get_or_init(invariants::share_fixture);
    invariants::share_request(fx, &String::from_utf8_lossy(data));
});
