//! The file system contract persistence is written against.
//!
//! Contract (what the simulator's disk enforces and the real one provides): bytes written are
//! durable only after `sync` returns Ok; a crash may drop or tear (at 512-byte sectors) any
//! write not yet synced; `rename` is atomic and durable once the directory is synced; after a
//! failed `sync` the file's unsynced contents are unknown and the caller must not acknowledge
//! anything that depended on them.
//!
//! Segment files of the memory tier ([`SegmentFile`]) have a weaker contract: they are never
//! synced, because they are a memory tier and not durable data (after a restart the data comes
//! back from the AOF or RDB, and stale segment files are removed). A segment is written only at
//! its end, by positioned writes, and read through a memory map that stays valid until the last
//! handle is dropped, even after the file is removed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A file opened for appending or rewriting.
pub trait WritableFile: Send {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// fsync: everything written so far is durable when this returns Ok.
    fn sync(&mut self) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// A whole file's bytes, for loading. The real file system maps the file, so loading a file
/// larger than memory does not copy it into memory: the loader says how far it got
/// (`release_before`) and the pages behind it are dropped from the process (they stay in the
/// page cache). The simulated disk hands out a copy.
pub enum FileBytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Owned(bytes) => bytes,
            FileBytes::Mapped(map) => map,
        }
    }
}

impl FileBytes {
    /// The bytes before `offset` will not be read again: their pages leave this process.
    #[allow(unsafe_code)]
    pub fn release_before(&self, offset: usize) {
        let FileBytes::Mapped(map) = self else {
            return;
        };
        const PAGE: usize = 4096;
        let len = offset.min(map.len()) / PAGE * PAGE;
        if len == 0 {
            return;
        }
        // SAFETY: MADV_DONTNEED on a shared, read-only file mapping drops only this process's
        // page table entries; a later read faults the same bytes back from the page cache, so
        // nothing can observe a change (it would zero a private anonymous mapping: not this).
        let advised =
            unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, len) };
        if let Err(error) = advised {
            tracing::debug!("madvise(DONTNEED) on a file being loaded failed: {error}");
        }
    }
}

/// A segment file of the memory tier: written by positioned writes, read through a memory map
/// (small reads: `pread`, see `MAPPED_READ_BYTES_MIN`).
pub trait SegmentFile: Send + Sync {
    /// Writes `bytes` at `offset` (always the current end: segments are append-only). A failed
    /// write may have stored part of `bytes`; the caller retries at the same offset.
    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Copies `buf.len()` bytes at `offset` into `buf`: out of the mapping, or for reads
    /// shorter than `MAPPED_READ_BYTES_MIN` with a `pread`. Fails, without reading, for a
    /// range past what was written.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Drops the mapping's resident pages (the page cache keeps them): RSS stays bounded.
    fn release_pages(&self);
}

/// Directory and file operations.
pub trait FileSystem: Send + Sync {
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates or truncates.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens for appending, creating if missing.
    fn append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The whole file for loading: by default a copy (`read`).
    fn read_whole(&self, path: &Path) -> io::Result<FileBytes> {
        self.read(path).map(FileBytes::Owned)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Cuts a file to `len` bytes, durably (a torn AOF tail).
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Makes a directory's entries (creations, renames) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates (truncating) a segment file of `capacity` bytes, mapped for reading.
    fn create_segment(&self, path: &Path, capacity: u64) -> io::Result<Arc<dyn SegmentFile>>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFileSystem;

struct StdFile(std::fs::File);

impl WritableFile for StdFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut self.0, bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl FileSystem for StdFileSystem {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(StdFile(std::fs::File::create(path)?)))
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Box::new(StdFile(file)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    #[allow(unsafe_code)]
    fn read_whole(&self, path: &Path) -> io::Result<FileBytes> {
        let file = std::fs::File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(FileBytes::Owned(Vec::new()));
        }
        // SAFETY: a mapped file shrinking under the map would make reads fault. The files
        // loaded this way (dump.rdb, the AOF's files) are the server's own, loaded at start
        // before anything writes them; a file cut short on purpose (a torn AOF tail) is cut
        // only after its mapping is dropped. Another process truncating them meanwhile is
        // outside what the server can defend against (as with any mapped file).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        if let Err(error) = map.advise(memmap2::Advice::Sequential) {
            tracing::debug!("madvise(SEQUENTIAL) on a file being loaded failed: {error}");
        }
        Ok(FileBytes::Mapped(map))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            paths.push(entry?.path());
        }
        paths.sort();
        Ok(paths)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn create_segment(&self, path: &Path, capacity: u64) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(Arc::new(StdSegment::create(path, capacity)?))
    }
}

