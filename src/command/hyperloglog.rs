//! The HyperLogLog family: PFADD, PFCOUNT, PFMERGE, PFDEBUG and PFSELFTEST, with Redis
//! 7.0.15's replies, error texts, keyspace events and propagation (hyperloglog.c).
//!
//! The representation and the estimator live in [`crate::types::hll`]; a HyperLogLog is a
//! string value holding Redis's exact bytes. Handlers validate the value the way Redis's
//! isHLLObjectOrReply does (WRONGTYPE for another type, a WRONGTYPE-coded error for a string
//! that is not an HLL, INVALIDOBJ for a sparse value whose opcodes are corrupt), and make the
//! value `raw` whenever Redis unshares it (dbUnshareStringValue). PFCOUNT of one key writes
//! the cached cardinality back into the value when it was stale: Redis counts that as a
//! change and propagates the PFCOUNT, so Strata does too.

use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::keyspace::entry::FLAG_RAW;
use crate::keyspace::notify;
use crate::protocol::Reply;
use crate::types::hll::{self, SetOutcome};
use crate::types::{CompactBytes, Value};
use bytes::Bytes;

const NOT_AN_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT_HLL: &str = "INVALIDOBJ Corrupted HLL object detected";
const PFDEBUG_NO_KEY: &str = "ERR The specified key does not exist";
const PFDEBUG_NOT_SPARSE: &str = "ERR HLL encoding is not sparse";

pub static COMMANDS: &[Spec] = &[
    Spec::new("pfadd", pfadd, Lock::Keys),
    Spec::new("pfcount", pfcount, Lock::Keys),
    Spec::new("pfmerge", pfmerge, Lock::Keys),
    Spec::new("pfdebug", pfdebug, Lock::Keys),
    Spec::new("pfselftest", pfselftest, Lock::None),
];

fn sparse_bytes_max(ctx: &Ctx<'_, '_>) -> usize {
    crate::config_int!(ctx.server.config, "hll-sparse-max-bytes").max(0) as usize
}

/// Which lookup Redis uses (lookupKeyRead counts keyspace hits and misses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    Read,
    Write,
}

/// The HLL at `key` for in-place use: None when missing, errors as isHLLObjectOrReply. The
/// value is made raw, as dbUnshareStringValue does.
fn hll_for_update<'k>(
    ctx: &'k mut Ctx<'_, '_>,
    key: &[u8],
    lookup: Lookup,
) -> Result<Option<&'k mut Vec<u8>>, Error> {
    let db = ctx.db();
    let entry = match lookup {
        Lookup::Read => ctx.ks.lookup_read(db, key),
        Lookup::Write => ctx.ks.lookup(db, key),
    };
    let Some(entry) = entry else {
        return Ok(None);
    };
    match &mut entry.value {
        Value::Str(bytes) => {
            if !hll::is_valid(bytes) {
                return Err(Error::from(NOT_AN_HLL));
            }
            entry.flags |= FLAG_RAW;
            Ok(Some(bytes.to_mut()))
        }
        #[allow(unreachable_patterns)]
        _ => Err(Error::WrongType),
    }
}

/// Folds the registers of the HLL at `key` (if any) into `maximum` (read-only lookup).
fn merge_key(
    ctx: &mut Ctx<'_, '_>,
    key: &[u8],
    maximum: &mut [u8; hll::REGISTERS],
) -> Result<Option<u8>, Error> {
    let db = ctx.db();
    let Some(entry) = ctx.ks.lookup_read(db, key) else {
        return Ok(None);
    };
    match &entry.value {
        Value::Str(bytes) => {
            if !hll::is_valid(bytes) {
                return Err(Error::from(NOT_AN_HLL));
            }
            hll::merge_into(maximum, bytes).map_err(|_| Error::from(CORRUPT_HLL))?;
            Ok(Some(hll::encoding(bytes)))
        }
        #[allow(unreachable_patterns)]
        _ => Err(Error::WrongType),
    }
}

