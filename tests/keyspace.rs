//! Keyspace behaviour over the wire that a differential script cannot show: active expiry
//! reclaiming keys nobody reads, cross-shard atomicity of multi-key writes under concurrent
//! clients, pipelines from many clients on one key (runs that give way), and SCAN's
//! guarantee while the keyspace grows and shrinks.

mod common;

use common::{encode_command, Server};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Sends `count` commands built by `make` as one pipeline and reads every reply.
fn pipeline(conn: &mut common::Conn, count: usize, make: impl Fn(usize) -> Vec<Vec<u8>>) {
    const BATCH: usize = 10_000;
    for start in (0..count).step_by(BATCH) {
        let end = (start + BATCH).min(count);
        let mut bytes = Vec::new();
        for index in start..end {
            bytes.extend_from_slice(&encode_command(&make(index)));
        }
        conn.send(&bytes);
        for _ in start..end {
            let reply = conn.read_reply().expect("reply");
            assert!(!reply.starts_with(b"-"), "{}", common::escape(&reply));
        }
    }
}

fn integer(reply: &[u8]) -> i64 {
    let text = std::str::from_utf8(reply).expect("ascii");
    assert!(text.starts_with(':'), "not an integer reply: {text:?}");
    text[1..].trim_end().parse().expect("integer")
}

/// Issue 2's test: 100k keys with a 1 s TTL, none read again, are all reclaimed by the active
/// expiry cycle within 5 s of expiring.
#[test]
fn untouched_keys_expire_actively() {
    const KEYS: usize = 100_000;
    let strata = Server::strata(&[]);
    let mut conn = strata.connect();
    pipeline(&mut conn, KEYS, |index| {
        vec![
            b"SET".to_vec(),
            format!("ttl:{index}").into_bytes(),
            b"v".to_vec(),
            b"PX".to_vec(),
            b"1000".to_vec(),
        ]
    });
    let loaded_at = Instant::now();
    assert_eq!(integer(&conn.cmd("DBSIZE")), KEYS as i64);
    // DBSIZE and INFO never touch individual keys, so only the active cycle can reclaim them.
    let deadline = loaded_at + Duration::from_secs(6);
    let mut remaining = KEYS as i64;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        remaining = integer(&conn.cmd("DBSIZE"));
        if remaining == 0 {
            break;
        }
    }
    assert_eq!(remaining, 0, "keys left 5 s after expiring");
    let elapsed = loaded_at.elapsed();
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
    let info = String::from_utf8(conn.cmd("INFO stats")).expect("utf8");
    let expired: i64 = info
        .lines()
        .find_map(|line| line.strip_prefix("expired_keys:"))
        .expect("expired_keys field")
        .trim()
        .parse()
        .expect("number");
    assert_eq!(expired, KEYS as i64);
}

/// MSET writes keys in different shards; no reader may ever see half of one MSET. Writers set
/// every key to the same round number; readers MGET all keys and must see one number.
#[test]
fn mset_is_atomic_across_shards() {
    const KEYS: usize = 16;
    const WRITERS: usize = 4;
    const ROUNDS: usize = 500;
    let strata = Server::strata(&[]);
    let keys: Vec<String> = (0..KEYS).map(|index| format!("atomic:{index}")).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let mut conn = strata.connect();
        let keys = keys.clone();
        writers.push(std::thread::spawn(move || {
            for round in 0..ROUNDS {
                let value = format!("{writer}-{round}");
                let mut args = vec![b"MSET".to_vec()];
                for key in &keys {
                    args.push(key.clone().into_bytes());
                    args.push(value.clone().into_bytes());
                }
                assert_eq!(conn.command(&args), b"+OK\r\n");
            }
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut conn = strata.connect();
        let keys = keys.clone();
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let mut checked = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || checked == 0 {
                let mut args = vec![b"MGET".to_vec()];
                args.extend(keys.iter().map(|key| key.clone().into_bytes()));
                let reply = conn.command(&args);
                let values: HashSet<&[u8]> = reply
                    .split(|&c| c == b'\n')
                    .filter(|line| !line.starts_with(b"*") && !line.starts_with(b"$"))
                    .filter(|line| !line.is_empty())
                    .collect();
                assert!(values.len() <= 1, "a torn MSET: {}", common::escape(&reply));
                checked += 1;
            }
            checked
        }));
    }
    for writer in writers {
        writer.join().expect("writer");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().expect("reader") > 0);
    }
}

