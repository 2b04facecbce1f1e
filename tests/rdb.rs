//! RDB files on a real disk: SAVE, BGSAVE and SHUTDOWN write what a restart loads back,
//! a background save is one point in time while clients keep writing, a damaged file stops
//! the start naming the file and the offset, and real Redis 7.0 and Strata load each other's
//! files.

mod common;

use common::persistence::{shutdown, snapshot, workload};
use common::{Kind, Server};
use std::time::Duration;

/// Waits until no background save runs.
fn wait_save(server: &Server) {
    let mut conn = server.connect();
    for _ in 0..500 {
        let info = String::from_utf8_lossy(&conn.cmd("INFO persistence")).into_owned();
        if info.contains("rdb_bgsave_in_progress:0") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the background save did not finish");
}

#[test]
fn save_bgsave_and_shutdown_bring_everything_back() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start_in(Kind::Strata, data.path(), &[]).expect("strata");
    workload(&server, 11, 2_000);
    let mut conn = server.connect();
    assert_eq!(conn.cmd("SAVE"), b"+OK\r\n");
    let saved = snapshot(&server);
    drop(server); // SIGKILL: only the file is left.
    let server = Server::start_in(Kind::Strata, data.path(), &[]).expect("strata");
    assert_eq!(snapshot(&server), saved);

    workload(&server, 12, 1_000);
    let mut conn = server.connect();
    assert_eq!(conn.cmd("BGSAVE"), b"+Background saving started\r\n");
    wait_save(&server);
    let info = String::from_utf8_lossy(&conn.cmd("INFO persistence")).into_owned();
    assert!(info.contains("rdb_last_bgsave_status:ok"), "{info}");
    assert!(info.contains("rdb_changes_since_last_save:0"), "{info}");
    let saved = snapshot(&server);
    drop(server);
    let server = Server::start_in(Kind::Strata, data.path(), &[]).expect("strata");
    assert_eq!(snapshot(&server), saved);

    // SHUTDOWN saves by default when save points are configured (Redis's default).
    workload(&server, 13, 500);
    let saved = snapshot(&server);
    shutdown(server);
    let server = Server::start_in(Kind::Strata, data.path(), &[]).expect("strata");
    assert_eq!(snapshot(&server), saved);
}

#[test]
fn a_background_save_is_one_point_in_time() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start_in(Kind::Strata, data.path(), &["--save", ""]).expect("strata");
    let mut conn = server.connect();
    // Enough keys that the save takes a while, then transactions that keep `a` == `b`
    // while the save runs: the file must hold a pair that was equal at one instant.
    let mut fill = Vec::new();
    for index in 0..200_000 {
        fill.extend_from_slice(&common::encode_command(&[
            "SET",
            &format!("filler:{index}"),
            "x",
        ]));
    }
    conn.send(&fill);
    for _ in 0..200_000 {
        conn.read_reply().expect("SET reply");
    }
    conn.cmd("MSET a 0 b 0");
    assert_eq!(conn.cmd("BGSAVE"), b"+Background saving started\r\n");
    let mut writer = server.connect();
    for round in 1..=300 {
        let value = round.to_string();
        writer.cmd("MULTI");
        writer.command(&["SET", "a", &value]);
        writer.command(&["INCRBY", "b", "1"]);
        writer.cmd("EXEC");
    }
    wait_save(&server);
    drop(server);
    let server = Server::start_in(Kind::Strata, data.path(), &["--save", ""]).expect("strata");
    let mut conn = server.connect();
    let a = conn.cmd("GET a");
    let b = conn.cmd("GET b");
    assert_eq!(a, b, "a and b changed together");
    assert_eq!(conn.cmd("DBSIZE"), b":200002\r\n");
}

