//! LZF, the compression Redis applies to RDB strings (`rdbcompression yes`).
//!
//! The compressor follows the liblzf 3.6 `lzf_c.c` that Redis 7.0 ships, step for step with
//! Redis's settings (`HLOG` 16, `VERY_FAST`), so for the same input it emits the same bytes
//! as Redis, which keeps DUMP payloads byte-identical. (Later copies add an `ip + 4 < in_end`
//! condition on matches; Redis 7.0.15's output shows it does not have it: a 3-byte match
//! may end the input.) The decompressor follows `lzf_d.c` but checks every read and
//! write against its buffers: hostile input gives an error, never a panic or an overrun.
//!
//! Format: a control byte `000LLLLL` starts a literal run of L+1 bytes; `LLLooooo oooooooo`
//! copies L+2 bytes from `o+1` bytes back in the output; `111ooooo LLLLLLLL oooooooo` does the
//! same for L+9 bytes.

use std::cell::RefCell;

/// log2 of the hash table size (Redis's lzfP.h).
const HASH_LOG: u32 = 16;
const HASH_SIZE: usize = 1 << HASH_LOG;
/// Longest literal run one control byte announces.
const LITERAL_MAX: usize = 1 << 5;
/// Farthest a back reference may point.
const OFFSET_MAX: usize = 1 << 13;
/// Longest back reference, minus the two implied bytes.
const REFERENCE_MAX: usize = (1 << 8) + (1 << 3);
/// Output bytes one input byte may grow to at most through back references (3 control bytes
/// for 264 output bytes), used to refuse absurd declared lengths before allocating.
pub const EXPANSION_MAX: usize = 88;

/// Why a compressed block could not be decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LzfError {
    /// The block ended inside a run or reference.
    Truncated,
    /// The output would exceed the declared length.
    TooLong,
    /// A back reference points before the start of the output.
    BadReference,
    /// The block decompressed to fewer bytes than declared.
    TooShort,
}

impl std::fmt::Display for LzfError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            LzfError::Truncated => "LZF block truncated",
            LzfError::TooLong => "LZF block longer than declared",
            LzfError::BadReference => "LZF back reference before the start",
            LzfError::TooShort => "LZF block shorter than declared",
        })
    }
}

/// The compressor's hash table: input positions tagged with the call that wrote them, so a
/// call need not clear 64 K slots first (Redis leaves its table uninitialized; a stale slot
/// is simply "no candidate" here).
struct HashTable {
    generation: u32,
    slots: Vec<(u32, u32)>,
}

thread_local! {
    static TABLE: RefCell<HashTable> = const {
        RefCell::new(HashTable {
            generation: 0,
            slots: Vec::new(),
        })
    };
}

fn first(input: &[u8], at: usize) -> u32 {
    let byte = |index: usize| input.get(index).copied().unwrap_or(0) as u32;
    (byte(at) << 8) | byte(at + 1)
}

fn next(hash: u32, input: &[u8], at: usize) -> u32 {
    (hash << 8) | input[at + 2] as u32
}

fn slot_of(hash: u32) -> usize {
    ((hash >> (3 * 8 - HASH_LOG)).wrapping_sub(hash.wrapping_mul(5)) as usize) & (HASH_SIZE - 1)
}

/// Compresses `input` into at most `output_max` bytes, or `None` when it does not fit (Redis
/// then stores the string uncompressed). Inputs over 4 GB are not compressed.
pub fn compress(input: &[u8], output_max: usize) -> Option<Vec<u8>> {
    if input.is_empty() || output_max == 0 || u32::try_from(input.len()).is_err() {
        return None;
    }
    TABLE.with(|table| {
        let mut table = table.borrow_mut();
        if table.slots.is_empty() {
            table.slots = vec![(0, 0); HASH_SIZE];
        }
        table.generation = table.generation.wrapping_add(1);
        if table.generation == 0 {
            table.slots.fill((0, 0));
            table.generation = 1;
        }
        compress_with(input, output_max, &mut table)
    })
}

