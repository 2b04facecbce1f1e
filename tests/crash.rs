//! `kill -9` under concurrent writers, on a real disk: after a restart every client's list is
//! a prefix of what it wrote, and it holds everything the fsync policy promised to keep
//! (`always`: every acknowledged push; `everysec`: everything acknowledged two seconds before
//! the kill).

mod common;

use common::{Kind, Server};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;

/// Per client: (sequence number, when acknowledged) of every acknowledged push.
type Acks = Vec<Vec<(u64, Instant)>>;

/// Runs the writers for `run_for`, kills the server, restarts it on the same files and
/// returns the acknowledgements, the kill time and each client's list after the restart.
fn crash_under_writers(policy: &str, run_for: Duration) -> (Acks, Instant, Vec<Vec<u64>>) {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start_in(
        Kind::Strata,
        data.path(),
        &["--appendonly", "yes", "--appendfsync", policy, "--save", ""],
    )
    .expect("strata");
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Arc<Mutex<Acks>> = Arc::new(Mutex::new(vec![Vec::new(); CLIENTS]));
    let mut writers = Vec::new();
    for client in 0..CLIENTS {
        let (stop, acks, url) = (stop.clone(), acks.clone(), server.url());
        writers.push(std::thread::spawn(move || {
            let mut conn = redis::Client::open(url)
                .expect("client")
                .get_connection()
                .expect("connection");
            for seq in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let pushed: redis::RedisResult<i64> = redis::cmd("RPUSH")
                    .arg(format!("client:{client}"))
                    .arg(seq)
                    .query(&mut conn);
                match pushed {
                    Ok(_) => acks.lock().expect("acks")[client].push((seq, Instant::now())),
                    Err(_) => return,
                }
            }
        }));
    }
    std::thread::sleep(run_for);
    let killed_at = Instant::now();
    drop(server); // SIGKILL while the writers are still writing.
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        let _ = writer.join();
    }
    let restarted = Server::start_in(
        Kind::Strata,
        data.path(),
        &["--appendonly", "yes", "--save", ""],
    )
    .expect("strata");
    let client = redis::Client::open(restarted.url()).expect("client");
    let mut conn = client.get_connection().expect("connection");
    let lists = (0..CLIENTS)
        .map(|client| {
            redis::cmd("LRANGE")
                .arg(format!("client:{client}"))
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .expect("lrange")
        })
        .collect();
    let acks = acks.lock().expect("acks").clone();
    (acks, killed_at, lists)
}

/// Each list is 0, 1, 2, ... with no gap, and reaches `required[client]`.
fn check(lists: &[Vec<u64>], required: &[Option<u64>]) {
    for (client, list) in lists.iter().enumerate() {
        for (index, seq) in list.iter().enumerate() {
            assert_eq!(
                *seq, index as u64,
                "client {client}: not a prefix of its writes"
            );
        }
        if let Some(required) = required[client] {
            assert!(
                list.len() as u64 > required,
                "client {client}: push {required} was acknowledged but is lost ({} kept)",
                list.len()
            );
        }
    }
}

#[test]
fn always_keeps_every_acknowledged_write() {
    let (acks, _, lists) = crash_under_writers("always", Duration::from_millis(1500));
    let required: Vec<Option<u64>> = acks
        .iter()
        .map(|client| client.last().map(|(seq, _)| *seq))
        .collect();
    assert!(
        required.iter().all(Option::is_some),
        "every client got acknowledgements"
    );
    check(&lists, &required);
}

#[test]
fn everysec_loses_at_most_about_two_seconds() {
    let (acks, killed_at, lists) = crash_under_writers("everysec", Duration::from_millis(3500));
    let required: Vec<Option<u64>> = acks
        .iter()
        .map(|client| {
            client
                .iter()
                .rev()
                .find(|(_, at)| killed_at.duration_since(*at) >= Duration::from_secs(2))
                .map(|(seq, _)| *seq)
        })
        .collect();
    check(&lists, &required);
}