#[test]
fn a_damaged_file_stops_the_start_naming_file_and_offset() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start_in(Kind::Strata, data.path(), &[]).expect("strata");
    workload(&server, 14, 300);
    server.connect().cmd("SAVE");
    drop(server);
    let path = data.path().join("dump.rdb");
    let whole = std::fs::read(&path).expect("dump.rdb");
    let mut damaged = whole.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x20;
    std::fs::write(&path, &damaged).expect("write");
    let dir = data.path().to_string_lossy().into_owned();
    let (_, stderr) = common::run_strata_to_exit(
        &["--port", "0", "--dir", &dir],
        data.path(),
        Duration::from_secs(10),
    );
    assert!(stderr.contains("dump.rdb"), "{stderr}");
    assert!(stderr.contains("offset"), "{stderr}");
    std::fs::write(&path, &whole[..whole.len() - 20]).expect("write");
    let (_, stderr) = common::run_strata_to_exit(
        &["--port", "0", "--dir", &dir],
        data.path(),
        Duration::from_secs(10),
    );
    assert!(
        stderr.contains("dump.rdb") && stderr.contains("offset"),
        "{stderr}"
    );
}

#[test]
fn real_redis_and_strata_load_each_others_rdb() {
    if !common::require_tool("redis-server") {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let strata = Server::start_in(Kind::Strata, data.path(), &[]).expect("strata");
    workload(&strata, 15, 2_000);
    strata.connect().cmd("SAVE");
    let written = snapshot(&strata);
    drop(strata);
    let redis = Server::start_in(Kind::Redis, data.path(), &["--appendonly", "no"]).expect("redis");
    assert_eq!(snapshot(&redis), written, "Redis loads Strata's dump.rdb");
    workload(&redis, 16, 1_000);
    redis.connect().cmd("SAVE");
    let written = snapshot(&redis);
    drop(redis);
    let strata = Server::start_in(Kind::Strata, data.path(), &[]).expect("strata");
    assert_eq!(snapshot(&strata), written, "Strata loads Redis's dump.rdb");
}

/// Runs a checker program; its exit success and output.
fn run_checker(program: &str, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("running {program}: {err}"));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn strata_check_and_redis_check_accept_what_strata_writes() {
    let data = tempfile::tempdir().expect("tempdir");
    let server =
        Server::start_in(Kind::Strata, data.path(), &["--appendonly", "yes"]).expect("strata");
    workload(&server, 17, 1_500);
    server.connect().cmd("SAVE");
    common::persistence::shutdown(server);
    let rdb = data.path().join("dump.rdb");
    let rdb = rdb.to_string_lossy();
    let aof_dir = data.path().join("appendonlydir");
    let aof_dir_text = aof_dir.to_string_lossy().into_owned();
    let check = env!("CARGO_BIN_EXE_strata-check");
    let (ok, text) = run_checker(check, &["rdb", &rdb]);
    assert!(ok && text.contains("RDB looks OK"), "{text}");
    let (ok, text) = run_checker(check, &["aof", &aof_dir_text]);
    assert!(ok, "{text}");
    if common::require_tool("redis-check-rdb") {
        let (ok, text) = run_checker("redis-check-rdb", &[&rdb]);
        assert!(ok && text.contains("RDB looks OK"), "{text}");
        let manifest = aof_dir.join("appendonly.aof.manifest");
        let (ok, text) = run_checker("redis-check-aof", &[&manifest.to_string_lossy()]);
        assert!(ok, "{text}");
    }
    // A torn tail: reported, then cut off by --fix; a flipped byte in the RDB: the offset.
    let incr = std::fs::read_dir(&aof_dir)
        .expect("dir")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.to_string_lossy().ends_with(".incr.aof"))
        .expect("an incr file");
    let mut torn = std::fs::read(&incr).expect("incr");
    let whole = torn.len();
    torn.extend_from_slice(b"*2\r\n$3\r\nDEL\r\n$5\r\nab");
    std::fs::write(&incr, &torn).expect("write");
    let (ok, text) = run_checker(check, &["aof", &aof_dir_text]);
    assert!(!ok && text.contains(&format!("ok_up_to={whole}")), "{text}");
    let (ok, text) = run_checker(check, &["aof", &aof_dir_text, "--fix"]);
    assert!(ok, "{text}");
    assert_eq!(std::fs::read(&incr).expect("incr").len(), whole);
    let mut bytes = std::fs::read(data.path().join("dump.rdb")).expect("rdb");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(data.path().join("dump.rdb"), &bytes).expect("write");
    let (ok, text) = run_checker(check, &["rdb", &rdb]);
    assert!(
        !ok && text.contains("RDB ERROR DETECTED") && text.contains("[offset"),
        "{text}"
    );
}
