//! Replication's foundation: the propagation log that the AOF and replicas read.

pub mod log;

pub use log::{PropagationLog, Sink};
