//! Fuzz target: random command sequences against the real executor and a reference model.
#![no_main]

use libfuzzer_sys::fuzz_target;

// Not wrapped in `bounded`: this target checks replies, not a decoder's allocations (a server
// and its keyspace cost more than the decoders' fixed allowance).
fuzz_target!(|data: &[u8]| {
    strata_fuzz::command_sequence::run(data);
});
