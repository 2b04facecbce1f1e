//! Start-up and shut-down as redis-server does them: a config file plus `--flag` overrides,
//! Redis's fatal config errors (naming the line), a realistic redis.conf, the defaults
//! (`./data`), SIGTERM and SHUTDOWN, and the memory a fresh server holds.

mod common;

use common::{free_port, run_strata_to_exit, Server};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A server asked to stop must be gone within this.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing the config file");
    path.to_string_lossy().into_owned()
}

#[test]
fn a_fresh_server_holds_little_memory() {
    // Redis 7.0 starts at about 1 MB. The command metadata (COMMAND INFO and DOCS) kept as
    // parsed JSON trees once made this 17.7 MB; as text it is about 3 MB.
    let server = Server::strata(&[]);
    let mut conn = server.connect();
    let used = common::info_number(&mut conn, "memory", "used_memory");
    assert!(used < 6 << 20, "used_memory {used} at start");
}

#[test]
fn config_file_with_command_line_override() {
    let work = tempfile::tempdir().expect("tempdir");
    let file_port = free_port();
    let port = free_port();
    let data = work.path().join("from-file");
    let config = write_file(
        work.path(),
        "strata.conf",
        &format!(
            "# a comment\nport {file_port}\nbind 127.0.0.1\n\ndir \"{}\"\ndatabases 4\n",
            data.display()
        ),
    );
    let port_text = port.to_string();
    let server = Server::strata_exact(&[&config, "--port", &port_text], work.path(), port)
        .unwrap_or_else(|message| panic!("{message}"));
    let mut conn = server.connect();
    assert_eq!(conn.cmd("PING"), b"+PONG\r\n");
    // The file's other lines were applied: 4 databases, and the directory exists.
    assert_eq!(conn.cmd("SELECT 3"), b"+OK\r\n");
    assert_eq!(conn.cmd("SELECT 4"), b"-ERR DB index is out of range\r\n");
    assert!(data.is_dir(), "dir from the file was not created");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", file_port)).is_err(),
        "the file's port should have been overridden"
    );
}

#[test]
fn config_errors_name_the_line() {
    let work = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cases = [
        (
            format!("port {port}\n\nmaxclients lots\n"),
            "at line 3",
            ">>> 'maxclients lots'",
            "argument couldn't be parsed into an integer",
        ),
        (
            format!("port {port}\nnosuchdirective 1\n"),
            "at line 2",
            ">>> 'nosuchdirective 1'",
            "Bad directive or wrong number of arguments",
        ),
    ];
    for (text, line, quoted, reason) in cases {
        let config = write_file(work.path(), "bad.conf", &text);
        let (status, stderr) = run_strata_to_exit(&[&config], work.path(), EXIT_TIMEOUT);
        let status = status.unwrap_or_else(|| panic!("still running with {text:?}"));
        assert!(!status.success(), "{text:?} must fail to start");
        for needle in [line, quoted, reason] {
            assert!(
                stderr.contains(needle),
                "{needle:?} missing from:\n{stderr}"
            );
        }
    }
    // An override on the command line is reported the same way.
    let (status, stderr) = run_strata_to_exit(
        &["--port", &port.to_string(), "--maxclients", "lots"],
        work.path(),
        EXIT_TIMEOUT,
    );
    assert!(!status.expect("exited").success());
    assert!(
        stderr.contains("argument couldn't be parsed into an integer"),
        "{stderr}"
    );
}

