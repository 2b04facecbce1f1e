//! Fuzz target: whole RDB files (dump.rdb, AOF bases).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strata_fuzz::bounded(data, strata::persist::rdb::file::fuzz_rdb_file);
});
