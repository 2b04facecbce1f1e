//! The append-only file on a real disk: what was acknowledged survives `kill -9`, a torn tail
//! is cut off as Redis cuts it, corruption stops the load naming the file and offset, and
//! real Redis 7.0 and Strata load each other's AOF directories.

mod common;

use common::persistence::{file_names, shutdown, snapshot, wait_rewrite, workload};
use common::{Kind, Server};
use std::time::Duration;

/// Starts strata on `data` with the AOF on (plus `extra`), expecting it to refuse to start;
/// its stderr.
fn refused_start(data: &std::path::Path, extra: &[&str]) -> String {
    let dir = data.to_string_lossy();
    let mut args = vec!["--port", "0", "--dir", &dir, "--appendonly", "yes"];
    args.extend_from_slice(extra);
    common::run_strata_to_exit(&args, data, Duration::from_secs(10)).1
}

#[test]
fn acknowledged_writes_survive_kill_9_under_always() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start_in(
        Kind::Strata,
        data.path(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    )
    .expect("strata");
    workload(&server, 1, 3_000);
    let before = snapshot(&server);
    assert!(before.len() > 20, "the workload builds keys of every type");
    drop(server); // SIGKILL: no shutdown, no final fsync.
    let restarted =
        Server::start_in(Kind::Strata, data.path(), &["--appendonly", "yes"]).expect("strata");
    assert_eq!(snapshot(&restarted), before);
    assert!(restarted.log().contains("DB loaded from append only file"));
}

#[test]
fn rewrite_compacts_and_the_state_survives_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let server =
        Server::start_in(Kind::Strata, data.path(), &["--appendonly", "yes"]).expect("strata");
    workload(&server, 2, 2_000);
    let mut conn = server.connect();
    assert_eq!(
        conn.cmd("BGREWRITEAOF"),
        b"+Background append only file rewriting started\r\n"
    );
    wait_rewrite(&server);
    let dir = data.path().join("appendonlydir");
    assert_eq!(
        file_names(&dir),
        [
            "appendonly.aof.2.base.rdb",
            "appendonly.aof.2.incr.aof",
            "appendonly.aof.manifest"
        ]
    );
    workload(&server, 3, 500);
    let before = snapshot(&server);
    shutdown(server);
    let restarted =
        Server::start_in(Kind::Strata, data.path(), &["--appendonly", "yes"]).expect("strata");
    assert_eq!(snapshot(&restarted), before);
}

#[test]
fn a_torn_tail_is_cut_off_and_corruption_stops_the_load() {
    let data = tempfile::tempdir().expect("tempdir");
    let server =
        Server::start_in(Kind::Strata, data.path(), &["--appendonly", "yes"]).expect("strata");
    let mut conn = server.connect();
    conn.cmd("SET a 1");
    conn.cmd("RPUSH l x y");
    shutdown(server);
    let incr = data.path().join("appendonlydir/appendonly.aof.1.incr.aof");
    let whole = std::fs::read(&incr).expect("incr file");
    // A crash in the middle of appending a command.
    let mut torn = whole.clone();
    torn.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$2\r\n2");
    std::fs::write(&incr, &torn).expect("write");

    let refused = refused_start(data.path(), &["--aof-load-truncated", "no"]);
    assert!(
        refused.contains(
            "Unexpected end of file reading the append only file appendonly.aof.1.incr.aof"
        ),
        "{}",
        refused
    );

    let server =
        Server::start_in(Kind::Strata, data.path(), &["--appendonly", "yes"]).expect("strata");
    assert!(server
        .log()
        .contains("!!! Truncating the AOF appendonly.aof.1.incr.aof at offset"));
    // Cut back to the last whole command; appending then starts a new checksum range.
    let after = std::fs::read(&incr).expect("incr");
    assert_eq!(&after[..whole.len()], &whole[..]);
    assert_eq!(&after[whole.len()..], b"#CRC64:reset\r\n");
    let mut conn = server.connect();
    assert_eq!(conn.cmd("GET a"), b"$1\r\n1\r\n");
    assert_eq!(conn.cmd("EXISTS b"), b":0\r\n");
    shutdown(server);

    // Garbage where a command should start, before the end: not a torn tail.
    let mut corrupt = b"+garbage\r\n".to_vec();
    corrupt.extend_from_slice(&whole);
    std::fs::write(&incr, &corrupt).expect("write");
    let stderr = refused_start(data.path(), &[]);
    assert!(
        stderr.contains(
            "Bad file format reading the append only file appendonly.aof.1.incr.aof at offset 0"
        ),
        "{stderr}"
    );
}

