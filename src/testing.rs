//! In-process test harness shared by the families' unit tests: a real `Server` (real
//! executor, keyspace and propagation log) driven without sockets, with a clock the test
//! moves and a capture of the propagated command stream.

use crate::command::dispatch;
use crate::io::Clock;
use crate::protocol::Reply;
use crate::server::{Server, Session};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Arguments from a list of words (empty words kept).
pub fn argv(words: &[&str]) -> Vec<Bytes> {
    words
        .iter()
        .map(|word| Bytes::copy_from_slice(word.as_bytes()))
        .collect()
}

/// Arguments from a line split on whitespace.
pub fn words(line: &str) -> Vec<Bytes> {
    line.split_whitespace()
        .map(|word| Bytes::copy_from_slice(word.as_bytes()))
        .collect()
}

/// A clock the test moves by hand.
pub struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Collects the propagated stream.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl crate::repl::Sink for Capture {
    fn feed(&mut self, bytes: &[u8], _end_offset: u64) {
        self.0.lock().extend_from_slice(bytes);
    }
}

/// A server and any number of client sessions on it.
pub struct TestServer {
    pub server: Arc<Server>,
    pub clock: Arc<ManualClock>,
    stream: Arc<Mutex<Vec<u8>>>,
}

/// Unix ms the manual clock starts at.
pub const START_MS: u64 = 1_700_000_000_000;

impl TestServer {
    pub fn new() -> TestServer {
        TestServer::starting_at(START_MS)
    }

    /// A server whose clock starts at `start_ms` (unix ms).
    pub fn starting_at(start_ms: u64) -> TestServer {
        let clock = Arc::new(ManualClock(AtomicU64::new(start_ms)));
        let server = Server::into_arc(Server::new(
            crate::config::Config::default(),
            clock.clone(),
            Arc::new(crate::io::StdFileSystem),
            7,
        ));
        let stream = Arc::new(Mutex::new(Vec::new()));
        server.log.add_sink(Box::new(Capture(stream.clone())));
        TestServer {
            server,
            clock,
            stream,
        }
    }

    /// A new authenticated client.
    pub fn session(&self) -> Session {
        let (handle, _outbox) =
            self.server
                .clients
                .register("test:1".into(), "test:0".into(), -1, self.clock.now_ms());
        Session::new(handle, true)
    }

    pub fn advance_ms(&self, ms: u64) {
        self.clock.0.fetch_add(ms, Ordering::Relaxed);
    }

    /// Runs one command (words split on spaces) and returns its RESP2 reply as text.
    pub fn run(&self, session: &mut Session, line: &str) -> String {
        let reply = self.reply(session, line);
        String::from_utf8_lossy(&reply.to_bytes(false)).into_owned()
    }

    pub fn reply(&self, session: &mut Session, line: &str) -> Reply {
        let words: Vec<&str> = line.split_whitespace().collect();
        self.command(session, &words)
    }

    /// Runs one command given as its arguments (empty ones included).
    pub fn command(&self, session: &mut Session, words: &[&str]) -> Reply {
        dispatch(&self.server, session, argv(words)).0
    }

    /// The propagated stream so far, one command per entry as space-joined words.
    pub fn propagated(&self) -> Vec<String> {
        let bytes = self.stream.lock().clone();
        let mut commands = Vec::new();
        let mut parser = crate::protocol::RequestParser::new();
        let mut buffer = bytes::BytesMut::from(&bytes[..]);
        while let Ok(Some(args)) = parser.parse(&mut buffer, crate::protocol::Limits::default()) {
            let words: Vec<String> = args
                .iter()
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect();
            commands.push(words.join(" "));
        }
        commands
    }
}

impl Default for TestServer {
    fn default() -> TestServer {
        TestServer::new()
    }
}