/// Segment reads shorter than this are `pread`s; longer ones copy out of the map. A small
/// record read through the map costs a page fault that maps a whole folio around it (64 KiB,
/// or far more where the page cache holds large folios), and keeping RSS bounded then costs
/// `madvise` calls over every segment: at 2M cold values of 1 KiB that was a quarter of a
/// GET-heavy server's CPU, and mapped pages still overshot their budget fourfold. A `pread`
/// copies from the page cache and leaves nothing resident in the process.
pub const MAPPED_READ_BYTES_MIN: usize = 64 << 10;

/// A real segment file: sparse at `capacity`, written with `pwrite`, read through one shared
/// read-only mapping made at creation and kept for the file's lifetime. A shared mapping of a
/// file sees `pwrite`s at once (one page cache), so no remapping is ever needed.
struct StdSegment {
    file: std::fs::File,
    map: memmap2::Mmap,
    /// Bytes written from offset 0; reads never go past it (the sparse rest is not data).
    written: AtomicU64,
}

impl StdSegment {
    fn create(path: &Path, capacity: u64) -> io::Result<StdSegment> {
        let map_len = usize::try_from(capacity)
            .ok()
            .filter(|&len| len > 0)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("segment capacity {capacity} cannot be mapped"),
                )
            })?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        // Sparse: blocks are allocated as writes reach them, so an unfilled segment costs
        // only what was written.
        file.set_len(capacity)?;
        let map = Self::map(&file, map_len)?;
        // Records are read one at a time at random places: no readahead around them.
        if let Err(error) = map.advise(memmap2::Advice::Random) {
            tracing::debug!("madvise(RANDOM) on a tier segment failed: {error}");
        }
        Ok(StdSegment {
            file,
            map,
            written: AtomicU64::new(0),
        })
    }

    #[allow(unsafe_code)]
    fn map(file: &std::fs::File, len: usize) -> io::Result<memmap2::Mmap> {
        // SAFETY: a mapped file changing or shrinking under the map is what makes mapping
        // unsafe. This file was just created (truncated) by this process under the tier's
        // private directory, its length is set before mapping and never reduced while mapped
        // (it is only ever removed, which keeps the mapping valid), and the only writes to it
        // are `write_at`'s appends past every byte a reader may look at (`read_at` stays below
        // `written`, which advances only after a write completes).
        unsafe { memmap2::MmapOptions::new().len(len).map(file) }
    }
}

impl SegmentFile for StdSegment {
    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(bytes.len() as u64)
            .filter(|&end| end <= self.map.len() as u64)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "segment write of {} bytes at {offset} passes its capacity {}",
                        bytes.len(),
                        self.map.len()
                    ),
                )
            })?;
        // Append-only: a retry after a failed write rewrites from where the data ends.
        debug_assert!(offset <= self.written.load(Ordering::Acquire));
        std::os::unix::fs::FileExt::write_all_at(&self.file, bytes, offset)?;
        // Release: a reader that sees the new length also sees the bytes under it.
        self.written.fetch_max(end, Ordering::Release);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let written = self.written.load(Ordering::Acquire);
        let range = offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= written)
            .map(|end| offset as usize..end as usize)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "segment read of {} bytes at {offset} passes its written length {written}",
                        buf.len()
                    ),
                )
            })?;
        if buf.len() < MAPPED_READ_BYTES_MIN {
            std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)?;
        } else {
            buf.copy_from_slice(&self.map[range]);
        }
        Ok(())
    }

    #[allow(unsafe_code)]
    fn release_pages(&self) {
        // SAFETY: MADV_DONTNEED on a shared, read-only file mapping only drops this process's
        // page table entries: the next access faults the same bytes back in from the page cache
        // (or the file), so no reader can observe a change. (It would zero a private anonymous
        // mapping, which this is not.)
        let advised = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
        if let Err(error) = advised {
            tracing::debug!("madvise(DONTNEED) on a tier segment failed: {error}");
        }
    }
}
