//! Loading an RDB file on several threads: the calling thread walks the file (opcodes,
//! checksum, record framing: [`file::walk`] with [`skip_body`]) and hands key records in
//! batches to workers that decode the values and give them to the caller's `visit`, as
//! [`file::load`] does on one thread. Decoding (building the collections, their allocations)
//! is most of a load, and it parallelizes; the walk only reads lengths.
//!
//! What stays as on one thread: the file is checked to its end (checksum included), every
//! error names its byte offset, and of several errors the one earliest in the file is
//! reported, the one a single thread would have met first. A record whose value the walk
//! cannot skip (streams, and whatever `skip_body` refuses, so its error comes from the
//! decoder itself) is decoded on the walking thread. What differs: the order in which
//! `visit` sees keys, so it must not depend on it (the keyspace does not: a duplicated key
//! is refused whichever copy comes second), and after an error some keys after it may have
//! been visited too (a failed load stops the start anyway).
//!
//! Bounds: at most `BATCHES_QUEUED_MAX` batches wait for a worker, each of at most
//! `BATCH_RECORDS_MAX` records or about `BATCH_BYTES_MAX` bytes of values, so the walk never
//! runs far ahead. `done` learns the offset before which every record was decoded (a mapped
//! file's pages behind it can go).
//!
//! Memory: while a load runs, mimalloc keeps the pages freed for its default delay
//! ([`KeepFreedPages`]) instead of returning them at once as the server otherwise asks.

use super::decode::{decode_body, skip_body, DecodeOptions, Reader};
use super::file::{self, Head, Key, Loaded, Resize};
use super::DecodeError;
use crate::types::Value;
use parking_lot::Mutex;
use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

/// Records per batch: enough that a worker takes the channel's lock rarely.
const BATCH_RECORDS_MAX: usize = 512;
/// Bytes of values per batch, so a batch of large values is not a large share of the file.
const BATCH_BYTES_MAX: usize = 1 << 20;
/// Batches waiting for a worker, per worker.
const BATCHES_QUEUED_PER_WORKER: usize = 2;
/// Workers at most, whatever the machine has.
pub const WORKERS_MAX: usize = 8;

/// A key record framed by the walk, its value not yet decoded (unless the walk had to).
struct Record<'a> {
    head: Head<'a>,
    /// Where the value's bytes start (just past the key) and end.
    value_start: usize,
    value_end: usize,
    /// Decoded by the walk: a type [`skip_body`] leaves to the decoder.
    value: Option<Value>,
}

struct Batch<'a> {
    /// Batches are numbered in file order from 0.
    sequence: u64,
    records: Vec<Record<'a>>,
}

/// What the workers share with the walk.
struct Shared {
    /// The earliest error a worker met.
    failure: Mutex<Option<DecodeError>>,
    /// Set with `failure`: the walk stops, workers drain what is queued without decoding.
    stop: AtomicBool,
    finished: Mutex<Finished>,
}

/// Which batches are decoded: all below `below`, and those in `beyond`.
#[derive(Default)]
struct Finished {
    below: u64,
    beyond: BTreeSet<u64>,
}

impl Shared {
    fn fail(&self, error: DecodeError) {
        let mut failure = self.failure.lock();
        if failure
            .as_ref()
            .is_none_or(|first| error.offset < first.offset)
        {
            *failure = Some(error);
        }
        self.stop.store(true, Ordering::Release);
    }

    fn finish(&self, sequence: u64) {
        let mut finished = self.finished.lock();
        let Finished { below, beyond } = &mut *finished;
        assert!(
            sequence >= *below && beyond.insert(sequence),
            "a batch is finished once"
        );
        while beyond.remove(below) {
            *below += 1;
        }
    }
}

/// mimalloc's `mi_option_purge_delay` (its `mimalloc.h`, v3 enum), as `main.rs` names it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc's own purge delay (v3), kept while a load runs.
const LOADING_PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// While one lives, mimalloc keeps freed pages for its default delay instead of returning
/// them at once (the server's setting, `main.rs`). A load frees short-lived buffers all the
/// time (a blob's elements, a decompressed string, a batch); a page they emptied was handed
/// back with `madvise` (a TLB shoot-down on every core) and faulted in again by the next
/// record: 230,000 `madvise` calls and a third of the CPU for 2M keys. Nothing a load
/// allocates is meant to go back anyway. The last one dropped restores the previous delay
/// (loads may overlap in tests).
struct KeepFreedPages;

