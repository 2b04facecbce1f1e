//! Listpacks (Redis 7's compact sequence): a writer that emits the bytes Redis's `lpAppend`
//! would, and a bounds-checked reader with Redis's integrity checks.
//!
//! Layout: total bytes (u32 LE), element count (u16 LE, 65535 = unknown), entries, 0xFF.
//! An entry is an encoding byte (with the value or length folded in), its data, then a
//! "back length" (the entry's size without itself, 7 bits per byte, most significant first,
//! high bit set on all but the first byte) for walking backwards.

/// Header bytes: total length (4) and element count (2).
pub const HEADER_BYTES: usize = 6;
/// The terminator byte.
pub const END: u8 = 0xFF;
/// The header count meaning "too many to count here" (LP_HDR_NUMELE_UNKNOWN).
pub const COUNT_UNKNOWN: u16 = u16::MAX;

/// One element as a listpack stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Element<'_> {
    /// The element as bytes (integers in decimal), as Redis hands them to commands.
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Element::Int(value) => itoa::Buffer::new().format(value).as_bytes().to_vec(),
            Element::Bytes(bytes) => bytes.to_vec(),
        }
    }
}

/// Bytes of the back length of an entry of `entry_bytes` (lpEncodeBacklen's size).
pub fn backlen_bytes(entry_bytes: usize) -> usize {
    match entry_bytes {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn push_backlen(out: &mut Vec<u8>, entry_bytes: usize) {
    let size = backlen_bytes(entry_bytes);
    let value = entry_bytes as u64;
    // Most significant group first; every byte but the first has the high bit set.
    out.push((value >> (7 * (size - 1))) as u8 & 127);
    for group in (0..size - 1).rev() {
        out.push(((value >> (7 * group)) as u8 & 127) | 128);
    }
}

/// Encoded size of the integer entry (without the back length).
fn int_entry_bytes(value: i64) -> usize {
    match value {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8388608..=8388607 => 4,
        -2147483648..=2147483647 => 5,
        _ => 9,
    }
}

fn string_header_bytes(len: usize) -> usize {
    match len {
        0..=63 => 1,
        64..=4095 => 2,
        _ => 5,
    }
}

/// Bytes `element` takes in a listpack, back length included (Redis's lpAppend size).
pub fn entry_bytes(element: &[u8]) -> usize {
    let entry = match crate::persist::rdb::canonical_integer(element) {
        Some(value) => int_entry_bytes(value),
        None => string_header_bytes(element.len()) + element.len(),
    };
    entry + backlen_bytes(entry)
}

/// Builds a listpack element by element.
#[derive(Debug, Clone)]
pub struct Writer {
    bytes: Vec<u8>,
    count: usize,
}

impl Default for Writer {
    fn default() -> Writer {
        Writer::new()
    }
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            bytes: vec![0; HEADER_BYTES],
            count: 0,
        }
    }

    /// The listpack's size once finished (the header's total, `lpBytes`).
    pub fn total_bytes(&self) -> usize {
        self.bytes.len() + 1
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Appends a string, stored as an integer when it spells one canonically (lpAppend).
    pub fn push(&mut self, element: &[u8]) {
        match crate::persist::rdb::canonical_integer(element) {
            Some(value) => self.push_int(value),
            None => self.push_string(element),
        }
    }

    pub fn push_int(&mut self, value: i64) {
        let start = self.bytes.len();
        let out = &mut self.bytes;
        match int_entry_bytes(value) {
            1 => out.push(value as u8),
            2 => {
                let unsigned = if value < 0 { (1 << 13) + value } else { value } as u16;
                out.push(((unsigned >> 8) as u8) | 0xC0);
                out.push(unsigned as u8);
            }
            3 => {
                out.push(0xF1);
                out.extend_from_slice(&(value as i16).to_le_bytes());
            }
            4 => {
                out.push(0xF2);
                out.extend_from_slice(&(value as i32).to_le_bytes()[..3]);
            }
            5 => {
                out.push(0xF3);
                out.extend_from_slice(&(value as i32).to_le_bytes());
            }
            _ => {
                out.push(0xF4);
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        let entry = self.bytes.len() - start;
        debug_assert_eq!(entry, int_entry_bytes(value));
        push_backlen(&mut self.bytes, entry);
        self.count += 1;
    }

    /// Appends bytes as a string entry, even when they spell an integer.
    pub fn push_string(&mut self, element: &[u8]) {
        let start = self.bytes.len();
        let len = element.len();
        match string_header_bytes(len) {
            1 => self.bytes.push(0x80 | len as u8),
            2 => {
                self.bytes.push(0xE0 | (len >> 8) as u8);
                self.bytes.push(len as u8);
            }
            _ => {
                self.bytes.push(0xF0);
                let len32 = u32::try_from(len).expect("a listpack string over 4 GB");
                self.bytes.extend_from_slice(&len32.to_le_bytes());
            }
        }
        self.bytes.extend_from_slice(element);
        let entry = self.bytes.len() - start;
        push_backlen(&mut self.bytes, entry);
        self.count += 1;
    }

    /// The finished listpack.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.push(END);
        let total = u32::try_from(self.bytes.len()).expect("a listpack over 4 GB");
        self.bytes[0..4].copy_from_slice(&total.to_le_bytes());
        let count = u16::try_from(self.count).unwrap_or(COUNT_UNKNOWN);
        self.bytes[4..6].copy_from_slice(&count.to_le_bytes());
        self.bytes
    }
}

/// Why a listpack was refused, with the offset inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobError {
    pub offset: usize,
    pub reason: &'static str,
}

fn fail<T>(offset: usize, reason: &'static str) -> Result<T, BlobError> {
    Err(BlobError { offset, reason })
}

/// Reads the value stored backwards ending at `last` (lpDecodeBacklen), if well formed.
fn read_backlen(bytes: &[u8], last: usize, size: usize) -> Option<usize> {
    let mut value = 0usize;
    for step in 0..size {
        let byte = *bytes.get(last.checked_sub(step)?)?;
        value |= ((byte & 127) as usize) << (7 * step);
        let more = byte & 128 != 0;
        if more != (step + 1 < size) {
            return None;
        }
    }
    Some(value)
}

/// Walks every element of `bytes` in order, calling `visit`, and returns the count.
///
/// Always checked (memory safety, and what Redis checks without sanitization): the header,
/// the terminator, every entry inside the buffer, known encodings. With `deep` also Redis's
/// `lpValidateIntegrity` deep checks: back lengths, the header count, the terminator exactly
/// at the end.
pub fn walk<'a>(
    bytes: &'a [u8],
    deep: bool,
    mut visit: impl FnMut(Element<'a>) -> Result<(), BlobError>,
) -> Result<usize, BlobError> {
    if bytes.len() < HEADER_BYTES + 1 {
        return fail(0, "listpack shorter than its header");
    }
    let total = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if total != bytes.len() {
        return fail(0, "listpack total bytes mismatch");
    }
    if bytes[bytes.len() - 1] != END {
        return fail(bytes.len() - 1, "listpack without terminator");
    }
    let header_count = u16::from_le_bytes([bytes[4], bytes[5]]);
    let end = bytes.len() - 1;
    let mut position = HEADER_BYTES;
    let mut count = 0usize;
    // Every entry takes at least 2 bytes, so this bounds the loop.
    while position < end {
        let (element, entry) = read_entry(bytes, position, end)?;
        let backlen_size = backlen_bytes(entry);
        let next = position + entry + backlen_size;
        if next > end {
            return fail(position, "listpack entry overruns the buffer");
        }
        if deep && read_backlen(bytes, next - 1, backlen_size) != Some(entry) {
            return fail(position, "listpack entry back length mismatch");
        }
        visit(element)?;
        count += 1;
        position = next;
    }
    debug_assert_eq!(position, end);
    if deep && header_count != COUNT_UNKNOWN && header_count as usize != count {
        return fail(4, "listpack element count mismatch");
    }
    Ok(count)
}

/// Decodes the entry at `position` (before `end`): the element and the entry's size without
/// its back length.
fn read_entry(
    bytes: &[u8],
    position: usize,
    end: usize,
) -> Result<(Element<'_>, usize), BlobError> {
    let available = &bytes[position..end];
    let first = available[0];
    let need = |len: usize| -> Result<&[u8], BlobError> {
        match available.get(..len) {
            Some(slice) => Ok(slice),
            None => fail(position, "listpack entry overruns the buffer"),
        }
    };
    let string = |header: usize, len: usize| -> Result<(Element<'_>, usize), BlobError> {
        let total = header
            .checked_add(len)
            .filter(|&total| total <= available.len());
        match total {
            Some(total) => Ok((Element::Bytes(&available[header..total]), total)),
            None => fail(position, "listpack string overruns the buffer"),
        }
    };
    if first & 0x80 == 0 {
        return Ok((Element::Int((first & 0x7f) as i64), 1));
    }
    if first & 0xC0 == 0x80 {
        return string(1, (first & 0x3f) as usize);
    }
    if first & 0xE0 == 0xC0 {
        let data = need(2)?;
        let unsigned = (((data[0] & 0x1f) as i64) << 8) | data[1] as i64;
        let value = if unsigned >= 1 << 12 {
            unsigned - (1 << 13)
        } else {
            unsigned
        };
        return Ok((Element::Int(value), 2));
    }
    if first & 0xF0 == 0xE0 {
        let data = need(2)?;
        return string(2, (((data[0] & 0x0f) as usize) << 8) | data[1] as usize);
    }
    match first {
        0xF0 => {
            let data = need(5)?;
            let len = u32::from_le_bytes([data[1], data[2], data[3], data[4]]) as usize;
            string(5, len)
        }
        0xF1 => {
            let data = need(3)?;
            Ok((
                Element::Int(i16::from_le_bytes([data[1], data[2]]) as i64),
                3,
            ))
        }
        0xF2 => {
            let data = need(4)?;
            // Sign-extend 24 bits by placing them in the top of an i32.
            let value = i32::from_le_bytes([0, data[1], data[2], data[3]]) >> 8;
            Ok((Element::Int(value as i64), 4))
        }
        0xF3 => {
            let data = need(5)?;
            let value = i32::from_le_bytes([data[1], data[2], data[3], data[4]]);
            Ok((Element::Int(value as i64), 5))
        }
        0xF4 => {
            let data = need(9)?;
            let mut word = [0u8; 8];
            word.copy_from_slice(&data[1..9]);
            Ok((Element::Int(i64::from_le_bytes(word)), 9))
        }
        _ => fail(position, "listpack entry with an unknown encoding"),
    }
}

/// Every element of a listpack, checked as `walk` does.
pub fn elements(bytes: &[u8], deep: bool) -> Result<Vec<Element<'_>>, BlobError> {
    let mut out = Vec::with_capacity((bytes.len() / 2).min(super::RESERVE_ITEMS_MAX));
    walk(bytes, deep, |element| {
        out.push(element);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The listpack Redis 7.0.15 builds for RPUSH l a b 1 -5 300 70000 hello (from its DUMP).
    const REDIS_LISTPACK: &[u8] = b"!\x00\x00\x00\x07\x00\x81a\x02\x81b\x02\x01\x01\xdf\xfb\x02\xc1,\x02\xf2p\x11\x01\x04\x85hello\x06\xff";

    #[test]
    fn writes_what_redis_writes() {
        let mut writer = Writer::new();
        for element in ["a", "b", "1", "-5", "300", "70000", "hello"] {
            writer.push(element.as_bytes());
        }
        assert_eq!(writer.total_bytes(), REDIS_LISTPACK.len());
        assert_eq!(writer.finish(), REDIS_LISTPACK);
    }

    #[test]
    fn reads_what_redis_writes() {
        let read: Vec<Vec<u8>> = elements(REDIS_LISTPACK, true)
            .unwrap()
            .into_iter()
            .map(Element::to_vec)
            .collect();
        let expected: Vec<Vec<u8>> = ["a", "b", "1", "-5", "300", "70000", "hello"]
            .iter()
            .map(|text| text.as_bytes().to_vec())
            .collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn refuses_broken_listpacks() {
        let mut bad = REDIS_LISTPACK.to_vec();
        bad[0] = 0x22;
        assert!(elements(&bad, false).is_err());
        let mut bad = REDIS_LISTPACK.to_vec();
        bad[4] = 8; // count
        assert!(elements(&bad, true).is_err());
        assert!(elements(&bad, false).is_ok());
        let mut bad = REDIS_LISTPACK.to_vec();
        bad[8] = 3; // back length of "a"
        assert!(elements(&bad, true).is_err());
        let mut bad = REDIS_LISTPACK.to_vec();
        bad[6] = 0x9f; // "a" claims 31 bytes
        assert!(elements(&bad, false).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(items in proptest::collection::vec(prop_oneof![
            any::<i64>().prop_map(|value| value.to_string().into_bytes()),
            (-5000i64..5000).prop_map(|value| value.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..5000),
        ], 0..40)) {
            let mut writer = Writer::new();
            let mut expected_bytes = HEADER_BYTES + 1;
            for item in &items {
                writer.push(item);
                expected_bytes += entry_bytes(item);
            }
            prop_assert_eq!(writer.total_bytes(), expected_bytes);
            let bytes = writer.finish();
            let read: Vec<Vec<u8>> = elements(&bytes, true).unwrap().into_iter().map(Element::to_vec).collect();
            prop_assert_eq!(read, items);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = elements(&bytes, true);
            let _ = elements(&bytes, false);
        }
    }
}
