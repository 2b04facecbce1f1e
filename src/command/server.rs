//! Server commands (being written).

use super::table::Spec;

pub static COMMANDS: &[Spec] = &[];
