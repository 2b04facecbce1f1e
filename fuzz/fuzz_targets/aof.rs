//! Fuzz target: the AOF manifest and the AOF command stream.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strata_fuzz::bounded(data, strata::persist::aof::load::fuzz_aof);
});