/// `PFADD key [element ...]`: 1 if a register changed (or the key was created), else 0.
fn pfadd(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let db = ctx.db();
    let sparse_max = sparse_bytes_max(ctx);
    // One look-up when the key exists (the hot path); creating it takes a second.
    let updated = match hll_for_update(ctx, key, Lookup::Write)? {
        Some(registers) => add_elements(registers, &argv[2..], sparse_max)?,
        None => {
            let created = Value::Str(CompactBytes::from_vec(hll::new_sparse()));
            ctx.ks.set(db, key, created, false);
            if let Some(entry) = ctx.ks.peek(db, key) {
                entry.flags |= FLAG_RAW;
            }
            let Some(registers) = hll_for_update(ctx, key, Lookup::Write)? else {
                unreachable!("the key exists: created above");
            };
            // Creating the key is a change even when no register moved, and Redis marks the
            // cached cardinality stale for it too.
            add_elements(registers, &argv[2..], sparse_max)?;
            hll::invalidate_cache(registers);
            true
        }
    };
    if updated {
        ctx.ks.signal_modified(db, key);
        ctx.ks.notify(notify::STRING, "pfadd", db, key);
    }
    Ok(Reply::Integer(updated as i64))
}

/// Adds each element to `registers`; true if any register changed (the cached cardinality
/// is then invalidated). A corrupt value stops at once, keeping what earlier elements changed,
/// as Redis does.
fn add_elements(
    registers: &mut Vec<u8>,
    elements: &[Bytes],
    sparse_max: usize,
) -> Result<bool, Error> {
    let mut updated = false;
    for element in elements {
        match hll::add(registers, element, sparse_max) {
            SetOutcome::Updated => updated = true,
            SetOutcome::Unchanged => {}
            SetOutcome::Corrupt => return Err(Error::from(CORRUPT_HLL)),
        }
    }
    if updated {
        hll::invalidate_cache(registers);
    }
    Ok(updated)
}

/// `PFCOUNT key [key ...]`: the estimated cardinality (of the union for several keys).
fn pfcount(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 2 {
        let mut maximum = Box::new([0u8; hll::REGISTERS]);
        for key in &argv[1..] {
            merge_key(ctx, key, &mut maximum)?;
        }
        return Ok(Reply::Integer(hll::count_raw(&maximum) as i64));
    }
    let key = &argv[1];
    let Some(registers) = hll_for_update(ctx, key, Lookup::Read)? else {
        return Ok(Reply::Integer(0));
    };
    if let Some(cached) = hll::cached_cardinality(registers) {
        return Ok(Reply::Integer(cached as i64));
    }
    let cardinality = hll::count(registers).map_err(|_| Error::from(CORRUPT_HLL))?;
    hll::set_cached_cardinality(registers, cardinality);
    // Redis flags PFCOUNT read-only yet counts the cache write as a change and propagates it.
    let db = ctx.db();
    ctx.ks.signal_modified(db, key);
    ctx.force_propagate();
    Ok(Reply::Integer(cardinality as i64))
}

/// `PFMERGE destkey [sourcekey ...]`: merges every source and the destination itself into the
/// destination. The destination stays sparse unless a source is dense; event `pfadd`.
fn pfmerge(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let destination = &argv[1];
    let db = ctx.db();
    let sparse_max = sparse_bytes_max(ctx);
    let mut maximum = Box::new([0u8; hll::REGISTERS]);
    let mut use_dense = false;
    for key in &argv[1..] {
        if merge_key(ctx, key, &mut maximum)? == Some(hll::ENCODING_DENSE) {
            use_dense = true;
        }
    }
    if hll_for_update(ctx, destination, Lookup::Write)?.is_none() {
        let created = Value::Str(CompactBytes::from_vec(hll::new_sparse()));
        ctx.ks.set(db, destination, created, false);
    }
    let Some(registers) = hll_for_update(ctx, destination, Lookup::Write)? else {
        unreachable!("the destination exists: found or created above");
    };
    if use_dense && hll::sparse_to_dense(registers).is_err() {
        return Err(Error::from(CORRUPT_HLL));
    }
    for (index, &value) in maximum.iter().enumerate() {
        if value != 0 {
            // Redis ignores a corrupt outcome here (the sources were validated already).
            hll::raise(registers, index, value, sparse_max);
        }
    }
    hll::invalidate_cache(registers);
    ctx.ks.signal_modified(db, destination);
    ctx.ks.notify(notify::STRING, "pfadd", db, destination);
    Ok(Reply::OK)
}

