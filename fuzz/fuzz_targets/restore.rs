//! Fuzz target: DUMP payloads for RESTORE, and bare RDB values.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strata_fuzz::bounded(data, strata::persist::fuzz_restore_payload);
});
