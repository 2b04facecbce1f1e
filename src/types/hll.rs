//! HyperLogLog: Redis 7.0's byte representation and its cardinality estimator.
//!
//! A HyperLogLog is an ordinary string value whose bytes are exactly what Redis writes, so GET,
//! DUMP, RDB files and replicas see the same bytes as with real Redis. Layout (all offsets in
//! bytes):
//!
//! ```text
//! +------+---+-----+----------+--------------------------------------+
//! | HYLL | E | N/U | Cardin.  | registers (dense) or opcodes (sparse) |
//! +------+---+-----+----------+--------------------------------------+
//!  0      4   5     8          16
//! ```
//!
//! `E` is the encoding (0 dense, 1 sparse); the cardinality cache is a little-endian u64 whose
//! top bit (byte 15, bit 7) marks it stale. Dense: 16384 registers of 6 bits packed from the
//! least significant bit of each byte upwards (12288 bytes). Sparse: run-length opcodes `ZERO`
//! (`00xxxxxx`, 1-64 zero registers), `XZERO` (`01xxxxxx yyyyyyyy`, 1-16384 zero registers)
//! and `VAL` (`1vvvvvxx`, 1-4 registers of value 1-32). Elements hash with MurmurHash64A
//! (seed 0xadc83b19); the low 14 bits pick the register and the run of zeros above them, plus
//! one, is the register candidate. A sparse value is promoted to dense when a register needs
//! a value above 32 or the string would grow beyond `hll-sparse-max-bytes`.
//!
//! Every function here mirrors the C function of Redis's hyperloglog.c named in its comment,
//! including its behaviour on corrupt input, because corrupt values are client-controlled
//! (SET any bytes starting with `HYLL`). Invariant kept by every writer: a dense value is
//! exactly [`DENSE_BYTES`] long; sparse values are at least [`HEADER_BYTES`] long once
//! validated by [`is_valid`].

/// Bits of the hash that select the register (HLL_P).
pub const P: u32 = 14;
/// Bits of the hash left for the zero-run count (HLL_Q).
pub const Q: u32 = 64 - P;
/// Number of registers (HLL_REGISTERS).
pub const REGISTERS: usize = 1 << P;
/// Width of one dense register.
const REGISTER_BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << REGISTER_BITS) - 1;
/// The header: magic, encoding, three unused bytes, cached cardinality.
pub const HEADER_BYTES: usize = 16;
/// Total length of a dense value.
pub const DENSE_BYTES: usize = HEADER_BYTES + (REGISTERS * REGISTER_BITS).div_ceil(8);
/// The `E` byte values.
pub const ENCODING_DENSE: u8 = 0;
pub const ENCODING_SPARSE: u8 = 1;
/// Offset of the encoding byte and of the most significant cardinality byte.
const ENCODING_OFFSET: usize = 4;
const CARDINALITY_OFFSET: usize = 8;
const CACHE_INVALID_BYTE: usize = 15;
const CACHE_INVALID_BIT: u8 = 1 << 7;

/// Sparse opcode limits (HLL_SPARSE_*).
const SPARSE_VAL_VALUE_MAX: u8 = 32;
const SPARSE_VAL_LENGTH_MAX: usize = 4;
const SPARSE_ZERO_LENGTH_MAX: usize = 64;
const SPARSE_XZERO_LENGTH_MAX: usize = 16384;
/// Seed Redis passes to MurmurHash64A for HyperLogLog elements.
const HASH_SEED: u64 = 0xadc8_3b19;
/// 0.5 / ln(2), the estimator's alpha for an infinite number of registers (HLL_ALPHA_INF).
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

const _: () = assert!(DENSE_BYTES == 12_304);
const _: () = assert!(SPARSE_XZERO_LENGTH_MAX == REGISTERS);

