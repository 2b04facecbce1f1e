//! The server: shared state, client sessions, the connection loop and threads, the listener,
//! the cron.

pub mod blocking;
pub mod clients;
pub mod conn;
pub mod cron;
pub mod listener;
pub mod monitor;
pub mod persistence;
pub mod pubsub;
pub mod slowlog;
pub mod state;
pub mod threads;

pub use clients::{
    ClientHandle, Clients, Multi, Outgoing, OutputClass, ReplyMode, Session, Watched,
};
pub use listener::{run, start, Running};
pub use state::{Server, ServerStats};
