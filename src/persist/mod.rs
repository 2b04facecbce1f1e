//! Persistence in Redis's own formats: the multi-part AOF (`aof`); RDB files and the value
//! codec shared by RDB, DUMP/RESTORE and the tier's cold records come next to it.
//!
//! Every byte goes through [`crate::io::FileSystem`], so the simulator can crash, tear and
//! fail it, and the same code runs in production and under simulation.

pub mod aof;
