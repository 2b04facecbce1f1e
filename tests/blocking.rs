//! Blocking commands with several real clients: who is served, in what order, when.

mod common;

use common::{Conn, Server};
use std::time::{Duration, Instant};

/// Long enough that a client that should still be blocked surely would have answered.
const QUIET: Duration = Duration::from_millis(200);
const ANSWER: Duration = Duration::from_secs(5);

fn silent(conn: &mut Conn) {
    assert!(
        conn.read_reply_within(QUIET).is_err(),
        "a blocked client answered"
    );
}

#[test]
fn clients_are_served_first_come_first_served() {
    let strata = Server::strata(&[]);
    let mut control = strata.connect();
    let mut waiters: Vec<Conn> = (0..3).map(|_| strata.connect()).collect();
    for (index, waiter) in waiters.iter_mut().enumerate() {
        waiter.send(b"BLPOP queue 0\r\n");
        common::wait_blocked(&mut control, index + 1);
    }
    assert_eq!(control.cmd("RPUSH queue first second"), b":2\r\n");
    assert_eq!(
        waiters[0].read_reply_within(ANSWER).expect("first"),
        b"*2\r\n$5\r\nqueue\r\n$5\r\nfirst\r\n"
    );
    assert_eq!(
        waiters[1].read_reply_within(ANSWER).expect("second"),
        b"*2\r\n$5\r\nqueue\r\n$6\r\nsecond\r\n"
    );
    silent(&mut waiters[2]);
    assert_eq!(control.cmd("LLEN queue"), b":0\r\n");
    control.cmd("LPUSH queue third");
    assert_eq!(
        waiters[2].read_reply_within(ANSWER).expect("third"),
        b"*2\r\n$5\r\nqueue\r\n$5\r\nthird\r\n"
    );
    assert_eq!(
        common::info_number(&mut control, "clients", "blocked_clients"),
        0
    );
}

#[test]
fn timeouts_have_millisecond_precision() {
    let strata = Server::strata(&[]);
    let mut conn = strata.connect();
    let started = Instant::now();
    assert_eq!(conn.cmd("BLPOP nothing 0.25"), b"*-1\r\n");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_millis(1000), "{waited:?}");
    let started = Instant::now();
    assert_eq!(conn.cmd("BZPOPMIN nothing 0.1"), b"*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[test]
fn rename_and_exec_wake_blocked_clients() {
    let strata = Server::strata(&[]);
    let mut control = strata.connect();
    let mut by_rename = strata.connect();
    by_rename.send(b"BLPOP target 0\r\n");
    common::wait_blocked(&mut control, 1);
    control.cmd("RPUSH staging moved");
    assert_eq!(control.cmd("RENAME staging target"), b"+OK\r\n");
    assert_eq!(
        by_rename.read_reply_within(ANSWER).expect("rename wakes"),
        b"*2\r\n$6\r\ntarget\r\n$5\r\nmoved\r\n"
    );
    let mut by_exec = strata.connect();
    by_exec.send(b"BZPOPMAX scores 0\r\n");
    common::wait_blocked(&mut control, 1);
    control.send(b"MULTI\r\nZADD scores 1 low 2 high\r\nEXEC\r\n");
    for _ in 0..3 {
        control.read_reply().expect("transaction replies");
    }
    assert_eq!(
        by_exec.read_reply_within(ANSWER).expect("exec wakes"),
        b"*3\r\n$6\r\nscores\r\n$4\r\nhigh\r\n$1\r\n2\r\n"
    );
}

#[test]
fn blmove_chains_wake_the_next_waiter() {
    let strata = Server::strata(&[]);
    let mut control = strata.connect();
    let mut mover = strata.connect();
    let mut reader = strata.connect();
    mover.send(b"BLMOVE inbox outbox LEFT RIGHT 0\r\n");
    common::wait_blocked(&mut control, 1);
    reader.send(b"BLPOP outbox 0\r\n");
    common::wait_blocked(&mut control, 2);
    control.cmd("RPUSH inbox job");
    assert_eq!(
        mover.read_reply_within(ANSWER).expect("moved"),
        b"$3\r\njob\r\n"
    );
    assert_eq!(
        reader.read_reply_within(ANSWER).expect("read"),
        b"*2\r\n$6\r\noutbox\r\n$3\r\njob\r\n"
    );
    assert_eq!(control.cmd("EXISTS inbox outbox"), b":0\r\n");
}

#[test]
fn client_unblock_and_disconnect_leave_nothing_behind() {
    let strata = Server::strata(&[]);
    let mut control = strata.connect();
    let mut waiter = strata.connect();
    let id = String::from_utf8(waiter.cmd("CLIENT ID")).expect("utf8");
    let id = id.trim_start_matches(':').trim().to_string();
    waiter.send(b"BLPOP k 0\r\n");
    common::wait_blocked(&mut control, 1);
    assert_eq!(control.cmd(&format!("CLIENT UNBLOCK {id}")), b":1\r\n");
    assert_eq!(
        waiter.read_reply_within(ANSWER).expect("timeout reply"),
        b"*-1\r\n"
    );
    waiter.send(b"BLPOP k 0\r\n");
    common::wait_blocked(&mut control, 1);
    assert_eq!(
        control.cmd(&format!("CLIENT UNBLOCK {id} ERROR")),
        b":1\r\n"
    );
    assert_eq!(
        waiter.read_reply_within(ANSWER).expect("error reply"),
        b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    assert_eq!(control.cmd(&format!("CLIENT UNBLOCK {id}")), b":0\r\n");
    waiter.send(b"BLPOP k 0\r\n");
    common::wait_blocked(&mut control, 1);
    drop(waiter);
    common::wait_blocked(&mut control, 0);
    // Nothing was left queued on the key: a push is kept, not handed to a departed client.
    control.cmd("RPUSH k kept");
    assert_eq!(control.cmd("LLEN k"), b":1\r\n");
}

#[test]
fn a_key_of_another_type_keeps_clients_waiting() {
    let strata = Server::strata(&[]);
    let mut control = strata.connect();
    let mut waiter = strata.connect();
    waiter.send(b"BLPOP k 0\r\n");
    common::wait_blocked(&mut control, 1);
    control.cmd("SET k string");
    silent(&mut waiter);
    control.cmd("DEL k");
    control.cmd("RPUSH k finally");
    assert_eq!(
        waiter.read_reply_within(ANSWER).expect("served"),
        b"*2\r\n$1\r\nk\r\n$7\r\nfinally\r\n"
    );
}

#[test]
fn commands_sent_while_blocked_run_after_the_reply() {
    let strata = Server::strata(&[]);
    let mut control = strata.connect();
    let mut waiter = strata.connect();
    waiter.send(b"BLPOP k 0\r\nPING\r\n");
    common::wait_blocked(&mut control, 1);
    silent(&mut waiter);
    control.cmd("RPUSH k v");
    assert_eq!(
        waiter.read_reply_within(ANSWER).expect("served"),
        b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n"
    );
    assert_eq!(
        waiter.read_reply_within(ANSWER).expect("then PING"),
        b"+PONG\r\n"
    );
}
