//! Zipmaps (the small-hash encoding of Redis before 2.6), read only.
//!
//! Layout: a count byte (the count when below 254), then per pair: key length, key, value
//! length, one "free" byte, value, that many unused bytes; then 0xFF. A length is one byte
//! below 254, or 254 followed by a u32 (little-endian on every machine Redis ran on).

use super::listpack::BlobError;

const END: u8 = 0xFF;
const BIG_LEN: u8 = 254;

fn fail<T>(offset: usize, reason: &'static str) -> Result<T, BlobError> {
    Err(BlobError { offset, reason })
}

/// Reads a length at `position`: (length, bytes it took).
fn read_len(bytes: &[u8], position: usize) -> Result<(usize, usize), BlobError> {
    match bytes.get(position) {
        Some(&first) if first < BIG_LEN => Ok((first as usize, 1)),
        Some(&BIG_LEN) => match bytes.get(position + 1..position + 5) {
            Some(raw) => Ok((
                u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize,
                5,
            )),
            None => fail(position, "zipmap length overruns the buffer"),
        },
        _ => fail(position, "zipmap entry overruns the buffer"),
    }
}

fn take(bytes: &[u8], position: usize, len: usize) -> Result<&[u8], BlobError> {
    match position
        .checked_add(len)
        .and_then(|end| bytes.get(position..end))
    {
        Some(slice) => Ok(slice),
        None => fail(position, "zipmap string overruns the buffer"),
    }
}

/// A field and its value.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// The (field, value) pairs of a zipmap. Redis validates zipmaps deeply whatever the
/// sanitization setting (`zipmapValidateIntegrity(.., 1)`), and so does this: every length
/// inside the buffer, the terminator exactly at the end, the count byte when it is exact.
pub fn pairs(bytes: &[u8]) -> Result<Vec<Pair<'_>>, BlobError> {
    if bytes.len() < 2 {
        return fail(0, "zipmap shorter than its header");
    }
    let header_count = bytes[0];
    let mut position = 1;
    let mut out = Vec::new();
    // Each pair takes at least 3 bytes, so the loop is bounded by the buffer.
    loop {
        if bytes.get(position) == Some(&END) {
            break;
        }
        let (key_len, key_header) = read_len(bytes, position)?;
        let key = take(bytes, position + key_header, key_len)?;
        position += key_header + key_len;
        let (value_len, value_header) = read_len(bytes, position)?;
        position += value_header;
        let free = *bytes.get(position).ok_or(BlobError {
            offset: position,
            reason: "zipmap entry overruns the buffer",
        })? as usize;
        position += 1;
        let value = take(bytes, position, value_len)?;
        position += value_len;
        take(bytes, position, free)?;
        position += free;
        out.push((key, value));
    }
    if position != bytes.len() - 1 {
        return fail(position, "zipmap terminator before the end");
    }
    if header_count < BIG_LEN && header_count as usize != out.len() {
        return fail(0, "zipmap element count mismatch");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The zipmap of {"foo": "bar", "hello": "world"} (Redis's zipmap.c documents this
    /// layout: "\x02\x03foo\x03\x00bar\x05hello\x05\x00world\xff").
    #[test]
    fn reads_the_documented_example() {
        let bytes = b"\x02\x03foo\x03\x00bar\x05hello\x05\x00world\xff";
        let read = pairs(bytes).unwrap();
        assert_eq!(
            read,
            vec![(&b"foo"[..], &b"bar"[..]), (&b"hello"[..], &b"world"[..])]
        );
    }

    #[test]
    fn skips_free_bytes_and_refuses_overruns() {
        let bytes = b"\x01\x01a\x01\x02b..\xff";
        assert_eq!(pairs(bytes).unwrap(), vec![(&b"a"[..], &b"b"[..])]);
        assert!(pairs(b"\x01\x01a\x01\x09b\xff").is_err());
        assert!(pairs(b"\x01\xfe\xff\xff\xff\xffa\xff").is_err());
        assert!(pairs(b"\x02\x01a\x01\x00b\xff").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = pairs(&bytes);
        }
    }
}
