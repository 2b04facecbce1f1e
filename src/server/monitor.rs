//! MONITOR: every command received, as Redis prints it, sent to the monitoring clients.

use super::clients::{ClientHandle, Session};
use super::state::Server;
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub struct Monitors {
    clients: Mutex<Vec<Arc<ClientHandle>>>,
    count: AtomicUsize,
}

impl Monitors {
    /// Cheap check on the hot path: anyone monitoring?
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    pub fn add(&self, client: Arc<ClientHandle>) {
        let mut clients = self.clients.lock();
        if !clients.iter().any(|c| c.id == client.id) {
            clients.push(client);
        }
        self.count.store(clients.len(), Ordering::Relaxed);
    }

    pub fn remove(&self, id: u64) {
        let mut clients = self.clients.lock();
        clients.retain(|c| c.id != id);
        self.count.store(clients.len(), Ordering::Relaxed);
    }

    /// Sends `+<sec>.<usec> [<db> <addr>] "arg" ...` to every monitor.
    pub fn feed(&self, server: &Server, session: &Session, args: &[Bytes]) {
        let now_us = server.clock.now_us();
        let mut line = format!(
            "+{}.{:06} [{} {}]",
            now_us / 1_000_000,
            now_us % 1_000_000,
            session.db,
            session.handle.addr
        );
        for arg in args {
            line.push(' ');
            line.push_str(&repr(arg));
        }
        line.push_str("\r\n");
        let bytes = Bytes::from(line);
        let clients = self.clients.lock();
        for client in clients.iter() {
            client.send(bytes.clone());
        }
    }
}

/// Redis's `sdscatrepr`: a double-quoted string with C escapes for what is not printable.
pub fn repr(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &c in bytes {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push('"');
    out
}
