//! Shared helpers for the wire-level tests: starting Strata and real Redis as child processes,
//! a raw RESP client, and the redis-cli-style line splitter the differential scripts use.
//!
//! Every server runs on a port found free by binding 127.0.0.1:0, in its own temporary
//! directory, and is killed when its handle drops, so a failing test never leaks a process.
//! Every socket read has a timeout, so a hung server fails a test instead of hanging CI.
//!
//! Real Redis may be missing on a developer machine: then `Server::redis` prints a loud
//! `SKIPPING` line and returns None, unless `CI=true`, where a missing reference is an error.

// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

pub mod persistence;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start accepting connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Default bound on waiting for one reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a start is retried when the free port was taken in between.
const START_ATTEMPTS_MAX: usize = 3;
/// Largest reply the raw client accepts, so a runaway server cannot exhaust test memory.
const REPLY_BYTES_MAX: usize = 256 * 1024 * 1024;
/// The line both servers log when they accept connections.
const READY_LINE: &str = "eady to accept connections";
/// Two connection threads, whatever the machine: a test's clients then meet across threads
/// (a blocked client served from the other thread, a message published there, two writers
/// on one shard), as they do by default on machines of 4 cores or more. On this project's
/// 2-core machine the default is one thread; `tests/startup.rs` starts the defaults as they
/// are (`Server::strata_exact`), and an `extra` `--io-threads` overrides this.
const STRATA_THREADS: [&str; 2] = ["--io-threads", "2"];

/// Which binary a `Server` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Strata,
    Redis,
}

impl Kind {
    /// The executable: this crate's strata-server (or `STRATA_SERVER_BIN`, to run the tests
    /// against another build), or redis-server from PATH.
    pub fn program(self) -> String {
        match self {
            Kind::Strata => std::env::var("STRATA_SERVER_BIN")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_strata-server").to_string()),
            Kind::Redis => "redis-server".to_string(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Strata => "strata",
            Kind::Redis => "redis",
        }
    }
}

/// A running server process, killed on drop.
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    child: Child,
    /// Holds the data directory (and the log) alive for as long as the server runs.
    dir: tempfile::TempDir,
    pub log_path: PathBuf,
}

/// A port that was free a moment ago. Another process may take it before the server binds it;
/// the start functions retry on that.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// True when an executable answers `--version`.
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// Whether a reference tool (`redis-server`, `redis-cli`, ...) can be used. In CI a missing
/// tool is a failure; elsewhere the caller skips with a loud message.
pub fn require_tool(program: &str) -> bool {
    if installed(program) {
        return true;
    }
    if std::env::var("CI")
        .map(|value| value == "true")
        .unwrap_or(false)
    {
        panic!(
            "{program} is not installed but CI=true: install it with \
             `apt-get install -y redis-server redis-tools`"
        );
    }
    eprintln!(
        "\n!!!!!!!!!! SKIPPING: {program} not installed \
         (apt-get install -y redis-server redis-tools) !!!!!!!!!!\n"
    );
    false
}

impl Server {
    /// Starts strata-server on a free port with a temporary `--dir`, plus `extra` arguments
    /// (`["--maxclients", "2"]`), and waits until it accepts connections.
    pub fn strata(extra: &[&str]) -> Server {
        Server::start(Kind::Strata, extra).unwrap_or_else(|message| panic!("{message}"))
    }

    /// Starts a real redis-server the same way (no persistence), or None when it is not
    /// installed outside CI.
    pub fn redis(extra: &[&str]) -> Option<Server> {
        if !require_tool("redis-server") {
            return None;
        }
        Some(Server::start(Kind::Redis, extra).unwrap_or_else(|message| panic!("{message}")))
    }

    /// Starts one of each with the same extra arguments; the Redis side is None when skipped.
    pub fn pair(extra: &[&str]) -> (Server, Option<Server>) {
        (Server::strata(extra), Server::redis(extra))
    }

    fn start(kind: Kind, extra: &[&str]) -> Result<Server, String> {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS_MAX {
            let dir = tempfile::tempdir().map_err(|err| format!("tempdir: {err}"))?;
            let port = free_port();
            let port_text = port.to_string();
            let dir_text = dir.path().to_string_lossy().into_owned();
            let mut args: Vec<&str> = vec!["--port", &port_text, "--bind", "127.0.0.1"];
            args.extend(["--dir", &dir_text]);
            if kind == Kind::Redis {
                args.extend(["--save", "", "--appendonly", "no"]);
            } else {
                args.extend(STRATA_THREADS);
            }
            args.extend(extra);
            let cwd = dir.path().to_path_buf();
            match Server::spawn(kind, &args, &cwd, dir, port) {
                Ok(server) => return Ok(server),
                Err(message) => last_error = message,
            }
        }
        Err(last_error)
    }

