//! Blocking XREAD and XREADGROUP with several real clients: who is woken by XADD, in what
//! order, with what, and when timeouts fire. Each scenario runs on Strata and, when it is
//! installed, on real Redis 7.0.15, and both must answer the same bytes.

mod common;

use common::{Conn, Server};
use std::time::{Duration, Instant};

/// Long enough that a client that should still be blocked surely would have answered.
const QUIET: Duration = Duration::from_millis(200);
const ANSWER: Duration = Duration::from_secs(5);

/// A client's reply, or `(silent)` if it is still blocked.
fn reply_or_silence(conn: &mut Conn, wait: Duration) -> Vec<u8> {
    conn.read_reply_within(wait)
        .unwrap_or_else(|_| b"(silent)".to_vec())
}

/// Runs `scenario` on Strata and on real Redis (when installed); both must agree.
fn on_both(scenario: fn(&Server) -> Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let (strata, redis) = Server::pair(&[]);
    let ours = scenario(&strata);
    if let Some(redis) = redis {
        let theirs = scenario(&redis);
        let show = |replies: &[Vec<u8>]| -> Vec<String> {
            replies
                .iter()
                .map(|reply| String::from_utf8_lossy(reply).into_owned())
                .collect()
        };
        assert_eq!(show(&ours), show(&theirs), "strata vs redis");
    }
    ours
}

/// Three consumers of one group block on `>`; each XADD serves the longest waiting one.
fn group_consumers_in_arrival_order(server: &Server) -> Vec<Vec<u8>> {
    let mut control = server.connect();
    control.cmd("XGROUP CREATE jobs workers $ MKSTREAM");
    let mut consumers: Vec<Conn> = (0..3).map(|_| server.connect()).collect();
    for (index, consumer) in consumers.iter_mut().enumerate() {
        consumer.send(
            format!("XREADGROUP GROUP workers c{index} BLOCK 0 STREAMS jobs >\r\n").as_bytes(),
        );
        common::wait_blocked(&mut control, index + 1);
    }
    let mut replies = vec![control.cmd("XADD jobs 1-1 task one")];
    replies.push(reply_or_silence(&mut consumers[0], ANSWER));
    replies.push(reply_or_silence(&mut consumers[1], QUIET));
    replies.push(control.cmd("XADD jobs 2-1 task two"));
    replies.push(reply_or_silence(&mut consumers[1], ANSWER));
    replies.push(reply_or_silence(&mut consumers[2], QUIET));
    replies.push(control.cmd("XADD jobs 3-1 task three"));
    replies.push(reply_or_silence(&mut consumers[2], ANSWER));
    replies.push(control.cmd("XPENDING jobs workers"));
    replies.push(control.cmd("XINFO GROUPS jobs"));
    assert_eq!(
        common::info_number(&mut control, "clients", "blocked_clients"),
        0
    );
    replies
}

#[test]
fn xreadgroup_waiters_are_served_first_come_first_served() {
    let replies = on_both(group_consumers_in_arrival_order);
    assert_eq!(
        replies[1],
        b"*1\r\n*2\r\n$4\r\njobs\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$4\r\ntask\r\n$3\r\none\r\n"
    );
    assert_eq!(replies[2], b"(silent)");
    assert_eq!(replies[5], b"(silent)");
}

/// XREAD `$` waiters all see the entry added after they blocked, and only it.
fn xread_dollar_sees_only_new_entries(server: &Server) -> Vec<Vec<u8>> {
    let mut control = server.connect();
    control.cmd("XADD feed 1-1 old entry");
    let mut readers: Vec<Conn> = (0..3).map(|_| server.connect()).collect();
    for (index, reader) in readers.iter_mut().enumerate() {
        reader.send(b"XREAD BLOCK 0 STREAMS other feed $ $\r\n");
        common::wait_blocked(&mut control, index + 1);
    }
    let mut replies = vec![control.cmd("XADD unrelated 1-1 a b")];
    replies.push(reply_or_silence(&mut readers[0], QUIET));
    replies.push(control.cmd("XADD feed 2-1 new entry"));
    for reader in &mut readers {
        replies.push(reply_or_silence(reader, ANSWER));
    }
    // A blocked read with COUNT gets at most that many of a burst (MULTI adds two at once).
    let mut counted = server.connect();
    counted.send(b"XREAD COUNT 1 BLOCK 0 STREAMS feed $\r\n");
    common::wait_blocked(&mut control, 1);
    // COUNT 0 means no limit, and a blocked read then gets Redis's default of 1000.
    let mut unlimited = server.connect();
    unlimited.send(b"XREAD COUNT 0 BLOCK 0 STREAMS feed $\r\n");
    common::wait_blocked(&mut control, 2);
    control.cmd("MULTI");
    control.cmd("XADD feed 3-1 a b");
    control.cmd("XADD feed 4-1 c d");
    replies.push(control.cmd("EXEC"));
    replies.push(reply_or_silence(&mut counted, ANSWER));
    replies.push(reply_or_silence(&mut unlimited, ANSWER));
    replies
}