/// Redis's MurmurHash64A (MurmurHash2, 64-bit, endian neutral).
pub fn murmur_hash_64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    // C computes `seed ^ (len * m)` with `len` an int widened to u64.
    let mut hash = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        word = word.wrapping_mul(M);
        word ^= word >> R;
        word = word.wrapping_mul(M);
        hash ^= word;
        hash = hash.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (position, byte) in tail.iter().enumerate().rev() {
            hash ^= (*byte as u64) << (8 * position);
        }
        hash = hash.wrapping_mul(M);
    }
    hash ^= hash >> R;
    hash = hash.wrapping_mul(M);
    hash ^= hash >> R;
    hash
}

/// `hllPatLen`: the register an element maps to and the length of its `000..1` pattern
/// (1 to Q+1).
pub fn pattern_length(element: &[u8]) -> (usize, u8) {
    let hash = murmur_hash_64a(element, HASH_SEED);
    let index = (hash as usize) & (REGISTERS - 1);
    // The forced bit at Q bounds the count at Q+1, as Redis's loop terminator does.
    let rest = (hash >> P) | (1u64 << Q);
    let count = rest.trailing_zeros() as u8 + 1;
    debug_assert!((1..=Q as u8 + 1).contains(&count));
    (index, count)
}

/// `createHLLObject`: an empty sparse value (one XZERO covering every register).
pub fn new_sparse() -> Vec<u8> {
    let mut hll = Vec::with_capacity(HEADER_BYTES + 2);
    hll.extend_from_slice(b"HYLL");
    hll.push(ENCODING_SPARSE);
    hll.extend_from_slice(&[0; HEADER_BYTES - 5]);
    let mut remaining = REGISTERS;
    while remaining > 0 {
        let run = remaining.min(SPARSE_XZERO_LENGTH_MAX);
        hll.extend_from_slice(&xzero(run));
        remaining -= run;
    }
    debug_assert_eq!(hll.len(), HEADER_BYTES + 2);
    hll
}

/// An empty dense value (used by tests and PFSELFTEST).
pub fn new_dense() -> Vec<u8> {
    let mut hll = vec![0u8; DENSE_BYTES];
    hll[..4].copy_from_slice(b"HYLL");
    hll[ENCODING_OFFSET] = ENCODING_DENSE;
    hll
}

/// `isHLLObjectOrReply`'s checks: long enough for the header, the magic, a known encoding,
/// and a dense value of exactly the dense length.
pub fn is_valid(bytes: &[u8]) -> bool {
    if bytes.len() < HEADER_BYTES || &bytes[..4] != b"HYLL" {
        return false;
    }
    match bytes[ENCODING_OFFSET] {
        ENCODING_DENSE => bytes.len() == DENSE_BYTES,
        ENCODING_SPARSE => true,
        _ => false,
    }
}

/// The encoding byte of a validated value.
pub fn encoding(hll: &[u8]) -> u8 {
    debug_assert!(is_valid(hll));
    hll[ENCODING_OFFSET]
}

/// The cached cardinality, if the cache is valid.
pub fn cached_cardinality(hll: &[u8]) -> Option<u64> {
    if hll[CACHE_INVALID_BYTE] & CACHE_INVALID_BIT != 0 {
        return None;
    }
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hll[CARDINALITY_OFFSET..CARDINALITY_OFFSET + 8]);
    Some(u64::from_le_bytes(bytes))
}

/// Stores the cardinality in the header cache (which marks it valid: the estimate is far
/// below 2^63).
pub fn set_cached_cardinality(hll: &mut [u8], cardinality: u64) {
    hll[CARDINALITY_OFFSET..CARDINALITY_OFFSET + 8].copy_from_slice(&cardinality.to_le_bytes());
}

/// `HLL_INVALIDATE_CACHE`.
pub fn invalidate_cache(hll: &mut [u8]) {
    hll[CACHE_INVALID_BYTE] |= CACHE_INVALID_BIT;
}

// ---------------------------------------------------------------------------------------------
// Dense registers
// ---------------------------------------------------------------------------------------------