    /// Starts a server whose data lives in `data_dir` (which outlives it, so a test can
    /// restart a server on the same files), on a free port, with `extra` arguments. None when
    /// the binary is a reference tool that is missing outside CI.
    pub fn start_in(kind: Kind, data_dir: &Path, extra: &[&str]) -> Option<Server> {
        if kind == Kind::Redis && !require_tool("redis-server") {
            return None;
        }
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS_MAX {
            let log_dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let port_text = port.to_string();
            let dir_text = data_dir.to_string_lossy().into_owned();
            let mut args: Vec<&str> = vec!["--port", &port_text, "--bind", "127.0.0.1"];
            args.extend(["--dir", &dir_text]);
            if kind == Kind::Redis {
                args.extend(["--save", ""]);
            } else {
                args.extend(STRATA_THREADS);
            }
            args.extend(extra);
            match Server::spawn(kind, &args, data_dir, log_dir, port) {
                Ok(server) => return Some(server),
                Err(message) => last_error = message,
            }
        }
        panic!("{last_error}")
    }

    /// Starts strata-server with exactly `args` (nothing added) in `cwd`, and waits until it
    /// logs that it accepts connections on `port`. For start-up tests of files and defaults.
    pub fn strata_exact(args: &[&str], cwd: &Path, port: u16) -> Result<Server, String> {
        let dir = tempfile::tempdir().map_err(|err| format!("tempdir: {err}"))?;
        Server::spawn(Kind::Strata, args, cwd, dir, port)
    }

    fn spawn(
        kind: Kind,
        args: &[&str],
        cwd: &Path,
        dir: tempfile::TempDir,
        port: u16,
    ) -> Result<Server, String> {
        let log_path = dir.path().join("server.log");
        let log = File::create(&log_path).map_err(|err| format!("log file: {err}"))?;
        let log_err = log.try_clone().map_err(|err| format!("log file: {err}"))?;
        let child = Command::new(kind.program())
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|err| format!("starting {}: {err}", kind.name()))?;
        let mut server = Server {
            kind,
            port,
            child,
            dir,
            log_path,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Waits for the "Ready to accept connections" log line without opening a connection
    /// (so client ids start where a fresh server starts them), falling back to a connect
    /// probe in case the log format changes.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let probe_after = Duration::from_secs(1);
        while started.elapsed() < START_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited during start-up ({status}); log:\n{}",
                    self.kind.name(),
                    self.log()
                ));
            }
            if self.log().contains(READY_LINE) {
                return Ok(());
            }
            if started.elapsed() > probe_after && answers_ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!(
            "{} did not accept connections on port {} within {:?}; log:\n{}",
            self.kind.name(),
            self.port,
            START_TIMEOUT,
            self.log()
        ))
    }

    /// Waits up to `timeout` for the process to exit by itself; None if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A new raw connection.
    pub fn connect(&self) -> Conn {
        Conn::connect(self.port).unwrap_or_else(|err| {
            panic!(
                "connecting to {} on {}: {err}; log:\n{}",
                self.kind.name(),
                self.port,
                self.log()
            )
        })
    }

    /// Resident set size of the process, from /proc/<pid>/statm.
    pub fn rss_bytes(&self) -> u64 {
        rss_bytes(self.pid())
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when a server on `port` answers PING with PONG (not `-LOADING` while its dataset
/// loads).
fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    matches!(stream.read(&mut reply), Ok(n) if reply[..n].starts_with(b"+PONG"))
}

/// Runs strata-server with `args` in `cwd` until it exits (it is expected to fail at start-up),
/// killing it after `timeout`. Returns the exit status (None when killed) and its stderr.
pub fn run_strata_to_exit(
    args: &[&str],
    cwd: &Path,
    timeout: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    let output_dir = tempfile::tempdir().expect("tempdir");
    let stderr_path = output_dir.path().join("stderr.log");
    let stderr = File::create(&stderr_path).expect("stderr file");
    let mut child = Command::new(Kind::Strata.program())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("starting strata-server");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status,
        std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    )
}

/// Resident set size of a process in bytes (0 when it cannot be read). Read from the
/// `VmRSS` line of /proc/<pid>/status, which is /proc/<pid>/statm's resident field already
/// converted to kB, so no page size has to be assumed.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kilobytes| kilobytes.parse::<u64>().ok())
        .map(|kilobytes| kilobytes * 1024)
        .unwrap_or(0)
}

/// How a read of one reply ended when it did not produce a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The peer closed the connection; holds any partial bytes received.
    Closed(Vec<u8>),
    /// Nothing complete arrived in time; holds the partial bytes.
    Timeout(Vec<u8>),
    /// The bytes are not RESP.
    Malformed(Vec<u8>),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed(partial) => write!(formatter, "<closed> {}", escape(partial)),
            ReadError::Timeout(partial) => write!(formatter, "<timeout> {}", escape(partial)),
            ReadError::Malformed(bytes) => write!(formatter, "<malformed> {}", escape(bytes)),
        }
    }
}