/// Pipelines of one-key commands run on one hold of their shard, and a run gives way when
/// another thread waits for it (the rest of its requests go round again): with many clients
/// pipelining on one key, every reply still answers its own request, in order, and no write
/// is lost or doubled.
#[test]
fn pipelines_on_one_key_from_many_clients_keep_order_and_lose_nothing() {
    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 4_096;
    const PIPELINE: usize = 64;
    let strata = Server::strata(&[]);
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let mut conn = strata.connect();
        clients.push(std::thread::spawn(move || {
            let mut last_count = 0;
            for start in (0..PER_CLIENT).step_by(PIPELINE) {
                let mut bytes = Vec::new();
                for index in start..start + PIPELINE {
                    let element = format!("{client}:{index}");
                    bytes.extend(encode_command(&["INCR", "counter"]));
                    bytes.extend(encode_command(&["RPUSH", "list", &element]));
                    bytes.extend(encode_command(&["HSET", "hash", &element, "x"]));
                }
                conn.send(&bytes);
                for _ in start..start + PIPELINE {
                    // The counter only grows for this client; the push and the field are new.
                    let count = integer(&conn.read_reply().expect("INCR reply"));
                    assert!(count > last_count, "INCR went from {last_count} to {count}");
                    last_count = count;
                    integer(&conn.read_reply().expect("RPUSH reply"));
                    assert_eq!(conn.read_reply().expect("HSET reply"), b":1\r\n");
                }
            }
        }));
    }
    for client in clients {
        client.join().expect("client");
    }
    let mut conn = strata.connect();
    let total = (CLIENTS * PER_CLIENT) as i64;
    assert_eq!(
        conn.cmd("GET counter"),
        format!("${}\r\n{total}\r\n", total.to_string().len()).into_bytes()
    );
    assert_eq!(integer(&conn.cmd("LLEN list")), total);
    assert_eq!(integer(&conn.cmd("HLEN hash")), total);
    // Each client's pushes are in the list in the order it sent them.
    let mut next = [0usize; CLIENTS];
    for start in (0..total).step_by(10_000) {
        let reply = conn.command(&[
            "LRANGE",
            "list",
            &start.to_string(),
            &(start + 9_999).to_string(),
        ]);
        for line in reply.split(|&c| c == b'\n') {
            let line = String::from_utf8_lossy(line).trim_end().to_string();
            let Some((client, index)) = line.split_once(':') else {
                continue;
            };
            let (Ok(client), Ok(index)) = (client.parse::<usize>(), index.parse::<usize>()) else {
                continue;
            };
            assert_eq!(index, next[client], "client {client}'s pushes out of order");
            next[client] += 1;
        }
    }
    assert_eq!(next, [PER_CLIENT; CLIENTS]);
}