fn compress_with(input: &[u8], output_max: usize, table: &mut HashTable) -> Option<Vec<u8>> {
    let generation = table.generation;
    let input_end = input.len();
    // A few spare bytes: lzf_c.c's own checks keep the output within `output_max`, and the
    // final length is checked again below.
    let mut out = vec![0u8; output_max + 8];
    let out_end = output_max;
    let mut op = 1usize; // byte 0 is the first run's control byte
    let mut ip = 0usize;
    let mut literal = 0usize;
    let mut hash = first(input, ip);
    while ip + 2 < input_end {
        hash = next(hash, input, ip);
        let slot = slot_of(hash);
        let (tag, stored) = table.slots[slot];
        table.slots[slot] = (generation, ip as u32);
        let reference = (tag == generation).then_some(stored as usize);
        let matched = reference.filter(|&reference| {
            reference < ip
                && ip - reference - 1 < OFFSET_MAX
                && reference > 0
                && input[reference..reference + 3] == input[ip..ip + 3]
        });
        if let Some(reference) = matched {
            let offset = ip - reference - 1;
            let mut len = 2usize;
            let len_max = (input_end - ip - len).min(REFERENCE_MAX);
            out[op - literal - 1] = (literal as u8).wrapping_sub(1); // stop run
            op -= usize::from(literal == 0); // undo an empty run
            if op + 3 + 1 >= out_end {
                return None;
            }
            // lzf_c.c unrolls 16 comparisons without checking `len_max` when it exceeds 16;
            // the same steps give the same lengths (and stay inside the input).
            let mut mismatched = false;
            if len_max > 16 {
                for _ in 0..16 {
                    len += 1;
                    if input[reference + len] != input[ip + len] {
                        mismatched = true;
                        break;
                    }
                }
            }
            if !mismatched {
                loop {
                    len += 1;
                    if !(len < len_max && input[reference + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2; // now the number of bytes minus one
            ip += 1;
            if len < 7 {
                out[op] = ((offset >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((offset >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = offset as u8;
            op += 2; // the offset byte, then the next run's control byte
            literal = 0;
            ip += len + 1;
            if ip >= input_end - 2 {
                break;
            }
            // VERY_FAST: hash the last two positions of the match.
            ip -= 2;
            hash = first(input, ip);
            hash = next(hash, input, ip);
            table.slots[slot_of(hash)] = (generation, ip as u32);
            ip += 1;
            hash = next(hash, input, ip);
            table.slots[slot_of(hash)] = (generation, ip as u32);
            ip += 1;
        } else {
            if op >= out_end {
                return None;
            }
            literal += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if literal == LITERAL_MAX {
                out[op - literal - 1] = (literal - 1) as u8;
                literal = 0;
                op += 1;
            }
        }
    }
    if op + 3 > out_end {
        return None;
    }
    while ip < input_end {
        literal += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if literal == LITERAL_MAX {
            out[op - literal - 1] = (literal - 1) as u8;
            literal = 0;
            op += 1;
        }
    }
    out[op - literal - 1] = (literal as u8).wrapping_sub(1);
    op -= usize::from(literal == 0);
    if op > output_max {
        return None;
    }
    out.truncate(op);
    Some(out)
}

/// Decompresses `input`, which must produce exactly `expected_len` bytes. The caller bounds
/// `expected_len` (at most `input.len() * EXPANSION_MAX`) before calling, so the allocation
/// is proportional to what the peer sent.
pub fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, LzfError> {
    if expected_len > input.len().saturating_mul(EXPANSION_MAX) {
        return Err(LzfError::TooLong);
    }
    let mut out: Vec<u8> = Vec::new();
    // A refused reservation is an error, not an abort: the length came from the peer.
    out.try_reserve_exact(expected_len)
        .map_err(|_| LzfError::TooLong)?;
    let mut ip = 0usize;
    while ip < input.len() {
        let control = input[ip] as usize;
        ip += 1;
        if control < 32 {
            let run = control + 1;
            if out.len() + run > expected_len {
                return Err(LzfError::TooLong);
            }
            let literals = input.get(ip..ip + run).ok_or(LzfError::Truncated)?;
            out.extend_from_slice(literals);
            ip += run;
        } else {
            let mut len = control >> 5;
            let mut back = (control & 0x1f) << 8;
            if len == 7 {
                len += *input.get(ip).ok_or(LzfError::Truncated)? as usize;
                ip += 1;
            }
            back += *input.get(ip).ok_or(LzfError::Truncated)? as usize;
            ip += 1;
            let copy = len + 2;
            if out.len() + copy > expected_len {
                return Err(LzfError::TooLong);
            }
            let Some(start) = out.len().checked_sub(back + 1) else {
                return Err(LzfError::BadReference);
            };
            if back + 1 >= copy {
                // The reference lies wholly behind the bytes it produces: one copy.
                out.extend_from_within(start..start + copy);
            } else {
                // The reference overlaps the bytes it produces: from `start` on, the output
                // repeats with a period of `back + 1`, so each copy may take everything from
                // `start` to the end, doubling, instead of a byte at a time (a run of zeros
                // in a padded number is one such copy of up to 264 bytes).
                let mut left = copy;
                while left > 0 {
                    let step = left.min(out.len() - start);
                    out.extend_from_within(start..start + step);
                    left -= step;
                }
            }
        }
    }
    if out.len() != expected_len {
        return Err(LzfError::TooShort);
    }
    debug_assert!(out.len() <= input.len() * EXPANSION_MAX);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(input: &[u8]) {
        if let Some(compressed) = compress(input, input.len() + 64) {
            assert_eq!(decompress(&compressed, input.len()).unwrap(), input);
        }
    }

    #[test]
    fn overlapping_references_repeat_their_period() {
        // Runs whose reference overlaps the bytes it produces, at periods 1 to 7, and a
        // padded number as the benchmark's strings are.
        for period in 1..8u8 {
            let input: Vec<u8> = (0..600u32)
                .map(|index| b'a' + (index as u8 % period))
                .collect();
            round_trip(&input);
        }
        round_trip(format!("{:0100}", 1234).as_bytes());
        // A run of one literal and one reference of 264 bytes, decoded by hand.
        let compressed = [0u8, b'z', 0xe0, 255, 0];
        assert_eq!(decompress(&compressed, 1 + 264).unwrap(), vec![b'z'; 265]);
    }

    #[test]
    fn compresses_repetitive_text() {
        let input =
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let compressed = compress(input, input.len() - 4).expect("compressible");
        assert!(compressed.len() < 10);
        assert_eq!(decompress(&compressed, input.len()).unwrap(), input);
    }

    /// What Redis 7.0.15 stored for SET k <"a" * 30 + "b" * 30> (DUMP, after the 0xC3 and
    /// the two lengths).
    #[test]
    fn same_bytes_as_redis() {
        let input: Vec<u8> = [vec![b'a'; 30], vec![b'b'; 30]].concat();
        let compressed = compress(&input, input.len() - 4).unwrap();
        assert_eq!(compressed, b"\x01aa\xe0\x13\x00\x00b\xe0\x12\x00\x01bb");
    }

    #[test]
    fn refuses_incompressible_input() {
        let input: Vec<u8> = (0..=255u8).collect();
        assert_eq!(compress(&input, input.len() - 4), None);
    }

    #[test]
    fn hostile_blocks_give_errors() {
        assert_eq!(decompress(b"\x05ab", 6), Err(LzfError::Truncated));
        assert_eq!(
            decompress(b"\x00a\x20\x05", 10),
            Err(LzfError::BadReference)
        );
        assert_eq!(decompress(b"\x00a\xe0", 10), Err(LzfError::Truncated));
        assert_eq!(decompress(b"\x00a\x20\x00", 2), Err(LzfError::TooLong));
        assert_eq!(decompress(b"\x00a", 2), Err(LzfError::TooShort));
        assert_eq!(decompress(b"\x00a", 1 << 40), Err(LzfError::TooLong));
    }

    proptest! {
        #[test]
        fn round_trips(input in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), any::<u8>()], 0..3000)) {
            round_trip(&input);
        }

        #[test]
        fn decompress_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200), len in 0usize..2000) {
            let _ = decompress(&input, len);
        }
    }
}
