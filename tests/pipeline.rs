//! Pipelines sent in one write get, byte for byte, the replies real Redis sends. Strata runs
//! successive multi-key requests of a pipeline on one hold of their shards' locks
//! (`command::dispatch_run`); these pipelines mix such runs with what must break them: other
//! commands, SELECT, MULTI, errors, a blocked client to serve, a protocol error.

mod common;

use common::{encode_command, escape, Conn, Server};
use std::time::Duration;

/// Sends `lines` as one write and returns every reply, or everything up to the close when
/// the server closes the connection.
fn pipelined(conn: &mut Conn, lines: &[&str], raw_tail: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split(' ').collect();
        bytes.extend(encode_command(&words));
    }
    bytes.extend_from_slice(raw_tail);
    conn.send(&bytes);
    if raw_tail.is_empty() {
        let mut replies = Vec::new();
        for _ in lines {
            replies.extend(conn.read_reply().expect("a reply"));
        }
        replies
    } else {
        conn.read_until_closed(Duration::from_secs(5))
            .unwrap_or_else(|partial| partial)
    }
}

/// The same pipeline to both servers: the same bytes back.
fn same_as_redis(lines: &[&str], raw_tail: &[u8]) {
    same_as_redis_with(&[], lines, raw_tail);
}

/// [`same_as_redis`] with both servers started with `extra` arguments.
fn same_as_redis_with(extra: &[&str], lines: &[&str], raw_tail: &[u8]) {
    let (strata, redis) = Server::pair(extra);
    let Some(redis) = redis else {
        return;
    };
    let mine = pipelined(&mut strata.connect(), lines, raw_tail);
    let theirs = pipelined(&mut redis.connect(), lines, raw_tail);
    assert_eq!(escape(&mine), escape(&theirs));
}

#[test]
fn runs_of_multi_key_commands_reply_as_redis_does() {
    let mut lines = vec![
        "MSET a 1 b 2 c 3",
        "MSET d 4 e 5",
        "MGET a b c d e f",
        "EXISTS a b f",
        "SET s x",
        "MSETNX a 9 g 7",
        "MSETNX g 7 h 8",
        "MGET a g h",
        "DEL a b",
        "RPUSH l1 x y",
        "SINTER l1 s",
        "MSET odd",
        "SELECT 1",
        "MSET a 10 b 20",
        "MGET a b c",
        "SELECT 0",
        "MGET a b c",
        "MULTI",
        "MSET x 1 y 2",
        "MGET x y",
        "EXEC",
        "RENAME c cc",
        "MGET c cc",
        "LMOVE l1 l2 LEFT RIGHT",
        "LMOVE l1 l2 LEFT RIGHT",
        "LMOVE l1 l2 LEFT RIGHT",
        "LRANGE l2 0 -1",
        "SMOVE nosuch set2 m",
        "DEL d e f g h",
    ];
    // Longer than one run, to cross the run's bound.
    let many: Vec<String> = (0..40).map(|i| format!("MSET m{i} {i} n{i} {i}")).collect();
    lines.extend(many.iter().map(String::as_str));
    lines.push("MGET m0 n39 m17");
    same_as_redis(&lines, b"");
}

/// A run locates a key once for the commands after it that name the same key, and their
/// look-ups take its shard and hash from there: the key changing under them (renamed,
/// deleted, moved, expiring, recreated with another type) must still answer as Redis does.
#[test]
fn runs_on_one_key_reply_as_redis_does() {
    let mut lines: Vec<String> = Vec::new();
    for _ in 0..3 {
        for i in 0..20 {
            lines.push(format!("SADD s m{i}"));
        }
        lines.extend(
            [
                "SCARD s",
                "RENAME s t",
                "SADD s again",
                "SMEMBERS s",
                "SCARD t",
                "DEL t",
                "INCR n",
                "INCR n",
                "INCRBY n 5",
                "PEXPIRE n 1",
                "DEBUG SLEEP 0.01",
                "INCR n",
                "INCR n",
                "GETDEL n",
                "INCR n",
                "MOVE n 1",
                "INCR n",
                "COPY n n2",
                "GET n2",
                "HSET h f v",
                "HSET h f w",
                "HGET h f",
                "DEL h",
                "LPUSH h x",
                "HSET h f v",
                "LPOP h",
                "HSET h f v",
                "SET e x EX 100",
                "SET e y",
                "TTL e",
                "DEL s n n2 h e",
            ]
            .iter()
            .map(|line| line.to_string()),
        );
    }
    lines.push("SELECT 1".to_string());
    lines.push("GET n".to_string());
    lines.push("DEL n".to_string());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    // DEBUG SLEEP waits the 1 ms expiry out on both servers: without it the pipeline would
    // race the clock.
    same_as_redis_with(&DEBUG_ON, &lines, b"");
}

