//! Filter parser/printer/evaluator: crashes on any invariant violation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = roster_scim::fuzz::check_filter(data) {
        panic!("{e}");
    }
});
