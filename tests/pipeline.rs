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
    let (strata, redis) = Server::pair(&[]);
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
    same_as_redis(&lines, b"");
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
