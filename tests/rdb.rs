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
    a_save_under_writes_is_one_point_in_time("BGSAVE");
}

/// SAVE encodes on every core, one snapshot walker per core: the same guarantee.
#[test]
fn a_foreground_save_on_every_core_is_one_point_in_time() {
    a_save_under_writes_is_one_point_in_time("SAVE");
}

fn a_save_under_writes_is_one_point_in_time(save: &str) {
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
    if save == "BGSAVE" {
        assert_eq!(conn.cmd("BGSAVE"), b"+Background saving started\r\n");
    } else {
        // The reply waits for the save; the writes below run while it does.
        conn.send(&common::encode_command(&[save]));
    }
    let mut writer = server.connect();
    for round in 1..=300 {
        let value = round.to_string();
        writer.cmd("MULTI");
        writer.command(&["SET", "a", &value]);
        writer.command(&["INCRBY", "b", "1"]);
        writer.cmd("EXEC");
    }
    if save != "BGSAVE" {
        assert_eq!(conn.read_reply().expect("SAVE reply"), b"+OK\r\n");
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

/// A tiny seeded generator (xorshift64*), so both servers get the same commands.
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

const STREAM_KEYS: u64 = 4;

/// Stream writes with explicit IDs that leave tombstones everywhere: XADD with differing
/// fields, XDEL, exact and approximate trims by MAXLEN and MINID, XSETID back to the last
/// entry, groups; `deliveries` adds XREADGROUP (whose times differ between servers).
fn stream_commands(seed: u64, count: usize, next_ms: &mut [u64], deliveries: bool) -> Vec<String> {
    let mut rng = Seeded(seed | 1);
    let mut commands = Vec::new();
    for _ in 0..count {
        let index = rng.below(STREAM_KEYS) as usize;
        let key = format!("x{index}");
        let low = next_ms[index].saturating_sub(100);
        let around = low + rng.below(105);
        let command = match rng.below(20) {
            0..=8 => {
                next_ms[index] += 1 + rng.below(3);
                let id = format!("{}-{}", next_ms[index], rng.below(3));
                match rng.below(4) {
                    0 => format!("XADD {key} {id} other {} x y", rng.below(1000)),
                    1 => format!("XADD {key} {id} f {}", "v".repeat(rng.below(120) as usize)),
                    _ => format!("XADD {key} {id} f {}", rng.below(100_000)),
                }
            }
            9..=12 => format!("XDEL {key} {around}-0 {around}-1 {}-2", around + 1),
            13 => format!("XTRIM {key} MAXLEN {}", 20 + rng.below(60)),
            14 => format!("XTRIM {key} MAXLEN ~ {}", 10 + rng.below(60)),
            15 => format!("XTRIM {key} MINID {}", low + rng.below(30)),
            16 => format!("XTRIM {key} MINID ~ {around}"),
            17 => format!("XGROUP CREATE {key} g{} {around}-0", rng.below(2)),
            18 if deliveries => format!(
                "XREADGROUP GROUP g{} c{} COUNT 3 STREAMS {key} >",
                rng.below(2),
                rng.below(2)
            ),
            // XSETID back to the last entry: later IDs then follow tombstones above them.
            _ => format!("XSETID {key} LAST"),
        };
        commands.push(command);
    }
    commands
}

/// Runs the commands on a server (`XSETID key LAST` resolved against that server).
fn run_stream_commands(server: &Server, commands: &[String]) {
    let mut conn = server.connect();
    assert_eq!(conn.cmd("CONFIG SET stream-node-max-entries 6"), b"+OK\r\n");
    for command in commands {
        if let Some(key) = command
            .strip_prefix("XSETID ")
            .and_then(|rest| rest.strip_suffix(" LAST"))
        {
            let last = conn.cmd(&format!("XREVRANGE {key} + - COUNT 1"));
            let text = String::from_utf8_lossy(&last).into_owned();
            let Some(id) = text.split("\r\n").nth(2).filter(|id| id.contains('-')) else {
                continue;
            };
            conn.cmd(&format!("XSETID {key} {id}"));
            continue;
        }
        conn.cmd(command);
    }
}

/// Per stream key: DUMP (the nodes to the byte), XINFO STREAM FULL and XRANGE.
fn stream_state(server: &Server) -> Vec<(String, Vec<u8>)> {
    let mut conn = server.connect();
    let mut state = Vec::new();
    for index in 0..STREAM_KEYS {
        for command in ["DUMP", "XINFO STREAM", "XINFO STREAM FULL", "XRANGE"] {
            let line = match command {
                "XRANGE" => format!("XRANGE x{index} - +"),
                "XINFO STREAM FULL" => format!("XINFO STREAM x{index} FULL"),
                _ => format!("{command} x{index}"),
            };
            state.push((line.clone(), conn.cmd(&line)));
        }
    }
    state
}

fn assert_same_streams(left: &[(String, Vec<u8>)], right: &[(String, Vec<u8>)], what: &str) {
    assert_eq!(left.len(), right.len());
    for ((line, left), (_, right)) in left.iter().zip(right) {
        assert!(
            left == right,
            "{what}: {line}\n  {}\n  {}",
            common::escape(left),
            common::escape(right)
        );
    }
}

/// Streams whose nodes hold deleted entries (XDEL, trims inside a node, XSETID back over
/// them) travel between Redis 7.0 and Strata through dump.rdb with their nodes intact: DUMP
/// is the same to the byte on both sides, and the same later writes (approximate trims work
/// on whole nodes) keep them so.
#[test]
fn streams_with_deleted_entries_travel_both_ways_node_for_node() {
    if !common::require_tool("redis-server") {
        return;
    }
    let redis_dir = tempfile::tempdir().expect("tempdir");
    let redis =
        Server::start_in(Kind::Redis, redis_dir.path(), &["--appendonly", "no"]).expect("redis");
    let mut next_ms = vec![0u64; STREAM_KEYS as usize];
    run_stream_commands(&redis, &stream_commands(21, 3_000, &mut next_ms, true));
    assert_eq!(redis.connect().cmd("SAVE"), b"+OK\r\n");
    let written = stream_state(&redis);
    // Every stream has entries and has had some deleted (the test is about tombstones).
    for index in 0..STREAM_KEYS {
        let info = redis.connect().cmd(&format!("XINFO STREAM x{index}"));
        let info = String::from_utf8_lossy(&info).into_owned();
        let field = |name: &str| {
            let mut lines = info.split("\r\n");
            lines.by_ref().find(|line| *line == name);
            let value = lines.next().unwrap_or_default();
            match value.starts_with('$') {
                true => lines.next().unwrap_or_default().to_owned(),
                false => value.to_owned(),
            }
        };
        assert_ne!(field("length"), ":0", "{info}");
        assert_ne!(field("max-deleted-entry-id"), "0-0", "{info}");
    }

    let strata_dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        redis_dir.path().join("dump.rdb"),
        strata_dir.path().join("dump.rdb"),
    )
    .expect("copy dump.rdb");
    let strata = Server::start_in(Kind::Strata, strata_dir.path(), &[]).expect("strata");
    assert_same_streams(
        &written,
        &stream_state(&strata),
        "Strata loads Redis's file",
    );

    // The same writes on both: node boundaries decide what `~` trims and where entries go.
    let later = stream_commands(22, 1_500, &mut next_ms, false);
    run_stream_commands(&redis, &later);
    run_stream_commands(&strata, &later);
    let expected = stream_state(&redis);
    assert_same_streams(&expected, &stream_state(&strata), "after the same writes");

    assert_eq!(strata.connect().cmd("SAVE"), b"+OK\r\n");
    drop(strata);
    let rdb = strata_dir.path().join("dump.rdb");
    if common::require_tool("redis-check-rdb") {
        let (ok, text) = run_checker("redis-check-rdb", &[&rdb.to_string_lossy()]);
        assert!(ok && text.contains("RDB looks OK"), "{text}");
    }
    let redis_again =
        Server::start_in(Kind::Redis, strata_dir.path(), &["--appendonly", "no"]).expect("redis");
    assert_same_streams(
        &expected,
        &stream_state(&redis_again),
        "Redis loads Strata's file",
    );
}
