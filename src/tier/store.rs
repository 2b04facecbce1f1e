//! The segment store: where cold values live.
//!
//! Owns the segment files under the tier directory (`<dir>/tier` by default) and the in-memory
//! tail of records not yet written to them. Records (see `segment`) are appended to the active
//! segment; a record that does not fit seals it and opens the next, whose capacity is the
//! configured size or the record's, whichever is larger. Segment ids are never reused (not even
//! after `clear`), so a `ColdRef` names the same bytes for as long as its segment exists.
//!
//! Where a record's bytes are, in a segment: `[0, written)` in the file, read through its map;
//! then the "being written" slot while a flush writes it; then the tail, up to `appended`.
//! `append` only touches memory (the caller holds a shard lock); `flush` does the I/O without
//! holding the store mutex, and readers keep reading the bytes it writes from the slot. After a
//! failed write the bytes go back to the tail, nothing is lost, and appends are refused until a
//! flush succeeds (the store poisons itself rather than carry on after an I/O error).
//!
//! Segments are a memory tier, not durable data: they are never fsynced, and `open` removes
//! whatever a previous run left, since after a restart the data comes back from the AOF/RDB.
//!
//! A segment's file, from its first flush on, is in the file table (`files`, which loom checks
//! on its own in `tests/loom_segment.rs`): a read of a record in the file takes a handle to the
//! file after the store mutex is released and reads through it with no lock held; `retire`
//! takes the file out of the table, and the last handle's drop unmaps it, so a reader gets the
//! bytes it located or Gone, never another record's (ids are never reused).
//!
//! Compaction (`records`, then `retire`) copies only live records. A walk counts and steps
//! over a corrupt record (`resync`); a segment whose live records could not all be moved (a
//! corrupt live one, whose key still points there) is not retired, and is not offered again
//! until more of it dies. So a corrupt dead record never keeps its segment's disk space.
//!
//! Invariants, per segment: `live <= appended`, `written <= appended <= capacity`, and the tail
//! holds exactly the bytes past `written` and the slot; across segments, the totals
//! (`disk_bytes`, `appended_bytes`, `live_bytes`) are the sums of the segments'.

use crate::io::fs::SegmentFile;
use crate::io::FileSystem;
use crate::tier::cold::ColdRef;
use crate::tier::segment::{self, FormatError, HEADER_BYTES};
use files::Files;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::tier::segment::Compression;

mod files;

/// Default capacity of one segment file.
pub const SEGMENT_BYTES_DEFAULT: u32 = 64 << 20;
/// Smallest segment capacity accepted (tests use small ones to roll segments over often).
pub const SEGMENT_BYTES_MIN: u32 = 64;
/// Unflushed bytes past which `append` refuses: the tail is RAM, and it must stay bounded when
/// the disk is slow or failing.
pub const TAIL_BYTES_MAX: u64 = 8 << 20;
/// Unflushed bytes past which `needs_flush` asks for a flush.
pub const FLUSH_BYTES_THRESHOLD: u64 = 1 << 20;
/// Bytes read through the maps between two `release_pages` of every segment: what reads fault
/// into the process stays below about this much.
pub const RELEASE_PAGES_EVERY_BYTES: u64 = 32 << 20;
/// What one read through a map may bring into the process: the kernel maps the pages around
/// a faulting one too (`fault_around_bytes`, 64 KiB by default), so a 1 KiB record can cost
/// 64 KiB of resident pages. Reads count at least this much towards a release.
const FAULT_AROUND_BYTES: u64 = 64 << 10;
/// A sealed segment with less than this share of live bytes is worth compacting.
const COMPACTION_LIVE_PERCENT: u64 = 50;
/// Bytes after a corrupt record whose header's lengths cannot be trusted that a walk searches
/// for the next record that checks: a bound on the work one corrupt record costs.
const RESYNC_BYTES_MAX: u32 = 1 << 20;
/// Bytes that search may checksum in all: bytes that look like headers with plausible lengths
/// at many offsets (a crafted value) cannot make it quadratic.
const RESYNC_CHECKED_BYTES_MAX: usize = 16 << 20;
const _: () = assert!(FLUSH_BYTES_THRESHOLD < TAIL_BYTES_MAX);
const _: () = assert!(SEGMENT_BYTES_MIN as usize > HEADER_BYTES);

const SEGMENT_FILE_PREFIX: &str = "segment-";
const SEGMENT_FILE_SUFFIX: &str = ".tier";

/// The file name of segment `id` inside the tier directory.
pub fn segment_file_name(id: u32) -> String {
    format!("{SEGMENT_FILE_PREFIX}{id:010}{SEGMENT_FILE_SUFFIX}")
}

/// Whether a file name is one `segment_file_name` makes (the only files `open` removes).
fn is_segment_file_name(name: &str) -> bool {
    name.strip_prefix(SEGMENT_FILE_PREFIX)
        .and_then(|rest| rest.strip_suffix(SEGMENT_FILE_SUFFIX))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `<dir>/tier` by default; created if missing.
    pub dir: PathBuf,
    /// Capacity of one segment file; 64 MiB by default.
    pub segment_bytes: u32,
    /// tiering-max-disk; 0 = unlimited.
    pub max_disk_bytes: u64,
    pub compression: Compression,
}

impl StoreConfig {
    /// The defaults for a tier directory: 64 MiB segments, no disk limit, zstd level 1.
    pub fn new(dir: PathBuf) -> StoreConfig {
        StoreConfig {
            dir,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            max_disk_bytes: 0,
            compression: Compression::Zstd(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierError {
    /// tiering-max-disk reached (also: a record too large for a segment, which no limit lets
    /// in: the value stays in RAM, as it does when the tier is full).
    Full,
    /// A write failed; spilling refused until a flush succeeds. Also the tail at its bound,
    /// and a failed read (naming the segment file and offset; the next read may work).
    Io(String),
    /// crc/format mismatch: never return data.
    Corrupt {
        segment: u32,
        offset: u32,
        reason: String,
    },
    /// The segment was retired: the caller re-reads the entry's current ref.
    Gone,
}

impl fmt::Display for TierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TierError::Full => write!(f, "the disk tier is full (tiering-max-disk reached)"),
            TierError::Io(reason) => write!(f, "disk tier I/O error: {reason}"),
            TierError::Corrupt {
                segment,
                offset,
                reason,
            } => write!(
                f,
                "corrupt record in tier segment file {} at offset {offset}: {reason}",
                segment_file_name(*segment)
            ),
            TierError::Gone => write!(f, "the tier segment was retired"),
        }
    }
}

impl std::error::Error for TierError {}

/// One record of a segment, as the compactor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo {
    pub cold: ColdRef,
    pub db: u32,
    pub key: Vec<u8>,
}

#[derive(Default, Clone, Copy, Debug)]
pub struct StoreStats {
    pub segments: u64,
    /// Bytes written to segment files that still exist.
    pub disk_bytes: u64,
    /// Bytes of records not freed.
    pub live_bytes: u64,
    /// The unflushed tail (including a write in progress).
    pub buffered_bytes: u64,
    pub cold_reads: u64,
    pub compactions: u64,
    pub disk_errors: u64,
    pub corrupt_records: u64,
}

/// One segment's state; its file exists from its first flush on.
struct Segment {
    /// Bytes the file can hold (its mapped length). The file itself is in `Store::files`
    /// from the segment's first flush on.
    capacity: u32,
    /// Bytes of records appended (in the file, the slot or the tail).
    appended: u32,
    /// Bytes in the file.
    written: u32,
    /// The bytes past `written` and the slot, not yet handed to a flush.
    tail: Vec<u8>,
    /// Bytes of records not freed.
    live: u64,
    /// No more appends: a later record did not fit.
    sealed: bool,
    /// A record walk met a corrupt record (and walked past it).
    corrupt: bool,
    /// `live` when a retire was refused because live records remained (a corrupt one, which
    /// compaction cannot move: its key still points here). A compaction candidate again only
    /// once `live` falls below it (that record may have died).
    stuck_live: Option<u64>,
}

impl Segment {
    fn new(capacity: u32) -> Segment {
        Segment {
            capacity,
            appended: 0,
            written: 0,
            tail: Vec::new(),
            live: 0,
            sealed: false,
            corrupt: false,
            stuck_live: None,
        }
    }
}

/// The bytes a flush is writing, readable while it does.
struct Writing {
    segment: u32,
    offset: u32,
    bytes: Arc<Vec<u8>>,
}

struct Inner {
    segments: BTreeMap<u32, Segment>,
    /// The segment receiving appends.
    active: Option<u32>,
    writing: Option<Writing>,
    max_disk_bytes: u64,
    /// A write failed and its bytes wait in the tail: appends are refused until a flush works.
    io_failed: bool,
    /// Sum of the segments' `written`.
    disk_bytes: u64,
    /// Sum of the segments' `appended` (disk plus buffered): what tiering-max-disk bounds.
    appended_bytes: u64,
    /// Sum of the segments' `live`.
    live_bytes: u64,
    compactions: u64,
    disk_errors: u64,
    /// Debug builds know every live ref exactly, so a double or wrong free is caught at once.
    #[cfg(debug_assertions)]
    live_refs: std::collections::HashMap<(u32, u32), u32>,
}

impl Inner {
    fn writing_len(&self, segment: u32) -> u32 {
        match &self.writing {
            Some(writing) if writing.segment == segment => writing.bytes.len() as u32,
            _ => 0,
        }
    }

