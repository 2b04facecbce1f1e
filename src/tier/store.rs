//! STUB (lead's stand-in until the helper's store merges): the segment store's API over RAM.
#![allow(dead_code)]

use super::ColdRef;
use crate::io::FileSystem;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub enum Compression {
    None,
    Zstd(i32),
}

pub struct StoreConfig {
    pub dir: PathBuf,
    pub segment_bytes: u32,
    pub max_disk_bytes: u64,
    pub compression: Compression,
}

#[derive(Debug)]
pub enum TierError {
    Full,
    Io(String),
    Corrupt {
        segment: u32,
        offset: u32,
        reason: String,
    },
    Gone,
}

impl std::fmt::Display for TierError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TierError::Full => write!(f, "the disk tier is full (tiering-max-disk)"),
            TierError::Io(e) => write!(f, "disk tier I/O error: {e}"),
            TierError::Corrupt {
                segment,
                offset,
                reason,
            } => write!(f, "corrupt record in segment {segment} at offset {offset}: {reason}"),
            TierError::Gone => write!(f, "segment retired"),
        }
    }
}

pub struct RecordInfo {
    pub cold: ColdRef,
    pub db: u32,
    pub key: Vec<u8>,
}

#[derive(Default, Clone, Copy, Debug)]
pub struct StoreStats {
    pub segments: u64,
    pub disk_bytes: u64,
    pub live_bytes: u64,
    pub buffered_bytes: u64,
    pub cold_reads: u64,
    pub compactions: u64,
    pub disk_errors: u64,
    pub corrupt_records: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u32,
    records: HashMap<(u32, u32), (u32, Vec<u8>, Vec<u8>, u8)>,
    stats: StoreStats,
}

impl Store {
    pub fn open(_fs: Arc<dyn FileSystem>, _config: StoreConfig) -> std::io::Result<Store> {
        Ok(Store {
            inner: Mutex::new(Inner::default()),
        })
    }
    pub fn set_max_disk_bytes(&self, _bytes: u64) {}
    pub fn set_compression(&self, _compression: Compression) {}
    pub fn append(&self, db: u32, key: &[u8], kind: u8, payload: &[u8]) -> Result<ColdRef, TierError> {
        let mut inner = self.inner.lock();
        inner.next += 1;
        let offset = inner.next;
        let length = (payload.len() + key.len() + 22) as u32;
        inner.records.insert((0, offset), (db, key.to_vec(), payload.to_vec(), kind));
        inner.stats.live_bytes += length as u64;
        inner.stats.disk_bytes += length as u64;
        Ok(ColdRef { segment: 0, offset, length, kind })
    }
    pub fn needs_flush(&self) -> bool {
        false
    }
    pub fn flush(&self) -> Result<(), TierError> {
        Ok(())
    }
    pub fn read(&self, cold: ColdRef) -> Result<Vec<u8>, TierError> {
        let mut inner = self.inner.lock();
        inner.stats.cold_reads += 1;
        inner.records.get(&(cold.segment, cold.offset)).map(|r| r.2.clone()).ok_or(TierError::Gone)
    }
    pub fn free(&self, cold: ColdRef) {
        let mut inner = self.inner.lock();
        if inner.records.remove(&(cold.segment, cold.offset)).is_some() {
            inner.stats.live_bytes -= cold.length as u64;
        }
    }
    pub fn compaction_candidate(&self) -> Option<u32> {
        None
    }
    pub fn records(&self, _segment: u32) -> Result<Vec<RecordInfo>, TierError> {
        Ok(Vec::new())
    }
    pub fn read_raw(&self, _cold: ColdRef) -> Result<Vec<u8>, TierError> {
        Err(TierError::Gone)
    }
    pub fn append_raw(&self, _raw: &[u8]) -> Result<ColdRef, TierError> {
        Err(TierError::Gone)
    }
    pub fn retire(&self, _segment: u32) {}
    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.records.clear();
        inner.stats.live_bytes = 0;
    }
    pub fn stats(&self) -> StoreStats {
        self.inner.lock().stats
    }
}