/// `HLL_DENSE_GET_REGISTER` over the register bytes (after the header). Redis reads one byte
/// past the last register (the sds terminator, always zero); here a missing byte reads as 0.
pub fn dense_get(registers: &[u8], index: usize) -> u8 {
    debug_assert!(index < REGISTERS);
    let byte = index * REGISTER_BITS / 8;
    let first_bit = (index * REGISTER_BITS) & 7;
    let low = registers[byte] as u32;
    let high = registers.get(byte + 1).copied().unwrap_or(0) as u32;
    (((low >> first_bit) | (high << (8 - first_bit))) & REGISTER_MAX as u32) as u8
}

/// `HLL_DENSE_SET_REGISTER`: `value` must fit six bits.
pub fn dense_set(registers: &mut [u8], index: usize, value: u8) {
    debug_assert!(index < REGISTERS && value <= REGISTER_MAX);
    let byte = index * REGISTER_BITS / 8;
    let first_bit = (index * REGISTER_BITS) & 7;
    let value = value as u32;
    let low = registers[byte] as u32;
    registers[byte] = ((low & !((REGISTER_MAX as u32) << first_bit)) | (value << first_bit)) as u8;
    if let Some(next) = registers.get_mut(byte + 1) {
        let high = *next as u32;
        let shift = 8 - first_bit;
        *next = ((high & !((REGISTER_MAX as u32) >> shift)) | (value >> shift)) as u8;
    }
}

/// `hllDenseSet`: raises register `index` to `count`; true if it changed.
pub fn dense_raise(registers: &mut [u8], index: usize, count: u8) -> bool {
    if count > dense_get(registers, index) {
        dense_set(registers, index, count);
        true
    } else {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// Sparse opcodes
// ---------------------------------------------------------------------------------------------

fn is_zero(opcode: u8) -> bool {
    opcode & 0xc0 == 0
}

fn is_xzero(opcode: u8) -> bool {
    opcode & 0xc0 == 0x40
}

fn is_val(opcode: u8) -> bool {
    opcode & 0x80 != 0
}

fn zero_length(opcode: u8) -> usize {
    (opcode & 0x3f) as usize + 1
}

fn xzero_length(opcode: u8, next: u8) -> usize {
    ((((opcode & 0x3f) as usize) << 8) | next as usize) + 1
}

fn val_value(opcode: u8) -> u8 {
    ((opcode >> 2) & 0x1f) + 1
}

fn val_length(opcode: u8) -> usize {
    (opcode & 0x3) as usize + 1
}

fn val(value: u8, length: usize) -> u8 {
    debug_assert!((1..=SPARSE_VAL_VALUE_MAX).contains(&value));
    debug_assert!((1..=SPARSE_VAL_LENGTH_MAX).contains(&length));
    ((value - 1) << 2) | (length as u8 - 1) | 0x80
}

fn zero(length: usize) -> u8 {
    debug_assert!((1..=SPARSE_ZERO_LENGTH_MAX).contains(&length));
    (length - 1) as u8
}

fn xzero(length: usize) -> [u8; 2] {
    debug_assert!((1..=SPARSE_XZERO_LENGTH_MAX).contains(&length));
    let encoded = length - 1;
    [((encoded >> 8) as u8) | 0x40, (encoded & 0xff) as u8]
}

/// One decoded sparse opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// `ZERO` (one byte) or `XZERO` (two bytes): this many zero registers.
    Zeros { length: usize, bytes: usize },
    /// `VAL`: `length` registers holding `value`.
    Value { value: u8, length: usize },
}

/// Decodes the opcode at `position` of a sparse value. Redis reads an XZERO's second byte
/// even at the very end (the sds terminator); here it reads as 0.
fn decode(hll: &[u8], position: usize) -> Opcode {
    let opcode = hll[position];
    if is_zero(opcode) {
        Opcode::Zeros {
            length: zero_length(opcode),
            bytes: 1,
        }
    } else if is_xzero(opcode) {
        let next = hll.get(position + 1).copied().unwrap_or(0);
        Opcode::Zeros {
            length: xzero_length(opcode, next),
            bytes: 2,
        }
    } else {
        Opcode::Value {
            value: val_value(opcode),
            length: val_length(opcode),
        }
    }
}

/// The opcodes of a sparse value, in order (PFDEBUG DECODE).
pub fn sparse_opcodes(hll: &[u8]) -> Vec<Opcode> {
    let mut opcodes = Vec::new();
    let mut position = HEADER_BYTES;
    while position < hll.len() {
        let opcode = decode(hll, position);
        position += match opcode {
            Opcode::Zeros { bytes, .. } => bytes,
            Opcode::Value { .. } => 1,
        };
        opcodes.push(opcode);
    }
    opcodes
}

/// The value is corrupt (a sparse walk that does not cover exactly 16384 registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// `hllSparseToDense`: converts a sparse value in place (no-op for dense). The header (and so
/// the cached cardinality) is kept, with the encoding byte changed.
pub fn sparse_to_dense(hll: &mut Vec<u8>) -> Result<(), Corrupt> {
    if hll[ENCODING_OFFSET] == ENCODING_DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_BYTES];
    dense[..HEADER_BYTES].copy_from_slice(&hll[..HEADER_BYTES]);
    dense[ENCODING_OFFSET] = ENCODING_DENSE;
    let mut index = 0usize;
    let mut position = HEADER_BYTES;
    let registers = &mut dense[HEADER_BYTES..];
    while position < hll.len() {
        match decode(hll, position) {
            Opcode::Zeros { length, bytes } => {
                index += length;
                position += bytes;
            }
            Opcode::Value { value, length } => {
                if index + length > REGISTERS {
                    break;
                }
                for register in index..index + length {
                    dense_set(registers, register, value);
                }
                index += length;
                position += 1;
            }
        }
    }
    if index != REGISTERS {
        return Err(Corrupt);
    }
    *hll = dense;
    Ok(())
}

