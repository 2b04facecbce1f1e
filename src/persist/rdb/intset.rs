//! Intsets: Redis's sorted array of integers for small all-integer sets.
//!
//! Layout: element width in bytes (u32 LE: 2, 4 or 8), count (u32 LE), then the values
//! ascending, little-endian, all of that width. Strata writes the narrowest width that holds
//! every member (Redis only widens, so after removals it may use a wider one; both read the
//! same).

use super::listpack::BlobError;

const HEADER_BYTES: usize = 8;

fn fail<T>(offset: usize, reason: &'static str) -> Result<T, BlobError> {
    Err(BlobError { offset, reason })
}

/// The intset blob of `values`, which must be strictly ascending.
pub fn build(values: &[i64]) -> Vec<u8> {
    debug_assert!(values.windows(2).all(|pair| pair[0] < pair[1]));
    let width = values.iter().fold(2usize, |width, &value| {
        if i16::try_from(value).is_ok() {
            width
        } else if i32::try_from(value).is_ok() {
            width.max(4)
        } else {
            8
        }
    });
    let count = u32::try_from(values.len()).expect("an intset holds at most 2^30 members");
    let mut bytes = Vec::with_capacity(HEADER_BYTES + width * values.len());
    bytes.extend_from_slice(&(width as u32).to_le_bytes());
    bytes.extend_from_slice(&count.to_le_bytes());
    for &value in values {
        bytes.extend_from_slice(&value.to_le_bytes()[..width]);
    }
    debug_assert_eq!(bytes.len(), HEADER_BYTES + width * values.len());
    bytes
}

/// The values of an intset blob. Always checked (Redis's `intsetValidateIntegrity`): a known
/// width, the size matching the count, not empty. With `deep`: strictly ascending.
pub fn values(bytes: &[u8], deep: bool) -> Result<Vec<i64>, BlobError> {
    if bytes.len() < HEADER_BYTES {
        return fail(0, "intset shorter than its header");
    }
    let width = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return fail(0, "intset with an unknown width");
    }
    let count = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if count
        .checked_mul(width)
        .and_then(|data| data.checked_add(HEADER_BYTES))
        != Some(bytes.len())
    {
        return fail(4, "intset size does not match its count");
    }
    if count == 0 {
        return fail(4, "empty intset");
    }
    let values: Vec<i64> = bytes[HEADER_BYTES..]
        .chunks_exact(width)
        .map(|chunk| {
            let mut word = [0u8; 8];
            word[..width].copy_from_slice(chunk);
            let shift = 64 - 8 * width as u32;
            (i64::from_le_bytes(word) << shift) >> shift
        })
        .collect();
    debug_assert_eq!(values.len(), count);
    if deep {
        if let Some(index) = values.windows(2).position(|pair| pair[0] >= pair[1]) {
            return fail(
                HEADER_BYTES + (index + 1) * width,
                "intset not strictly ascending",
            );
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn narrowest_width() {
        assert_eq!(
            build(&[1, 2]),
            b"\x02\x00\x00\x00\x02\x00\x00\x00\x01\x00\x02\x00"
        );
        assert_eq!(build(&[-70000])[0], 4);
        assert_eq!(build(&[1, i64::MAX])[0], 8);
    }

    #[test]
    fn refuses_broken_intsets() {
        assert!(values(b"\x03\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00", true).is_err());
        assert!(values(b"\x02\x00\x00\x00\x02\x00\x00\x00\x01\x00", true).is_err());
        assert!(values(b"\x02\x00\x00\x00\x00\x00\x00\x00", true).is_err());
        let unsorted = b"\x02\x00\x00\x00\x02\x00\x00\x00\x02\x00\x01\x00";
        assert!(values(unsorted, true).is_err());
        assert_eq!(values(unsorted, false).unwrap(), vec![2, 1]);
        assert!(values(b"\x02\x00\x00\x00\xff\xff\xff\xff\x01\x00", false).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(mut items in proptest::collection::btree_set(any::<i64>(), 1..50)) {
            let items: Vec<i64> = std::mem::take(&mut items).into_iter().collect();
            prop_assert_eq!(values(&build(&items), true).unwrap(), items);
        }
    }
}
