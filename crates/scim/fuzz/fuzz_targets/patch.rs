//! PATCH applier: crashes on any invariant violation (partial writes,
//! non-4xx errors, lost core schema).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = roster_scim::fuzz::check_patch(data) {
        panic!("{e}");
    }
});