/// What a register update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    Unchanged,
    /// The register grew (the value may have been promoted to dense on the way).
    Updated,
    Corrupt,
}

/// `hllSparseSet`: raises register `index` to `count` in a sparse value, splitting and
/// merging opcodes exactly as Redis does (so the bytes match), promoting to dense when
/// `count` exceeds 32 or the value would outgrow `sparse_bytes_max`.
pub fn sparse_raise(
    hll: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_bytes_max: usize,
) -> SetOutcome {
    debug_assert!(index < REGISTERS);
    if count > SPARSE_VAL_VALUE_MAX {
        return promote(hll, index, count);
    }
    // Step 1: find the opcode covering `index`.
    let mut end = hll.len();
    let mut position = HEADER_BYTES;
    let mut first = 0usize;
    let mut previous: Option<usize> = None;
    let mut span = 0usize;
    while position < end {
        let (covered, bytes) = match decode(hll, position) {
            Opcode::Zeros { length, bytes } => (length, bytes),
            Opcode::Value { length, .. } => (length, 1),
        };
        span = covered;
        if index < first + span {
            break;
        }
        previous = Some(position);
        position += bytes;
        first += span;
    }
    if span == 0 || position >= end {
        return SetOutcome::Corrupt;
    }
    let opcode = hll[position];
    let has_next = position + if is_xzero(opcode) { 2 } else { 1 } < end;

    // Step 2: the trivial cases (A: already high enough, B: a VAL of one, C: a ZERO of one).
    if is_val(opcode) {
        if val_value(opcode) >= count {
            return SetOutcome::Unchanged;
        }
        if val_length(opcode) == 1 {
            hll[position] = val(count, 1);
            return merge_and_invalidate(hll, previous, end);
        }
    }
    if is_zero(opcode) && zero_length(opcode) == 1 {
        hll[position] = val(count, 1);
        return merge_and_invalidate(hll, previous, end);
    }

    // General case D: split the opcode into up to three (at most 5 bytes).
    let last = first + span - 1;
    let mut sequence: Vec<u8> = Vec::with_capacity(5);
    let push_zeros = |sequence: &mut Vec<u8>, length: usize| {
        if length > SPARSE_ZERO_LENGTH_MAX {
            sequence.extend_from_slice(&xzero(length));
        } else {
            sequence.push(zero(length));
        }
    };
    if is_val(opcode) {
        let current = val_value(opcode);
        if index != first {
            sequence.push(val(current, index - first));
        }
        sequence.push(val(count, 1));
        if index != last {
            sequence.push(val(current, last - index));
        }
    } else {
        if index != first {
            push_zeros(&mut sequence, index - first);
        }
        sequence.push(val(count, 1));
        if index != last {
            push_zeros(&mut sequence, last - index);
        }
    }
    debug_assert!(sequence.len() <= 5);

    // Step 3: substitute the sequence for the old opcode.
    let old_bytes = if is_xzero(opcode) { 2 } else { 1 };
    let growth = sequence.len() as isize - old_bytes as isize;
    if growth > 0 && hll.len() + growth as usize > sparse_bytes_max {
        return promote(hll, index, count);
    }
    let new_length = (hll.len() as isize + growth) as usize;
    if has_next {
        hll.splice(position..position + old_bytes, sequence);
    } else {
        // Redis copies the sequence over the tail and sets the length by the growth, which
        // differs from a splice only for a truncated trailing XZERO (corrupt input).
        hll.truncate(position);
        hll.extend_from_slice(&sequence);
        hll.resize(new_length, 0);
    }
    debug_assert_eq!(hll.len(), new_length);
    end = hll.len();
    merge_and_invalidate(hll, previous, end)
}