/// Whether loads keep freed pages (`KeepFreedPages`). The server turns it off when a
/// `maxmemory` budgets values under tiering: such a load spills as it goes, and the pages it
/// keeps are RSS over the limit. Restarting 2M keys of 1 KiB under `maxmemory 200mb` (bound
/// 423 MB): peak RSS 405-411 MB keeping them for a second, 386-390 MB for 100 ms, 368-372 MB
/// not at all (5.1, 5.9 and 7.1 s). Process-wide, as the allocator option it governs is.
pub static KEEP_FREED_PAGES: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(true);

/// Loads running, and the delay to restore when the last ends.
static KEEPING: parking_lot::Mutex<(usize, std::ffi::c_long)> = parking_lot::Mutex::new((0, 0));

impl KeepFreedPages {
    #[allow(unsafe_code)]
    fn new() -> KeepFreedPages {
        let mut keeping = KEEPING.lock();
        if keeping.0 == 0 {
            // SAFETY: reads and sets one integer option of the allocator; callable at any
            // time, and harmless where mimalloc is not the global allocator (tests).
            keeping.1 = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
            // SAFETY: as above.
            unsafe {
                libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, LOADING_PURGE_DELAY_MS)
            };
        }
        keeping.0 += 1;
        KeepFreedPages
    }
}

impl Drop for KeepFreedPages {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        let mut keeping = KEEPING.lock();
        assert!(keeping.0 > 0, "one count per guard");
        keeping.0 -= 1;
        if keeping.0 == 0 {
            // SAFETY: as in `new`.
            unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, keeping.1) };
        }
    }
}

/// [`file::load`] with `workers` threads decoding (one: the same as `file::load`, on the
/// calling thread). `visit` is called from the workers, in no particular order; `done` and
/// `resize` from the calling thread, `done` with offsets that only rise, `resize` before any
/// key of its database.
#[allow(clippy::too_many_arguments)]
pub fn load(
    bytes: &[u8],
    options: &DecodeOptions,
    databases: usize,
    verify_checksum: bool,
    workers: usize,
    visit: &(dyn Fn(Key<'_>) -> Result<(), String> + Sync),
    done: &dyn Fn(usize),
    resize: &mut dyn FnMut(Resize),
) -> Result<Loaded, DecodeError> {
    let workers = workers.min(WORKERS_MAX);
    let _keep = KEEP_FREED_PAGES
        .load(std::sync::atomic::Ordering::Relaxed)
        .then(KeepFreedPages::new);
    if workers <= 1 {
        let mut visit_one = |key: Key<'_>| {
            let offset = key.offset;
            visit(key)?;
            done(offset);
            Ok(())
        };
        return file::load_sized(
            bytes,
            options,
            databases,
            verify_checksum,
            &mut visit_one,
            resize,
        );
    }
    let shared = Shared {
        failure: Mutex::new(None),
        stop: AtomicBool::new(false),
        finished: Mutex::new(Finished::default()),
    };
    let (sender, receiver) = mpsc::sync_channel::<Batch<'_>>(workers * BATCHES_QUEUED_PER_WORKER);
    // Only the workers hold the queue's other end: should they all stop, a send fails
    // instead of waiting for ever.
    let receiver = Arc::new(Mutex::new(receiver));
    let receivers: Vec<_> = (0..workers).map(|_| receiver.clone()).collect();
    drop(receiver);
    let walked = std::thread::scope(|scope| {
        for (index, receiver) in receivers.into_iter().enumerate() {
            let shared = &shared;
            let spawned = std::thread::Builder::new()
                .name(format!("rdb-load-{index}"))
                .spawn_scoped(scope, move || {
                    decode_batches(bytes, options, &receiver, shared, visit)
                });
            if let Err(err) = spawned {
                // `sender` goes with this closure: the workers started see the queue closed.
                let reason = format!("can't start a loading thread: {err}");
                return Err(DecodeError::new(0, reason));
            }
        }
        let walked = walk(
            bytes,
            options,
            databases,
            verify_checksum,
            &sender,
            &shared,
            done,
            resize,
        );
        // The workers end once the queue is empty and closed.
        drop(sender);
        walked
    });
    let failure = shared.failure.into_inner();
    match (walked, failure) {
        (Err(walk), Some(worker)) if worker.offset < walk.offset => Err(worker),
        (Err(walk), _) => Err(walk),
        (Ok(_), Some(worker)) => Err(worker),
        (Ok(loaded), None) => Ok(loaded),
    }
}

/// The calling thread's part: walks the file, batches the records, sends them.
#[allow(clippy::too_many_arguments)]
fn walk<'a>(
    bytes: &'a [u8],
    options: &DecodeOptions,
    databases: usize,
    verify_checksum: bool,
    sender: &mpsc::SyncSender<Batch<'a>>,
    shared: &Shared,
    done: &dyn Fn(usize),
    resize: &mut dyn FnMut(Resize),
) -> Result<Loaded, DecodeError> {
    let mut batch = Batch {
        sequence: 0,
        records: Vec::with_capacity(BATCH_RECORDS_MAX),
    };
    let mut batch_bytes = 0usize;
    // The start offsets of the batches sent and not known to be decoded, oldest first.
    let mut starts: VecDeque<(u64, usize)> = VecDeque::new();
    let mut send = |batch: &mut Batch<'a>, next_offset: usize| -> Result<(), DecodeError> {
        let start = batch
            .records
            .first()
            .map_or(next_offset, |record| record.head.offset);
        let next = Batch {
            sequence: batch.sequence + 1,
            records: Vec::with_capacity(BATCH_RECORDS_MAX),
        };
        starts.push_back((batch.sequence, start));
        let full = std::mem::replace(batch, next);
        if sender.send(full).is_err() {
            // Every worker is gone: only a failure ends them early.
            return Err(DecodeError::new(next_offset, "the loading threads stopped"));
        }
        let below = shared.finished.lock().below;
        while starts
            .front()
            .is_some_and(|&(sequence, _)| sequence < below)
        {
            starts.pop_front();
        }
        done(starts.front().map_or(next_offset, |&(_, offset)| offset));
        Ok(())
    };
    let mut record = |reader: &mut Reader<'a>, head: Head<'a>| {
        if shared.stop.load(Ordering::Acquire) {
            // A worker failed at an earlier record; its error is the one reported.
            return Err(DecodeError::new(head.offset, "stopped"));
        }
        let value_start = reader.position();
        let value = match skip_body(reader, head.kind) {
            Ok(true) => None,
            // The decoder says what is wrong (or reads what the skip refused).
            Ok(false) | Err(_) => {
                *reader = Reader::at(bytes, value_start);
                Some(decode_body(reader, head.kind, options)?)
            }
        };
        let value_end = reader.position();
        batch_bytes += value_end - value_start;
        batch.records.push(Record {
            head,
            value_start,
            value_end,
            value,
        });
        if batch.records.len() >= BATCH_RECORDS_MAX || batch_bytes >= BATCH_BYTES_MAX {
            batch_bytes = 0;
            send(&mut batch, value_end)?;
        }
        Ok(())
    };
    let loaded = file::walk(bytes, databases, verify_checksum, &mut record, resize)?;
    if !batch.records.is_empty() {
        send(&mut batch, bytes.len())?;
    }
    Ok(loaded)
}