#[test]
fn a_protocol_error_after_a_run_comes_after_its_replies() {
    same_as_redis(
        &["MSET a 1 b 2", "MSET c 3 d 4", "MGET a b c d"],
        b"*2\r\n$3\r\nGET\r\n$x\r\n",
    );
}

#[test]
fn a_client_readied_inside_a_run_is_served_before_the_next_command() {
    // The first LMOVE readies `q`; Redis serves the blocked BLPOP at once, so the second
    // LMOVE finds `q` empty. Served only after the run, the second would have moved `a`.
    let (strata, redis) = Server::pair(&[]);
    let Some(redis) = redis else {
        return;
    };
    let mut outcomes = Vec::new();
    for server in [&strata, &redis] {
        let mut waiter = server.connect();
        let mut conn = server.connect();
        conn.cmd("RPUSH src a");
        waiter.send_command(&["BLPOP", "q", "0"]);
        common::wait_blocked(&mut conn, 1);
        let replies = pipelined(
            &mut conn,
            &[
                "LMOVE src q LEFT RIGHT",
                "LMOVE q other LEFT RIGHT",
                "MGET q other",
            ],
            b"",
        );
        let served = waiter.read_reply().expect("the waiter is served");
        outcomes.push((escape(&replies), escape(&served)));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert!(outcomes[1].1.contains('a'), "{:?}", outcomes[1]);
}

/// A client streaming requests that get no reply (`CLIENT REPLY OFF`) as fast as it can
/// keeps its connection thread busy; the other clients of that thread, whose replies wait
/// for the end of the thread's turn, still get them promptly. Whether the stream keeps the
/// thread from ever running out of work depends on how fast it arrives (here it does not
/// quite: this passes without the bound on the wait too); the unit test
/// `a_busy_thread_still_ends_turns` forces that case, and the bound (`threads::tick`) is
/// what answers it.
#[test]
fn a_client_streaming_without_replies_does_not_hold_back_the_others() {
    let server = Server::strata(&["--io-threads", "1"]);
    let mut streamer = server.connect();
    // CLIENT REPLY OFF gets no reply either.
    streamer.send_command(&["CLIENT", "REPLY", "OFF"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let streaming = {
        let stop = stop.clone();
        let chunk: Vec<u8> = (0..2000)
            .flat_map(|i| encode_command(&["SET", "streamed", &i.to_string()]))
            .collect();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if streamer.try_send(&chunk).is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        })
    };
    // Let the stream fill the socket first.
    std::thread::sleep(Duration::from_millis(200));
    let mut other = server.connect();
    for _ in 0..20 {
        other.send_command(&["PING"]);
        let reply = other.read_reply_within(Duration::from_secs(5));
        assert_eq!(
            reply.expect("PONG while the other client streams"),
            b"+PONG\r\n"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let chunks = streaming.join().expect("the streaming thread");
    assert!(
        chunks > 0,
        "the stream was running while the PINGs were answered"
    );
}

/// Lets DEBUG SLEEP run (Redis refuses DEBUG by default), so a test can wait an expiry out.
const DEBUG_ON: [&str; 2] = ["--enable-debug-command", "yes"];

/// Random pipelines of key commands over a few keys, the same to both servers, reply by
/// reply: runs of every length, repeated keys (located once per run), keys changing type,
/// expiring, renamed, moved and copied between them, errors (WRONGTYPE, no such key) inside
/// runs. Deterministic: a fixed generator and fixed seeds.
#[test]
fn random_pipelines_reply_as_redis_does() {
    let (strata, redis) = Server::pair(&DEBUG_ON);
    let Some(redis) = redis else {
        return;
    };
    for seed in [1u64, 7, 42, 99, 1234, 2026, 31337, 65537] {
        let lines = random_commands(seed, 600);
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let mut mine = strata.connect();
        let mut theirs = redis.connect();
        let mut bytes = Vec::new();
        for line in &lines {
            let words: Vec<&str> = line.split(' ').collect();
            bytes.extend(encode_command(&words));
        }
        mine.send(&bytes);
        theirs.send(&bytes);
        for (index, line) in lines.iter().enumerate() {
            let a = mine.read_reply().expect("a reply from strata");
            let b = theirs.read_reply().expect("a reply from redis");
            assert_eq!(
                escape(&a),
                escape(&b),
                "seed {seed}, command {index}: {line}; the commands before it:\n{}",
                lines[..index].join("\n")
            );
            if line.starts_with("DEBUG SLEEP") {
                assert_eq!(a, b"+OK\r\n", "the expiry must be waited out, not raced");
            }
        }
        mine.send(&encode_command(&["FLUSHALL"]));
        theirs.send(&encode_command(&["FLUSHALL"]));
        mine.read_reply().expect("flushed");
        theirs.read_reply().expect("flushed");
    }
}

/// About `count` commands drawn from a fixed menu over keys `k0`..`k3`, members `m0`..`m3`;
/// nothing in it depends on timing (an expiry is waited out with DEBUG SLEEP).
fn random_commands(seed: u64, count: usize) -> Vec<String> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let mut lines = Vec::with_capacity(count);
    while lines.len() < count {
        let k = format!("k{}", next(4));
        let k2 = format!("k{}", next(4));
        let m = format!("m{}", next(4));
        let n = next(100);
        let line = match next(36) {
            0 => format!("SET {k} v{n}"),
            1 => format!("GET {k}"),
            2 => format!("INCR {k}"),
            3 => format!("APPEND {k} x"),
            4 => format!("DEL {k}"),
            5 => format!("EXISTS {k} {k2}"),
            6 => format!("SADD {k} {m}"),
            7 => format!("SREM {k} {m}"),
            8 => format!("SCARD {k}"),
            9 => format!("SISMEMBER {k} {m}"),
            10 => format!("HSET {k} {m} {n}"),
            11 => format!("HGET {k} {m}"),
            12 => format!("HDEL {k} {m}"),
            13 => format!("HGETALL {k}"),
            14 => format!("LPUSH {k} {m}"),
            15 => format!("RPOP {k}"),
            16 => format!("LRANGE {k} 0 -1"),
            17 => format!("ZADD {k} {n} {m}"),
            18 => format!("ZSCORE {k} {m}"),
            19 => format!("ZRANGE {k} 0 -1 WITHSCORES"),
            20 => format!("RENAME {k} {k2}"),
            21 => format!("TYPE {k}"),
            // Expired for certain once the sleep is over, on both servers alike.
            22 => {
                lines.push(format!("PEXPIRE {k} 1"));
                "DEBUG SLEEP 0.002".to_string()
            }
            23 => format!("PERSIST {k}"),
            24 => format!("MSET {k} a{n} {k2} b{n}"),
            25 => format!("MGET {k} {k2} k9"),
            26 => format!("GETDEL {k}"),
            27 => format!("COPY {k} {k2} REPLACE"),
            28 => format!("SINTERCARD 2 {k} {k2}"),
            29 => format!("MOVE {k} 1"),
            30 => "SELECT 1".to_string(),
            31 => "SELECT 0".to_string(),
            32 => format!("EXPIRE {k} 100"),
            33 => format!("TTL {k}"),
            // Runs of one key: the case a run locates once.
            _ => {
                for _ in 0..next(20) {
                    lines.push(format!("SADD {k} {}", next(8)));
                }
                format!("SCARD {k}")
            }
        };
        lines.push(line);
    }
    lines
}
