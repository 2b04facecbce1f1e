//! SLOWLOG: the last `slowlog-max-len` commands slower than `slowlog-log-slower-than` µs.

use super::clients::Session;
use super::state::Server;
use crate::protocol::Reply;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;

/// Redis keeps at most 32 arguments and 128 bytes of each (SLOWLOG_ENTRY_MAX_*).
const ARGS_MAX: usize = 32;
const ARG_BYTES_MAX: usize = 128;

pub struct Entry {
    pub id: u64,
    pub timestamp_s: u64,
    pub duration_us: u64,
    pub args: Vec<Bytes>,
    pub addr: String,
    pub name: String,
}

#[derive(Default)]
pub struct SlowLog {
    inner: Mutex<(u64, VecDeque<Entry>)>,
}

impl SlowLog {
    /// Records the command if it was slow enough.
    pub fn record(
        &self,
        server: &Server,
        session: &Session,
        args: &[Bytes],
        now_ms: u64,
        duration_us: u64,
    ) {
        let threshold = crate::config_int!(server.config, "slowlog-log-slower-than");
        if threshold < 0 || duration_us < threshold as u64 {
            return;
        }
        let length_max = crate::config_int!(server.config, "slowlog-max-len").max(0) as usize;
        let mut kept: Vec<Bytes> = Vec::with_capacity(args.len().min(ARGS_MAX));
        for (index, arg) in args.iter().enumerate() {
            if index == ARGS_MAX - 1 && args.len() > ARGS_MAX {
                let more = args.len() - ARGS_MAX + 1;
                kept.push(Bytes::from(format!("... ({more} more arguments)")));
                break;
            }
            if arg.len() > ARG_BYTES_MAX {
                let mut text = arg[..ARG_BYTES_MAX].to_vec();
                text.extend_from_slice(
                    format!("... ({} more bytes)", arg.len() - ARG_BYTES_MAX).as_bytes(),
                );
                kept.push(Bytes::from(text));
            } else {
                kept.push(arg.clone());
            }
        }
        let name = session.handle.info.lock().name.clone();
        let mut inner = self.inner.lock();
        let id = inner.0;
        inner.0 += 1;
        inner.1.push_front(Entry {
            id,
            timestamp_s: now_ms / 1000,
            duration_us,
            args: kept,
            addr: session.handle.addr.clone(),
            name,
        });
        while inner.1.len() > length_max {
            inner.1.pop_back();
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.inner.lock().1.clear();
    }

    /// SLOWLOG GET's reply for the newest `count` entries (all when negative).
    pub fn reply(&self, count: i64) -> Reply {
        let inner = self.inner.lock();
        let count = if count < 0 {
            inner.1.len()
        } else {
            count as usize
        };
        Reply::Array(
            inner
                .1
                .iter()
                .take(count)
                .map(|entry| {
                    Reply::Array(vec![
                        Reply::Integer(entry.id as i64),
                        Reply::Integer(entry.timestamp_s as i64),
                        Reply::Integer(entry.duration_us as i64),
                        Reply::Array(entry.args.iter().cloned().map(Reply::Bulk).collect()),
                        Reply::bulk(entry.addr.clone()),
                        Reply::bulk(entry.name.clone()),
                    ])
                })
                .collect(),
        )
    }
}
