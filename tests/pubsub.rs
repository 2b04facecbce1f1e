//! Pub/sub over real sockets: a subscriber that never reads is closed by
//! `client-output-buffer-limit pubsub` (hard limit at once, soft limit after its seconds),
//! with Redis's log line, while the server's memory stays bounded; subscribers that do read
//! get every message, in order.

mod common;

use common::{Conn, Server};
use std::time::{Duration, Instant};

/// Messages of this size make 100 MB in `PUBLISHES_HARD` publishes.
const MESSAGE_BYTES: usize = 1024 * 1024;
const PUBLISHES_HARD: usize = 100;
/// The log line Redis writes when it closes a client for its output.
const LIMIT_LOG: &str = "scheduled to be closed ASAP for overcoming of output buffer limits";

/// A subscriber. Its socket buffers are left as they are: a tiny receive window makes the
/// kernel drain what the server had sent before closing so slowly (zero-window probes) that
/// the close is seen only after minutes.
fn subscriber(server: &Server, channel: &str) -> Conn {
    let mut conn = server.connect();
    let reply = conn.cmd(&format!("SUBSCRIBE {channel}"));
    assert!(
        reply.starts_with(b"*3\r\n$9\r\nsubscribe\r\n"),
        "{}",
        common::escape(&reply)
    );
    conn
}

/// An INFO field as a number.
fn info_field(conn: &mut Conn, section: &str, field: &str) -> u64 {
    let reply = conn.cmd(&format!("INFO {section}"));
    let text = String::from_utf8_lossy(&reply).into_owned();
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}: {text}"))
}

/// Subscribers of `channel`, by PUBSUB NUMSUB.
fn subscribers(conn: &mut Conn, channel: &str) -> u64 {
    let reply = conn.cmd(&format!("PUBSUB NUMSUB {channel}"));
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines()
        .last()
        .and_then(|line| line.strip_prefix(':'))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("bad NUMSUB reply: {text}"))
}

/// Reads and discards until the server closes the connection; false on timeout.
fn closed_within(conn: &mut Conn, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match conn.read_until_closed(remaining.min(Duration::from_millis(200))) {
            Ok(_) => return true,
            Err(_) => continue,
        }
    }
    false
}

#[test]
fn a_subscriber_that_never_reads_is_closed_at_the_hard_limit_and_memory_stays_bounded() {
    let server = Server::strata(&[]);
    let mut publisher = server.connect();
    let baseline = info_field(&mut publisher, "memory", "used_memory");
    let mut sleeper = subscriber(&server, "flood");
    let message = "x".repeat(MESSAGE_BYTES);
    let mut used_max = 0;
    let mut delivered = Vec::new();
    for _ in 0..PUBLISHES_HARD {
        let reply = publisher.command(&[b"PUBLISH".as_slice(), b"flood", message.as_bytes()]);
        delivered.push(reply);
        used_max = used_max.max(info_field(&mut publisher, "memory", "used_memory"));
    }
    // Received while under the limit, then 0 once the subscriber was closed.
    assert_eq!(delivered.first().map(Vec::as_slice), Some(&b":1\r\n"[..]));
    assert_eq!(delivered.last().map(Vec::as_slice), Some(&b":0\r\n"[..]));
    assert_eq!(subscribers(&mut publisher, "flood"), 0);
    eprintln!(
        "used_memory grew by at most {} bytes",
        used_max.saturating_sub(baseline)
    );
    // 32 MB of pending output at most, plus a message or two in flight; never the 100 MB.
    let grown = used_max.saturating_sub(baseline);
    assert!(
        grown < 48 * 1024 * 1024,
        "used_memory grew by {grown} bytes (baseline {baseline})"
    );
    assert!(closed_within(&mut sleeper, Duration::from_secs(30)));
    assert!(server.log().contains(LIMIT_LOG), "log:\n{}", server.log());
    assert!(
        server.log().contains("flags=P"),
        "the client's line is logged"
    );
    // The server is fine afterwards, and a reading subscriber gets everything.
    let mut reader = server.connect();
    reader.cmd("SUBSCRIBE calm");
    for index in 0..100 {
        let reply = publisher.cmd(&format!("PUBLISH calm m{index}"));
        assert_eq!(reply, b":1\r\n");
    }
    for index in 0..100 {
        let text = format!("m{index}");
        let expected = format!(
            "*3\r\n$7\r\nmessage\r\n$4\r\ncalm\r\n${}\r\n{text}\r\n",
            text.len()
        );
        let message = reader.read_reply().expect("a message");
        assert_eq!(message, expected.as_bytes());
    }
}