    /// Whether a segment has bytes not yet in its file.
    fn has_unwritten(&self, id: u32, segment: &Segment) -> bool {
        segment.written < segment.appended || self.writing_len(id) > 0
    }

    fn check_invariants(&self, files: &Files<dyn SegmentFile>) {
        let (mut disk, mut appended, mut live) = (0u64, 0u64, 0u64);
        let next_id = files.next_id();
        for (&id, segment) in &self.segments {
            assert!(segment.written <= segment.appended);
            assert!(segment.appended <= segment.capacity);
            assert!(segment.live <= u64::from(segment.appended));
            assert_eq!(
                segment.written + self.writing_len(id) + segment.tail.len() as u32,
                segment.appended
            );
            assert!(segment.written == 0 || files.contains(id));
            assert!(id < next_id);
            disk += u64::from(segment.written);
            appended += u64::from(segment.appended);
            live += segment.live;
        }
        assert_eq!(disk, self.disk_bytes);
        assert_eq!(appended, self.appended_bytes);
        assert_eq!(live, self.live_bytes);
        if let Some(active) = self.active {
            assert!(self.segments.get(&active).is_some_and(|s| !s.sealed));
        }
        #[cfg(debug_assertions)]
        assert_eq!(
            self.live_refs.values().map(|&l| u64::from(l)).sum::<u64>(),
            self.live_bytes
        );
    }
}

/// Where `locate` found a record, under the mutex.
enum Place {
    /// In the segment's file: its handle is taken from `Store::files` after the mutex.
    File,
    Elsewhere(Source),
}

/// Where a record's bytes are, found under the mutex and read after it is released.
enum Source {
    File(Arc<dyn SegmentFile>),
    Writing(Arc<Vec<u8>>, usize),
    /// Copied out of the tail under the mutex (the tail keeps growing, so it cannot be shared).
    Copied(Vec<u8>),
}