/// SCAN returns every key present for the whole scan at least once, while other keys are
/// added and removed (so the dicts grow, shrink and rehash between calls).
#[test]
fn scan_returns_stable_keys_across_resizes() {
    const STABLE: usize = 5_000;
    const CHURN: usize = 20_000;
    let strata = Server::strata(&[]);
    let mut conn = strata.connect();
    let mut churn = strata.connect();
    pipeline(&mut conn, STABLE, |index| {
        vec![
            b"SET".to_vec(),
            format!("stable:{index}").into_bytes(),
            b"v".to_vec(),
        ]
    });
    let mut seen = HashSet::new();
    let mut cursor = b"0".to_vec();
    let mut round = 0;
    loop {
        let reply = conn.command(&[
            b"SCAN".to_vec(),
            cursor.clone(),
            b"COUNT".to_vec(),
            b"50".to_vec(),
        ]);
        let lines: Vec<&[u8]> = reply
            .split(|&c| c == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .collect();
        // *2, $len, cursor, *n, then $len/key pairs.
        cursor = lines[2].to_vec();
        for key in lines[4..].iter().skip(1).step_by(2) {
            seen.insert(key.to_vec());
        }
        round += 1;
        // Grow for a while, then shrink, mid-scan.
        let grow = round <= 40;
        pipeline(&mut churn, CHURN / 40, |index| {
            let key = format!("churn:{}", (round % 40) * (CHURN / 40) + index).into_bytes();
            if grow {
                vec![b"SET".to_vec(), key, b"v".to_vec()]
            } else {
                vec![b"DEL".to_vec(), key]
            }
        });
        if cursor == b"0" {
            break;
        }
        assert!(round < 100_000, "SCAN did not finish");
    }
    for index in 0..STABLE {
        assert!(
            seen.contains(format!("stable:{index}").as_bytes()),
            "SCAN missed stable:{index}"
        );
    }
}

/// EXEC is isolated: transactions that bump two keys in different shards are never seen
/// half-applied by concurrent readers.
#[test]
fn exec_is_isolated_from_concurrent_readers() {
    const WRITERS: usize = 3;
    const ROUNDS: usize = 300;
    let strata = Server::strata(&[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let mut conn = strata.connect();
        writers.push(std::thread::spawn(move || {
            for _ in 0..ROUNDS {
                conn.send(b"MULTI\r\nINCR left\r\nINCR right\r\nEXEC\r\n");
                assert_eq!(conn.read_reply().expect("MULTI"), b"+OK\r\n");
                assert_eq!(conn.read_reply().expect("queued"), b"+QUEUED\r\n");
                assert_eq!(conn.read_reply().expect("queued"), b"+QUEUED\r\n");
                let exec = conn.read_reply().expect("EXEC");
                assert!(exec.starts_with(b"*2\r\n"), "{}", common::escape(&exec));
            }
        }));
    }
    let mut reader_conn = strata.connect();
    let reader_stop = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut reads = 0;
        while !reader_stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
            let reply = reader_conn.cmd("MGET left right");
            // `*2\r\n` then two bulk replies (or two nils): equal values make equal halves.
            let body = &reply[4..];
            let half = body.len() / 2;
            assert!(
                body.len() % 2 == 0 && body[..half] == body[half..],
                "torn EXEC: {}",
                common::escape(&reply)
            );
            reads += 1;
        }
        reads
    });
    for writer in writers {
        writer.join().expect("writer");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().expect("reader") > 0);
    let mut conn = strata.connect();
    let total = (WRITERS * ROUNDS).to_string();
    let expected = format!(
        "*2\r\n${}\r\n{total}\r\n${}\r\n{total}\r\n",
        total.len(),
        total.len()
    );
    assert_eq!(conn.cmd("MGET left right"), expected.as_bytes());
}

/// Optimistic locking with WATCH: clients increment a counter with GET + MULTI/SET/EXEC and
/// retry when EXEC aborts. Lost updates would leave the counter below the successes.
#[test]
fn watch_prevents_lost_updates() {
    const CLIENTS: usize = 4;
    const INCREMENTS: usize = 100;
    let strata = Server::strata(&[]);
    let mut workers = Vec::new();
    for _ in 0..CLIENTS {
        let mut conn = strata.connect();
        workers.push(std::thread::spawn(move || {
            let mut aborted = 0;
            let mut done = 0;
            while done < INCREMENTS {
                assert!(aborted < 100_000, "no progress");
                assert_eq!(conn.cmd("WATCH counter"), b"+OK\r\n");
                let current = conn.cmd("GET counter");
                let value: u64 = if current.starts_with(b"$-1") {
                    0
                } else {
                    let text = String::from_utf8_lossy(&current).into_owned();
                    text.lines().nth(1).expect("bulk").parse().expect("number")
                };
                conn.send(format!("MULTI\r\nSET counter {}\r\nEXEC\r\n", value + 1).as_bytes());
                conn.read_reply().expect("MULTI");
                conn.read_reply().expect("QUEUED");
                let exec = conn.read_reply().expect("EXEC");
                if exec == b"*-1\r\n" {
                    aborted += 1;
                } else {
                    assert_eq!(exec, b"*1\r\n+OK\r\n");
                    done += 1;
                }
            }
            aborted
        }));
    }
    let aborted: usize = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    let mut conn = strata.connect();
    let total = (CLIENTS * INCREMENTS).to_string();
    assert_eq!(
        conn.cmd("GET counter"),
        format!("${}\r\n{total}\r\n", total.len()).as_bytes()
    );
    eprintln!("{aborted} EXECs aborted by concurrent writers and retried");
}