#[test]
fn a_subscriber_over_the_soft_limit_for_longer_than_its_seconds_is_closed() {
    let server = Server::strata(&["--client-output-buffer-limit", "pubsub 0 256kb 1"]);
    let mut publisher = server.connect();
    let mut sleeper = subscriber(&server, "slow");
    let message = "y".repeat(64 * 1024);
    let started = Instant::now();
    let mut first_over: Option<Instant> = None;
    let mut closed_after = None;
    while started.elapsed() < Duration::from_secs(15) {
        publisher.command(&[b"PUBLISH".as_slice(), b"slow", message.as_bytes()]);
        let list = String::from_utf8_lossy(&publisher.cmd("CLIENT LIST TYPE pubsub")).into_owned();
        let omem = list
            .split_whitespace()
            .find_map(|field| field.strip_prefix("omem="))
            .and_then(|value| value.parse::<u64>().ok());
        match omem {
            Some(omem) if omem >= 256 * 1024 => {
                first_over.get_or_insert_with(Instant::now);
            }
            Some(_) => {}
            None => {
                closed_after = first_over.map(|since| since.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let over_for = closed_after.expect("the subscriber went over the soft limit and was closed");
    // Over the soft limit for more than 1 whole second of unix time: at least a moment past
    // the limit, at most 2 seconds and a margin for the loop.
    assert!(
        over_for > Duration::from_millis(100) && over_for < Duration::from_secs(4),
        "closed after {over_for:?} over the soft limit"
    );
    assert!(closed_within(&mut sleeper, Duration::from_secs(30)));
    assert!(server.log().contains(LIMIT_LOG), "log:\n{}", server.log());
}

#[test]
fn client_list_shows_subscriptions_and_resp3_pushes_interleave_with_replies() {
    let server = Server::strata(&[]);
    let mut conn = server.connect();
    conn.cmd("HELLO 3");
    conn.cmd("SUBSCRIBE a b");
    // The second confirmation arrives as its own frame.
    conn.read_reply().expect("second confirmation");
    conn.cmd("PSUBSCRIBE p*");
    conn.cmd("SSUBSCRIBE s");
    let info = String::from_utf8_lossy(&conn.cmd("CLIENT INFO")).into_owned();
    assert!(info.contains("flags=P db=0 sub=2 psub=1 ssub=1 "), "{info}");
    // A message to oneself comes before PUBLISH's reply.
    conn.send_command(&["PUBLISH", "a", "hi"]);
    assert_eq!(
        conn.read_reply().expect("the message"),
        b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"
    );
    assert_eq!(conn.read_reply().expect("the reply"), b":1\r\n");
    let mut other = server.connect();
    let stats = String::from_utf8_lossy(&other.cmd("INFO stats")).into_owned();
    assert!(stats.contains("pubsub_channels:2\r\n"), "{stats}");
    assert!(stats.contains("pubsub_patterns:1\r\n"), "{stats}");
    assert!(stats.contains("pubsubshard_channels:1\r\n"), "{stats}");
    // A disconnect leaves nothing behind.
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(10);
    while subscribers(&mut other, "a") != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = String::from_utf8_lossy(&other.cmd("INFO stats")).into_owned();
    assert!(stats.contains("pubsub_channels:0\r\n"), "{stats}");
    assert!(stats.contains("pubsub_patterns:0\r\n"), "{stats}");
    assert!(stats.contains("pubsubshard_channels:0\r\n"), "{stats}");
}

#[test]
fn a_normal_client_over_its_hard_limit_is_closed_as_in_redis() {
    let args = ["--client-output-buffer-limit", "normal 1mb 0 0"];
    let (strata, redis) = Server::pair(&args);
    for server in std::iter::once(&strata).chain(redis.as_ref()) {
        let mut conn = server.connect();
        let value = "v".repeat(600 * 1024);
        assert_eq!(
            conn.command(&[b"SET".as_slice(), b"big", value.as_bytes()]),
            b"+OK\r\n"
        );
        // Ten replies of 600 KB asked for at once: the second one passes the 1 MB limit.
        let mut pipeline = Vec::new();
        for _ in 0..10 {
            pipeline.extend(common::encode_command(&["GET", "big"]));
        }
        conn.send(&pipeline);
        let received = conn
            .read_until_closed(Duration::from_secs(20))
            .unwrap_or_else(|partial| panic!("not closed; {} bytes read", partial.len()));
        assert!(
            received.len() < 10 * value.len(),
            "{} bytes arrived before the close",
            received.len()
        );
        let mut other = server.connect();
        assert_eq!(other.cmd("PING"), b"+PONG\r\n");
    }
    assert!(strata.log().contains(LIMIT_LOG), "log:\n{}", strata.log());
}
