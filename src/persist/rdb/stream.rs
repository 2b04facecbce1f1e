//! Streams in RDB (types 15, 19 and 21: STREAM_LISTPACKS 1 to 3). Not written yet: the
//! streams work owns the representation and fills in `encode` and `decode` here, the only
//! two functions `encode.rs` and `decode.rs` call for streams.

use super::decode::{DecodeOptions, Reader};
use super::encode::EncodeOptions;
use super::{DecodeError, EncodeError};
use crate::types::{Stream, Value};

const NOT_SUPPORTED: &str = "stream values are not supported yet";

/// The type number a stream is written with (STREAM_LISTPACKS_2 for RDB 10, once written).
pub fn value_type() -> Result<u8, EncodeError> {
    Err(EncodeError {
        reason: NOT_SUPPORTED,
    })
}

/// Appends a stream's body (after its type byte).
pub fn encode(
    _out: &mut Vec<u8>,
    _stream: &Stream,
    _options: &EncodeOptions,
) -> Result<(), EncodeError> {
    Err(EncodeError {
        reason: NOT_SUPPORTED,
    })
}

/// Reads a stream body of RDB type `kind` (15, 19 or 21).
pub fn decode(
    reader: &mut Reader<'_>,
    kind: u8,
    _options: &DecodeOptions,
) -> Result<Value, DecodeError> {
    debug_assert!(matches!(kind, 15 | 19 | 21));
    Err(DecodeError::unsupported(reader.position(), NOT_SUPPORTED))
}
