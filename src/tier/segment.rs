//! The record format of the memory tier's segment files: pure encoding and decoding.
//!
//! A segment file is a run of records with nothing between them. One record is a fixed header,
//! the key, then the stored payload (the serialized value, zstd-compressed when that saves at
//! least an eighth). Every integer is little-endian with an explicit width:
//!
//! ```text
//! offset  bytes  field
//!      0      4  crc32       crc32fast over every byte after it in the record
//!      4      1  flags       bit 0: the payload is zstd-compressed; other bits are zero
//!      5      1  kind        the value's type, an opaque byte the caller chose
//!      6      4  db          the database number
//!     10      4  key_len     bytes of key
//!     14      4  stored_len  bytes of payload as stored (compressed or not)
//!     18      4  raw_len     bytes of payload before compression
//!     22          key, then the stored payload
//! ```
//!
//! Segments live on a disk that can flip bits, so decoding checks every length against the
//! bytes present and the crc before trusting any field; a record that fails never yields data.
//! Invariant (asserted on encode, checked on decode): `length == HEADER_BYTES + key_len +
//! stored_len`, the record fits a `u32`, and an uncompressed record has `stored_len == raw_len`.

use std::fmt;

/// Byte layout of the header, each offset chained from the previous field.
const CRC_OFFSET: usize = 0;
const FLAGS_OFFSET: usize = CRC_OFFSET + 4;
const KIND_OFFSET: usize = FLAGS_OFFSET + 1;
const DB_OFFSET: usize = KIND_OFFSET + 1;
const KEY_LEN_OFFSET: usize = DB_OFFSET + 4;
const STORED_LEN_OFFSET: usize = KEY_LEN_OFFSET + 4;
const RAW_LEN_OFFSET: usize = STORED_LEN_OFFSET + 4;
/// Bytes of the fixed header; the key starts here.
pub const HEADER_BYTES: usize = RAW_LEN_OFFSET + 4;
const _: () = assert!(HEADER_BYTES == 22);

/// Flag bit: the stored payload is a zstd frame.
const FLAG_ZSTD: u8 = 1;
/// Every flag bit this version knows; a record with another bit set is corrupt.
const FLAGS_KNOWN: u8 = FLAG_ZSTD;

/// A whole record must be addressable by a `ColdRef` (u32 offset and length).
pub const RECORD_BYTES_MAX: usize = u32::MAX as usize;
/// Payloads smaller than this are stored as they are: zstd cannot save an eighth of them
/// often enough to be worth the attempt.
const COMPRESS_BYTES_MIN: usize = 64;

/// How payloads are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// zstd at this level (clamped to the levels zstd supports).
    Zstd(i32),
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// Fewer bytes than the header, or than the lengths in it say.
    Truncated {
        needed: usize,
        present: usize,
    },
    /// More bytes than the header's lengths account for.
    TrailingBytes {
        expected: usize,
        present: usize,
    },
    /// The record would not fit a `u32` length.
    TooLarge {
        bytes: usize,
    },
    Checksum {
        stored: u32,
        computed: u32,
    },
    UnknownFlags(u8),
    /// An uncompressed record whose stored and raw lengths differ.
    RawLength {
        stored: u32,
        raw: u32,
    },
    Decompress(String),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Truncated { needed, present } => {
                write!(
                    f,
                    "truncated record: {needed} bytes needed, {present} present"
                )
            }
            FormatError::TrailingBytes { expected, present } => {
                write!(
                    f,
                    "record length mismatch: header says {expected} bytes, {present} present"
                )
            }
            FormatError::TooLarge { bytes } => {
                write!(
                    f,
                    "record of {bytes} bytes exceeds the {RECORD_BYTES_MAX}-byte limit"
                )
            }
            FormatError::Checksum { stored, computed } => write!(
                f,
                "crc32 mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            FormatError::UnknownFlags(flags) => write!(f, "unknown record flags {flags:#04x}"),
            FormatError::RawLength { stored, raw } => write!(
                f,
                "uncompressed record with stored length {stored} and raw length {raw}"
            ),
            FormatError::Decompress(reason) => write!(f, "payload does not decompress: {reason}"),
        }
    }
}