#[test]
fn real_redis_and_strata_load_each_others_aof() {
    if !common::require_tool("redis-server") {
        return;
    }
    // Strata writes, Redis loads (before and after a rewrite).
    let data = tempfile::tempdir().expect("tempdir");
    let strata =
        Server::start_in(Kind::Strata, data.path(), &["--appendonly", "yes"]).expect("strata");
    workload(&strata, 4, 1_500);
    strata.connect().cmd("BGREWRITEAOF");
    // Writes while the base is written from the snapshot.
    workload(&strata, 5, 500);
    wait_rewrite(&strata);
    let written = snapshot(&strata);
    shutdown(strata);
    let redis =
        Server::start_in(Kind::Redis, data.path(), &["--appendonly", "yes"]).expect("redis");
    assert_eq!(snapshot(&redis), written);
    drop(redis);

    // Redis writes (commands in its base too, so the load needs no RDB), Strata loads.
    let data = tempfile::tempdir().expect("tempdir");
    let redis = Server::start_in(
        Kind::Redis,
        data.path(),
        &[
            "--appendonly",
            "yes",
            "--aof-use-rdb-preamble",
            "no",
            "--appendfsync",
            "always",
        ],
    )
    .expect("redis");
    workload(&redis, 6, 1_500);
    redis.connect().cmd("BGREWRITEAOF");
    wait_rewrite(&redis);
    workload(&redis, 7, 500);
    let written = snapshot(&redis);
    drop(redis);
    let strata =
        Server::start_in(Kind::Strata, data.path(), &["--appendonly", "yes"]).expect("strata");
    assert_eq!(snapshot(&strata), written);
}

#[test]
fn nothing_expires_while_the_aof_loads() {
    // A key whose time has passed is still there for the commands after it in the file, as
    // when they first ran; it expires once loading is over. Real Redis is the judge.
    let commands: &[&[&str]] = &[
        &["SELECT", "0"],
        &["SET", "counter", "5"],
        &["PEXPIREAT", "counter", "1"],
        &["INCR", "counter"],
        &["SET", "kept", "1"],
        &["PEXPIREAT", "kept", "1"],
        &["PERSIST", "kept"],
        &["RPUSH", "list", "a"],
        &["PEXPIREAT", "list", "1"],
        &["RPUSH", "list", "b"],
        &["PERSIST", "list"],
    ];
    let mut incr = Vec::new();
    for argv in commands {
        incr.extend_from_slice(&common::encode_command(argv));
    }
    let mut answers = Vec::new();
    for kind in [Kind::Strata, Kind::Redis] {
        let data = tempfile::tempdir().expect("tempdir");
        let dir = data.path().join("appendonlydir");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("appendonly.aof.1.base.aof"), b"").expect("base");
        std::fs::write(dir.join("appendonly.aof.1.incr.aof"), &incr).expect("incr");
        std::fs::write(
            dir.join("appendonly.aof.manifest"),
            "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
        )
        .expect("manifest");
        let Some(server) = Server::start_in(kind, data.path(), &["--appendonly", "yes"]) else {
            return;
        };
        let mut conn = server.connect();
        let answer: Vec<Vec<u8>> = ["EXISTS counter", "GET kept", "TTL kept", "LRANGE list 0 -1"]
            .iter()
            .map(|line| conn.cmd(line))
            .collect();
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1], "strata vs redis");
    assert_eq!(answers[0][1], b"$1\r\n1\r\n");
}