/// `PFDEBUG GETREG|DECODE|ENCODING|TODENSE key`. GETREG and TODENSE convert a sparse value
/// to dense (a write Redis propagates, without a keyspace event).
fn pfdebug(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let subcommand = &argv[1];
    let key = &argv[2];
    let Some(registers) = hll_for_update(ctx, key, Lookup::Write)? else {
        return Err(Error::from(PFDEBUG_NO_KEY));
    };
    let name = String::from_utf8_lossy(subcommand).to_lowercase();
    match name.as_str() {
        "getreg" => {
            let converted = hll::encoding(registers) == hll::ENCODING_SPARSE;
            hll::sparse_to_dense(registers).map_err(|_| Error::from(CORRUPT_HLL))?;
            let values = (0..hll::REGISTERS)
                .map(|index| {
                    Reply::Integer(hll::dense_get(&registers[hll::HEADER_BYTES..], index) as i64)
                })
                .collect();
            if converted {
                ctx.ks.dirty += 1;
            }
            Ok(Reply::Array(values))
        }
        "decode" => {
            if hll::encoding(registers) != hll::ENCODING_SPARSE {
                return Err(Error::from(PFDEBUG_NOT_SPARSE));
            }
            let words: Vec<String> = hll::sparse_opcodes(registers)
                .into_iter()
                .map(|opcode| match opcode {
                    hll::Opcode::Zeros { length, bytes: 1 } => format!("z:{length}"),
                    hll::Opcode::Zeros { length, .. } => format!("Z:{length}"),
                    hll::Opcode::Value { value, length } => format!("v:{value},{length}"),
                })
                .collect();
            Ok(Reply::bulk(words.join(" ").into_bytes()))
        }
        "encoding" => Ok(Reply::Simple(
            if hll::encoding(registers) == hll::ENCODING_DENSE {
                "dense"
            } else {
                "sparse"
            },
        )),
        "todense" => {
            let converted = hll::encoding(registers) == hll::ENCODING_SPARSE;
            hll::sparse_to_dense(registers).map_err(|_| Error::from(CORRUPT_HLL))?;
            if converted {
                ctx.ks.dirty += 1;
            }
            Ok(Reply::Integer(converted as i64))
        }
        _ => Err(Error::err(format!(
            "Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(subcommand)
        ))),
    }
}

/// How many random register fills PFSELFTEST checks (HLL_TEST_CYCLES).
const SELFTEST_CYCLES: usize = 1000;
/// How many elements PFSELFTEST adds while checking the error at each power of ten.
const SELFTEST_ELEMENTS: u64 = 10_000_000;

/// `PFSELFTEST`: Redis's self-test of the register access and of the estimator's error (with
/// sparse and dense agreeing). Replies OK or a `TESTFAILED ...` error.
fn pfselftest(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    let sparse_max = sparse_bytes_max(ctx);
    selftest(ctx.now_ms(), sparse_max, SELFTEST_CYCLES, SELFTEST_ELEMENTS).map(|()| Reply::OK)
}

