//! The frame layer: headers are bounded exactly, a stream of frames reads as whole frames or
//! fails, and every body that decodes round-trips.
#![no_main]

use lanyard::fuzzing::net::frame::{self, FrameError, LEN_BYTES};
use lanyard::fuzzing::net::wire::{ControlMsg, MAX_CONTROL_FRAME};
use lanyard::fuzzing::transfer::wire::{MAX_TRANSFER_FRAME, TransferMsg};
use lanyard_fuzz::{block_on, invariants};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(header) = data.first_chunk::<LEN_BYTES>() {
        invariants::frame_header(*header, MAX_CONTROL_FRAME);
        invariants::frame_header(*header, MAX_TRANSFER_FRAME);
        invariants::frame_header(*header, data.len());
    }
    // A stream of frames, as the local control socket reads it.
    block_on(async {
        let mut rest = data;
        loop {
            let before = rest.len();
            match frame::read::<ControlMsg, _>(&mut rest, MAX_CONTROL_FRAME).await {
                Ok(Some(msg)) => {
                    assert!(before - rest.len() > LEN_BYTES);
                    invariants::round_trip(&msg);
                }
                Ok(None) => {
                    assert_eq!(before, 0, "a clean end with {before} bytes of a header left");
                    break;
                }
                Err(FrameError::TooLarge { len, max }) => {
                    assert!(len > max);
                    break;
                }
                Err(_) => break,
            }
        }
    });
    // The whole input as one body, of either connection's messages.
    invariants::body::<ControlMsg>(data);
    invariants::body::<TransferMsg>(data);
});