/// Step 4 of `hllSparseSet`: merge adjacent VAL opcodes of equal value (scanning at most five
/// opcodes from the one before the change), then invalidate the cached cardinality.
fn merge_and_invalidate(hll: &mut Vec<u8>, previous: Option<usize>, mut end: usize) -> SetOutcome {
    const SCAN_OPCODES_MAX: usize = 5;
    let mut position = previous.unwrap_or(HEADER_BYTES);
    let mut budget = SCAN_OPCODES_MAX;
    while position < end && budget > 0 {
        budget -= 1;
        let opcode = hll[position];
        if is_xzero(opcode) {
            position += 2;
            continue;
        }
        if is_zero(opcode) {
            position += 1;
            continue;
        }
        if position + 1 < end && is_val(hll[position + 1]) {
            let next = hll[position + 1];
            let value = val_value(opcode);
            if value == val_value(next) {
                let length = val_length(opcode) + val_length(next);
                if length <= SPARSE_VAL_LENGTH_MAX {
                    hll[position + 1] = val(value, length);
                    hll.remove(position);
                    end -= 1;
                    continue;
                }
            }
        }
        position += 1;
    }
    invalidate_cache(hll);
    SetOutcome::Updated
}

/// The promotion branch of `hllSparseSet`.
fn promote(hll: &mut Vec<u8>, index: usize, count: u8) -> SetOutcome {
    if sparse_to_dense(hll).is_err() {
        return SetOutcome::Corrupt;
    }
    dense_raise(&mut hll[HEADER_BYTES..], index, count);
    SetOutcome::Updated
}

/// `hllAdd`: adds one element to a validated value of either encoding.
pub fn add(hll: &mut Vec<u8>, element: &[u8], sparse_bytes_max: usize) -> SetOutcome {
    let (index, count) = pattern_length(element);
    raise(hll, index, count, sparse_bytes_max)
}

/// Raises one register in a value of either encoding.
pub fn raise(hll: &mut Vec<u8>, index: usize, count: u8, sparse_bytes_max: usize) -> SetOutcome {
    match hll[ENCODING_OFFSET] {
        ENCODING_DENSE => {
            if dense_raise(&mut hll[HEADER_BYTES..], index, count) {
                SetOutcome::Updated
            } else {
                SetOutcome::Unchanged
            }
        }
        ENCODING_SPARSE => sparse_raise(hll, index, count, sparse_bytes_max),
        _ => SetOutcome::Corrupt,
    }
}

// ---------------------------------------------------------------------------------------------
// Counting and merging
// ---------------------------------------------------------------------------------------------

/// How many registers hold each value (index 0..63); the estimator's only input.
pub type Histogram = [u32; 64];

