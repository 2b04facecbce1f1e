//! Fuzz target: the configuration file parser (a config file is read from disk as it is).
#![no_main]

use libfuzzer_sys::fuzz_target;

fn load(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let _ = strata::config::Config::default().load_text(&text);
}

fuzz_target!(|data: &[u8]| {
    strata_fuzz::bounded(data, load);
});
