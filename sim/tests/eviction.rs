//! Eviction propagates everything it removes. Its sampling may meet a key past its expiry
//! time that nothing reclaimed yet; deleting it then reclaims it as expired, and that too must
//! reach the AOF and the replicas as a DEL (found by the simulator's shadow comparison: the
//! live server had lost a key the replayed history still held).

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use strata::config::Config;
use strata::io::Clock;
use strata::server::clients::Session;
use strata::server::state::Server;
use strata_sim::disk::{Faults, SimDisk};

struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Keeps the propagated stream.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl strata::repl::log::Sink for Capture {
    fn feed(&mut self, bytes: &[u8], _end_offset: u64) {
        self.0.lock().expect("capture").extend_from_slice(bytes);
    }
}

fn send(server: &Server, session: &mut Session, line: &str) -> String {
    let argv: Vec<Bytes> = line
        .split_whitespace()
        .map(|word| Bytes::from(word.to_string()))
        .collect();
    let reply = strata::command::dispatch(server, session, argv).0;
    String::from_utf8_lossy(&reply.to_bytes(false)).into_owned()
}

#[test]
fn an_expired_key_met_by_eviction_is_propagated_as_del() {
    let clock = Arc::new(TestClock(AtomicU64::new(1_700_000_000_000)));
    let server = Server::into_arc(Server::new(
        Config::default(),
        clock.clone(),
        Arc::new(SimDisk::new(0, Faults::none())),
        1,
    ));
    let stream = Arc::new(Mutex::new(Vec::new()));
    server.log.add_sink(Box::new(Capture(stream.clone())));
    let (handle, _outbox) = server.clients.register("t".into(), "t".into(), -1, 0);
    let mut session = Session::new(handle, true);
    send(
        &server,
        &mut session,
        "CONFIG SET maxmemory-policy allkeys-random",
    );
    send(&server, &mut session, "CONFIG SET maxmemory 1000");
    send(&server, &mut session, "SET old v PX 10");
    clock.0.fetch_add(50, Ordering::Relaxed);
    // Memory over the limit (no tier is open: eviction applies at once).
    strata::tier::alloc::set_thread_gauge(Some(|| 1_000_000));
    let reply = send(&server, &mut session, "GET other");
    strata::tier::alloc::set_thread_gauge(None);
    assert_eq!(reply, "$-1\r\n");
    let propagated = String::from_utf8_lossy(&stream.lock().expect("capture")).into_owned();
    assert!(
        propagated.ends_with("*2\r\n$3\r\nDEL\r\n$3\r\nold\r\n"),
        "{propagated:?}"
    );
    assert_eq!(send(&server, &mut session, "DBSIZE"), ":0\r\n");
}