/// The four registers packed in three dense bytes (Redis's unrolled loop takes twelve bytes
/// at a time for the same reason: register boundaries realign every three bytes).
fn unpack(group: &[u8]) -> [u8; 4] {
    let (b0, b1, b2) = (group[0], group[1], group[2]);
    [
        b0 & 63,
        ((b0 >> 6) | (b1 << 2)) & 63,
        ((b1 >> 4) | (b2 << 4)) & 63,
        b2 >> 2,
    ]
}

const _: () = assert!((DENSE_BYTES - HEADER_BYTES) % 3 == 0);

/// `hllDenseRegHisto`.
fn dense_histogram(registers: &[u8], histogram: &mut Histogram) {
    debug_assert_eq!(registers.len(), DENSE_BYTES - HEADER_BYTES);
    for group in registers.chunks_exact(3) {
        for register in unpack(group) {
            histogram[register as usize] += 1;
        }
    }
}

/// `hllSparseRegHisto`: `Err` when the opcodes do not cover exactly 16384 registers.
fn sparse_histogram(hll: &[u8], histogram: &mut Histogram) -> Result<(), Corrupt> {
    let mut index = 0usize;
    for opcode in sparse_opcodes(hll) {
        match opcode {
            Opcode::Zeros { length, .. } => {
                histogram[0] += length as u32;
                index += length;
            }
            Opcode::Value { value, length } => {
                histogram[value as usize] += length as u32;
                index += length;
            }
        }
    }
    if index == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// `hllCount` for a validated value of either encoding.
pub fn count(hll: &[u8]) -> Result<u64, Corrupt> {
    let mut histogram: Histogram = [0; 64];
    match hll[ENCODING_OFFSET] {
        ENCODING_DENSE => dense_histogram(&hll[HEADER_BYTES..], &mut histogram),
        _ => sparse_histogram(hll, &mut histogram)?,
    }
    Ok(estimate(&histogram))
}

/// `hllCount` over plain byte registers (Redis's internal HLL_RAW encoding, PFCOUNT of
/// several keys).
pub fn count_raw(registers: &[u8; REGISTERS]) -> u64 {
    let mut histogram: Histogram = [0; 64];
    for &register in registers.iter() {
        histogram[(register & 63) as usize] += 1;
    }
    estimate(&histogram)
}

/// `hllSigma` (Ertl, "New cardinality estimation algorithms for HyperLogLog sketches").
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    // Converges in at most ~64 rounds (x squares towards 0, y doubles); bounded anyway.
    for _ in 0..1024 {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if previous == z {
            break;
        }
    }
    z
}

/// `hllTau` (Ertl).
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    for _ in 0..1024 {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        // C's pow(1 - x, 2) is correctly rounded, as is this product.
        z -= (1.0 - x) * (1.0 - x) * y;
        if previous == z {
            break;
        }
    }
    z / 3.0
}