impl std::error::Error for FormatError {}

/// A decoded, crc-checked record borrowing the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub db: u32,
    pub kind: u8,
    pub compressed: bool,
    pub key: &'a [u8],
    /// The payload as stored (a zstd frame when `compressed`).
    pub stored: &'a [u8],
    /// The payload's length before compression.
    pub raw_len: u32,
}

impl Record<'_> {
    /// Bytes of the whole record.
    pub fn length(&self) -> usize {
        HEADER_BYTES + self.key.len() + self.stored.len()
    }

    /// The payload, decompressed; exactly `raw_len` bytes or an error.
    pub fn payload(&self) -> Result<Vec<u8>, FormatError> {
        if !self.compressed {
            debug_assert_eq!(self.stored.len(), self.raw_len as usize);
            return Ok(self.stored.to_vec());
        }
        // The capacity bounds the output: a frame claiming more than raw_len fails here.
        let payload = zstd::bulk::decompress(self.stored, self.raw_len as usize)
            .map_err(|error| FormatError::Decompress(error.to_string()))?;
        if payload.len() != self.raw_len as usize {
            return Err(FormatError::Decompress(format!(
                "{} bytes decompressed, {} expected",
                payload.len(),
                self.raw_len
            )));
        }
        Ok(payload)
    }
}

/// Encodes one record. Compresses with zstd (when asked) only if that saves at least an eighth
/// of the payload. Fails only for a record too large for a `u32` length.
pub fn encode(
    db: u32,
    key: &[u8],
    kind: u8,
    payload: &[u8],
    compression: Compression,
) -> Result<Vec<u8>, FormatError> {
    let compressed = match compression {
        Compression::Zstd(level) if payload.len() >= COMPRESS_BYTES_MIN => {
            let range = zstd::compression_level_range();
            let level = level.clamp(*range.start(), *range.end());
            // A compression failure is not an error: the payload is stored as it is.
            zstd::bulk::compress(payload, level)
                .ok()
                .filter(|frame| frame.len() <= payload.len() - payload.len() / 8)
        }
        _ => None,
    };
    let stored = compressed.as_deref().unwrap_or(payload);
    let length = HEADER_BYTES + key.len() + stored.len();
    // The raw length must fit the u32 field as well as the whole record.
    if length > RECORD_BYTES_MAX || payload.len() > u32::MAX as usize {
        return Err(FormatError::TooLarge {
            bytes: length.max(payload.len()),
        });
    }
    let mut record = Vec::with_capacity(length);
    record.extend_from_slice(&[0u8; 4]);
    record.push(if compressed.is_some() { FLAG_ZSTD } else { 0 });
    record.push(kind);
    record.extend_from_slice(&db.to_le_bytes());
    record.extend_from_slice(&(key.len() as u32).to_le_bytes());
    record.extend_from_slice(&(stored.len() as u32).to_le_bytes());
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    debug_assert_eq!(record.len(), HEADER_BYTES);
    record.extend_from_slice(key);
    record.extend_from_slice(stored);
    seal(&mut record);
    assert_eq!(record.len(), length);
    Ok(record)
}

/// Writes the crc of a record's bytes (every byte after the crc field) into its header.
pub(crate) fn seal(record: &mut [u8]) {
    assert!(record.len() >= HEADER_BYTES);
    let crc = crc32fast::hash(&record[FLAGS_OFFSET..]);
    record[CRC_OFFSET..FLAGS_OFFSET].copy_from_slice(&crc.to_le_bytes());
}

fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut field = [0u8; 4];
    field.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(field)
}

