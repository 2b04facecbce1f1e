//! `strata-sim`: deterministic simulation of Strata's persistence.
//!
//! It drives the real server code (executor, keyspace, AOF writer, loader, rewrite) through
//! the `strata::io` seams with a simulated disk ([`disk`]) and clock, runs a seeded random
//! workload ([`workload`]) with crashes, restarts and disk faults, and after every recovery
//! checks the state against what the fsync policy promised ([`run`]). Half the runs put the
//! memory tier under pressure, with faults on its segment files ([`tier`]). A seed replays a
//! run exactly; its trace hash proves it.

/// A struct of `u64` counters, with `add` (field by field) and `total`.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: u64,)*
        }

        impl $name {
            pub fn add(&mut self, other: &$name) {
                $(self.$field += other.$field;)*
            }

            pub fn total(&self) -> u64 {
                0 $(+ self.$field)*
            }
        }
    };
}

pub mod digest;
pub mod disk;
pub mod run;
pub mod tier;
pub mod workload;