/// The estimator of Redis 7 (Ertl's improved raw estimator) over a register histogram.
pub fn estimate(histogram: &Histogram) -> u64 {
    let m = REGISTERS as f64;
    let q = Q as usize;
    let mut z = m * tau((m - histogram[q + 1] as f64) / m);
    for j in (1..=q).rev() {
        z += histogram[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histogram[0] as f64 / m);
    // llroundl: round half away from zero; an infinite z gives 0.
    (ALPHA_INF * m * m / z).round() as u64
}

/// `hllMerge`: `maximum[i] = max(maximum[i], register i)` for a validated value.
pub fn merge_into(maximum: &mut [u8; REGISTERS], hll: &[u8]) -> Result<(), Corrupt> {
    if hll[ENCODING_OFFSET] == ENCODING_DENSE {
        let groups = hll[HEADER_BYTES..].chunks_exact(3);
        for (slots, group) in maximum.chunks_exact_mut(4).zip(groups) {
            for (slot, value) in slots.iter_mut().zip(unpack(group)) {
                *slot = (*slot).max(value);
            }
        }
        return Ok(());
    }
    let mut index = 0usize;
    let mut position = HEADER_BYTES;
    while position < hll.len() {
        match decode(hll, position) {
            Opcode::Zeros { length, bytes } => {
                index += length;
                position += bytes;
            }
            Opcode::Value { value, length } => {
                if index + length > REGISTERS {
                    break;
                }
                for slot in &mut maximum[index..index + length] {
                    if value > *slot {
                        *slot = value;
                    }
                }
                index += length;
                position += 1;
            }
        }
    }
    if index == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// Every register of a validated value, one byte each.
pub fn registers(hll: &[u8]) -> Result<Vec<u8>, Corrupt> {
    let mut maximum = [0u8; REGISTERS];
    merge_into(&mut maximum, hll)?;
    Ok(maximum.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SPARSE_MAX: usize = 3000;

    fn add_all(hll: &mut Vec<u8>, elements: impl Iterator<Item = Vec<u8>>) {
        for element in elements {
            assert_ne!(add(hll, &element, SPARSE_MAX), SetOutcome::Corrupt);
        }
    }

    #[test]
    fn murmur_matches_redis_known_values() {
        // The register and count Redis assigns to these elements (checked with PFDEBUG
        // DECODE against Redis 7.0.15: PFADD of x, y, z, q gives registers 5552 (6), 8581
        // (1), 14932 (3) and 16374 (2)).
        let mut found: Vec<(usize, u8)> = ["x", "y", "z", "q"]
            .iter()
            .map(|element| pattern_length(element.as_bytes()))
            .collect();
        found.sort();
        assert_eq!(found, vec![(5552, 6), (8581, 1), (14932, 3), (16374, 2)]);
    }

    #[test]
    fn sparse_bytes_match_redis() {
        // GET after `PFADD a x y z` / `PFADD b q` / `PFMERGE c a b` on Redis 7.0.15.
        let mut hll = new_sparse();
        add_all(
            &mut hll,
            ["x", "y", "z", "q"].iter().map(|s| s.as_bytes().to_vec()),
        );
        let expected: &[u8] = b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80U\xaf\x94K\xd3\x80X\xcd\x88E\xa0\x84\x08";
        assert_eq!(hll, expected);
        assert_eq!(count(&hll), Ok(4));
    }

    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
            (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// Fixtures captured from Redis 7.0.15: `PFADD key <elements>` then `PFCOUNT key`, the
    /// length and FNV-1a hash of `GET key`, and the count.
    #[test]
    fn dense_and_sparse_bytes_match_redis_fixtures() {
        let fixtures: [(&str, usize, usize, u64, u64); 2] = [
            ("b", 3000, DENSE_BYTES, 0xcbc1_e38d_2e49_22bb, 3036),
            ("e", 500, 1068, 0x4785_b546_f1b4_a8cb, 506),
        ];
        for (prefix, elements, length, hash, cardinality) in fixtures {
            let mut hll = new_sparse();
            add_all(
                &mut hll,
                (0..elements).map(|i| format!("{prefix}{i}").into_bytes()),
            );
            assert_eq!(cached_cardinality(&hll), None);
            let counted = count(&hll).unwrap();
            set_cached_cardinality(&mut hll, counted);
            assert_eq!((hll.len(), counted), (length, cardinality));
            assert_eq!(fnv1a(&hll), hash, "bytes of {prefix}0..{elements}");
        }
    }

    #[test]
    fn empty_values() {
        let sparse = new_sparse();
        assert_eq!(
            sparse,
            b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x7f\xff"
        );
        assert!(is_valid(&sparse));
        assert_eq!(count(&sparse), Ok(0));
        let dense = new_dense();
        assert!(is_valid(&dense));
        assert_eq!(count(&dense), Ok(0));
        assert!(!is_valid(&dense[..DENSE_BYTES - 1]));
        assert!(!is_valid(
            b"HYLL\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        ));
    }

    #[test]
    fn dense_registers_do_not_disturb_neighbours() {
        let mut registers = vec![0u8; DENSE_BYTES - HEADER_BYTES];
        for index in 0..REGISTERS {
            dense_set(&mut registers, index, (index * 7 % 64) as u8);
        }
        for index in 0..REGISTERS {
            assert_eq!(dense_get(&registers, index), (index * 7 % 64) as u8);
        }
        let walked: Vec<u8> = registers.chunks_exact(3).flat_map(unpack).collect();
        let expected: Vec<u8> = (0..REGISTERS).map(|i| (i * 7 % 64) as u8).collect();
        assert_eq!(walked, expected);
    }

    #[test]
    fn promotion_at_the_size_limit() {
        let mut hll = new_sparse();
        let mut element = 0u64;
        while encoding(&hll) == ENCODING_SPARSE {
            assert!(hll.len() <= SPARSE_MAX);
            element += 1;
            add(&mut hll, &element.to_le_bytes(), SPARSE_MAX);
            assert!(element < 100_000);
        }
        assert_eq!(hll.len(), DENSE_BYTES);
    }

    #[test]
    fn corrupt_sparse_is_detected() {
        let mut hll = new_sparse();
        hll.truncate(HEADER_BYTES + 1);
        hll.push(0x10);
        assert_eq!(count(&hll), Err(Corrupt));
        assert_eq!(sparse_to_dense(&mut hll), Err(Corrupt));
    }

    proptest! {
        /// Any bytes after a valid header (SET can store anything) never panic: every reader
        /// either works or reports corruption, and writers keep a value the readers accept.
        #[test]
        fn arbitrary_sparse_bytes_never_panic(
            opcodes in proptest::collection::vec(any::<u8>(), 0..64),
            elements in proptest::collection::vec(any::<u32>(), 0..8),
            sparse_max in prop_oneof![Just(0usize), Just(40), Just(SPARSE_MAX)],
        ) {
            let mut hll = new_sparse();
            hll.truncate(HEADER_BYTES);
            hll.extend_from_slice(&opcodes);
            prop_assert!(is_valid(&hll));
            let _ = count(&hll);
            let _ = sparse_opcodes(&hll);
            let mut maximum = [0u8; REGISTERS];
            let _ = merge_into(&mut maximum, &hll);
            for element in elements {
                if add(&mut hll, &element.to_le_bytes(), sparse_max) == SetOutcome::Corrupt {
                    break;
                }
                prop_assert!(is_valid(&hll));
                let _ = count(&hll);
            }
            let _ = sparse_to_dense(&mut hll);
        }

        /// A dense value may hold any register values (up to 63).
        #[test]
        fn arbitrary_dense_bytes_never_panic(
            fill in any::<u8>(),
            elements in proptest::collection::vec(any::<u32>(), 0..8),
        ) {
            let mut hll = new_dense();
            hll[HEADER_BYTES..].iter_mut().for_each(|byte| *byte = fill);
            prop_assert!(count(&hll).is_ok());
            for element in elements {
                prop_assert_ne!(add(&mut hll, &element.to_le_bytes(), SPARSE_MAX), SetOutcome::Corrupt);
            }
            prop_assert_eq!(hll.len(), DENSE_BYTES);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Sparse and dense updates keep identical registers (and estimates), and the estimate
        /// stays within a generous bound of the true cardinality.
        #[test]
        fn sparse_and_dense_agree(seed in any::<u64>(), cardinality in 1usize..6000) {
            let mut sparse = new_sparse();
            let mut dense = new_dense();
            for element in 0..cardinality as u64 {
                let element = (element ^ seed).to_le_bytes();
                add(&mut sparse, &element, SPARSE_MAX);
                add(&mut dense, &element, SPARSE_MAX);
            }
            prop_assert_eq!(registers(&sparse).unwrap(), registers(&dense).unwrap());
            let estimated = count(&sparse).unwrap();
            prop_assert_eq!(estimated, count(&dense).unwrap());
            // Standard error 0.81%; allow 6 sigma plus a small absolute slack for tiny sets.
            let error = (estimated as f64 - cardinality as f64).abs();
            prop_assert!(error <= cardinality as f64 * 0.0081 * 6.0 + 2.0,
                "estimate {} for {}", estimated, cardinality);
            let mut converted = sparse.clone();
            if encoding(&converted) == ENCODING_SPARSE {
                sparse_to_dense(&mut converted).unwrap();
            }
            prop_assert_eq!(&converted[HEADER_BYTES..], &dense[HEADER_BYTES..]);
        }
    }
}
