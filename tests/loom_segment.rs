//! loom: a segment reader against the compactor, on the store's file table
//! (`src/tier/store/files.rs`) under every interleaving.
//!
//! The table's file is compiled here as it is, against loom's locks (`sync` below gives it
//! `Mutex` with `parking_lot`'s API, the crate's own `parking_lot_api!`). Around it, the
//! model does what the store and the compactor do with it:
//!
//! - a reader reads its key's ref under the key's shard lock (a loom mutex), takes the
//!   segment's file handle from the table (`get`, the hand-off a `locate` makes after the
//!   store's mutex is released) and reads the record through it with no lock held; no file
//!   is Gone, and it reads the key's ref again;
//! - the compactor reads the live record, allocates a segment, writes the copy and adds the
//!   file (the flush), repoints the key under its lock if it still holds the old ref, then
//!   retires the old segment and drops its file outside every lock, as `Store::retire` does.
//!
//! Checked: a reader gets the key's bytes, never another record's, in at most two looks (one
//! Gone, then the new ref); no file is unmapped (its handle dropped for good) while a reader
//! holds it; the retired file is unmapped by the end; ids are never reused. Two planted bugs
//! show the checks can fail: retiring before repointing (a reader finds Gone forever), and
//! reusing the retired segment's id for the copy (a reader holding the old ref reads
//! another record's bytes).
//!
//! `cargo test --release --test loom_segment`. Each model explores every interleaving with at
//! most 2 preemptions (`LOOM_MAX_PREEMPTIONS` to search deeper).

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Mutex;
use loom::thread;
use std::sync::Arc;

#[allow(dead_code)]
mod sync {
    strata::parking_lot_api!(loom);
}

#[allow(dead_code)]
#[path = "../src/tier/store/files.rs"]
mod files;

use files::Files;

/// A record ref: segment, offset, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ref {
    segment: u32,
    offset: usize,
    length: usize,
}

/// A mapped segment file: its bytes, and a count of live maps shared with the checker.
struct MappedFile {
    bytes: Vec<u8>,
    /// Files not yet unmapped: decremented when the last handle drops.
    mapped: Arc<AtomicUsize>,
    /// Set while a reader reads through the map (the check that none is unmapped then).
    reading: AtomicUsize,
}

impl MappedFile {
    fn open(bytes: Vec<u8>, mapped: &Arc<AtomicUsize>) -> Arc<MappedFile> {
        mapped.fetch_add(1, Ordering::SeqCst);
        Arc::new(MappedFile {
            bytes,
            mapped: mapped.clone(),
            reading: AtomicUsize::new(0),
        })
    }

