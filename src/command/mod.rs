//! Commands: the table, the executor, and one file per family.

pub mod args;
pub mod bitmaps;
pub mod block;
pub mod client;
pub mod connection;
pub mod dump;
pub mod exec;
pub mod geo;
pub mod hashes;
pub mod hyperloglog;
pub mod info;
pub mod introspection;
pub mod keys;
pub mod lists;
pub mod persistence;
pub mod pubsub;
pub mod server;
pub mod sets;
pub mod sort;
pub mod streams;
pub mod strings;
pub mod table;
pub mod transactions;
pub mod zsets;

pub use exec::{
    dispatch, dispatch_resolved, dispatch_run, run_command, Action, Admission, Ctx, Handler,
    RUN_REQUESTS_MAX,
};
pub use table::{table, Command, Lock, Spec};

/// Every family's specs; the table is built from these.
pub static FAMILIES: &[&[Spec]] = &[
    connection::COMMANDS,
    client::COMMANDS,
    strings::COMMANDS,
    hashes::COMMANDS,
    keys::COMMANDS,
    lists::COMMANDS,
    server::COMMANDS,
    info::COMMANDS,
    introspection::COMMANDS,
    transactions::COMMANDS,
    sets::COMMANDS,
    zsets::COMMANDS,
    dump::COMMANDS,
    sort::COMMANDS,
    persistence::COMMANDS,
    streams::COMMANDS,
    geo::COMMANDS,
    pubsub::COMMANDS,
    bitmaps::COMMANDS,
    hyperloglog::COMMANDS,
];
