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
//! Invariants, per segment: `live <= appended`, `written <= appended <= capacity`, and the tail
//! holds exactly the bytes past `written` and the slot; across segments, the totals
//! (`disk_bytes`, `appended_bytes`, `live_bytes`) are the sums of the segments'.

use crate::io::fs::SegmentFile;
use crate::io::FileSystem;
use crate::tier::cold::ColdRef;
use crate::tier::segment::{self, FormatError, HEADER_BYTES};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::tier::segment::Compression;

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
/// A sealed segment with less than this share of live bytes is worth compacting.
const COMPACTION_LIVE_PERCENT: u64 = 50;
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

#[derive(Debug)]
pub enum TierError {
    /// tiering-max-disk reached (also: a record too large for a segment, which no limit lets
    /// in: the value stays in RAM, as it does when the tier is full).
    Full,
    /// A write failed; spilling refused until a flush succeeds. Also the tail at its bound.
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
    /// Bytes the file can hold (its mapped length).
    capacity: u32,
    file: Option<Arc<dyn SegmentFile>>,
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
    /// A record walk found corruption: not a compaction candidate again.
    unreadable: bool,
}

impl Segment {
    fn new(capacity: u32) -> Segment {
        Segment {
            capacity,
            file: None,
            appended: 0,
            written: 0,
            tail: Vec::new(),
            live: 0,
            sealed: false,
            unreadable: false,
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
    next_id: u32,
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

    fn check_invariants(&self) {
        let (mut disk, mut appended, mut live) = (0u64, 0u64, 0u64);
        for (&id, segment) in &self.segments {
            assert!(segment.written <= segment.appended);
            assert!(segment.appended <= segment.capacity);
            assert!(segment.live <= u64::from(segment.appended));
            assert_eq!(
                segment.written + self.writing_len(id) + segment.tail.len() as u32,
                segment.appended
            );
            assert!(segment.written == 0 || segment.file.is_some());
            assert!(id < self.next_id);
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
    /// Held for a whole flush (never with `inner`): one flush at a time owns the slot.
    flushing: Mutex<()>,
    /// Bytes read through the maps, for `RELEASE_PAGES_EVERY_BYTES`.
    mapped_read_bytes: AtomicU64,
    cold_reads: AtomicU64,
    corrupt_records: AtomicU64,
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
                next_id: 1,
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
            flushing: Mutex::new(()),
            mapped_read_bytes: AtomicU64::new(0),
            cold_reads: AtomicU64::new(0),
            corrupt_records: AtomicU64::new(0),
        })
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
                let id = inner.next_id;
                inner.next_id = id.checked_add(1).ok_or(TierError::Full)?;
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
        inner.check_invariants();
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

    fn flush_segment(&self, id: u32) -> Result<(), TierError> {
        let file = {
            let inner = self.inner.lock();
            let Some(segment) = inner.segments.get(&id) else {
                return Ok(()); // cleared meanwhile
            };
            segment.file.clone().ok_or(segment.capacity)
        };
        let file = match file {
            Ok(file) => file,
            Err(capacity) => {
                let path = self.segment_path(id);
                let file = self
                    .fs
                    .create_segment(&path, u64::from(capacity))
                    .map_err(|error| {
                        self.write_failed(format!("creating {}: {error}", path.display()))
                    })?;
                let mut inner = self.inner.lock();
                match inner.segments.get_mut(&id) {
                    Some(segment) => segment.file = Some(file.clone()),
                    None => {
                        // `clear` ran while the file was being created and could not see it.
                        drop(inner);
                        self.remove_file(id);
                        return Ok(());
                    }
                }
                file
            }
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
        let bytes = self.record_bytes(cold)?;
        let record = self.verify(cold, &bytes)?;
        let payload = record
            .payload()
            .map_err(|error| self.corrupt(cold.segment, cold.offset, error))?;
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

    /// The `length` bytes at `offset` of a segment, wherever they are.
    fn record_bytes(&self, cold: ColdRef) -> Result<Vec<u8>, TierError> {
        let (segment, offset, length) = (cold.segment, cold.offset, cold.length);
        let source = {
            let inner = self.inner.lock();
            let Some(state) = inner.segments.get(&segment) else {
                return Err(TierError::Gone);
            };
            let end = u64::from(offset) + u64::from(length);
            let writing = inner
                .writing
                .as_ref()
                .filter(|writing| writing.segment == segment);
            let tail_start = state.written + inner.writing_len(segment);
            if end > u64::from(state.appended) {
                None
            } else if end <= u64::from(state.written) {
                state.file.clone().map(Source::File)
            } else if let Some(writing) = writing
                .filter(|w| offset >= w.offset && end <= u64::from(w.offset) + w.bytes.len() as u64)
            {
                Some(Source::Writing(
                    writing.bytes.clone(),
                    (offset - writing.offset) as usize,
                ))
            } else if offset >= tail_start {
                let start = (offset - tail_start) as usize;
                state
                    .tail
                    .get(start..start + length as usize)
                    .map(|bytes| Source::Copied(bytes.to_vec()))
            } else {
                None
            }
        };
        let source = source.ok_or_else(|| {
            self.corrupt(
                segment,
                offset,
                format!("{length} bytes there are not one record of the segment"),
            )
        })?;
        match source {
            Source::Copied(bytes) => Ok(bytes),
            Source::Writing(bytes, start) => Ok(bytes[start..start + length as usize].to_vec()),
            Source::File(file) => {
                let mut bytes = vec![0u8; length as usize];
                file.read_at(u64::from(offset), &mut bytes)
                    .map_err(|error| self.corrupt(segment, offset, error))?;
                self.count_mapped_read(u64::from(length));
                Ok(bytes)
            }
        }
    }

    /// Every `RELEASE_PAGES_EVERY_BYTES` read through the maps, drops their resident pages.
    fn count_mapped_read(&self, bytes: u64) {
        let before = self.mapped_read_bytes.fetch_add(bytes, Ordering::Relaxed);
        if (before + bytes) / RELEASE_PAGES_EVERY_BYTES == before / RELEASE_PAGES_EVERY_BYTES {
            return;
        }
        let files: Vec<Arc<dyn SegmentFile>> = {
            let inner = self.inner.lock();
            inner
                .segments
                .values()
                .filter_map(|segment| segment.file.clone())
                .collect()
        };
        for file in files {
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

    /// A sealed, fully written segment whose live ratio fell below half, the emptiest first.
    pub fn compaction_candidate(&self) -> Option<u32> {
        let inner = self.inner.lock();
        inner
            .segments
            .iter()
            .filter(|(&id, segment)| {
                segment.sealed
                    && !segment.unreadable
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

    /// The records of a segment (header walk, crc-checked), for the compactor to check each
    /// owner under its shard lock. A corrupt record fails the walk, naming its offset, and the
    /// segment is no longer offered for compaction.
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
        // Bounded: each step advances by at least a header, and never past `end`.
        while offset < end {
            let walked = self.walk_one(segment, offset, end);
            let info = match walked {
                Ok(info) => info,
                Err(error) => {
                    if matches!(error, TierError::Corrupt { .. }) {
                        if let Some(state) = self.inner.lock().segments.get_mut(&segment) {
                            state.unreadable = true;
                        }
                    }
                    return Err(error);
                }
            };
            debug_assert!(info.cold.length as usize >= HEADER_BYTES);
            offset += info.cold.length;
            records.push(info);
        }
        debug_assert_eq!(offset, end);
        Ok(records)
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

    /// Deletes a compacted segment's file; later reads of its refs return Err(Gone). Only a
    /// sealed, fully written segment can be retired (a compaction candidate).
    pub fn retire(&self, segment: u32) {
        let removed = {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            let Some(state) = inner.segments.get(&segment) else {
                return;
            };
            if !state.sealed || inner.has_unwritten(segment, state) {
                debug_assert!(false, "retire of segment {segment}, not sealed and written");
                tracing::error!("Tier: refused to retire segment {segment}: still written to");
                return;
            }
            let Some(state) = inner.segments.remove(&segment) else {
                return;
            };
            if state.live > 0 {
                // Refs into it would read Gone forever: the compactor moved less than all.
                debug_assert!(false, "retire of segment {segment} with live bytes");
                tracing::error!(
                    "Tier: retired segment {segment} with {} live bytes",
                    state.live
                );
            }
            inner.disk_bytes -= u64::from(state.written);
            inner.appended_bytes -= u64::from(state.appended);
            inner.live_bytes -= state.live;
            inner.compactions += 1;
            #[cfg(debug_assertions)]
            inner.live_refs.retain(|&(id, _), _| id != segment);
            #[cfg(debug_assertions)]
            inner.check_invariants();
            state
        };
        if removed.file.is_some() {
            self.remove_file(segment);
        }
        // Dropped here, outside the mutex: unmapping and closing may take a while. Readers
        // holding the file keep their map until they finish.
        drop(removed);
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
        let dropped = {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            let segments = std::mem::take(&mut inner.segments);
            inner.active = None;
            // A flush in progress keeps its own handle and finds its segment gone.
            inner.writing = None;
            inner.io_failed = false;
            inner.disk_bytes = 0;
            inner.appended_bytes = 0;
            inner.live_bytes = 0;
            #[cfg(debug_assertions)]
            inner.live_refs.clear();
            segments
        };
        for (id, segment) in dropped {
            if segment.file.is_some() {
                self.remove_file(id);
            }
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
        self.inner.lock().check_invariants();
    }
}
