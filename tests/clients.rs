//! Real clients against Strata: the Rust `redis` crate (sync, async, pipelines, RESP3, the
//! database in the URL, many concurrent clients) and `redis-cli` (commands and `--pipe`).

mod common;

use common::Server;
use redis::{Commands, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Bound on any single client operation, so a hung server fails the test.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

fn sync_connection(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("valid URL");
    let connection = client
        .get_connection_with_timeout(CLIENT_TIMEOUT)
        .expect("connecting");
    connection
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .expect("read timeout");
    connection
}

/// An async multiplexed connection with generous timeouts: the crate's defaults (1 s to
/// connect, 500 ms per response) are too tight for 200 clients on a busy 2-core CI machine.
async fn async_connection(client: &redis::Client) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CLIENT_TIMEOUT))
        .set_response_timeout(Some(CLIENT_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect")
}

#[test]
fn sync_commands_and_pipeline() {
    let strata = Server::strata(&[]);
    let mut connection = sync_connection(&strata.url());
    let pong: String = redis::cmd("PING").query(&mut connection).expect("PING");
    assert_eq!(pong, "PONG");
    let () = connection.set("greeting", "hello").expect("SET");
    let value: String = connection.get("greeting").expect("GET");
    assert_eq!(value, "hello");
    let missing: Option<String> = connection.get("missing").expect("GET missing");
    assert_eq!(missing, None);
    let binary: Vec<u8> = (0..=255).collect();
    let () = connection.set("binary", &binary).expect("SET binary");
    let back: Vec<u8> = connection.get("binary").expect("GET binary");
    assert_eq!(back, binary);
    let deleted: i64 = connection
        .del(&["greeting", "binary", "missing"])
        .expect("DEL");
    assert_eq!(deleted, 2);

    let mut pipeline = redis::pipe();
    for index in 0..100 {
        pipeline.set(format!("p:{index}"), index).ignore();
    }
    for index in 0..100 {
        pipeline.get(format!("p:{index}"));
    }
    pipeline.cmd("DBSIZE");
    let mut results: Vec<i64> = pipeline.query(&mut connection).expect("pipeline");
    let size = results.pop().expect("DBSIZE result");
    assert_eq!(size, 100);
    assert_eq!(results, (0..100).collect::<Vec<i64>>());

    let error = redis::cmd("NOSUCHCOMMAND")
        .query::<()>(&mut connection)
        .expect_err("unknown command");
    assert!(
        error.to_string().contains("unknown command"),
        "unexpected error {error}"
    );
    // The connection is still usable after a command error.
    let pong: String = redis::cmd("PING").query(&mut connection).expect("PING");
    assert_eq!(pong, "PONG");
}

#[test]
fn database_from_url() {
    let strata = Server::strata(&[]);
    let url = format!("redis://127.0.0.1:{}/3", strata.port);
    let mut connection = sync_connection(&url);
    let () = connection.set("in3", "yes").expect("SET");
    let mut raw = strata.connect();
    assert_eq!(raw.cmd("GET in3"), b"$-1\r\n");
    assert_eq!(raw.cmd("SELECT 3"), b"+OK\r\n");
    assert_eq!(raw.cmd("GET in3"), b"$3\r\nyes\r\n");
}

#[test]
fn resp3_via_url() {
    let strata = Server::strata(&[]);
    let url = format!("redis://127.0.0.1:{}/?protocol=resp3", strata.port);
    let mut connection = sync_connection(&url);
    let hello: Value = redis::cmd("HELLO")
        .arg(3)
        .query(&mut connection)
        .expect("HELLO");
    let Value::Map(fields) = hello else {
        panic!("HELLO 3 should be a map, got {hello:?}");
    };
    let proto = fields.iter().find_map(|(key, value)| match key {
        Value::BulkString(name) if name == b"proto" => Some(value.clone()),
        _ => None,
    });
    assert_eq!(proto, Some(Value::Int(3)));
    let missing: Value = redis::cmd("GET")
        .arg("missing")
        .query(&mut connection)
        .expect("GET");
    assert_eq!(missing, Value::Nil);
    let () = connection.set("k", "v").expect("SET");
    let value: String = connection.get("k").expect("GET");
    assert_eq!(value, "v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_commands_and_pipeline() {
    let strata = Server::strata(&[]);
    let client = redis::Client::open(strata.url()).expect("valid URL");
    let mut connection =
        tokio::time::timeout(CLIENT_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .expect("connect in time")
            .expect("connect");
    let work = async {
        let () = redis::cmd("SET")
            .arg("a")
            .arg("1")
            .query_async(&mut connection)
            .await
            .expect("SET");
        let value: String = redis::cmd("GET")
            .arg("a")
            .query_async(&mut connection)
            .await
            .expect("GET");
        assert_eq!(value, "1");
        let (first, second): (Option<String>, String) = redis::pipe()
            .cmd("GET")
            .arg("nothing")
            .cmd("ECHO")
            .arg("echoed")
            .query_async(&mut connection)
            .await
            .expect("pipeline");
        assert_eq!(first, None);
        assert_eq!(second, "echoed");
    };
    tokio::time::timeout(CLIENT_TIMEOUT, work)
        .await
        .expect("async work in time");
}

/// 200 clients, each writing and reading its own 200 keys concurrently: every read sees its
/// own write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients() {
    const CLIENTS: usize = 200;
    const KEYS_PER_CLIENT: usize = 200;
    let strata = Server::strata(&[]);
    let client = redis::Client::open(strata.url()).expect("valid URL");
    let mut tasks = Vec::new();
    for client_index in 0..CLIENTS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut connection = async_connection(&client).await;
            for key_index in 0..KEYS_PER_CLIENT {
                let key = format!("c{client_index}:k{key_index}");
                let value = format!("v{client_index}:{key_index}");
                let () = redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .query_async(&mut connection)
                    .await
                    .expect("SET");
                let read: String = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await
                    .expect("GET");
                assert_eq!(read, value);
            }
        }));
    }
    let all = async {
        for task in tasks {
            task.await.expect("client task");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("all clients done in time");
    let mut connection = sync_connection(&strata.url());
    let size: usize = redis::cmd("DBSIZE").query(&mut connection).expect("DBSIZE");
    assert_eq!(size, CLIENTS * KEYS_PER_CLIENT);
}

/// Runs redis-cli with arguments and optional stdin; returns its stdout.
fn redis_cli(port: u16, args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut child = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running redis-cli");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("writing to redis-cli");
    }
    // redis-cli exits on its own; a hung server would hang it, so bound the wait.
    let deadline = std::time::Instant::now() + CLIENT_TIMEOUT;
    loop {
        match child.try_wait().expect("redis-cli status") {
            Some(_) => break,
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            None => {
                let _ = child.kill();
                panic!("redis-cli {args:?} did not finish");
            }
        }
    }
    let output = child.wait_with_output().expect("redis-cli output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "redis-cli {args:?} failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn redis_cli_commands_and_pipe() {
    if !common::require_tool("redis-cli") {
        return;
    }
    let strata = Server::strata(&[]);
    let port = strata.port;
    assert_eq!(redis_cli(port, &["ping"], None), "PONG\n");
    assert_eq!(redis_cli(port, &["set", "name", "strata"], None), "OK\n");
    assert_eq!(redis_cli(port, &["get", "name"], None), "strata\n");
    assert_eq!(redis_cli(port, &["get", "missing"], None), "\n");
    assert_eq!(redis_cli(port, &["-3", "get", "name"], None), "strata\n");
    assert_eq!(redis_cli(port, &["-n", "2", "dbsize"], None), "0\n");

    const MASS_KEYS: usize = 1000;
    let mut mass = Vec::new();
    for index in 0..MASS_KEYS {
        mass.extend(common::encode_command(&[
            "SET".to_string(),
            format!("mass:{index:06}"),
            format!("value-{index}"),
        ]));
    }
    let report = redis_cli(port, &["--pipe"], Some(&mass));
    assert!(
        report.contains(&format!("errors: 0, replies: {MASS_KEYS}")),
        "unexpected --pipe report: {report}"
    );
    assert_eq!(
        redis_cli(port, &["dbsize"], None),
        format!("{}\n", MASS_KEYS + 1)
    );
    assert_eq!(
        redis_cli(port, &["get", "mass:000999"], None),
        "value-999\n"
    );
}
