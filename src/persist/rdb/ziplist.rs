//! Ziplists (the compact sequence of Redis before 7.0), read only: RDB files and DUMP
//! payloads of older servers hold them for lists, hashes and sorted sets.
//!
//! Layout: total bytes (u32 LE), offset of the last entry (u32 LE), count (u16 LE, 65535 =
//! unknown), entries, 0xFF. An entry is the previous entry's size (1 byte, or 0xFE and a u32
//! LE), an encoding (strings: 00 + 6-bit length, 01 + 14-bit big-endian length, 0x80 + u32
//! big-endian length; integers: 0xC0 i16, 0xD0 i32, 0xE0 i64, 0xF0 i24, 0xFE i8, 0xF1..0xFD
//! the values 0..12), then the data.

use super::listpack::{BlobError, Element};

const HEADER_BYTES: usize = 10;
const END: u8 = 0xFF;
const COUNT_UNKNOWN: u16 = u16::MAX;
/// A previous length of this or more takes five bytes.
const BIG_PREVLEN: u8 = 254;

fn fail<T>(offset: usize, reason: &'static str) -> Result<T, BlobError> {
    Err(BlobError { offset, reason })
}

/// Walks every element in order, calling `visit`, and returns the count.
///
/// Always checked: header, total length, terminator, tail offset inside the buffer, every
/// entry inside the buffer with a known encoding. With `deep` (Redis's
/// `ziplistValidateIntegrity` deep mode) also: each entry's previous-length field, the tail
/// offset, the header count and the terminator exactly at the end.
pub fn walk<'a>(
    bytes: &'a [u8],
    deep: bool,
    mut visit: impl FnMut(Element<'a>) -> Result<(), BlobError>,
) -> Result<usize, BlobError> {
    if bytes.len() < HEADER_BYTES + 1 {
        return fail(0, "ziplist shorter than its header");
    }
    let word = |at: usize| {
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
    };
    if word(0) != bytes.len() {
        return fail(0, "ziplist total bytes mismatch");
    }
    let end = bytes.len() - 1;
    if bytes[end] != END {
        return fail(end, "ziplist without terminator");
    }
    let tail = word(4);
    if tail > end {
        return fail(4, "ziplist tail offset outside the buffer");
    }
    let header_count = u16::from_le_bytes([bytes[8], bytes[9]]);
    let mut position = HEADER_BYTES;
    let mut previous_bytes = 0usize;
    let mut last_entry = HEADER_BYTES;
    let mut count = 0usize;
    // Each entry takes at least 2 bytes, so the loop is bounded by the buffer.
    while position < end && bytes[position] != END {
        let (prevlen, prevlen_size) = if bytes[position] < BIG_PREVLEN {
            (bytes[position] as usize, 1)
        } else {
            let Some(raw) = bytes.get(position + 1..position + 5) else {
                return fail(position, "ziplist entry overruns the buffer");
            };
            (
                u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize,
                5,
            )
        };
        if deep && prevlen != previous_bytes {
            return fail(position, "ziplist entry previous length mismatch");
        }
        let (element, encoded) = read_body(bytes, position + prevlen_size, end)?;
        let entry = prevlen_size + encoded;
        visit(element)?;
        count += 1;
        last_entry = position;
        previous_bytes = entry;
        position += entry;
    }
    if deep {
        if position != end {
            return fail(position, "ziplist terminator before the end");
        }
        if count > 0 && tail != last_entry || count == 0 && tail != HEADER_BYTES {
            return fail(4, "ziplist tail offset mismatch");
        }
        if header_count != COUNT_UNKNOWN && header_count as usize != count {
            return fail(8, "ziplist element count mismatch");
        }
    }
    Ok(count)
}

/// Decodes the encoding and data at `position`: the element and the bytes they take.
fn read_body(bytes: &[u8], position: usize, end: usize) -> Result<(Element<'_>, usize), BlobError> {
    let Some(available) = bytes.get(position..end).filter(|slice| !slice.is_empty()) else {
        return fail(position, "ziplist entry overruns the buffer");
    };
    let need = |len: usize| -> Result<&[u8], BlobError> {
        match available.get(..len) {
            Some(slice) => Ok(slice),
            None => fail(position, "ziplist entry overruns the buffer"),
        }
    };
    let string = |header: usize, len: usize| -> Result<(Element<'_>, usize), BlobError> {
        match header
            .checked_add(len)
            .filter(|&total| total <= available.len())
        {
            Some(total) => Ok((Element::Bytes(&available[header..total]), total)),
            None => fail(position, "ziplist string overruns the buffer"),
        }
    };
    let first = available[0];
    match first >> 6 {
        0 => return string(1, (first & 0x3f) as usize),
        1 => {
            let data = need(2)?;
            return string(2, (((data[0] & 0x3f) as usize) << 8) | data[1] as usize);
        }
        2 => {
            if first != 0x80 {
                return fail(position, "ziplist entry with an unknown encoding");
            }
            let data = need(5)?;
            let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
            return string(5, len);
        }
        _ => {}
    }
    let int = |data: &[u8]| -> i64 {
        let mut word = [0u8; 8];
        word[..data.len()].copy_from_slice(data);
        // Sign-extend from the data's width.
        let shift = 64 - 8 * data.len() as u32;
        (i64::from_le_bytes(word) << shift) >> shift
    };
    match first {
        0xC0 => Ok((Element::Int(int(&need(3)?[1..])), 3)),
        0xD0 => Ok((Element::Int(int(&need(5)?[1..])), 5)),
        0xE0 => Ok((Element::Int(int(&need(9)?[1..])), 9)),
        0xF0 => Ok((Element::Int(int(&need(4)?[1..])), 4)),
        0xFE => Ok((Element::Int(int(&need(2)?[1..])), 2)),
        0xF1..=0xFD => Ok((Element::Int((first & 0x0f) as i64 - 1), 1)),
        _ => fail(position, "ziplist entry with an unknown encoding"),
    }
}