/// A redis.conf as people write them: persistence, memory and tuning lines start the server
/// (warnings allowed for what is not acted on yet). Real Redis accepts the same file.
#[test]
fn realistic_redis_conf_starts() {
    let work = tempfile::tempdir().expect("tempdir");
    let text = "\
# Typical production-ish redis.conf lines
bind 127.0.0.1 -::1
protected-mode yes
tcp-backlog 511
timeout 0
tcp-keepalive 300
daemonize no
loglevel notice
logfile \"\"
databases 16
always-show-logo no
save 900 1
save 300 10
save 60 10000
stop-writes-on-bgsave-error yes
rdbcompression yes
rdbchecksum yes
dbfilename dump.rdb
dir ./
replica-serve-stale-data yes
replica-read-only yes
maxmemory 100mb
maxmemory-policy allkeys-lru
lazyfree-lazy-eviction no
appendonly no
appendfilename \"appendonly.aof\"
appendfsync everysec
no-appendfsync-on-rewrite no
auto-aof-rewrite-percentage 100
auto-aof-rewrite-min-size 64mb
lua-time-limit 5000
slowlog-log-slower-than 10000
slowlog-max-len 128
latency-monitor-threshold 0
notify-keyspace-events \"\"
hash-max-listpack-entries 512
hash-max-listpack-value 64
list-max-listpack-size -2
set-max-intset-entries 512
zset-max-listpack-entries 128
activerehashing yes
client-output-buffer-limit normal 0 0 0
client-output-buffer-limit replica 256mb 64mb 60
client-output-buffer-limit pubsub 32mb 8mb 60
hz 10
dynamic-hz yes
aof-rewrite-incremental-fsync yes
rdb-save-incremental-fsync yes
";
    let config = write_file(work.path(), "redis.conf", text);
    for kind in ["strata", "redis"] {
        let port = free_port();
        let port_text = port.to_string();
        let server = if kind == "strata" {
            Server::strata_exact(&[&config, "--port", &port_text], work.path(), port)
                .unwrap_or_else(|message| panic!("{message}"))
        } else {
            if !common::require_tool("redis-server") {
                continue;
            }
            // Checks the file itself is valid for the reference.
            match Server::redis(&["--include", &config, "--save", "", "--dir", "./"]) {
                Some(server) => server,
                None => continue,
            }
        };
        assert_eq!(server.connect().cmd("PING"), b"+PONG\r\n", "{kind}");
    }
}

#[test]
fn sigterm_exits_zero_promptly() {
    let mut server = Server::strata(&[]);
    let mut conn = server.connect();
    assert_eq!(conn.cmd("SET k v"), b"+OK\r\n");
    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success());
    let exit = server
        .wait_exit(EXIT_TIMEOUT)
        .expect("strata-server did not exit after SIGTERM");
    assert!(exit.success(), "exit status {exit}; log:\n{}", server.log());
    assert!(conn.is_closed_within(EXIT_TIMEOUT));
}

#[test]
fn shutdown_nosave_stops_the_server() {
    let mut server = Server::strata(&[]);
    let mut conn = server.connect();
    conn.send(b"SHUTDOWN NOSAVE\r\n");
    // SHUTDOWN does not reply on success: the connection just closes.
    let received = conn.read_until_closed(EXIT_TIMEOUT);
    assert_eq!(
        received
            .as_deref()
            .map_err(|partial| common::escape(partial)),
        Ok(&b""[..])
    );
    let exit = server
        .wait_exit(EXIT_TIMEOUT)
        .expect("strata-server did not exit after SHUTDOWN NOSAVE");
    assert!(exit.success(), "exit status {exit}; log:\n{}", server.log());
}

/// With no `--dir`, data goes to ./data under the working directory (created on start).
#[test]
fn default_dir_is_data_in_cwd() {
    let work = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let port_text = port.to_string();
    let server = Server::strata_exact(&["--port", &port_text], work.path(), port)
        .unwrap_or_else(|message| panic!("{message}"));
    assert_eq!(server.connect().cmd("PING"), b"+PONG\r\n");
    assert!(
        work.path().join("data").is_dir(),
        "./data was not created in the working directory"
    );
}

#[test]
fn version_and_help_exit_zero() {
    let work = tempfile::tempdir().expect("tempdir");
    for flag in ["--version", "-v", "--help"] {
        let (status, _) = run_strata_to_exit(&[flag], work.path(), EXIT_TIMEOUT);
        assert!(status.expect("exited").success(), "{flag}");
    }
}

/// `io-threads`: Redis's advice decides the default (threads only from 4 cores, one left
/// spare), CONFIG GET and INFO show the number in force, and a given number is kept.
#[test]
fn io_threads_default_to_redis_advice_and_show_what_is_in_force() {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let expected = if cores >= 4 { cores - 1 } else { 1 };
    for (given, threads) in [(None, expected), (Some("3"), 3)] {
        let work = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let port_text = port.to_string();
        let mut args = vec!["--port", port_text.as_str()];
        args.extend(given.iter().flat_map(|given| ["--io-threads", *given]));
        let server = Server::strata_exact(&args, work.path(), port)
            .unwrap_or_else(|message| panic!("{message}"));
        let mut client = server.connect();
        let reply = client.command(&["CONFIG", "GET", "io-threads"]);
        let text = threads.to_string();
        let expected_reply = format!("*2\r\n$10\r\nio-threads\r\n${}\r\n{text}\r\n", text.len());
        assert_eq!(String::from_utf8_lossy(&reply), expected_reply, "{given:?}");
        let info = String::from_utf8_lossy(&client.command(&["INFO", "server"])).into_owned();
        let active = format!("io_threads_active:{}", u8::from(threads > 1));
        assert!(info.contains(&active), "{given:?}: {info}");
    }
}