/// A raw RESP connection: sends bytes, reads replies as raw bytes.
pub struct Conn {
    pub stream: TcpStream,
    buffer: Vec<u8>,
    pub timeout: Duration,
}

impl Conn {
    pub fn connect(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buffer: Vec::new(),
            timeout: REPLY_TIMEOUT,
        })
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("writing to the server");
    }

    /// Sends raw bytes, reporting failure (the server may have closed the connection).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends raw bytes, failing when the server does not take them within `timeout` (it
    /// stopped reading).
    pub fn send_within(&mut self, bytes: &[u8], timeout: Duration) -> std::io::Result<()> {
        self.stream.set_write_timeout(Some(timeout))?;
        let result = self.stream.write_all(bytes);
        self.stream.set_write_timeout(None)?;
        result
    }

    /// Sends a command as a multibulk request.
    pub fn send_command<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        self.send(&encode_command(args));
    }

    /// Sends a command and reads its reply.
    pub fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<u8> {
        self.send_command(args);
        self.read_reply()
            .unwrap_or_else(|err| panic!("reading the reply: {err}"))
    }

    /// Sends a command given as a redis-cli line (`SET a "b c"`) and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Vec<u8> {
        let args =
            split_line(line.as_bytes()).unwrap_or_else(|| panic!("unbalanced quotes in {line:?}"));
        self.command(&args)
    }

    /// Reads exactly one reply (RESP2 or RESP3) as raw bytes.
    pub fn read_reply(&mut self) -> Result<Vec<u8>, ReadError> {
        self.read_reply_within(self.timeout)
    }

    pub fn read_reply_within(&mut self, timeout: Duration) -> Result<Vec<u8>, ReadError> {
        let deadline = Instant::now() + timeout;
        loop {
            match frame_end(&self.buffer, 0) {
                Ok(Some(end)) => return Ok(self.buffer.drain(..end).collect()),
                Ok(None) => {}
                Err(()) => return Err(ReadError::Malformed(std::mem::take(&mut self.buffer))),
            }
            if self.buffer.len() > REPLY_BYTES_MAX {
                return Err(ReadError::Malformed(std::mem::take(&mut self.buffer)));
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Closed => return Err(ReadError::Closed(std::mem::take(&mut self.buffer))),
                Fill::Timeout => return Err(ReadError::Timeout(std::mem::take(&mut self.buffer))),
            }
        }
    }

    /// Reads everything until the server closes the connection. Err(partial) on timeout.
    pub fn read_until_closed(&mut self, timeout: Duration) -> Result<Vec<u8>, Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buffer.len() > REPLY_BYTES_MAX {
                return Err(std::mem::take(&mut self.buffer));
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Closed => return Ok(std::mem::take(&mut self.buffer)),
                Fill::Timeout => return Err(std::mem::take(&mut self.buffer)),
            }
        }
    }

    /// True when the server closes the connection within `timeout` (bytes sent before the
    /// close are discarded).
    pub fn is_closed_within(&mut self, timeout: Duration) -> bool {
        self.read_until_closed(timeout).is_ok()
    }

    /// Reads whatever arrives within `wait`, without parsing.
    pub fn read_available(&mut self, wait: Duration) -> Vec<u8> {
        let deadline = Instant::now() + wait;
        while let Fill::Data = self.fill(deadline) {}
        std::mem::take(&mut self.buffer)
    }

    /// Closes the write side, as a client that is done sending.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    fn fill(&mut self, deadline: Instant) -> Fill {
        let now = Instant::now();
        if now >= deadline {
            return Fill::Timeout;
        }
        let wait = (deadline - now).max(Duration::from_millis(1));
        if self.stream.set_read_timeout(Some(wait)).is_err() {
            return Fill::Closed;
        }
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Fill::Closed,
            Ok(read) => {
                self.buffer.extend_from_slice(&chunk[..read]);
                Fill::Data
            }
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Fill::Timeout
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => Fill::Data,
            // A reset is the peer closing (e.g. it closed with our unread data pending).
            Err(_) => Fill::Closed,
        }
    }
}

enum Fill {
    Data,
    Closed,
    Timeout,
}

/// Encodes a command as a RESP multibulk request.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Position of the CRLF ending the line that starts at `start`.
fn line_end(buffer: &[u8], start: usize) -> Option<usize> {
    let mut index = start;
    while index + 1 < buffer.len() {
        if buffer[index] == b'\r' && buffer[index + 1] == b'\n' {
            return Some(index);
        }
        index += 1;
    }
    None
}

fn parse_length(bytes: &[u8]) -> Result<i64, ()> {
    std::str::from_utf8(bytes)
        .map_err(|_| ())?
        .parse::<i64>()
        .map_err(|_| ())
}

