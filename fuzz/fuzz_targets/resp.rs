//! Fuzz target: the request parser (RESP multibulk and inline), fed whole and in pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strata_fuzz::bounded(data, strata::protocol::parser::fuzz_requests);
});
