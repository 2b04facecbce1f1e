//! The propagation log: every write's deterministic effect, in commit order, as RESP.
//!
//! The executor appends while it still holds the shards' locks, so two writes to the same key
//! appear in the order they were applied. The log inserts `SELECT` when the database changes,
//! as Redis's `feedAppendOnlyFile`/`replicationFeedSlaves` do, and counts bytes as Redis's
//! `master_repl_offset`. Consumers (the AOF writer, the replication backlog) register as
//! sinks; with none registered nothing is encoded, as Redis keeps no backlog without replicas.

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicBool, Ordering};

/// A consumer of the encoded command stream.
pub trait Sink: Send {
    /// Called under the log's lock with each batch's bytes, in order.
    fn feed(&mut self, bytes: &[u8], end_offset: u64);
}

#[derive(Default)]
struct Inner {
    /// Bytes ever fed (Redis's master_repl_offset).
    offset: u64,
    /// The database the stream last selected.
    selected: Option<usize>,
    sinks: Vec<Box<dyn Sink>>,
    scratch: BytesMut,
}

#[derive(Default)]
pub struct PropagationLog {
    inner: Mutex<Inner>,
    /// True once a sink is registered: until then writers skip encoding and the lock.
    active: AtomicBool,
}

impl PropagationLog {
    pub fn new() -> PropagationLog {
        PropagationLog::default()
    }

    pub fn add_sink(&self, sink: Box<dyn Sink>) {
        let mut inner = self.inner.lock();
        inner.sinks.push(sink);
        self.active.store(true, Ordering::Release);
    }

    /// Whether anything consumes the log; callers may skip building effects when not.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Makes the next effect select its database again (a new AOF incr file must start with
    /// SELECT, as Redis's `aof_selected_db = -1`).
    pub fn forget_selected_db(&self) {
        self.inner.lock().selected = None;
    }

    /// The stream's current offset.
    pub fn offset(&self) -> u64 {
        self.inner.lock().offset
    }

    /// Appends effects, each `(db, argv)`; returns the offset after them.
    ///
    /// The commands are encoded before the lock is taken (the lock is shared by every
    /// writer); under it only the database selection is decided and the bytes handed over.
    pub fn append(&self, effects: &[(usize, Vec<Bytes>)]) -> u64 {
        if !self.is_active() {
            return 0;
        }
        let mut encoded: SmallVec<[(usize, BytesMut); 2]> = SmallVec::new();
        for (db, argv) in effects {
            let size: usize = argv.iter().map(|arg| arg.len() + 16).sum::<usize>() + 16;
            let mut out = BytesMut::with_capacity(size);
            let parts: SmallVec<[&[u8]; 8]> = argv.iter().map(|arg| &arg[..]).collect();
            encode_command(&mut out, &parts);
            encoded.push((*db, out));
        }
        let mut inner = self.inner.lock();
        if inner.sinks.is_empty() {
            return inner.offset;
        }
        let mut out = std::mem::take(&mut inner.scratch);
        out.clear();
        for (db, command) in &encoded {
            if inner.selected != Some(*db) {
                let db_text = db.to_string();
                encode_command(&mut out, &[b"SELECT", db_text.as_bytes()]);
                inner.selected = Some(*db);
            }
            out.extend_from_slice(command);
        }
        inner.offset += out.len() as u64;
        let end = inner.offset;
        for sink in inner.sinks.iter_mut() {
            sink.feed(&out, end);
        }
        inner.scratch = out;
        end
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode_command(out: &mut BytesMut, argv: &[&[u8]]) {
    out.put_u8(b'*');
    out.put_slice(itoa::Buffer::new().format(argv.len()).as_bytes());
    out.put_slice(b"\r\n");
    for arg in argv {
        out.put_u8(b'$');
        out.put_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(arg);
        out.put_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex as StdMutex};

    struct Collect(Arc<StdMutex<Vec<u8>>>);
    impl Sink for Collect {
        fn feed(&mut self, bytes: &[u8], _end: u64) {
            self.0.lock().unwrap().extend_from_slice(bytes);
        }
    }

    #[test]
    fn selects_database_changes_and_counts_offset() {
        let log = PropagationLog::new();
        assert_eq!(
            log.append(&[(0, vec![Bytes::from("SET")])]),
            0,
            "no sink, no bytes"
        );
        let seen = Arc::new(StdMutex::new(Vec::new()));
        log.add_sink(Box::new(Collect(seen.clone())));
        log.append(&[(1, vec![Bytes::from("DEL"), Bytes::from("k")])]);
        log.append(&[(1, vec![Bytes::from("DEL"), Bytes::from("j")])]);
        let bytes = seen.lock().unwrap().clone();
        assert_eq!(
            &bytes[..],
            &b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n*2\r\n$3\r\nDEL\r\n$1\r\nj\r\n"[..]
        );
        assert_eq!(log.offset(), bytes.len() as u64);
    }
}
