//! Protocol limits over raw sockets: every protocol error replies `-ERR Protocol error: ...`
//! and closes the connection, exactly as Redis 7.0 does; a client cannot make the server
//! allocate what it only declares; buffers and client counts are bounded by the config.
//!
//! Each case runs against Strata and, when installed, a real redis-server started with the
//! same options; both must produce the expected bytes.

mod common;

use common::{escape, Server};
use std::time::{Duration, Instant};

/// How long a server may take to close a connection after a protocol error.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `input` on a fresh connection and returns everything received until the server
/// closed the connection; panics when it does not close.
fn send_until_closed(server: &Server, input: &[u8]) -> Vec<u8> {
    let mut conn = server.connect();
    // The server may close before reading everything; a failed write is then expected.
    let _ = conn.try_send(input);
    conn.read_until_closed(CLOSE_TIMEOUT)
        .unwrap_or_else(|partial| {
            panic!(
                "{} did not close the connection after {} (received {})",
                server.kind.name(),
                escape(&input[..input.len().min(80)]),
                escape(&partial)
            )
        })
}

/// Every case against every server: the bytes received before the close must match.
fn check_closing_cases(servers: &[&Server], cases: &[(&str, Vec<u8>, &[u8])]) {
    let mut failures = Vec::new();
    for server in servers {
        for (name, input, expected) in cases {
            let received = send_until_closed(server, input);
            if received != *expected {
                failures.push(format!(
                    "{} / {name}: expected {} got {}",
                    server.kind.name(),
                    escape(expected),
                    escape(&received)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn servers<'a>(strata: &'a Server, redis: &'a Option<Server>) -> Vec<&'a Server> {
    let mut servers = vec![strata];
    servers.extend(redis.iter());
    servers
}

#[test]
fn protocol_errors_reply_and_close() {
    let options = ["--proto-max-bulk-len", "1mb"];
    let (strata, redis) = Server::pair(&options);
    let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
        (
            "invalid multibulk length (letters)",
            b"*abc\r\n".to_vec(),
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            "invalid multibulk length (over INT_MAX)",
            b"*3000000000\r\n".to_vec(),
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            "invalid bulk length ($-1 inside an array)",
            b"*1\r\n$-1\r\n".to_vec(),
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            "invalid bulk length ($abc)",
            b"*2\r\n$3\r\nGET\r\n$abc\r\n".to_vec(),
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            "invalid bulk length (over proto-max-bulk-len)",
            b"*1\r\n$2000000\r\n".to_vec(),
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            "expected '$', got ':'",
            b"*1\r\n:1\r\n".to_vec(),
            b"-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            "leading zero in a multibulk count",
            b"*01\r\n$4\r\nPING\r\n".to_vec(),
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            "plus sign in a bulk length",
            b"*1\r\n$+4\r\nPING\r\n".to_vec(),
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            "unbalanced quotes inline",
            b"SET a \"b\r\n".to_vec(),
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            "closing quote followed by a letter",
            b"SET a \"b\"c\r\n".to_vec(),
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            "inline request over 64 KiB without newline",
            vec![b'A'; 70_000],
            b"-ERR Protocol error: too big inline request\r\n",
        ),
        (
            "too big mbulk count string",
            [b"*".to_vec(), vec![b'1'; 70_000]].concat(),
            b"-ERR Protocol error: too big mbulk count string\r\n",
        ),
        (
            "too big bulk count string",
            [b"*1\r\n$".to_vec(), vec![b'1'; 70_000]].concat(),
            b"-ERR Protocol error: too big bulk count string\r\n",
        ),
        (
            "a good command before the bad one is answered first",
            b"PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n".to_vec(),
            b"+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
        ),
    ];
    check_closing_cases(&servers(&strata, &redis), &cases);
}

/// Redis turns CR and LF inside an error text into spaces, so the reply stays one line.
#[test]
fn error_texts_are_one_line() {
    let (strata, redis) = Server::pair(&[]);
    let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
        (
            "expected '$', got a CR",
            b"*1\r\n\r\n".to_vec(),
            b"-ERR Protocol error: expected '$', got ' '\r\n",
        ),
        (
            "expected '$', got a LF",
            b"*1\r\n\n\r\n".to_vec(),
            b"-ERR Protocol error: expected '$', got ' '\r\n",
        ),
    ];
    check_closing_cases(&servers(&strata, &redis), &cases);
    // Command errors that quote client input are sanitized the same way; a raw CR LF would
    // end the error early and desynchronize every reply after it.
    let expected: &[u8] = b"-ERR Syntax error in HELLO option 'bad  option'\r\n";
    for server in servers(&strata, &redis) {
        let mut conn = server.connect();
        let reply = conn.command(&["HELLO", "3", "bad\r\noption"]);
        assert_eq!(escape(&reply), escape(expected), "{}", server.kind.name());
        assert_eq!(conn.cmd("PING"), b"+PONG\r\n", "{}", server.kind.name());
    }
}

#[test]
fn unauthenticated_request_limits() {
    let (strata, redis) = Server::pair(&["--requirepass", "secret"]);
    let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
        (
            "unauthenticated multibulk length",
            b"*11\r\n".to_vec(),
            b"-ERR Protocol error: unauthenticated multibulk length\r\n",
        ),
        (
            "unauthenticated bulk length",
            b"*1\r\n$16385\r\n".to_vec(),
            b"-ERR Protocol error: unauthenticated bulk length\r\n",
        ),
    ];
    check_closing_cases(&servers(&strata, &redis), &cases);
    for server in servers(&strata, &redis) {
        // At the limits, and after AUTH, requests are fine.
        let mut conn = server.connect();
        let ten = common::encode_command(&["PING"; 10]);
        conn.send(&ten);
        let reply = conn.read_reply().expect("reply to a 10-argument request");
        assert_eq!(
            reply,
            b"-NOAUTH Authentication required.\r\n",
            "{}",
            server.kind.name()
        );
        assert_eq!(conn.cmd("AUTH secret"), b"+OK\r\n");
        let big = vec![b'v'; 100_000];
        assert_eq!(conn.command(&[&b"SET"[..], b"big", &big]), b"+OK\r\n");
        assert_eq!(conn.cmd("PING"), b"+PONG\r\n");
    }
}

/// With `requirepass`, what an unauthenticated client may do and the texts it gets, line for
/// line as Redis (only the client id in HELLO's map may differ).
#[test]
fn requirepass_flow_matches_redis() {
    let (strata, redis) = Server::pair(&["--requirepass", "secret"]);
    let Some(redis) = redis else { return };
    let script = [
        "PING",
        "GET k",
        "SELECT 1",
        "HELLO",
        "HELLO 3",
        "HELLO 3 AUTH default wrong",
        "AUTH wrong",
        "AUTH default wrong",
        "AUTH nobody secret",
        "PING",
        "AUTH secret",
        "PING",
        "SET k v",
        "RESET",
        "GET k",
        "HELLO 2 AUTH default secret",
        "GET k",
        "RESET",
        "AUTH default secret",
        "GET k",
        "QUIT",
    ];
    let mut strata_conn = strata.connect();
    let mut redis_conn = redis.connect();
    let mut differences = Vec::new();
    for line in script {
        let expected = mask_client_id(&redis_conn.cmd(line));
        let actual = mask_client_id(&strata_conn.cmd(line));
        if expected != actual {
            differences.push(format!(
                "{line}\n    redis:  {expected}\n    strata: {actual}"
            ));
        }
    }
    assert!(differences.is_empty(), "\n{}", differences.join("\n"));
}

/// The escaped reply with the value of HELLO's `id` field replaced by `<id>`.
fn mask_client_id(reply: &[u8]) -> String {
    let text = escape(reply);
    let marker = "$2\\r\\nid\\r\\n:";
    let Some(start) = text.find(marker) else {
        return text;
    };
    let digits_start = start + marker.len();
    let digits_end = text[digits_start..]
        .find('\\')
        .map(|offset| digits_start + offset)
        .unwrap_or(text.len());
    format!("{}<id>{}", &text[..digits_start], &text[digits_end..])
}

/// A client that declares a 512 MB bulk and stalls costs what it sent, not what it declared;
/// other clients are still served meanwhile.
#[test]
fn stalled_huge_bulk_does_not_allocate() {
    let strata = Server::strata(&[]);
    let mut other = strata.connect();
    assert_eq!(other.cmd("PING"), b"+PONG\r\n");
    let rss_before = strata.rss_bytes();
    assert!(rss_before > 0, "cannot read the server's RSS");
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut conn = strata.connect();
        conn.send(b"*1\r\n$536870912\r\n0123456789");
        stalled.push(conn);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(other.cmd("PING"), b"+PONG\r\n");
    assert_eq!(other.cmd("SET k v"), b"+OK\r\n");
    let rss_after = strata.rss_bytes();
    let growth = rss_after.saturating_sub(rss_before);
    assert!(
        growth < 64 * 1024 * 1024,
        "RSS grew by {growth} bytes ({rss_before} -> {rss_after}) for 4 stalled clients"
    );
    // The stalled clients are still connected, waiting for the rest of their bulk.
    for conn in &mut stalled {
        let received = conn.read_available(Duration::from_millis(20));
        assert!(received.is_empty(), "unexpected {}", escape(&received));
    }
}

/// A query buffer over `client-query-buffer-limit` closes that client, and only that one.
#[test]
fn query_buffer_limit_closes_client() {
    let (strata, redis) = Server::pair(&["--client-query-buffer-limit", "1mb"]);
    for server in servers(&strata, &redis) {
        let mut other = server.connect();
        assert_eq!(other.cmd("PING"), b"+PONG\r\n");
        let mut greedy = server.connect();
        let mut request = b"*2\r\n$4\r\nECHO\r\n$3000000\r\n".to_vec();
        request.extend(std::iter::repeat_n(b'x', 2_000_000));
        let _ = greedy.try_send(&request);
        let received = greedy.read_until_closed(CLOSE_TIMEOUT);
        assert_eq!(
            received.as_deref().map_err(|partial| escape(partial)),
            Ok(&b""[..]),
            "{}: expected a silent close",
            server.kind.name()
        );
        assert_eq!(other.cmd("PING"), b"+PONG\r\n", "{}", server.kind.name());
        assert_eq!(server.connect().cmd("PING"), b"+PONG\r\n");
    }
}

#[test]
fn maxclients_rejects_extra_client() {
    let (strata, redis) = Server::pair(&["--maxclients", "2"]);
    for server in servers(&strata, &redis) {
        let mut first = server.connect();
        let mut second = server.connect();
        assert_eq!(first.cmd("PING"), b"+PONG\r\n");
        assert_eq!(second.cmd("PING"), b"+PONG\r\n");
        // The third only listens: sending could turn the server's close into a reset.
        let mut third = server.connect();
        let received = third.read_until_closed(CLOSE_TIMEOUT);
        assert_eq!(
            received.as_deref().map_err(|partial| escape(partial)),
            Ok(&b"-ERR max number of clients reached\r\n"[..]),
            "{}",
            server.kind.name()
        );
        assert_eq!(first.cmd("PING"), b"+PONG\r\n");
        // A slot frees when a client leaves.
        drop(second);
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        loop {
            let mut again = server.connect();
            let _ = again.try_send(b"PING\r\n");
            match again.read_reply() {
                Ok(reply) if reply == b"+PONG\r\n" => break,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                other => panic!("{}: no slot freed: {other:?}", server.kind.name()),
            }
        }
    }
}

#[test]
fn pipeline_of_1000_pings() {
    let (strata, redis) = Server::pair(&[]);
    for server in servers(&strata, &redis) {
        let mut conn = server.connect();
        let mut batch = Vec::new();
        for index in 0..1000 {
            if index % 2 == 0 {
                batch.extend_from_slice(b"PING\r\n");
            } else {
                batch.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
            }
        }
        conn.send(&batch);
        for index in 0..1000 {
            let reply = conn
                .read_reply()
                .unwrap_or_else(|err| panic!("{}: reply {index}: {err}", server.kind.name()));
            assert_eq!(reply, b"+PONG\r\n", "reply {index}");
        }
        // Replies keep request order with distinct payloads too.
        let mut batch = Vec::new();
        for index in 0..1000 {
            batch.extend(common::encode_command(&["ECHO", &index.to_string()]));
        }
        conn.send(&batch);
        for index in 0..1000 {
            let text = index.to_string();
            let expected = format!("${}\r\n{text}\r\n", text.len());
            assert_eq!(conn.read_reply().expect("echo reply"), expected.as_bytes());
        }
    }
}

/// A client that writes a whole large pipeline before reading any reply (redis-py's pipeline
/// does: sendall, then read) must not deadlock: Redis keeps reading requests while replies
/// queue up in its output buffer (`client-output-buffer-limit normal 0 0 0`: unlimited).
#[test]
fn large_pipeline_written_before_reading() {
    const COMMANDS: usize = 20_000;
    const PAYLOAD_BYTES: usize = 1000;
    let (strata, redis) = Server::pair(&[]);
    let payload = vec![b'p'; PAYLOAD_BYTES];
    let mut batch = Vec::new();
    for _ in 0..COMMANDS {
        batch.extend(common::encode_command(&[&b"ECHO"[..], &payload]));
    }
    let mut expected_one = format!("${PAYLOAD_BYTES}\r\n").into_bytes();
    expected_one.extend_from_slice(&payload);
    expected_one.extend_from_slice(b"\r\n");
    // Redis first, so a failure on Strata shows the reference passed.
    for server in servers(&strata, &redis).into_iter().rev() {
        let mut conn = server.connect();
        if let Err(err) = conn.send_within(&batch, Duration::from_secs(5)) {
            panic!(
                "{}: the server stopped reading a {} MB pipeline while its replies were \
                 unread ({err}); Redis keeps reading and buffers the replies",
                server.kind.name(),
                batch.len() >> 20
            );
        }
        for index in 0..COMMANDS {
            let reply = conn.read_reply().expect("reply");
            assert!(reply == expected_one, "reply {index} differs");
        }
    }
}

#[test]
fn inline_commands() {
    let (strata, redis) = Server::pair(&[]);
    for server in servers(&strata, &redis) {
        let mut conn = server.connect();
        let script: &[(&[u8], &[u8])] = &[
            (b"PING\r\n", b"+PONG\r\n"),
            (b"ping\n", b"+PONG\r\n"),
            (b"SET a \"b c\"\r\n", b"+OK\r\n"),
            (b"GET a\r\n", b"$3\r\nb c\r\n"),
            (b"SET 'x y' \"\\x41\\n\"\r\n", b"+OK\r\n"),
            (b"GET 'x y'\r\n", b"$2\r\nA\n\r\n"),
            (b"   \r\n\r\nECHO  spaced   \r\n", b"$6\r\nspaced\r\n"),
            (b"*0\r\n*-1\r\nPING\r\n", b"+PONG\r\n"),
        ];
        for (input, expected) in script {
            conn.send(input);
            let reply = conn.read_reply().expect("reply");
            assert_eq!(
                escape(&reply),
                escape(expected),
                "{}: {}",
                server.kind.name(),
                escape(input)
            );
        }
    }
}

/// A request split into many small writes, and a large value, arrive intact.
#[test]
fn fragmented_and_large_requests() {
    let (strata, redis) = Server::pair(&[]);
    for server in servers(&strata, &redis) {
        let mut conn = server.connect();
        let request = common::encode_command(&["SET", "frag", "hello world"]);
        for byte in &request {
            conn.send(std::slice::from_ref(byte));
        }
        assert_eq!(conn.read_reply().expect("reply"), b"+OK\r\n");
        assert_eq!(conn.cmd("GET frag"), b"$11\r\nhello world\r\n");
        let value: Vec<u8> = (0..3_000_000u32).map(|index| (index % 251) as u8).collect();
        let request = common::encode_command(&[&b"SET"[..], b"large", &value]);
        for chunk in request.chunks(100_000) {
            conn.send(chunk);
        }
        assert_eq!(conn.read_reply().expect("reply"), b"+OK\r\n");
        let reply = conn.command(&["GET", "large"]);
        let mut expected = format!("${}\r\n", value.len()).into_bytes();
        expected.extend_from_slice(&value);
        expected.extend_from_slice(b"\r\n");
        assert!(
            reply == expected,
            "{}: large value differs",
            server.kind.name()
        );
    }
}

/// The HELLO 3 map, field by field; only the client id may differ.
#[test]
fn hello_map_matches_redis_except_id() {
    let (strata, redis) = Server::pair(&[]);
    let Some(redis) = redis else { return };
    for line in ["HELLO 3", "HELLO 2", "HELLO", "HELLO 3 SETNAME named"] {
        let expected = mask_client_id(&redis.connect().cmd(line));
        let actual = mask_client_id(&strata.connect().cmd(line));
        assert_eq!(actual, expected, "{line}");
    }
}
