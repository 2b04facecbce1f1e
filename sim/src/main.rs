//! `strata-sim`: the deterministic simulator (issue 7) is not built yet.
//!
//! The seams it will drive exist: `strata::io::{Clock, FileSystem}` carry time and disk I/O,
//! and the keyspace takes a seed. Until the simulator lands, this binary says so and fails,
//! rather than pretending to have run anything.

fn main() {
    eprintln!("strata-sim: the deterministic simulator is not implemented yet (see issue 7)");
    std::process::exit(2);
}