/// The whole record's length as its header states it, from the header alone (a segment walk
/// reads the header first to learn how much to read). The lengths are not yet crc-checked.
pub fn record_length(header: &[u8]) -> Result<usize, FormatError> {
    if header.len() < HEADER_BYTES {
        return Err(FormatError::Truncated {
            needed: HEADER_BYTES,
            present: header.len(),
        });
    }
    let key_len = read_u32(header, KEY_LEN_OFFSET) as usize;
    let stored_len = read_u32(header, STORED_LEN_OFFSET) as usize;
    // usize is at least 64 bits wherever memmap2 runs, so this sum does not overflow.
    let length = HEADER_BYTES + key_len + stored_len;
    if length > RECORD_BYTES_MAX {
        return Err(FormatError::TooLarge { bytes: length });
    }
    Ok(length)
}

/// Decodes exactly one record from `bytes` (which must be the whole record and nothing else),
/// checking the lengths and the crc before trusting any field.
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, FormatError> {
    let length = record_length(bytes)?;
    if bytes.len() < length {
        return Err(FormatError::Truncated {
            needed: length,
            present: bytes.len(),
        });
    }
    if bytes.len() > length {
        return Err(FormatError::TrailingBytes {
            expected: length,
            present: bytes.len(),
        });
    }
    let stored_crc = read_u32(bytes, CRC_OFFSET);
    let computed = crc32fast::hash(&bytes[FLAGS_OFFSET..]);
    if stored_crc != computed {
        return Err(FormatError::Checksum {
            stored: stored_crc,
            computed,
        });
    }
    let flags = bytes[FLAGS_OFFSET];
    if flags & !FLAGS_KNOWN != 0 {
        return Err(FormatError::UnknownFlags(flags));
    }
    let compressed = flags & FLAG_ZSTD != 0;
    let key_len = read_u32(bytes, KEY_LEN_OFFSET) as usize;
    let stored_len = read_u32(bytes, STORED_LEN_OFFSET);
    let raw_len = read_u32(bytes, RAW_LEN_OFFSET);
    if !compressed && stored_len != raw_len {
        return Err(FormatError::RawLength {
            stored: stored_len,
            raw: raw_len,
        });
    }
    let (key, stored) = bytes[HEADER_BYTES..].split_at(key_len);
    debug_assert_eq!(stored.len(), stored_len as usize);
    Ok(Record {
        db: read_u32(bytes, DB_OFFSET),
        kind: bytes[KIND_OFFSET],
        compressed,
        key,
        stored,
        raw_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn compressible(len: usize) -> Vec<u8> {
        (0..len).map(|index| (index % 7) as u8).collect()
    }

    #[test]
    fn a_record_round_trips_with_every_field() {
        let record = encode(3, b"user:1", 4, b"payload", Compression::None).expect("encode");
        assert_eq!(record.len(), HEADER_BYTES + 6 + 7);
        assert_eq!(record_length(&record[..HEADER_BYTES]), Ok(record.len()));
        let decoded = decode(&record).expect("decode");
        assert_eq!(decoded.db, 3);
        assert_eq!(decoded.kind, 4);
        assert_eq!(decoded.key, b"user:1");
        assert!(!decoded.compressed);
        assert_eq!(decoded.length(), record.len());
        assert_eq!(decoded.payload().expect("payload"), b"payload");
    }

    #[test]
    fn empty_key_and_payload_are_valid() {
        let record = encode(0, b"", 0, b"", Compression::Zstd(3)).expect("encode");
        assert_eq!(record.len(), HEADER_BYTES);
        let decoded = decode(&record).expect("decode");
        assert!(decoded.key.is_empty());
        assert!(decoded.payload().expect("payload").is_empty());
    }

    #[test]
    fn zstd_is_used_only_when_it_saves_an_eighth() {
        let payload = compressible(4096);
        let record = encode(0, b"k", 1, &payload, Compression::Zstd(3)).expect("encode");
        let decoded = decode(&record).expect("decode");
        assert!(decoded.compressed);
        assert!(record.len() < payload.len() / 2);
        assert_eq!(decoded.raw_len as usize, payload.len());
        assert_eq!(decoded.payload().expect("payload"), payload);

        // Random bytes do not compress: stored as they are.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                // xorshift64: bytes zstd cannot shrink.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect();
        let record = encode(0, b"k", 1, &noise, Compression::Zstd(3)).expect("encode");
        let decoded = decode(&record).expect("decode");
        assert!(!decoded.compressed);
        assert_eq!(decoded.payload().expect("payload"), noise);

        // Out-of-range levels are clamped, not refused.
        let record = encode(0, b"k", 1, &payload, Compression::Zstd(1000)).expect("encode");
        assert_eq!(
            decode(&record).expect("decode").payload().expect("p"),
            payload
        );
    }

    #[test]
    fn short_long_and_unknown_records_are_refused() {
        let record = encode(1, b"key", 2, b"value", Compression::None).expect("encode");
        assert!(matches!(
            decode(&record[..HEADER_BYTES - 1]),
            Err(FormatError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&record[..record.len() - 1]),
            Err(FormatError::Truncated { .. })
        ));
        let mut longer = record.clone();
        longer.push(0);
        assert!(matches!(
            decode(&longer),
            Err(FormatError::TrailingBytes { .. })
        ));

        // A record whose crc is right but whose flags are unknown (a future version).
        let mut flagged = record.clone();
        flagged[FLAGS_OFFSET] = 0x80;
        let crc = crc32fast::hash(&flagged[FLAGS_OFFSET..]);
        flagged[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&flagged), Err(FormatError::UnknownFlags(0x80)));

        // A header claiming more than a u32 record.
        let mut huge = record.clone();
        huge[KEY_LEN_OFFSET..KEY_LEN_OFFSET + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            record_length(&huge),
            Err(FormatError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_frame_claiming_more_than_raw_len_does_not_decompress() {
        let payload = compressible(1000);
        let mut record = encode(0, b"k", 0, &payload, Compression::Zstd(1)).expect("encode");
        // Lie about the raw length and fix the crc: the bounded decompression refuses.
        record[RAW_LEN_OFFSET..RAW_LEN_OFFSET + 4].copy_from_slice(&10u32.to_le_bytes());
        let crc = crc32fast::hash(&record[FLAGS_OFFSET..]);
        record[..4].copy_from_slice(&crc.to_le_bytes());
        let decoded = decode(&record).expect("the crc matches");
        assert!(matches!(decoded.payload(), Err(FormatError::Decompress(_))));
    }

    #[test]
    fn every_single_flipped_bit_is_detected() {
        for compression in [Compression::None, Compression::Zstd(3)] {
            let payload = compressible(300);
            let record = encode(9, b"some-key", 5, &payload, compression).expect("encode");
            for bit in 0..record.len() * 8 {
                let mut flipped = record.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let outcome = decode(&flipped).and_then(|decoded| decoded.payload());
                assert!(
                    outcome.is_err(),
                    "bit {bit} flipped went unnoticed ({compression:?})"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(
            db in any::<u32>(),
            kind in any::<u8>(),
            key in proptest::collection::vec(any::<u8>(), 0..64),
            payload in proptest::collection::vec(0u8..4, 0..2048),
            zstd in any::<bool>(),
        ) {
            let compression = if zstd { Compression::Zstd(1) } else { Compression::None };
            let record = encode(db, &key, kind, &payload, compression).expect("encode");
            prop_assert_eq!(record_length(&record), Ok(record.len()));
            let decoded = decode(&record).expect("decode");
            prop_assert_eq!(decoded.db, db);
            prop_assert_eq!(decoded.kind, kind);
            prop_assert_eq!(decoded.key, &key[..]);
            prop_assert_eq!(decoded.length(), record.len());
            prop_assert_eq!(decoded.payload().expect("payload"), payload);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(decoded) = decode(&bytes) {
                let _ = decoded.payload();
            }
            let _ = record_length(&bytes);
        }
    }
}