    fn read(&self, at: Ref) -> Vec<u8> {
        self.reading.fetch_add(1, Ordering::SeqCst);
        let bytes = self.bytes[at.offset..at.offset + at.length].to_vec();
        // A loom yield point inside the read: the compactor may run here.
        self.reading.fetch_sub(1, Ordering::SeqCst);
        bytes
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        assert_eq!(
            self.reading.load(Ordering::SeqCst),
            0,
            "a file was unmapped while a reader read through it"
        );
        self.mapped.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The key's bytes, and a dead record's that sits before it in the old segment.
const VALUE: [u8; 4] = [1, 2, 3, 4];
const DEAD: [u8; 4] = [9, 9, 9, 9];

/// What the compactor gets wrong, for the planted-bug models.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Compactor {
    Correct,
    RetireBeforeRepoint,
    ReuseRetiredId,
}

struct World {
    files: Files<MappedFile>,
    /// The key's entry under its shard lock: the ref it holds.
    entry: Mutex<Ref>,
    mapped: Arc<AtomicUsize>,
}

fn world() -> (Arc<World>, Ref) {
    let mapped = Arc::new(AtomicUsize::new(0));
    let files = Files::new();
    let old = files.allocate().expect("an id");
    let mut bytes = DEAD.to_vec();
    bytes.extend_from_slice(&VALUE);
    assert!(files.insert(old, MappedFile::open(bytes, &mapped)));
    let live = Ref {
        segment: old,
        offset: DEAD.len(),
        length: VALUE.len(),
    };
    let world = World {
        files,
        entry: Mutex::new(live),
        mapped,
    };
    (Arc::new(world), live)
}

/// A reader: the key's bytes, looking again after a Gone; None if it never found them.
fn read_key(world: &World, looks: usize) -> Option<Vec<u8>> {
    for _ in 0..looks {
        let at = *world.entry.lock().unwrap();
        // The hand-off: once the handle is held, no lock is.
        let Some(file) = world.files.get(at.segment) else {
            continue; // Gone: the segment was retired; the entry holds a newer ref
        };
        return Some(file.read(at));
    }
    None
}

/// The compactor's move of the live record out of `old`, then the retire.
fn compact(world: &World, old: Ref, mode: Compactor) {
    let raw = world
        .files
        .get(old.segment)
        .expect("not retired yet")
        .read(old);
    if mode == Compactor::RetireBeforeRepoint {
        drop(world.files.retire(old.segment));
    }
    let segment = match mode {
        Compactor::ReuseRetiredId => {
            drop(world.files.retire(old.segment));
            old.segment
        }
        _ => world.files.allocate().expect("an id"),
    };
    // The copy goes first in its segment, and another record after it: where the old ref
    // pointed, the new segment holds other bytes.
    let mut bytes = raw.clone();
    bytes.extend_from_slice(&[7u8; 4]);
    assert!(world
        .files
        .insert(segment, MappedFile::open(bytes, &world.mapped)));
    let moved = Ref {
        segment,
        offset: 0,
        length: raw.len(),
    };
    {
        let mut entry = world.entry.lock().unwrap();
        if *entry == old {
            *entry = moved;
        }
    }
    if mode == Compactor::Correct {
        let retired = world.files.retire(old.segment);
        assert!(retired.is_some());
        drop(retired); // with no lock held, as `Store::retire` drops it
    }
}

fn model(mode: Compactor) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(move || {
        let (world, live) = world();
        let compactor = {
            let world = world.clone();
            thread::spawn(move || compact(&world, live, mode))
        };
        let reader = {
            let world = world.clone();
            thread::spawn(move || read_key(&world, 2))
        };
        let read_here = read_key(&world, 2);
        compactor.join().unwrap();
        let read_there = reader.join().unwrap();
        for read in [read_here, read_there] {
            assert_eq!(read.as_deref(), Some(&VALUE[..]), "a reader's bytes");
        }
        if mode != Compactor::Correct {
            return; // the planted bugs are caught above, or not at all in this execution
        }
        // After the compaction: the key reads from the copy, and only the copy is mapped.
        let now = *world.entry.lock().unwrap();
        assert_ne!(now.segment, live.segment);
        assert_eq!(read_key(&world, 1).as_deref(), Some(&VALUE[..]));
        assert!(world.files.get(live.segment).is_none());
        drop(world.files.clear());
        assert_eq!(
            world.mapped.load(Ordering::SeqCst),
            0,
            "a file never unmapped"
        );
    });
}

#[test]
fn a_reader_racing_a_compaction_reads_its_bytes_or_gone_then_the_new_ref() {
    model(Compactor::Correct);
}

#[test]
fn ids_are_never_reused() {
    loom::model(|| {
        let files: Files<u8> = Files::new();
        let first = files.allocate().expect("an id");
        assert!(files.insert(first, Arc::new(0)));
        drop(files.retire(first));
        let cleared = files.clear();
        drop(cleared);
        let second = files.allocate().expect("an id");
        assert!(second > first);
        assert!(files.next_id() > second);
    });
}

#[test]
#[should_panic(expected = "a reader's bytes")]
fn planted_bug_retiring_before_repointing_is_caught() {
    model(Compactor::RetireBeforeRepoint);
}

#[test]
#[should_panic(expected = "a reader's bytes")]
fn planted_bug_reusing_an_id_is_caught() {
    model(Compactor::ReuseRetiredId);
}
