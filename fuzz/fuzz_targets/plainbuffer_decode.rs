//! Any byte string either decodes or is rejected with an error; a decoded buffer re-encodes
//! to rows that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ots_protocol::plainbuffer;

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = plainbuffer::decode(data) {
        let again = plainbuffer::decode(&plainbuffer::encode(&rows)).expect("re-encoded rows decode");
        assert_eq!(format!("{again:?}"), format!("{rows:?}"));
    }
});