/// A worker: decodes the batches it takes until the queue closes; after a failure anywhere
/// it only empties the queue.
fn decode_batches<'a>(
    bytes: &'a [u8],
    options: &DecodeOptions,
    receiver: &Mutex<mpsc::Receiver<Batch<'a>>>,
    shared: &Shared,
    visit: &(dyn Fn(Key<'_>) -> Result<(), String> + Sync),
) {
    loop {
        let Ok(batch) = receiver.lock().recv() else {
            return;
        };
        for record in batch.records {
            if shared.stop.load(Ordering::Acquire) {
                break;
            }
            if let Err(error) = decode_record(bytes, options, record, visit) {
                shared.fail(error);
            }
        }
        shared.finish(batch.sequence);
    }
}

fn decode_record(
    bytes: &[u8],
    options: &DecodeOptions,
    record: Record<'_>,
    visit: &(dyn Fn(Key<'_>) -> Result<(), String> + Sync),
) -> Result<(), DecodeError> {
    let Record {
        head,
        value_start,
        value_end,
        value,
    } = record;
    let value = match value {
        Some(value) => value,
        None => {
            let mut reader = Reader::at(bytes, value_start);
            let value = decode_body(&mut reader, head.kind, options)?;
            // skip_body's promise: the same bytes as the decoder, where it succeeds.
            assert_eq!(reader.position(), value_end, "skip_body framed the value");
            value
        }
    };
    let key: Cow<'_, [u8]> = head.key;
    visit(Key {
        db: head.db,
        key: &key,
        value,
        expire_ms: head.expire_ms,
        offset: head.offset,
    })
    .map_err(|reason| DecodeError::new(head.offset, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::rdb::encode::EncodeOptions;
    use crate::persist::rdb::file::Writer;
    use crate::types::hash::Hash;
    use crate::types::list::{End, List};
    use crate::types::ListpackLimits;

    type Loaded = Vec<(usize, Vec<u8>, Value, Option<u64>)>;

    /// A file of `keys` keys of several types over two databases, past a few batches.
    fn file(keys: usize) -> Vec<u8> {
        let mut writer = Writer::new(EncodeOptions::DEFAULT, 0, 0, &[]);
        let mut bytes = Vec::new();
        for index in 0..keys {
            let value = match index % 3 {
                0 => Value::string(format!("value {index}").as_bytes()),
                1 => {
                    let mut hash = Hash::new();
                    for field in 0..(index % 7 + 1) {
                        let text = format!("{field}:{index}");
                        hash.set(text.as_bytes(), b"x", ListpackLimits::HASH_DEFAULT);
                    }
                    Value::Hash(Box::new(hash))
                }
                _ => {
                    let mut list = List::new();
                    for element in 0..(index % 5 + 1) {
                        list.push(End::Right, format!("{element}").as_bytes());
                    }
                    Value::List(Box::new(list))
                }
            };
            let expire = (index % 4 == 0).then_some(index as u64 * 1000);
            let db = usize::from(index >= keys / 2);
            let key = format!("key:{index}");
            writer
                .encoder()
                .entry(db, key.as_bytes(), &value, expire)
                .expect("encodable");
            bytes.extend(writer.take());
        }
        bytes.extend(writer.finish(true));
        bytes
    }

    fn load_with(bytes: &[u8], workers: usize) -> Result<(Loaded, u64), DecodeError> {
        let keys = Mutex::new(Vec::new());
        let released = Mutex::new(0usize);
        let loaded = load(
            bytes,
            &DecodeOptions::DEFAULT,
            16,
            true,
            workers,
            &|key| {
                let record = (key.db, key.key.to_vec(), key.value, key.expire_ms);
                keys.lock().push(record);
                Ok(())
            },
            &|offset| {
                let mut released = released.lock();
                assert!(offset >= *released, "released offsets only rise");
                *released = offset;
            },
            &mut |_| {},
        )?;
        let mut keys = keys.into_inner();
        keys.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok((keys, loaded.keys))
    }

    #[test]
    #[allow(unsafe_code)]
    fn freed_pages_are_kept_while_a_load_runs() {
        let keep = KeepFreedPages::new();
        // SAFETY: reads one integer option of the allocator.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, LOADING_PURGE_DELAY_MS);
        drop(keep);
    }

    #[test]
    fn workers_load_what_one_thread_loads() {
        let bytes = file(3000);
        let (one, count) = load_with(&bytes, 1).expect("a sound file");
        assert_eq!(count, 3000);
        assert_eq!(one.len(), 3000);
        for workers in [2, 4] {
            let (many, count) = load_with(&bytes, workers).expect("a sound file");
            assert_eq!(count, 3000);
            assert!(many == one, "{workers} workers load the same keys");
        }
    }

    #[test]
    fn the_earliest_error_is_reported_as_one_thread_reports_it() {
        let bytes = file(3000);
        // A hash's listpack (a one-field hash, stored as a short plain string after its
        // key) loses its end marker two thirds in, which only the decoder notices; then
        // the checksum is spoiled too: the first error in the file wins.
        let key_end = bytes
            .windows(9)
            .position(|window| window == b"\x08key:2002")
            .expect("the key is in the file")
            + 9;
        let blob_len = bytes[key_end] as usize;
        assert!(blob_len < 64, "a short plain string");
        let mut broken = bytes.clone();
        assert_eq!(
            broken[key_end + blob_len],
            0xff,
            "the listpack's end marker"
        );
        broken[key_end + blob_len] = 0;
        let end = broken.len() - 1;
        broken[end] ^= 0xff;
        let one = load_with(&broken, 1).expect_err("a broken value");
        let many = load_with(&broken, 3).expect_err("a broken value");
        assert_eq!((many.offset, &many.reason), (one.offset, &one.reason));
        assert!(
            many.offset <= key_end,
            "the record's error, not the checksum's"
        );
    }

    #[test]
    fn a_refused_key_stops_the_load_with_its_offset() {
        let bytes = file(2000);
        let outcome = load(
            &bytes,
            &DecodeOptions::DEFAULT,
            16,
            true,
            2,
            &|key| {
                if key.key == b"key:1501" {
                    return Err("refused".into());
                }
                Ok(())
            },
            &|_| {},
            &mut |_| {},
        );
        let error = outcome.expect_err("the key is refused");
        assert_eq!(error.reason, "refused");
        assert_eq!(&bytes[error.offset + 1..error.offset + 10], b"\x08key:1501");
    }
}