/// Every element of a ziplist, checked as `walk` does.
pub fn elements(bytes: &[u8], deep: bool) -> Result<Vec<Element<'_>>, BlobError> {
    let mut out = Vec::with_capacity((bytes.len() / 2).min(super::RESERVE_ITEMS_MAX));
    walk(bytes, deep, |element| {
        out.push(element);
        Ok(())
    })?;
    Ok(out)
}

/// Builds a ziplist; only tests need one (Strata never writes ziplists), to exercise the
/// reader on what Redis 6 wrote.
#[cfg(test)]
pub fn build(items: &[Element<'_>]) -> Vec<u8> {
    let mut bytes = vec![0u8; HEADER_BYTES];
    let mut previous = 0usize;
    let mut tail = HEADER_BYTES;
    for item in items {
        let start = bytes.len();
        tail = start;
        if previous < BIG_PREVLEN as usize {
            bytes.push(previous as u8);
        } else {
            bytes.push(BIG_PREVLEN);
            bytes.extend_from_slice(&(previous as u32).to_le_bytes());
        }
        match *item {
            Element::Int(value) => match value {
                0..=12 => bytes.push(0xF1 + value as u8),
                -128..=127 => bytes.extend_from_slice(&[0xFE, value as u8]),
                -32768..=32767 => {
                    bytes.push(0xC0);
                    bytes.extend_from_slice(&(value as i16).to_le_bytes());
                }
                -8388608..=8388607 => {
                    bytes.push(0xF0);
                    bytes.extend_from_slice(&(value as i32).to_le_bytes()[..3]);
                }
                -2147483648..=2147483647 => {
                    bytes.push(0xD0);
                    bytes.extend_from_slice(&(value as i32).to_le_bytes());
                }
                _ => {
                    bytes.push(0xE0);
                    bytes.extend_from_slice(&value.to_le_bytes());
                }
            },
            Element::Bytes(data) => {
                if data.len() < 64 {
                    bytes.push(data.len() as u8);
                } else if data.len() < 16384 {
                    bytes.push(0x40 | (data.len() >> 8) as u8);
                    bytes.push(data.len() as u8);
                } else {
                    bytes.push(0x80);
                    bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
                }
                bytes.extend_from_slice(data);
            }
        }
        previous = bytes.len() - start;
    }
    bytes.push(END);
    let total = bytes.len() as u32;
    bytes[0..4].copy_from_slice(&total.to_le_bytes());
    bytes[4..8].copy_from_slice(&(tail as u32).to_le_bytes());
    bytes[8..10].copy_from_slice(&(items.len().min(COUNT_UNKNOWN as usize) as u16).to_le_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The ziplist layout Redis 6.2 uses for RPUSH l a 1 -300 hello.
    #[test]
    fn reads_a_redis_6_ziplist() {
        let bytes = build(&[
            Element::Bytes(b"a"),
            Element::Int(1),
            Element::Int(-300),
            Element::Bytes(b"hello"),
        ]);
        let read = elements(&bytes, true).unwrap();
        assert_eq!(
            read,
            vec![
                Element::Bytes(b"a"),
                Element::Int(1),
                Element::Int(-300),
                Element::Bytes(b"hello")
            ]
        );
    }

    #[test]
    fn refuses_broken_ziplists() {
        let good = build(&[Element::Bytes(b"abc"), Element::Int(7)]);
        let mut bad = good.clone();
        bad[HEADER_BYTES + 1] = 0x3f; // "abc" claims 63 bytes
        assert!(elements(&bad, false).is_err());
        let mut bad = good.clone();
        bad[8] = 5; // count
        assert!(elements(&bad, true).is_err());
        assert!(elements(&bad, false).is_ok());
        let mut bad = good;
        bad[HEADER_BYTES + 5] = 9; // previous length of the second entry
        assert!(elements(&bad, true).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(items in proptest::collection::vec(prop_oneof![
            any::<i64>().prop_map(Ok),
            proptest::collection::vec(any::<u8>(), 0..20000).prop_map(Err),
        ], 0..12)) {
            let elements_in: Vec<Element<'_>> = items.iter().map(|item| match item {
                Ok(value) => Element::Int(*value),
                Err(bytes) => Element::Bytes(bytes),
            }).collect();
            let bytes = build(&elements_in);
            prop_assert_eq!(elements(&bytes, true).unwrap(), elements_in);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = elements(&bytes, true);
            let _ = elements(&bytes, false);
        }
    }
}