/// The segment store. Shared by every thread (`&self` everywhere).
pub struct Store {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    segment_bytes: u32,
    /// Apart from `inner` so that encoding (zstd) happens before taking the store mutex.
    compression: Mutex<Compression>,
    inner: Mutex<Inner>,
    /// The segments' files, handed to readers (taken after `inner` when both are held).
    files: Files<dyn SegmentFile>,
    /// Held for a whole flush (never with `inner`): one flush at a time owns the slot.
    flushing: Mutex<()>,
    /// Bytes read through the maps, for `RELEASE_PAGES_EVERY_BYTES`.
    mapped_read_bytes: AtomicU64,
    cold_reads: AtomicU64,
    corrupt_records: AtomicU64,
    /// The simulator's planted bug (`skip_checksums_for_simulation`); always false otherwise.
    skip_checksums: AtomicBool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("segment_bytes", &self.segment_bytes)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Store {
    /// Creates the directory and removes every stale segment file in it (a previous run's).
    pub fn open(fs: Arc<dyn FileSystem>, config: StoreConfig) -> io::Result<Store> {
        if config.segment_bytes < SEGMENT_BYTES_MIN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "tier segment size {} is below the minimum {SEGMENT_BYTES_MIN}",
                    config.segment_bytes
                ),
            ));
        }
        fs.create_dir_all(&config.dir)?;
        let mut removed = 0usize;
        for path in fs.list(&config.dir)? {
            let stale = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(is_segment_file_name);
            if stale {
                fs.remove(&path)?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(
                "Removed {removed} stale tier segment files from {}",
                config.dir.display()
            );
        }
        Ok(Store {
            fs,
            dir: config.dir,
            segment_bytes: config.segment_bytes,
            compression: Mutex::new(config.compression),
            inner: Mutex::new(Inner {
                segments: BTreeMap::new(),
                active: None,
                writing: None,
                max_disk_bytes: config.max_disk_bytes,
                io_failed: false,
                disk_bytes: 0,
                appended_bytes: 0,
                live_bytes: 0,
                compactions: 0,
                disk_errors: 0,
                #[cfg(debug_assertions)]
                live_refs: std::collections::HashMap::new(),
            }),
            files: Files::new(),
            flushing: Mutex::new(()),
            mapped_read_bytes: AtomicU64::new(0),
            cold_reads: AtomicU64::new(0),
            corrupt_records: AtomicU64::new(0),
            skip_checksums: AtomicBool::new(false),
        })
    }

    /// A planted bug, for the simulator's self-check only (`strata-sim --broken checksums`):
    /// records read from the files get their crc recomputed, so a flipped bit reads back as
    /// wrong data instead of an error. The server never calls it.
    pub fn skip_checksums_for_simulation(&self) {
        self.skip_checksums.store(true, Ordering::Relaxed);
    }

    pub fn set_max_disk_bytes(&self, bytes: u64) {
        self.inner.lock().max_disk_bytes = bytes;
    }

    pub fn set_compression(&self, compression: Compression) {
        *self.compression.lock() = compression;
    }

    /// The path of segment `id`'s file.
    pub fn segment_path(&self, id: u32) -> PathBuf {
        self.dir.join(segment_file_name(id))
    }

    /// Appends a record to the active segment's in-memory tail: NO I/O (the caller holds a
    /// shard lock). Readable at once through `read`. Err(Full) past max_disk_bytes, Err(Io)
    /// while a previous flush has failed, or when the unflushed tail is already at its bound
    /// (`TAIL_BYTES_MAX`): memory stays bounded.
    pub fn append(
        &self,
        db: u32,
        key: &[u8],
        kind: u8,
        payload: &[u8],
    ) -> Result<ColdRef, TierError> {
        let compression = *self.compression.lock();
        let record = segment::encode(db, key, kind, payload, compression)
            .map_err(|_too_large| TierError::Full)?;
        self.push(&record, kind, 0)
    }

    /// The whole verified record bytes of `cold` (the compactor's read).
    pub fn read_raw(&self, cold: ColdRef) -> Result<Vec<u8>, TierError> {
        let bytes = self.record_bytes(cold)?;
        self.verify(cold, &bytes)?;
        Ok(bytes)
    }

    /// Re-appends a record `read_raw` returned (same kind, db, key) to the active tail: the
    /// compactor's move. The same rules as `append`, except that tiering-max-disk may be passed
    /// by up to one segment: compaction must be able to run on a full tier, since it is what
    /// gives space back (the segment it empties is retired right after).
    pub fn append_raw(&self, raw: &[u8]) -> Result<ColdRef, TierError> {
        let kind = match segment::decode(raw) {
            Ok(record) => record.kind,
            Err(error) => {
                debug_assert!(false, "append_raw of bytes that are not a record: {error}");
                return Err(TierError::Io(format!(
                    "append_raw given bytes that are not a record: {error}"
                )));
            }
        };
        self.push(raw, kind, u64::from(self.segment_bytes))
    }

    /// Appends encoded record bytes under the mutex: memory only.
    fn push(&self, record: &[u8], kind: u8, headroom_bytes: u64) -> Result<ColdRef, TierError> {
        debug_assert!(segment::decode(record).is_ok_and(|r| r.kind == kind));
        let length = u32::try_from(record.len()).map_err(|_| TierError::Full)?;
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if inner.io_failed {
            return Err(TierError::Io(
                "an earlier tier segment write failed; spilling resumes once a flush succeeds"
                    .to_string(),
            ));
        }
        let buffered = inner.appended_bytes - inner.disk_bytes;
        if buffered >= TAIL_BYTES_MAX {
            return Err(TierError::Io(format!(
                "the tier's write buffer is full ({buffered} bytes not yet written)"
            )));
        }
        let limit = inner.max_disk_bytes;
        if limit != 0
            && inner.appended_bytes + u64::from(length) > limit.saturating_add(headroom_bytes)
        {
            return Err(TierError::Full);
        }
        let fits_active = inner.active.and_then(|id| {
            let segment = inner.segments.get(&id)?;
            (u64::from(segment.appended) + u64::from(length) <= u64::from(segment.capacity))
                .then_some(id)
        });
        let id = match fits_active {
            Some(id) => id,
            None => {
                // Ids are never reused; running out of them (four billion segments) is a
                // full tier, not a reason to alias old refs.
                let id = self.files.allocate().ok_or(TierError::Full)?;
                if let Some(previous) = inner.active.and_then(|a| inner.segments.get_mut(&a)) {
                    previous.sealed = true;
                }
                inner
                    .segments
                    .insert(id, Segment::new(self.segment_bytes.max(length)));
                inner.active = Some(id);
                id
            }
        };
        let Some(segment) = inner.segments.get_mut(&id) else {
            unreachable!("the active segment {id} is in the map");
        };
        let offset = segment.appended;
        segment.tail.extend_from_slice(record);
        segment.appended += length;
        segment.live += u64::from(length);
        debug_assert!(segment.appended <= segment.capacity);
        inner.appended_bytes += u64::from(length);
        inner.live_bytes += u64::from(length);
        #[cfg(debug_assertions)]
        {
            let previous = inner.live_refs.insert((id, offset), length);
            debug_assert!(previous.is_none(), "two records at {id}:{offset}");
        }
        Ok(ColdRef {
            segment: id,
            offset,
            length,
            kind,
        })
    }

    /// True when the tail holds enough (`FLUSH_BYTES_THRESHOLD`) that the caller should
    /// `flush` soon, or a failed write waits for a flush to retry it. A small tail is never
    /// asked for: the caller also flushes from time to time (a cron) so it reaches the disk.
    pub fn needs_flush(&self) -> bool {
        let inner = self.inner.lock();
        inner.io_failed || inner.appended_bytes - inner.disk_bytes >= FLUSH_BYTES_THRESHOLD
    }

    /// Writes the buffered tail to its segment files. Called with no shard lock held; the I/O
    /// happens without the store mutex either (the bytes move to the slot readers still read
    /// from). On error the bytes stay buffered and readable, the error is counted, and `append`
    /// refuses until a later flush succeeds.
    pub fn flush(&self) -> Result<(), TierError> {
        let _flushing = self.flushing.lock();
        // Only the segments pending now: appends during the flush wait for the next one, which
        // bounds this loop.
        let pending: Vec<u32> = {
            let inner = self.inner.lock();
            inner
                .segments
                .iter()
                .filter(|(_, segment)| !segment.tail.is_empty())
                .map(|(&id, _)| id)
                .collect()
        };
        for id in pending {
            self.flush_segment(id)?;
        }
        let mut inner = self.inner.lock();
        inner.io_failed = false;
        #[cfg(debug_assertions)]
        inner.check_invariants(&self.files);
        Ok(())
    }

    /// Records a failed write: counted, and appends refused until a flush succeeds.
    fn write_failed(&self, what: String) -> TierError {
        let mut inner = self.inner.lock();
        inner.io_failed = true;
        inner.disk_errors += 1;
        drop(inner);
        tracing::warn!("Tier: {what}; spilling is refused until a flush succeeds");
        TierError::Io(what)
    }

    /// Writes one segment's tail: its file (created at its first flush), the tail moved to the
    /// slot, the write with no mutex held, then the outcome recorded.
    fn flush_segment(&self, id: u32) -> Result<(), TierError> {
        let Some(file) = self.segment_file(id)? else {
            return Ok(()); // cleared meanwhile
        };
        let (offset, bytes) = {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            debug_assert!(inner.writing.is_none(), "one flush at a time");
            let Some(segment) = inner.segments.get_mut(&id) else {
                return Ok(());
            };
            if segment.tail.is_empty() {
                return Ok(());
            }
            let bytes = Arc::new(std::mem::take(&mut segment.tail));
            let offset = segment.written;
            inner.writing = Some(Writing {
                segment: id,
                offset,
                bytes: bytes.clone(),
            });
            (offset, bytes)
        };
        let outcome = file.write_at(u64::from(offset), &bytes);
        self.written(id, offset, bytes, outcome)
    }

    /// Segment `id`'s file, created if this is its first flush; None if the segment is gone.
    fn segment_file(&self, id: u32) -> Result<Option<Arc<dyn SegmentFile>>, TierError> {
        let capacity = {
            let inner = self.inner.lock();
            let Some(segment) = inner.segments.get(&id) else {
                return Ok(None);
            };
            if let Some(file) = self.files.get(id) {
                return Ok(Some(file));
            }
            segment.capacity
        };
        let path = self.segment_path(id);
        let file = self
            .fs
            .create_segment(&path, u64::from(capacity))
            .map_err(|error| self.write_failed(format!("creating {}: {error}", path.display())))?;
        let inner = self.inner.lock();
        match inner.segments.get(&id) {
            // Added under `inner`, so that `clear` either sees it or the segment is gone here.
            Some(_) => {
                let added = self.files.insert(id, file.clone());
                debug_assert!(added, "one flush at a time");
                Ok(Some(file))
            }
            None => {
                // `clear` ran while the file was being created, and could not see it.
                drop(inner);
                self.remove_file(id);
                Ok(None)
            }
        }
    }

    /// Records the outcome of writing the slot's `bytes` at `offset` of segment `id`.
    fn written(
        &self,
        id: u32,
        offset: u32,
        bytes: Arc<Vec<u8>>,
        outcome: io::Result<()>,
    ) -> Result<(), TierError> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.writing = None;
        let Some(segment) = inner.segments.get_mut(&id) else {
            return Ok(()); // cleared meanwhile: the bytes went with it
        };
        debug_assert_eq!(segment.written, offset);
        match outcome {
            Ok(()) => {
                segment.written += bytes.len() as u32;
                inner.disk_bytes += bytes.len() as u64;
                debug_assert!(segment.written <= segment.appended);
                Ok(())
            }
            Err(error) => {
                // Back in front of what was appended meanwhile: readable, retried next flush.
                let mut restored =
                    Arc::try_unwrap(bytes).unwrap_or_else(|shared| shared.as_ref().clone());
                restored.extend_from_slice(&segment.tail);
                segment.tail = restored;
                drop(guard);
                Err(self.write_failed(format!(
                    "writing {} at offset {offset}: {error}",
                    self.segment_path(id).display()
                )))
            }
        }
    }

    /// A record's payload, decompressed, crc-checked, from the tail or the mapped file.
    pub fn read(&self, cold: ColdRef) -> Result<Vec<u8>, TierError> {
        let mut bytes = self.record_bytes(cold)?;
        let record = self.verify(cold, &bytes)?;
        let payload = if record.compressed {
            record
                .payload()
                .map_err(|error| self.corrupt(cold.segment, cold.offset, error))?
        } else {
            // The payload is the record's end: keep the buffer rather than copy it again.
            let start = bytes.len() - record.stored.len();
            bytes.drain(..start);
            bytes
        };
        self.cold_reads.fetch_add(1, Ordering::Relaxed);
        Ok(payload)
    }

    /// Decodes and checks a record's bytes against the ref that led to them.
    fn verify<'a>(&self, cold: ColdRef, bytes: &'a [u8]) -> Result<segment::Record<'a>, TierError> {
        let record = segment::decode(bytes)
            .map_err(|error| self.corrupt(cold.segment, cold.offset, error))?;
        if record.kind != cold.kind {
            return Err(self.corrupt(
                cold.segment,
                cold.offset,
                format!("kind {} where the ref says {}", record.kind, cold.kind),
            ));
        }
        Ok(record)
    }

    /// Counts and logs a corrupt record; the error names the segment file and the offset.
    fn corrupt(&self, segment: u32, offset: u32, reason: impl fmt::Display) -> TierError {
        self.corrupt_records.fetch_add(1, Ordering::Relaxed);
        let error = TierError::Corrupt {
            segment,
            offset,
            reason: reason.to_string(),
        };
        tracing::error!("Tier: {error} ({})", self.segment_path(segment).display());
        error
    }

    /// A read of a segment file failed. An I/O error is not corruption: the record may read
    /// back next time, and its segment stays a compaction candidate; it is counted as a disk
    /// error. A read past what the file holds means the ref is no record: corrupt.
    fn read_failed(&self, segment: u32, offset: u32, error: io::Error) -> TierError {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            return self.corrupt(segment, offset, error);
        }
        self.inner.lock().disk_errors += 1;
        let error = TierError::Io(format!(
            "reading {} at offset {offset}: {error}",
            self.segment_path(segment).display()
        ));
        tracing::error!("Tier: {error}");
        error
    }

    /// The `length` bytes at `offset` of a segment, wherever they are.
    fn record_bytes(&self, cold: ColdRef) -> Result<Vec<u8>, TierError> {
        let (offset, length) = (cold.offset, cold.length as usize);
        let source = self.locate(cold)?.ok_or_else(|| {
            self.corrupt(
                cold.segment,
                offset,
                format!("{length} bytes there are not one record of the segment"),
            )
        })?;
        match source {
            Source::Copied(bytes) => Ok(bytes),
            Source::Writing(bytes, start) => Ok(bytes[start..start + length].to_vec()),
            Source::File(file) => {
                let mut bytes = vec![0u8; length];
                file.read_at(u64::from(offset), &mut bytes)
                    .map_err(|error| self.read_failed(cold.segment, offset, error))?;
                if self.skip_checksums.load(Ordering::Relaxed) && length >= HEADER_BYTES {
                    segment::seal(&mut bytes);
                }
                // Only reads through the map leave pages resident in the process.
                if length >= crate::io::fs::MAPPED_READ_BYTES_MIN {
                    self.count_mapped_read((length as u64).max(FAULT_AROUND_BYTES));
                }
                Ok(bytes)
            }
        }
    }

    /// Finds where a record's bytes are, under the mutex: Gone for a segment that no longer
    /// exists, None for a range that is not wholly in one place (not a record). A record in
    /// the file is handed over as a handle to the file, taken once the mutex is released
    /// (`files`): a retire meanwhile leaves none, which is Gone too.
    fn locate(&self, cold: ColdRef) -> Result<Option<Source>, TierError> {
        Ok(match self.locate_locked(cold)? {
            None => None,
            Some(Place::Elsewhere(source)) => Some(source),
            Some(Place::File) => {
                let file = self.files.get(cold.segment).ok_or(TierError::Gone)?;
                Some(Source::File(file))
            }
        })
    }

    /// `locate`'s look-up under the mutex.
    fn locate_locked(&self, cold: ColdRef) -> Result<Option<Place>, TierError> {
        let (id, offset, length) = (cold.segment, cold.offset, cold.length);
        let inner = self.inner.lock();
        let segment = inner.segments.get(&id).ok_or(TierError::Gone)?;
        let end = u64::from(offset) + u64::from(length);
        let writing = inner.writing.as_ref().filter(|w| {
            w.segment == id
                && offset >= w.offset
                && end <= u64::from(w.offset) + w.bytes.len() as u64
        });
        let tail_start = segment.written + inner.writing_len(id);
        Ok(if end > u64::from(segment.appended) {
            None
        } else if end <= u64::from(segment.written) {
            Some(Place::File)
        } else if let Some(writing) = writing {
            let start = (offset - writing.offset) as usize;
            Some(Place::Elsewhere(Source::Writing(
                writing.bytes.clone(),
                start,
            )))
        } else if offset >= tail_start {
            let start = (offset - tail_start) as usize;
            (segment.tail.get(start..start + length as usize))
                .map(|bytes| Place::Elsewhere(Source::Copied(bytes.to_vec())))
        } else {
            None
        })
    }

    /// Every `RELEASE_PAGES_EVERY_BYTES` read through the maps, drops their resident pages.
    fn count_mapped_read(&self, bytes: u64) {
        let before = self.mapped_read_bytes.fetch_add(bytes, Ordering::Relaxed);
        if (before + bytes) / RELEASE_PAGES_EVERY_BYTES == before / RELEASE_PAGES_EVERY_BYTES {
            return;
        }
        for file in self.files.all() {
            file.release_pages();
        }
    }

    /// The record is no longer referenced (live-bytes accounting). A ref of a segment retired
    /// or cleared is ignored: its bytes are already gone from the counts.
    pub fn free(&self, cold: ColdRef) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let Some(segment) = inner.segments.get_mut(&cold.segment) else {
            return;
        };
        #[cfg(debug_assertions)]
        {
            let freed = inner.live_refs.remove(&(cold.segment, cold.offset));
            debug_assert_eq!(freed, Some(cold.length), "free of a ref not live: {cold:?}");
        }
        let length = u64::from(cold.length);
        debug_assert!(segment.live >= length && inner.live_bytes >= length);
        // Saturating: a double free must not wrap the counts in release builds.
        segment.live = segment.live.saturating_sub(length);
        inner.live_bytes = inner.live_bytes.saturating_sub(length);
    }

    /// A sealed, fully written segment whose live ratio fell below half, the emptiest first;
    /// not one whose retire was refused, until more of it dies.
    pub fn compaction_candidate(&self) -> Option<u32> {
        let inner = self.inner.lock();
        inner
            .segments
            .iter()
            .filter(|(&id, segment)| {
                segment.sealed
                    && segment.stuck_live.is_none_or(|stuck| segment.live < stuck)
                    && !inner.has_unwritten(id, segment)
                    && segment.live * 100 < u64::from(segment.written) * COMPACTION_LIVE_PERCENT
            })
            // Compare live/written ratios without division: a/b < c/d iff a*d < c*b.
            .min_by(|(_, a), (_, b)| {
                let left = u128::from(a.live) * u128::from(b.written);
                left.cmp(&(u128::from(b.live) * u128::from(a.written)))
            })
            .map(|(&id, _)| id)
    }

    /// The records of a segment that check (header walk, crc-checked), for the compactor to
    /// check each owner under its shard lock. A corrupt record is counted, logged and walked
    /// past (`resync`): compaction copies only live records, and `retire` refuses a segment
    /// that still has live bytes, so a corrupt *dead* record does not keep its segment, and a
    /// corrupt live one does (its key still points there). Fails only for a failed read.
    pub fn records(&self, segment: u32) -> Result<Vec<RecordInfo>, TierError> {
        let end = {
            let inner = self.inner.lock();
            inner
                .segments
                .get(&segment)
                .ok_or(TierError::Gone)?
                .appended
        };
        let mut records = Vec::new();
        let mut offset = 0u32;
        let mut corrupt = false;
        // Bounded: each step advances by at least a header or a byte, and never past `end`.
        while offset < end {
            match self.walk_one(segment, offset, end) {
                Ok(info) => {
                    debug_assert!(info.cold.length as usize >= HEADER_BYTES);
                    offset += info.cold.length;
                    records.push(info);
                }
                Err(TierError::Corrupt { .. }) => {
                    corrupt = true;
                    match self.resync(segment, offset, end)? {
                        Some(next) => offset = next,
                        // Nothing checks within reach: the rest is not walked, and any live
                        // record there keeps the segment.
                        None => break,
                    }
                }
                Err(error) => return Err(error),
            }
        }
        debug_assert!(corrupt || offset == end);
        if corrupt {
            if let Some(state) = self.inner.lock().segments.get_mut(&segment) {
                state.corrupt = true;
            }
        }
        Ok(records)
    }

    /// Where the next record that checks starts after the corrupt one at `offset`: the end
    /// its header states when the record there checks (a flipped bit in the key or payload
    /// leaves the lengths right), else the first offset in the next `RESYNC_BYTES_MAX` bytes
    /// where one does, within `RESYNC_CHECKED_BYTES_MAX` of checksumming. None if none does. A
    /// false match (bytes inside a value that happen to form a record) cannot move anything:
    /// no live ref names an offset that is not a record start, so the owner check skips it.
    fn resync(&self, segment: u32, offset: u32, end: u32) -> Result<Option<u32>, TierError> {
        debug_assert!(offset < end);
        let window_bytes = (end - offset).min(RESYNC_BYTES_MAX);
        let window = match self.record_bytes(ColdRef {
            segment,
            offset,
            length: window_bytes,
            kind: 0,
        }) {
            Ok(window) => window,
            // Not wholly in one place (a segment still being written): not walked further.
            Err(TierError::Corrupt { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let mut checked_bytes = 0usize;
        let checks_at = |at: usize, checked_bytes: &mut usize| -> bool {
            if at == (end - offset) as usize {
                return true;
            }
            let Some(rest) = window.get(at..) else {
                return false;
            };
            let Some(bytes) = segment::record_length(rest)
                .ok()
                .and_then(|length| rest.get(..length))
            else {
                return false;
            };
            *checked_bytes += bytes.len();
            segment::decode(bytes).is_ok()
        };
        if let Ok(length) = segment::record_length(&window) {
            if length >= HEADER_BYTES
                && length <= (end - offset) as usize
                && checks_at(length, &mut checked_bytes)
            {
                return Ok(Some(offset + length as u32));
            }
        }
        for at in 1..window.len() {
            if checks_at(at, &mut checked_bytes) {
                return Ok(Some(offset + at as u32));
            }
            if checked_bytes > RESYNC_CHECKED_BYTES_MAX {
                break;
            }
        }
        Ok(None)
    }

    /// Reads and checks the record at `offset`, knowing the segment's records end at `end`.
    fn walk_one(&self, segment: u32, offset: u32, end: u32) -> Result<RecordInfo, TierError> {
        let header_ref = ColdRef {
            segment,
            offset,
            length: HEADER_BYTES.min((end - offset) as usize) as u32,
            kind: 0,
        };
        let header = self.record_bytes(header_ref)?;
        let length = segment::record_length(&header)
            .map_err(|error| self.corrupt(segment, offset, error))?;
        if u64::from(offset) + length as u64 > u64::from(end) {
            return Err(self.corrupt(
                segment,
                offset,
                FormatError::Truncated {
                    needed: length,
                    present: (end - offset) as usize,
                },
            ));
        }
        let bytes = self.record_bytes(ColdRef {
            length: length as u32,
            ..header_ref
        })?;
        let record =
            segment::decode(&bytes).map_err(|error| self.corrupt(segment, offset, error))?;
        Ok(RecordInfo {
            cold: ColdRef {
                segment,
                offset,
                length: length as u32,
                kind: record.kind,
            },
            db: record.db,
            key: record.key.to_vec(),
        })
    }

    /// Deletes a compacted segment's file; later reads of its refs return Err(Gone). True if
    /// retired. Only a sealed, fully written segment without live records can be retired (a
    /// compaction candidate whose live records were moved). One whose live records could not
    /// all be moved (a corrupt one: its key still points here) is kept, and not offered for
    /// compaction again until more of it dies.
    pub fn retire(&self, segment: u32) -> bool {
        let removed = {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            let being_written = inner.writing_len(segment) > 0;
            let Some(state) = inner.segments.get_mut(&segment) else {
                return false;
            };
            if !state.sealed || state.written < state.appended || being_written {
                debug_assert!(false, "retire of segment {segment}, not sealed and written");
                tracing::error!("Tier: refused to retire segment {segment}: still written to");
                return false;
            }
            if state.live > 0 {
                // Refs into it would read Gone forever. Without a corrupt record the compactor
                // moved less than all, which is a bug.
                debug_assert!(state.corrupt, "retire of segment {segment} with live bytes");
                tracing::warn!(
                    "Tier: segment {segment} kept: {} live bytes could not be moved{}",
                    state.live,
                    if state.corrupt {
                        " (a corrupt record)"
                    } else {
                        ""
                    }
                );
                state.stuck_live = Some(state.live);
                return false;
            }
            let Some(state) = inner.segments.remove(&segment) else {
                return false;
            };
            inner.disk_bytes -= u64::from(state.written);
            inner.appended_bytes -= u64::from(state.appended);
            inner.live_bytes -= state.live;
            inner.compactions += 1;
            #[cfg(debug_assertions)]
            inner.live_refs.retain(|&(id, _), _| id != segment);
            state
        };
        // Taken out of the table with no lock held: a reader that located a record before
        // either gets the handle (and the right bytes) or none (Gone); `clear` may have taken
        // the file meanwhile, and removed it.
        if let Some(file) = self.files.retire(segment) {
            self.remove_file(segment);
            // Dropped here, outside the mutexes: unmapping and closing may take a while.
            // Readers holding the file keep their map until they finish.
            drop(file);
        }
        drop(removed);
        #[cfg(debug_assertions)]
        self.check_invariants();
        true
    }

    fn remove_file(&self, segment: u32) {
        let path = self.segment_path(segment);
        if let Err(error) = self.fs.remove(&path) {
            tracing::warn!("Tier: could not remove {}: {error}", path.display());
        }
    }

    /// FLUSHALL: drops every segment and the tail. Segment ids go on from where they were, so
    /// no old ref ever names a new record (its reads return Gone).
    pub fn clear(&self) {
        {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            inner.active = None;
            // A flush in progress keeps its own handle and finds its segment gone.
            inner.writing = None;
            inner.io_failed = false;
            inner.disk_bytes = 0;
            inner.appended_bytes = 0;
            inner.live_bytes = 0;
            #[cfg(debug_assertions)]
            inner.live_refs.clear();
            inner.segments.clear();
        }
        // After `inner`: a first flush adds its file under `inner`, so it is either in the
        // table now or finds its segment gone and removes the file itself.
        for (id, file) in self.files.clear() {
            self.remove_file(id);
            drop(file);
        }
    }

    pub fn stats(&self) -> StoreStats {
        let inner = self.inner.lock();
        StoreStats {
            segments: inner.segments.len() as u64,
            disk_bytes: inner.disk_bytes,
            live_bytes: inner.live_bytes,
            buffered_bytes: inner.appended_bytes - inner.disk_bytes,
            cold_reads: self.cold_reads.load(Ordering::Relaxed),
            compactions: inner.compactions,
            disk_errors: inner.disk_errors,
            corrupt_records: self.corrupt_records.load(Ordering::Relaxed),
        }
    }

    /// Asserts the cross-segment invariants (tests call it after each step).
    pub fn check_invariants(&self) {
        self.inner.lock().check_invariants(&self.files);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{StdFileSystem, WritableFile};
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::path::Path;
    use std::sync::atomic::AtomicBool;

    /// A fault the in-memory disk injects into segment writes and creations.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Fault {
        None,
        /// Writes store half of their bytes, then fail "No space left on device".
        DiskFull,
        /// Writes and creations fail with an I/O error.
        IoError,
        /// Reads fail with an I/O error (writes work).
        ReadError,
    }

    /// An in-memory file system for the store's tests: segment files only, with injectable
    /// write faults, byte corruption, and counted `release_pages`.
    #[derive(Clone)]
    struct MemFs {
        files: Arc<Mutex<BTreeMap<PathBuf, Arc<MemSegment>>>>,
        fault: Arc<Mutex<Fault>>,
        released: Arc<AtomicU64>,
    }

    struct MemSegment {
        bytes: Mutex<Vec<u8>>,
        capacity: u64,
        fault: Arc<Mutex<Fault>>,
        released: Arc<AtomicU64>,
        removed: AtomicBool,
    }

    impl MemFs {
        fn new() -> MemFs {
            MemFs {
                files: Arc::new(Mutex::new(BTreeMap::new())),
                fault: Arc::new(Mutex::new(Fault::None)),
                released: Arc::new(AtomicU64::new(0)),
            }
        }

        fn set_fault(&self, fault: Fault) {
            *self.fault.lock() = fault;
        }

        fn file(&self, path: &Path) -> Option<Arc<MemSegment>> {
            self.files.lock().get(path).cloned()
        }

        fn names(&self) -> Vec<String> {
            self.files
                .lock()
                .keys()
                .filter_map(|path| Some(path.file_name()?.to_str()?.to_string()))
                .collect()
        }

        fn flip(&self, path: &Path, offset: usize) {
            let file = self.file(path).expect("segment file");
            file.bytes.lock()[offset] ^= 0x10;
        }
    }

    fn unsupported() -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, "MemFs holds segments only")
    }

    impl SegmentFile for MemSegment {
        fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
            assert!(
                !self.removed.load(Ordering::Relaxed),
                "write to a removed file"
            );
            assert!(offset + bytes.len() as u64 <= self.capacity);
            let mut data = self.bytes.lock();
            assert!(offset as usize <= data.len(), "append-only");
            data.truncate(offset as usize);
            match *self.fault.lock() {
                Fault::None | Fault::ReadError => {
                    data.extend_from_slice(bytes);
                    Ok(())
                }
                Fault::DiskFull => {
                    data.extend_from_slice(&bytes[..bytes.len() / 2]);
                    Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "No space left on device",
                    ))
                }
                Fault::IoError => Err(io::Error::other("Input/output error")),
            }
        }

        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            if *self.fault.lock() == Fault::ReadError {
                return Err(io::Error::other("Input/output error"));
            }
            let data = self.bytes.lock();
            let range = offset as usize..offset as usize + buf.len();
            let bytes = data.get(range).ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "read past the written end")
            })?;
            buf.copy_from_slice(bytes);
            Ok(())
        }

        fn release_pages(&self) {
            self.released.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl FileSystem for MemFs {
        fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
            Ok(())
        }
        fn create(&self, _path: &Path) -> io::Result<Box<dyn WritableFile>> {
            Err(unsupported())
        }
        fn append(&self, _path: &Path) -> io::Result<Box<dyn WritableFile>> {
            Err(unsupported())
        }
        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            let file = self.file(path).ok_or_else(unsupported)?;
            let bytes = file.bytes.lock().clone();
            Ok(bytes)
        }
        fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
            Err(unsupported())
        }
        fn remove(&self, path: &Path) -> io::Result<()> {
            let file = self.files.lock().remove(path);
            let file = file.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            file.removed.store(true, Ordering::Relaxed);
            Ok(())
        }
        fn exists(&self, path: &Path) -> bool {
            self.files.lock().contains_key(path)
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
            Ok(self
                .files
                .lock()
                .keys()
                .filter(|path| path.parent() == Some(dir))
                .cloned()
                .collect())
        }
        fn truncate(&self, _path: &Path, _len: u64) -> io::Result<()> {
            Err(unsupported())
        }
        fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
            Ok(())
        }
        fn create_segment(&self, path: &Path, capacity: u64) -> io::Result<Arc<dyn SegmentFile>> {
            if *self.fault.lock() == Fault::IoError {
                return Err(io::Error::other("Input/output error"));
            }
            let segment = Arc::new(MemSegment {
                bytes: Mutex::new(Vec::new()),
                capacity,
                fault: self.fault.clone(),
                released: self.released.clone(),
                removed: AtomicBool::new(false),
            });
            self.files
                .lock()
                .insert(path.to_path_buf(), segment.clone());
            Ok(segment)
        }
    }

    fn tier_dir() -> PathBuf {
        PathBuf::from("/data/tier")
    }

    fn mem_store(segment_bytes: u32, compression: Compression) -> (MemFs, Store) {
        let fs = MemFs::new();
        let config = StoreConfig {
            segment_bytes,
            compression,
            ..StoreConfig::new(tier_dir())
        };
        let store = Store::open(Arc::new(fs.clone()), config).expect("open");
        (fs, store)
    }

    fn payload(seed: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|index| ((seed * 31 + index / 5) % 251) as u8)
            .collect()
    }

    #[test]
    fn records_are_readable_from_the_tail_and_after_a_flush() {
        let (fs, store) = mem_store(SEGMENT_BYTES_DEFAULT, Compression::Zstd(1));
        let first = store.append(0, b"a", 1, &payload(1, 1000)).expect("append");
        let second = store.append(2, b"b", 3, b"short").expect("append");
        assert_eq!(first.segment, second.segment);
        assert_eq!(second.offset, first.length);
        assert_eq!(store.read(first).expect("read"), payload(1, 1000));
        let stats = store.stats();
        assert_eq!(
            stats.buffered_bytes,
            u64::from(first.length + second.length)
        );
        assert_eq!(stats.disk_bytes, 0);
        assert_eq!(stats.live_bytes, stats.buffered_bytes);
        assert!(fs.names().is_empty(), "append does no I/O");
        assert!(!store.needs_flush());

        store.flush().expect("flush");
        assert_eq!(fs.names(), vec![segment_file_name(first.segment)]);
        assert_eq!(store.read(first).expect("read"), payload(1, 1000));
        assert_eq!(store.read(second).expect("read"), b"short");
        let stats = store.stats();
        assert_eq!(stats.buffered_bytes, 0);
        assert_eq!(stats.disk_bytes, u64::from(first.length + second.length));
        assert_eq!(stats.cold_reads, 3);
        assert_eq!(stats.segments, 1);

        store.free(first);
        assert_eq!(store.stats().live_bytes, u64::from(second.length));
        store.check_invariants();
    }

    #[test]
    fn a_full_segment_is_sealed_and_the_next_opened_even_for_a_large_record() {
        let (fs, store) = mem_store(256, Compression::None);
        let mut refs = Vec::new();
        for index in 0..10 {
            refs.push(store.append(0, b"k", 0, &payload(index, 100)).expect("a"));
        }
        // 123-byte records: two per 256-byte segment.
        assert_eq!(refs.iter().map(|r| r.segment).max(), Some(5));
        assert!(refs.iter().all(|r| r.offset + r.length <= 256));
        let large = store.append(0, b"big", 0, &payload(99, 1000)).expect("a");
        assert_eq!(
            large.offset, 0,
            "a record larger than a segment gets its own"
        );
        assert_eq!(
            store.append(0, b"k", 0, b"x").expect("a").segment,
            large.segment + 1
        );
        store.flush().expect("flush");
        assert_eq!(fs.names().len(), 7);
        assert_eq!(store.read(large).expect("read"), payload(99, 1000));
        for (index, cold) in refs.iter().enumerate() {
            assert_eq!(store.read(*cold).expect("read"), payload(index, 100));
        }
        store.check_invariants();
    }

    #[test]
    fn appends_refuse_past_the_disk_limit_until_it_is_raised() {
        let (_fs, store) = mem_store(4096, Compression::None);
        store.set_max_disk_bytes(1000);
        let mut appended = 0u64;
        let full = loop {
            match store.append(0, b"k", 0, &[7u8; 100]) {
                Ok(cold) => appended += u64::from(cold.length),
                Err(error) => break error,
            }
        };
        assert!(matches!(full, TierError::Full), "{full}");
        assert!(appended <= 1000 && appended + 123 > 1000);
        store.flush().expect("flush");
        assert!(matches!(
            store.append(0, b"k", 0, &[7u8; 100]),
            Err(TierError::Full)
        ));
        store.set_max_disk_bytes(0);
        store.append(0, b"k", 0, &[7u8; 100]).expect("unlimited");
    }

    #[test]
    fn the_unflushed_tail_is_bounded() {
        let (_fs, store) = mem_store(SEGMENT_BYTES_DEFAULT, Compression::None);
        let value = vec![1u8; 64 << 10];
        let mut count = 0u64;
        let error = loop {
            match store.append(0, b"k", 0, &value) {
                Ok(_) => count += 1,
                Err(error) => break error,
            }
            assert!(count < 1000, "never refused");
        };
        assert!(matches!(error, TierError::Io(_)), "{error}");
        assert!(store.needs_flush());
        let buffered = store.stats().buffered_bytes;
        assert!((TAIL_BYTES_MAX..TAIL_BYTES_MAX + (65 << 10)).contains(&buffered));
        store.flush().expect("flush");
        assert!(!store.needs_flush());
        store.append(0, b"k", 0, &value).expect("room again");
    }

    #[test]
    fn a_failed_flush_loses_nothing_and_refuses_appends_until_one_succeeds() {
        for fault in [Fault::DiskFull, Fault::IoError] {
            let (fs, store) = mem_store(512, Compression::None);
            let mut refs: Vec<(ColdRef, Vec<u8>)> = Vec::new();
            for index in 0..3 {
                let value = payload(index, 150);
                refs.push((store.append(0, b"k", 0, &value).expect("a"), value));
            }
            store.flush().expect("flush");
            for index in 3..8 {
                let value = payload(index, 150);
                refs.push((store.append(0, b"k", 0, &value).expect("a"), value));
            }
            fs.set_fault(fault);
            let error = store.flush().expect_err("the disk fails");
            assert!(matches!(error, TierError::Io(_)), "{error}");
            assert!(error.to_string().contains("segment-"), "{error}");
            for (cold, value) in &refs {
                assert_eq!(&store.read(*cold).expect("nothing is lost"), value);
            }
            let refused = store.append(0, b"k", 0, b"v").expect_err("refused");
            assert!(matches!(refused, TierError::Io(_)));
            assert!(store.needs_flush());
            assert_eq!(store.stats().disk_errors, 1);
            assert!(store.stats().buffered_bytes > 0);
            store.check_invariants();

            // Still failing: still refused, still readable.
            assert!(store.flush().is_err());
            assert_eq!(store.stats().disk_errors, 2);

            fs.set_fault(Fault::None);
            store.flush().expect("healed");
            assert_eq!(store.stats().buffered_bytes, 0);
            let value = payload(100, 150);
            refs.push((
                store.append(0, b"k", 0, &value).expect("append again"),
                value,
            ));
            store.flush().expect("flush");
            for (cold, value) in &refs {
                assert_eq!(&store.read(*cold).expect("read"), value);
            }
            // What the files hold is exactly the records, nothing left of the failed writes.
            let on_disk: u64 = fs
                .names()
                .iter()
                .map(|name| fs.read(&tier_dir().join(name)).expect("read").len() as u64)
                .sum();
            assert_eq!(on_disk, store.stats().disk_bytes);
            store.check_invariants();
        }
    }

    #[test]
    fn a_corrupt_byte_is_an_error_naming_segment_and_offset_never_data() {
        let (fs, store) = mem_store(SEGMENT_BYTES_DEFAULT, Compression::Zstd(1));
        let first = store.append(0, b"a", 1, &payload(1, 500)).expect("a");
        let second = store.append(0, b"b", 1, &payload(2, 500)).expect("a");
        store.flush().expect("flush");
        fs.flip(
            &store.segment_path(second.segment),
            second.offset as usize + 30,
        );
        let error = store.read(second).expect_err("corrupt");
        match &error {
            TierError::Corrupt {
                segment, offset, ..
            } => assert_eq!((*segment, *offset), (second.segment, second.offset)),
            other => panic!("{other}"),
        }
        let text = error.to_string();
        assert!(text.contains(&segment_file_name(second.segment)), "{text}");
        assert!(
            text.contains(&format!("offset {}", second.offset)),
            "{text}"
        );
        assert!(store.read_raw(second).is_err());
        assert_eq!(store.read(first).expect("others read"), payload(1, 500));
        assert_eq!(store.stats().corrupt_records, 2);

        // A ref whose kind disagrees with the record's is corrupt too.
        let wrong_kind = ColdRef { kind: 9, ..first };
        assert!(matches!(
            store.read(wrong_kind),
            Err(TierError::Corrupt { .. })
        ));
        // A ref past the segment's end.
        let past = ColdRef {
            offset: second.offset + second.length,
            ..second
        };
        assert!(matches!(store.read(past), Err(TierError::Corrupt { .. })));
    }

    /// A store whose first segment (sealed, written) holds two records, and those records.
    fn two_records_in_a_sealed_segment() -> (MemFs, Store, ColdRef, ColdRef) {
        let (fs, store) = mem_store(256, Compression::None);
        let first = store.append(0, b"a", 1, &[1u8; 100]).expect("a");
        let second = store.append(0, b"b", 1, &[2u8; 100]).expect("a");
        store
            .append(0, b"c", 1, &[3u8; 100])
            .expect("seals the first");
        store.flush().expect("flush");
        assert_eq!(first.segment, second.segment);
        (fs, store, first, second)
    }

    #[test]
    fn a_corrupt_dead_record_is_walked_past_and_its_segment_retired() {
        let (fs, store, first, second) = two_records_in_a_sealed_segment();
        let path = store.segment_path(first.segment);
        store.free(first);
        store.free(second);
        assert_eq!(store.compaction_candidate(), Some(first.segment));
        // A flipped payload bit: the header's lengths still lead past the record.
        fs.flip(&path, second.offset as usize + 40);
        let records = store.records(first.segment).expect("walk");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].cold, first);
        assert_eq!(store.stats().corrupt_records, 1);
        let disk_before = store.stats().disk_bytes;
        assert!(store.retire(first.segment), "nothing live is left");
        assert!(!fs.exists(&path));
        assert_eq!(
            store.stats().disk_bytes,
            disk_before - u64::from(first.length + second.length)
        );
        assert!(matches!(store.read(second), Err(TierError::Gone)));
        store.check_invariants();
    }

    #[test]
    fn a_walk_finds_the_record_after_one_whose_lengths_are_corrupt() {
        let (fs, store, first, second) = two_records_in_a_sealed_segment();
        store.free(first);
        // The dead first record's key length: its header no longer says where it ends.
        fs.flip(
            &store.segment_path(first.segment),
            first.offset as usize + 10,
        );
        let records = store.records(first.segment).expect("walk");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].cold, second);
        assert_eq!(records[0].key, b"b");
        // The compactor's move of the live record, then the retire.
        let moved = store
            .append_raw(&store.read_raw(second).expect("raw"))
            .expect("move");
        store.free(second);
        store.flush().expect("flush");
        assert!(store.retire(first.segment));
        assert_eq!(store.read(moved).expect("moved"), vec![2u8; 100]);
        store.check_invariants();
    }

    #[test]
    fn a_corrupt_live_record_keeps_its_segment_until_it_dies() {
        // Three records in the first segment; the middle one stays live.
        let (fs, store) = mem_store(400, Compression::None);
        let refs: Vec<ColdRef> = (0..4u8)
            .map(|index| store.append(0, &[b'a' + index], 1, &[index; 100]))
            .collect::<Result<_, _>>()
            .expect("append");
        store.flush().expect("flush");
        let (first, second) = (refs[0], refs[1]);
        assert_eq!(refs[2].segment, first.segment);
        let path = store.segment_path(first.segment);
        store.free(first);
        store.free(refs[2]);
        fs.flip(&path, second.offset as usize + 40);
        assert_eq!(store.compaction_candidate(), Some(first.segment));
        let records = store.records(first.segment).expect("walk");
        assert_eq!(
            records.len(),
            2,
            "the corrupt record is not offered for a move"
        );
        // Its key still points at it: the segment stays, and is not offered again.
        assert!(!store.retire(first.segment));
        assert!(fs.exists(&path));
        assert!(matches!(
            store.read(second),
            Err(TierError::Corrupt { offset, .. }) if offset == second.offset
        ));
        assert_eq!(store.compaction_candidate(), None);
        // Once the key is overwritten or deleted, the segment goes.
        store.free(second);
        assert_eq!(store.compaction_candidate(), Some(first.segment));
        assert_eq!(store.records(first.segment).expect("walk").len(), 2);
        assert!(store.retire(first.segment));
        assert!(!fs.exists(&path));
        store.check_invariants();
    }

    #[test]
    fn a_failed_read_is_an_io_error_naming_segment_and_offset_not_corruption() {
        let (fs, store, first, second) = two_records_in_a_sealed_segment();
        store.free(first);
        fs.set_fault(Fault::ReadError);
        match store.read(second) {
            Err(TierError::Io(text)) => {
                assert!(text.contains(&segment_file_name(second.segment)), "{text}");
                assert!(
                    text.contains(&format!("at offset {}", second.offset)),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.records(first.segment),
            Err(TierError::Io(_))
        ));
        let stats = store.stats();
        assert_eq!((stats.corrupt_records, stats.disk_errors), (0, 2));
        // The next read works, and the segment is still offered for compaction.
        fs.set_fault(Fault::None);
        assert_eq!(store.read(second).expect("read"), vec![2u8; 100]);
        store.free(second);
        assert_eq!(store.compaction_candidate(), Some(first.segment));
    }

    #[test]
    fn open_removes_stale_segment_files_only() {
        let fs = MemFs::new();
        let stale = tier_dir().join(segment_file_name(7));
        fs.create_segment(&stale, 64).expect("create");
        let other = tier_dir().join("notes.txt");
        fs.create_segment(&other, 64).expect("create");
        let elsewhere = PathBuf::from("/data").join(segment_file_name(8));
        fs.create_segment(&elsewhere, 64).expect("create");
        let store = Store::open(Arc::new(fs.clone()), StoreConfig::new(tier_dir())).expect("open");
        assert!(!fs.exists(&stale));
        assert!(fs.exists(&other) && fs.exists(&elsewhere));
        assert_eq!(store.stats().segments, 0);
        assert!(is_segment_file_name(&segment_file_name(u32::MAX)));
        assert!(!is_segment_file_name("segment-.tier"));
        assert!(!is_segment_file_name("segment-12a.tier"));

        let tiny = StoreConfig {
            segment_bytes: SEGMENT_BYTES_MIN - 1,
            ..StoreConfig::new(tier_dir())
        };
        assert!(Store::open(Arc::new(fs), tiny).is_err());
    }

    #[test]
    fn compaction_moves_live_records_and_retire_makes_old_refs_gone() {
        let (fs, store) = mem_store(512, Compression::None);
        let refs: Vec<ColdRef> = (0..8)
            .map(|index| store.append(index, b"key", 2, &payload(index as usize, 100)))
            .collect::<Result<_, _>>()
            .expect("append");
        store.flush().expect("flush");
        assert_eq!(store.compaction_candidate(), None, "all live");
        // Free three of the first segment's four records.
        let first = refs[0].segment;
        let in_first: Vec<ColdRef> = refs
            .iter()
            .copied()
            .filter(|r| r.segment == first)
            .collect();
        assert_eq!(in_first.len(), 4);
        for cold in &in_first[..3] {
            store.free(*cold);
        }
        assert_eq!(store.compaction_candidate(), Some(first));
        let records = store.records(first).expect("walk");
        assert_eq!(records.len(), 4);
        assert_eq!(records[1].db, 1);
        assert_eq!(records[1].key, b"key");
        assert_eq!(records[1].cold, in_first[1]);
        let survivor = in_first[3];
        let raw = store.read_raw(survivor).expect("raw");
        let moved = store.append_raw(&raw).expect("move");
        assert_eq!(moved.kind, 2);
        assert_ne!(moved.segment, first);
        store.free(survivor);
        store.retire(first);
        assert!(matches!(store.read(survivor), Err(TierError::Gone)));
        assert!(!fs.exists(&store.segment_path(first)));
        assert_eq!(store.read(moved).expect("moved"), payload(3, 100));
        let stats = store.stats();
        assert_eq!(stats.compactions, 1);
        assert_eq!(stats.segments, 2);
        store.free(survivor); // a ref of a retired segment: ignored
        store.check_invariants();
    }

    #[test]
    fn compaction_can_run_on_a_full_tier() {
        let (_fs, store) = mem_store(256, Compression::None);
        store.set_max_disk_bytes(4 * 123);
        let refs: Vec<ColdRef> = (0..4)
            .map(|index| store.append(0, b"k", 0, &payload(index, 100)))
            .collect::<Result<_, _>>()
            .expect("append");
        assert!(matches!(
            store.append(0, b"k", 0, &payload(9, 100)),
            Err(TierError::Full)
        ));
        store.flush().expect("flush");
        store.free(refs[0]);
        let raw = store.read_raw(refs[1]).expect("raw");
        let moved = store
            .append_raw(&raw)
            .expect("compaction may pass the limit");
        store.free(refs[1]);
        store.retire(refs[0].segment);
        assert_eq!(store.read(moved).expect("read"), payload(1, 100));
    }

    #[test]
    fn clear_drops_every_segment_and_the_tail() {
        let (fs, store) = mem_store(256, Compression::None);
        let old = store.append(0, b"k", 0, &[1u8; 200]).expect("a");
        store.flush().expect("flush");
        store.append(0, b"k", 0, &[2u8; 200]).expect("a");
        store.clear();
        assert!(fs.names().is_empty());
        let stats = store.stats();
        assert_eq!(
            (
                stats.segments,
                stats.disk_bytes,
                stats.live_bytes,
                stats.buffered_bytes
            ),
            (0, 0, 0, 0)
        );
        assert!(matches!(store.read(old), Err(TierError::Gone)));
        store.free(old);
        let fresh = store.append(0, b"k", 0, b"v").expect("a");
        assert!(fresh.segment > old.segment, "ids are not reused");
        store.flush().expect("flush");
        assert_eq!(store.read(fresh).expect("read"), b"v");
        store.check_invariants();
    }

    #[test]
    fn reads_through_the_maps_release_their_pages_every_32_mib() {
        let (fs, store) = mem_store(4 << 20, Compression::None);
        let cold = store.append(0, b"k", 0, &vec![5u8; 1 << 20]).expect("a");
        store.flush().expect("flush");
        for _ in 0..31 {
            store.read(cold).expect("read");
        }
        assert_eq!(fs.released.load(Ordering::Relaxed), 0);
        store.read(cold).expect("read");
        store.read(cold).expect("read");
        assert_eq!(fs.released.load(Ordering::Relaxed), 1);
    }

    /// A ref and the payload it was written with.
    type Written = (ColdRef, Vec<u8>);

    #[test]
    fn readers_and_a_flusher_run_concurrently() {
        let (_fs, store) = mem_store(4096, Compression::Zstd(1));
        let store = Arc::new(store);
        let refs: Arc<Mutex<Vec<Written>>> = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for _ in 0..2 {
            let (store, refs, done) = (store.clone(), refs.clone(), done.clone());
            threads.push(std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let sample: Vec<Written> = refs.lock().iter().rev().take(8).cloned().collect();
                    for (cold, value) in sample {
                        assert_eq!(store.read(cold).expect("read"), value);
                        reads += 1;
                    }
                }
                reads
            }));
        }
        {
            let (store, done) = (store.clone(), done.clone());
            threads.push(std::thread::spawn(move || {
                let mut flushes = 0u64;
                while !done.load(Ordering::Relaxed) {
                    store.flush().expect("flush");
                    flushes += 1;
                }
                flushes
            }));
        }
        for index in 0..2000 {
            let value = payload(index, 50 + index % 300);
            let cold = store.append(0, b"key", 0, &value).expect("append");
            refs.lock().push((cold, value));
        }
        done.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().expect("thread");
        }
        store.flush().expect("flush");
        for (cold, value) in refs.lock().iter() {
            assert_eq!(&store.read(*cold).expect("read"), value);
        }
        store.check_invariants();
    }

    #[test]
    fn clear_racing_flushes_leaves_no_file_behind() {
        let (fs, store) = mem_store(1024, Compression::None);
        let store = Arc::new(store);
        let done = Arc::new(AtomicBool::new(false));
        let flusher = {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    store.flush().expect("flush");
                }
            })
        };
        let clearer = {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    store.clear();
                    std::thread::yield_now();
                }
            })
        };
        for index in 0..3000 {
            let value = payload(index, 200);
            let cold = store.append(0, b"k", 0, &value).expect("append");
            match store.read(cold) {
                Ok(read) => assert_eq!(read, value),
                Err(TierError::Gone) => {}
                Err(other) => panic!("{other}"),
            }
            if index % 3 == 0 {
                store.free(cold);
            }
        }
        done.store(true, Ordering::Relaxed);
        flusher.join().expect("flusher");
        clearer.join().expect("clearer");
        store.check_invariants();
        store.clear();
        assert!(fs.names().is_empty(), "{:?}", fs.names());
        assert!(fs.files.lock().is_empty());
    }

    #[test]
    fn real_files_roll_over_read_back_and_retire() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("tier");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(segment_file_name(3)), b"stale").expect("stale file");
        let config = StoreConfig {
            segment_bytes: 4096,
            ..StoreConfig::new(dir.clone())
        };
        let store = Store::open(Arc::new(StdFileSystem), config).expect("open");
        assert!(
            !dir.join(segment_file_name(3)).exists(),
            "stale file removed"
        );
        let mut refs = Vec::new();
        for index in 0..40 {
            let value = payload(index, 500 + index);
            refs.push((
                store
                    .append(0, format!("k{index}").as_bytes(), 0, &value)
                    .expect("a"),
                value,
            ));
            if index % 7 == 6 {
                store.flush().expect("flush");
            }
        }
        // Some records are in the tail, some in sealed files, some in the active file.
        assert!(store.stats().buffered_bytes > 0);
        for (cold, value) in &refs {
            assert_eq!(&store.read(*cold).expect("read"), value);
        }
        store.flush().expect("flush");
        let files = std::fs::read_dir(&dir).expect("list").count();
        assert!(files >= 4, "{files} segment files");
        assert_eq!(files as u64, store.stats().segments);
        for (cold, value) in &refs {
            assert_eq!(&store.read(*cold).expect("read"), value);
        }
        // Bytes on disk match the record through the std file too.
        let (first, _) = &refs[0];
        let file = std::fs::read(store.segment_path(first.segment)).expect("read file");
        assert_eq!(file.len(), 4096, "sized to its capacity (sparse)");
        let raw = store.read_raw(*first).expect("raw");
        assert_eq!(&file[..first.length as usize], &raw[..]);

        // Empty the first segment and retire it.
        let segment = first.segment;
        for (cold, _) in refs.iter().filter(|(cold, _)| cold.segment == segment) {
            store.free(*cold);
        }
        assert_eq!(store.compaction_candidate(), Some(segment));
        assert!(store.records(segment).expect("walk").len() > 1);
        store.retire(segment);
        assert!(!store.segment_path(segment).exists());
        assert!(matches!(store.read(*first), Err(TierError::Gone)));
        assert_eq!(store.stats().compactions, 1);

        // A corrupted byte in a real file (the map sees it: one page cache).
        let (second, _) = refs
            .iter()
            .find(|(cold, _)| cold.segment != segment)
            .expect("r");
        let path = store.segment_path(second.segment);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[second.offset as usize + 25] ^= 1;
        std::os::unix::fs::FileExt::write_all_at(
            &std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open"),
            &bytes[second.offset as usize..second.offset as usize + 32],
            u64::from(second.offset),
        )
        .expect("corrupt");
        assert!(matches!(
            store.read(*second),
            Err(TierError::Corrupt { .. })
        ));

        store.clear();
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 0);
    }

    #[test]
    fn a_real_segment_refuses_reads_past_its_written_end() {
        let temp = tempfile::tempdir().expect("tempdir");
        let file = StdFileSystem
            .create_segment(&temp.path().join("s"), 8192)
            .expect("create");
        file.write_at(0, b"hello").expect("write");
        let mut buf = [0u8; 5];
        file.read_at(0, &mut buf).expect("read");
        assert_eq!(&buf, b"hello");
        assert!(file.read_at(1, &mut buf).is_err());
        assert!(file.write_at(8190, b"toolong").is_err());
        file.release_pages();
        file.read_at(0, &mut buf).expect("read after release");
        assert_eq!(&buf, b"hello");
        assert!(StdFileSystem
            .create_segment(&temp.path().join("z"), 0)
            .is_err());
    }

    /// One step of the model test.
    #[derive(Debug, Clone)]
    enum Op {
        Append {
            db: u32,
            key: u8,
            len: usize,
            seed: u8,
        },
        Flush,
        Read(usize),
        Free(usize),
        Compact,
        Fail(Fault),
        SetLimit(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u32..4, any::<u8>(), 0usize..400, any::<u8>())
                .prop_map(|(db, key, len, seed)| Op::Append { db, key, len, seed }),
            2 => Just(Op::Flush),
            3 => any::<usize>().prop_map(Op::Read),
            3 => any::<usize>().prop_map(Op::Free),
            1 => Just(Op::Compact),
            1 => prop_oneof![Just(Fault::None), Just(Fault::DiskFull), Just(Fault::IoError)]
                .prop_map(Op::Fail),
            1 => prop_oneof![Just(0u64), 2000u64..20_000].prop_map(Op::SetLimit),
        ]
    }

    /// The live refs as the model sees them, and the refs compaction moved out of segments
    /// since retired.
    struct Model {
        live: Vec<(ColdRef, Vec<u8>)>,
        retired: Vec<ColdRef>,
    }

    impl Model {
        fn live_bytes(&self) -> u64 {
            self.live
                .iter()
                .map(|(cold, _)| u64::from(cold.length))
                .sum()
        }
    }

    fn compact(store: &Store, model: &mut Model) {
        let Some(segment) = store.compaction_candidate() else {
            return;
        };
        let records = store.records(segment).expect("walk");
        let index: HashMap<ColdRef, usize> = model
            .live
            .iter()
            .enumerate()
            .map(|(position, (cold, _))| (*cold, position))
            .collect();
        // Refs whose record moved: they read Gone once the segment is retired, not before.
        let mut moved_from = Vec::new();
        for info in records {
            // The owner check: only records the model still references move.
            let Some(&position) = index.get(&info.cold) else {
                continue;
            };
            let raw = store.read_raw(info.cold).expect("raw");
            let Ok(moved) = store.append_raw(&raw) else {
                return; // refused (a failing disk): this segment is not retired
            };
            store.free(info.cold);
            model.live[position].0 = moved;
            moved_from.push(info.cold);
        }
        store.retire(segment);
        model.retired.extend(moved_from);
        assert!(!store
            .records(segment)
            .is_ok_and(|records| !records.is_empty()));
    }

    fn run_model(ops: Vec<Op>, segment_bytes: u32, compression: Compression) {
        let (fs, store) = mem_store(segment_bytes, compression);
        let mut model = Model {
            live: Vec::new(),
            retired: Vec::new(),
        };
        let mut limit = 0u64;
        let mut failing = false;
        // A flush failed and none succeeded since: appends are refused.
        let mut poisoned = false;
        for op in ops {
            match op {
                Op::Append { db, key, len, seed } => {
                    let value = payload(seed as usize, len);
                    let before = store.stats();
                    match store.append(db, &[key], key % 7, &value) {
                        Ok(cold) => {
                            assert_eq!(cold.kind, key % 7);
                            model.live.push((cold, value));
                        }
                        Err(TierError::Full) => {
                            let record = segment::encode(db, &[key], 0, &value, compression)
                                .expect("encode")
                                .len() as u64;
                            assert!(limit != 0);
                            assert!(before.disk_bytes + before.buffered_bytes + record > limit);
                        }
                        Err(TierError::Io(_)) => assert!(poisoned),
                        Err(other) => panic!("append: {other}"),
                    }
                }
                Op::Flush => {
                    let buffered = store.stats().buffered_bytes;
                    let flushed = store.flush();
                    assert_eq!(flushed.is_err(), failing && buffered > 0);
                    poisoned = flushed.is_err();
                    assert_eq!(store.needs_flush(), poisoned);
                }
                Op::Read(pick) if !model.live.is_empty() => {
                    let (cold, value) = &model.live[pick % model.live.len()];
                    assert_eq!(&store.read(*cold).expect("read"), value);
                }
                Op::Free(pick) if !model.live.is_empty() => {
                    let (cold, _) = model.live.swap_remove(pick % model.live.len());
                    store.free(cold);
                }
                Op::Compact => compact(&store, &mut model),
                Op::Fail(fault) => {
                    failing = fault != Fault::None;
                    fs.set_fault(fault);
                }
                Op::SetLimit(bytes) => {
                    limit = bytes;
                    store.set_max_disk_bytes(bytes);
                }
                Op::Read(_) | Op::Free(_) => {}
            }
            store.check_invariants();
            assert_eq!(store.stats().live_bytes, model.live_bytes());
        }
        for (cold, value) in &model.live {
            assert_eq!(&store.read(*cold).expect("read"), value);
        }
        for retired in &model.retired {
            assert!(!fs.exists(&store.segment_path(retired.segment)));
            assert!(matches!(store.read(*retired), Err(TierError::Gone)));
        }
        fs.set_fault(Fault::None);
        store.flush().expect("healed");
        for (cold, value) in &model.live {
            assert_eq!(&store.read(*cold).expect("read"), value);
        }
        let stats = store.stats();
        assert_eq!(stats.buffered_bytes, 0);
        // Every byte on disk is in a file that exists.
        let on_disk: u64 = fs
            .names()
            .iter()
            .map(|name| fs.read(&tier_dir().join(name)).expect("read").len() as u64)
            .sum();
        assert_eq!(on_disk, stats.disk_bytes);
        assert_eq!(fs.names().len() as u64, stats.segments);
        store.check_invariants();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn the_store_matches_a_model(
            ops in proptest::collection::vec(op(), 1..200),
            segment_bytes in prop_oneof![Just(256u32), Just(1024), Just(8192)],
            zstd in any::<bool>(),
        ) {
            let compression = if zstd { Compression::Zstd(1) } else { Compression::None };
            run_model(ops, segment_bytes, compression);
        }
    }
}