/// The self-test with `cycles` register fills and `elements` additions (Redis's are
/// [`SELFTEST_CYCLES`] and [`SELFTEST_ELEMENTS`]; tests of debug builds use fewer).
fn selftest(seed: u64, sparse_max: usize, cycles: usize, elements: u64) -> Result<(), Error> {
    // xorshift64*: any source of varied values will do; Redis uses rand().
    let mut state = seed | 1;
    let mut random = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut dense = hll::new_dense();
    let mut expected = vec![0u8; hll::REGISTERS];
    for _ in 0..cycles {
        // One random word feeds ten six-bit registers.
        for (chunk_index, chunk) in expected.chunks_mut(10).enumerate() {
            let mut word = random();
            for (offset, slot) in chunk.iter_mut().enumerate() {
                let value = (word & 63) as u8;
                word >>= 6;
                *slot = value;
                hll::dense_set(
                    &mut dense[hll::HEADER_BYTES..],
                    chunk_index * 10 + offset,
                    value,
                );
            }
        }
        for (index, &value) in expected.iter().enumerate() {
            let found = hll::dense_get(&dense[hll::HEADER_BYTES..], index);
            if found != value {
                return Err(Error::Text(std::borrow::Cow::Owned(format!(
                    "TESTFAILED Register {index} should be {value} but is {found}"
                ))));
            }
        }
    }
    let mut dense = hll::new_dense();
    let mut sparse = hll::new_sparse();
    let relative_error = 1.04 / (hll::REGISTERS as f64).sqrt();
    let mut checkpoint: u64 = 1;
    let element_seed = random();
    for element in 1..=elements {
        // Hash once, apply to both representations (the sum of two `hll::add`s).
        let (index, count) = hll::pattern_length(&(element ^ element_seed).to_le_bytes());
        hll::raise(&mut dense, index, count, sparse_max);
        hll::raise(&mut sparse, index, count, sparse_max);
        if element != checkpoint {
            continue;
        }
        if element < sparse_max as u64 / 2 && hll::encoding(&sparse) != hll::ENCODING_SPARSE {
            return Err(Error::from("TESTFAILED sparse encoding not used"));
        }
        let dense_count = hll::count(&dense).unwrap_or(0);
        if Ok(dense_count) != hll::count(&sparse) {
            return Err(Error::from("TESTFAILED dense/sparse disagree"));
        }
        let error = (checkpoint as i64 - dense_count as i64).unsigned_abs();
        let mut error_max = (relative_error * 6.0 * checkpoint as f64).ceil() as u64;
        if element == 10 {
            error_max = 1;
        }
        if error > error_max {
            return Err(Error::Text(std::borrow::Cow::Owned(format!(
                "TESTFAILED Too big error. card:{checkpoint} abserr:{error}"
            ))));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::TestServer;

    #[test]
    fn pfadd_pfcount_pfmerge() {
        let server = TestServer::new();
        let mut session = server.session();
        assert_eq!(server.run(&mut session, "PFADD a x y z"), ":1\r\n");
        assert_eq!(server.run(&mut session, "PFADD a x"), ":0\r\n");
        assert_eq!(server.run(&mut session, "PFADD b q"), ":1\r\n");
        assert_eq!(server.run(&mut session, "PFCOUNT a"), ":3\r\n");
        assert_eq!(server.run(&mut session, "PFCOUNT a b nokey"), ":4\r\n");
        assert_eq!(server.run(&mut session, "PFMERGE c a b"), "+OK\r\n");
        assert_eq!(
            server.run(&mut session, "PFDEBUG ENCODING c"),
            "+sparse\r\n"
        );
        assert_eq!(
            server.run(&mut session, "PFDEBUG DECODE c"),
            "$55\r\nZ:5552 v:6,1 Z:3028 v:1,1 Z:6350 v:3,1 Z:1441 v:2,1 z:9\r\n"
        );
        assert_eq!(
            server.run(&mut session, "OBJECT ENCODING c"),
            "$3\r\nraw\r\n"
        );
        server.run(&mut session, "SET s hello");
        assert_eq!(
            server.run(&mut session, "PFADD s x"),
            "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n"
        );
        let before = server.propagated().len();
        for line in [
            "PFADD h a",
            "PFADD h a",
            "PFCOUNT h",
            "PFCOUNT h",
            "PFCOUNT h k3",
            "PFMERGE m h",
            "PFMERGE m",
            "PFDEBUG ENCODING m",
            "PFDEBUG TODENSE m",
            "PFDEBUG TODENSE m",
            "PFADD h2 b",
            "PFDEBUG GETREG h2",
        ] {
            server.run(&mut session, line);
        }
        // What Redis 7.0.15 writes to its AOF for the same commands.
        assert_eq!(
            server.propagated()[before..].to_vec(),
            [
                "PFADD h a",
                "PFCOUNT h",
                "PFMERGE m h",
                "PFMERGE m",
                "PFDEBUG TODENSE m",
                "PFADD h2 b",
                "PFDEBUG GETREG h2"
            ]
        );
        let propagated = server.propagated();
        assert!(
            propagated.iter().any(|line| line.contains("PFCOUNT")),
            "{propagated:?}"
        );
    }

    #[test]
    fn selftest_passes() {
        // Redis's full run (ten million elements) takes seconds in a debug build.
        let (cycles, elements) = if cfg!(debug_assertions) {
            (20, 200_000)
        } else {
            (super::SELFTEST_CYCLES, super::SELFTEST_ELEMENTS)
        };
        for seed in [1, 42, 1_700_000_000_000] {
            assert!(super::selftest(seed, 3000, cycles, elements).is_ok());
        }
    }
}