#[test]
fn clients_get_loading_while_the_dataset_loads() {
    // A large AOF written directly, so the load takes long enough to be seen.
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("appendonlydir");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut incr = Vec::with_capacity(64 << 20);
    for index in 0..600_000 {
        incr.extend_from_slice(&common::encode_command(&[
            "SET",
            &format!("key:{index}"),
            "value",
        ]));
    }
    std::fs::write(dir.join("appendonly.aof.1.base.aof"), b"").expect("base");
    std::fs::write(dir.join("appendonly.aof.1.incr.aof"), &incr).expect("incr");
    std::fs::write(
        dir.join("appendonly.aof.manifest"),
        "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
    )
    .expect("manifest");
    let port = common::free_port();
    let port_text = port.to_string();
    let dir_text = data.path().to_string_lossy().into_owned();
    let mut child = std::process::Command::new(common::Kind::Strata.program())
        .args([
            "--port",
            &port_text,
            "--dir",
            &dir_text,
            "--appendonly",
            "yes",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("strata");
    let mut conn = None;
    for _ in 0..2_000 {
        if let Ok(connected) = common::Conn::connect(port) {
            conn = Some(connected);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut conn = conn.expect("the port is open while loading");
    let first = conn.cmd("GET key:1");
    let info = String::from_utf8_lossy(&conn.cmd("INFO persistence")).into_owned();
    let mut loaded = false;
    for _ in 0..3_000 {
        if conn.cmd("GET key:599999") == b"$5\r\nvalue\r\n" {
            loaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        first,
        b"-LOADING Redis is loading the dataset in memory\r\n"
    );
    assert!(info.contains("loading:1"), "{info}");
    assert!(info.contains("loading_total_bytes:"), "{info}");
    assert!(loaded, "the dataset finished loading");
}

#[test]
fn a_flipped_byte_inside_a_value_is_caught_by_the_checksum_annotations() {
    let data = tempfile::tempdir().expect("tempdir");
    let server =
        Server::start_in(Kind::Strata, data.path(), &["--appendonly", "yes"]).expect("strata");
    let mut conn = server.connect();
    let value = "v".repeat(100);
    for index in 0..3_000 {
        conn.command(&["SET", &format!("key:{index}"), &value]);
    }
    shutdown(server);
    let incr = data.path().join("appendonlydir/appendonly.aof.1.incr.aof");
    let whole = std::fs::read(&incr).expect("incr");
    assert!(
        whole.windows(7).any(|w| w == b"#CRC64:"),
        "the writer annotates"
    );
    // Real Redis still loads the annotated file.
    if common::require_tool("redis-server") {
        let copy = tempfile::tempdir().expect("tempdir");
        let dir = copy.path().join("appendonlydir");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for entry in std::fs::read_dir(data.path().join("appendonlydir")).expect("dir") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
        }
        let redis =
            Server::start_in(Kind::Redis, copy.path(), &["--appendonly", "yes"]).expect("redis");
        assert_eq!(redis.connect().cmd("DBSIZE"), b":3000\r\n");
    }
    // A flip inside a value: still valid RESP, so only the checksum can tell.
    let mut flipped = whole.clone();
    let at = whole
        .windows(100)
        .position(|window| window == value.as_bytes())
        .expect("a value")
        + 40;
    flipped[at] = b'w';
    std::fs::write(&incr, &flipped).expect("write");
    let stderr = refused_start(data.path(), &[]);
    assert!(
        stderr.contains("appendonly.aof.1.incr.aof") && stderr.contains("checksum annotation"),
        "{stderr}"
    );
}
