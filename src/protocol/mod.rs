//! The wire protocol: the request parser and the reply encoder.

pub mod parser;
pub mod reply;

pub use parser::{Limits, ProtocolError, RequestParser};
pub use reply::Reply;