#[test]
fn xread_dollar_waiters_all_get_the_new_entry() {
    let replies = on_both(xread_dollar_sees_only_new_entries);
    assert_eq!(replies[1], b"(silent)");
    let expected: &[u8] =
        b"*1\r\n*2\r\n$4\r\nfeed\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$3\r\nnew\r\n$5\r\nentry\r\n";
    for reply in &replies[3..6] {
        assert_eq!(reply, expected);
    }
    assert_eq!(
        replies[7],
        b"*1\r\n*2\r\n$4\r\nfeed\r\n*1\r\n*2\r\n$3\r\n3-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
}

/// Blocked XREADGROUP clients learn that their group or their stream went away.
fn group_or_key_removed(server: &Server) -> Vec<Vec<u8>> {
    let mut control = server.connect();
    control.cmd("XGROUP CREATE gone g $ MKSTREAM");
    let mut first = server.connect();
    first.send(b"XREADGROUP GROUP g c BLOCK 0 STREAMS gone >\r\n");
    common::wait_blocked(&mut control, 1);
    let mut replies = vec![control.cmd("XGROUP DESTROY gone g")];
    replies.push(reply_or_silence(&mut first, ANSWER));
    control.cmd("XGROUP CREATE gone g $");
    let mut second = server.connect();
    second.send(b"XREADGROUP GROUP g c BLOCK 0 STREAMS gone >\r\n");
    common::wait_blocked(&mut control, 1);
    replies.push(control.cmd("DEL gone"));
    replies.push(reply_or_silence(&mut second, ANSWER));
    // A plain XREAD keeps waiting when its key is deleted.
    control.cmd("XADD kept 1-1 a b");
    let mut reader = server.connect();
    reader.send(b"XREAD BLOCK 0 STREAMS kept $\r\n");
    common::wait_blocked(&mut control, 1);
    replies.push(control.cmd("DEL kept"));
    replies.push(reply_or_silence(&mut reader, QUIET));
    replies.push(control.cmd("XADD kept 2-1 c d"));
    replies.push(reply_or_silence(&mut reader, ANSWER));
    replies
}

#[test]
fn removed_group_or_stream_unblocks_with_an_error() {
    let replies = on_both(group_or_key_removed);
    assert_eq!(
        replies[1],
        b"-NOGROUP the consumer group this client was blocked on no longer exists\r\n"
    );
    assert_eq!(
        replies[3],
        b"-UNBLOCKED the stream key no longer exists\r\n"
    );
    assert_eq!(replies[5], b"(silent)");
}

#[test]
fn timeouts_have_millisecond_precision() {
    let strata = Server::strata(&[]);
    let mut conn = strata.connect();
    let started = Instant::now();
    assert_eq!(conn.cmd("XREAD BLOCK 250 STREAMS nothing $"), b"*-1\r\n");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_millis(1000), "{waited:?}");
    conn.cmd("XGROUP CREATE s g $ MKSTREAM");
    let started = Instant::now();
    assert_eq!(
        conn.cmd("XREADGROUP GROUP g c BLOCK 120 STREAMS s >"),
        b"*-1\r\n"
    );
    assert!(started.elapsed() >= Duration::from_millis(120));
    // A timed-out client is no longer blocked: a later XADD does not reach it.
    assert_eq!(
        common::info_number(&mut conn, "clients", "blocked_clients"),
        0
    );
    assert_eq!(conn.cmd("XADD s 1-1 a b"), b"$3\r\n1-1\r\n");
}

/// A blocked reader is answered with one stream even when it named it several times, and
/// RENAME onto a blocked key serves it (or fails it when the group is missing).
fn one_stream_per_wake_up_and_rename(server: &Server) -> Vec<Vec<u8>> {
    let mut control = server.connect();
    control.cmd("XADD twice 1-1 old entry");
    let mut reader = server.connect();
    reader.send(b"XREAD BLOCK 0 STREAMS twice twice twice $ $ $\r\n");
    common::wait_blocked(&mut control, 1);
    let mut replies = vec![control.cmd("XADD twice 2-1 new entry")];
    replies.push(reply_or_silence(&mut reader, ANSWER));

    control.cmd("XGROUP CREATE target g $ MKSTREAM");
    let mut consumer = server.connect();
    consumer.send(b"XREADGROUP GROUP g alice BLOCK 0 STREAMS target >\r\n");
    common::wait_blocked(&mut control, 1);
    control.cmd("XADD source 1-1 moved here");
    control.cmd("XGROUP CREATE source g 0");
    replies.push(control.cmd("RENAME source target"));
    replies.push(reply_or_silence(&mut consumer, ANSWER));

    control.cmd("XGROUP CREATE other g $ MKSTREAM");
    let mut orphan = server.connect();
    orphan.send(b"XREADGROUP GROUP g bob BLOCK 0 STREAMS other >\r\n");
    common::wait_blocked(&mut control, 1);
    control.cmd("XADD groupless 1-1 a b");
    replies.push(control.cmd("RENAME groupless other"));
    replies.push(reply_or_silence(&mut orphan, ANSWER));
    replies
}

#[test]
fn blocked_readers_get_one_stream_and_rename_wakes_them() {
    let replies = on_both(one_stream_per_wake_up_and_rename);
    assert_eq!(
        replies[1],
        b"*1\r\n*2\r\n$5\r\ntwice\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$3\r\nnew\r\n$5\r\nentry\r\n"
    );
}