/// Where the complete RESP2/RESP3 value starting at `start` ends (exclusive): Ok(None) when
/// more bytes are needed, Err when the bytes are not RESP. Nesting is bounded by the bytes
/// themselves (each level consumes at least one header), and recursion depth by `DEPTH_MAX`.
pub fn frame_end(buffer: &[u8], start: usize) -> Result<Option<usize>, ()> {
    frame_end_depth(buffer, start, 0)
}

const DEPTH_MAX: usize = 64;

fn frame_end_depth(buffer: &[u8], start: usize, depth: usize) -> Result<Option<usize>, ()> {
    if depth > DEPTH_MAX {
        return Err(());
    }
    let Some(&kind) = buffer.get(start) else {
        return Ok(None);
    };
    let Some(header_end) = line_end(buffer, start) else {
        return Ok(None);
    };
    let after_header = header_end + 2;
    match kind {
        b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => Ok(Some(after_header)),
        b'$' | b'=' | b'!' => {
            let length = parse_length(&buffer[start + 1..header_end])?;
            if length < 0 {
                return Ok(Some(after_header));
            }
            let end = after_header + length as usize + 2;
            if buffer.len() < end {
                Ok(None)
            } else {
                Ok(Some(end))
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let count = parse_length(&buffer[start + 1..header_end])?;
            if count < 0 {
                return Ok(Some(after_header));
            }
            let elements = if matches!(kind, b'%' | b'|') {
                count as usize * 2
            } else {
                count as usize
            };
            let mut position = after_header;
            for _ in 0..elements {
                match frame_end_depth(buffer, position, depth + 1)? {
                    Some(end) => position = end,
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // An attribute precedes the value it describes.
                return frame_end_depth(buffer, position, depth + 1);
            }
            Ok(Some(position))
        }
        _ => Err(()),
    }
}

/// Printable form of reply bytes: ASCII as is, CR/LF as `\r\n`, others as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &byte in bytes {
        match byte {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push('"');
    out
}

/// Splits a line into words as redis-cli and redis.conf do (`sdssplitargs`): the library's
/// own splitter, which the inline-protocol tests check against real Redis.
pub fn split_line(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    strata::protocol::parser::split_args(line)
}

/// Checks the helpers themselves; runs in every test binary that includes this module.
/// A field of INFO `section` as a number (`blocked_clients`, `used_memory`, ...).
pub fn info_number(conn: &mut Conn, section: &str, field: &str) -> u64 {
    let text = String::from_utf8_lossy(&conn.cmd(&format!("INFO {section}"))).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}: {text}"))
}

/// Waits (up to `REPLY_TIMEOUT`) until `count` clients are blocked, so the order in which
/// clients blocked is known before the next step.
pub fn wait_blocked(conn: &mut Conn, count: usize) {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    while info_number(conn, "clients", "blocked_clients") != count as u64 {
        assert!(
            Instant::now() < deadline,
            "never reached {count} blocked clients"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (up to 30 s) until `ready` holds; panics otherwise.
#[allow(dead_code)]
pub fn wait_for(mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached in 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod self_tests {
    use super::*;

    #[test]
    fn common_frame_end_handles_resp2_and_resp3() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR x\r\n",
            b":12\r\n",
            b"$-1\r\n",
            b"$3\r\na\r\n\r\n",
            b"*-1\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"%1\r\n+a\r\n_\r\n",
            b"~1\r\n,1.5\r\n",
            b">2\r\n$7\r\nmessage\r\n#t\r\n",
            b"|1\r\n+key\r\n+val\r\n:5\r\n",
            b"=8\r\ntxt:abcd\r\n",
        ];
        for case in cases {
            assert_eq!(frame_end(case, 0), Ok(Some(case.len())), "{}", escape(case));
            for cut in 0..case.len() {
                assert_eq!(frame_end(&case[..cut], 0), Ok(None), "{}", escape(case));
            }
        }
        assert!(frame_end(b"?what\r\n", 0).is_err());
    }

    #[test]
    fn common_split_line_matches_sdssplitargs() {
        let split = |line: &str| split_line(line.as_bytes());
        assert_eq!(
            split(r#"SET "a b" 'c d' "\x41\n" e"#).unwrap(),
            vec![
                b"SET".to_vec(),
                b"a b".to_vec(),
                b"c d".to_vec(),
                b"A\n".to_vec(),
                b"e".to_vec()
            ]
        );
        assert_eq!(split("  ").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(split(r#"'it\'s'"#).unwrap(), vec![b"it's".to_vec()]);
        assert_eq!(split(r#""""#).unwrap(), vec![Vec::<u8>::new()]);
        assert!(split(r#"SET "a"#).is_none());
        assert!(split(r#""a"b"#).is_none());
    }
}
