//! The DUMP payload: one RDB value, the RDB version (u16 LE) and a CRC-64 (u64 LE) of
//! everything before it, as Redis's `createDumpPayload` builds it and `verifyDumpPayload`
//! checks it.

use super::decode::{decode_value, DecodeOptions};
use super::encode::{encode_value, EncodeOptions};
use super::{crc64, DecodeError, EncodeError, RDB_VERSION, RDB_VERSION_READ_MAX};
use crate::types::Value;

/// Footer bytes: the version (2) and the checksum (8).
pub const FOOTER_BYTES: usize = 10;

/// DUMP's reply for `value`.
pub fn create_dump_payload(value: &Value, options: &EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_value(&mut out, value, options)?;
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert!(verify_dump_payload(&out, false).is_some());
    Ok(out)
}

/// The value bytes of a payload whose footer is sound: a version Strata reads and (unless
/// `skip_checksum`) a matching CRC-64. `None` is RESTORE's "DUMP payload version or checksum
/// are wrong".
pub fn verify_dump_payload(payload: &[u8], skip_checksum: bool) -> Option<(&[u8], u16)> {
    if payload.len() < FOOTER_BYTES {
        return None;
    }
    let (body_and_version, crc) = payload.split_at(payload.len() - 8);
    let body = &body_and_version[..body_and_version.len() - 2];
    let version = u16::from_le_bytes([
        body_and_version[body_and_version.len() - 2],
        body_and_version[body_and_version.len() - 1],
    ]);
    if version > RDB_VERSION_READ_MAX {
        return None;
    }
    if !skip_checksum {
        let mut expected = [0u8; 8];
        expected.copy_from_slice(crc);
        if crc64::checksum(body_and_version) != u64::from_le_bytes(expected) {
            return None;
        }
    }
    Some((body, version))
}

/// Decodes the value of a verified payload. Redis's RESTORE reads from the whole payload,
/// footer included, and ignores what the value leaves unread; so does this.
pub fn decode_dump_body(payload: &[u8], options: &DecodeOptions) -> Result<Value, DecodeError> {
    let (value, _consumed) = decode_value(payload, options)?;
    Ok(value)
}

/// Entry point for a fuzz target: any bytes, as a payload (checksum skipped, since a fuzzer
/// cannot forge it) and as a bare value, with and without deep checks. Must never panic.
pub fn fuzz_restore_payload(bytes: &[u8]) {
    let shallow = DecodeOptions {
        deep: false,
        ..DecodeOptions::DEFAULT
    };
    for options in [DecodeOptions::DEFAULT, shallow] {
        if verify_dump_payload(bytes, true).is_some() {
            let _ = decode_dump_body(bytes, &options);
        }
        if let Ok((value, consumed)) = decode_value(bytes, &options) {
            assert!(consumed <= bytes.len());
            // What decodes must encode again and decode to the same value.
            if let Ok(payload) = create_dump_payload(&value, &EncodeOptions::DEFAULT) {
                assert!(
                    verify_dump_payload(&payload, false).is_some(),
                    "a fresh payload verifies"
                );
                let again = decode_dump_body(&payload, &options).expect("a fresh payload decodes");
                assert_eq!(again.type_name(), value.type_name());
            }
        }
    }
}
