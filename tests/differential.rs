//! Differential tests: every `tests/diff/*.txt` script runs against a fresh Strata and a fresh
//! real Redis, and the raw reply bytes must be identical.
//!
//! Script format (one command per line):
//! - words are split like redis-cli and redis.conf: "double quotes" with `\xNN` and C escapes,
//!   'single quotes';
//! - `#` starts a comment line; blank lines are skipped;
//! - `!sleep N` waits N milliseconds;
//! - a `?` prefix compares only the reply's first byte (its RESP type), for nondeterministic
//!   replies such as PTTL, TIME, RANDOMKEY or INFO;
//! - a `%` prefix (before any `?`) runs the line but does not compare it in the cold runs
//!   (where every value is moved to the disk tier before each command), for replies that
//!   legitimately depend on it, such as DEBUG (enabled there).
//!
//! Replies that come in several frames are compared whole: a RESP3 push (`>`, a pub/sub
//! message or keyspace notification) is read together with the frames that follow it up to the
//! command's own reply, so pushes are compared byte for byte and in their place; and the
//! (un)subscribe commands, which answer with one frame per channel (arrays in RESP2, pushes in
//! RESP3) and nothing after, are read until no frame arrives for `FOLLOW_WAIT`.
//!
//! Both servers are FLUSHALLed before the script, and the connection speaks RESP2 until the
//! script says `HELLO 3`. When a line closes a connection (QUIT, a protocol error), the next
//! line reconnects, so one closing line does not hide the rest of the script.
//!
//! The known families each get their own test (run in parallel, skipped when the file does
//! not exist yet); `other_scripts` runs any other file. `DIFF_VERBOSE=1` prints every line;
//! `STRATA_DIFF_DIR` reads scripts from another directory and `STRATA_SERVER_BIN` runs another
//! strata-server build.

mod common;

use common::{escape, split_line, Conn, ReadError, Server};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Families with a test of their own.
const KNOWN: &[&str] = &[
    "connection",
    "strings",
    "keys",
    "server",
    "protocol",
    "hashes",
    "lists",
    "sets",
    "zsets",
    "sort",
    "streams",
    "transactions",
    "blocking",
    "geo",
    "pubsub",
    "notifications",
    "dump",
    "bitmaps",
    "hyperloglog",
];
/// A script longer than this is surely a mistake (and would make the run slow).
const SCRIPT_LINES_MAX: usize = 20_000;
/// The longest `!sleep` accepted, so a typo cannot stall CI.
const SLEEP_MS_MAX: u64 = 5_000;
/// How long one reply may take; short, because a reply that never comes (CLIENT REPLY OFF,
/// a blocked command) costs this on both servers.
const DIFF_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for one more frame of a multi-frame reply ((un)subscribe commands).
const FOLLOW_WAIT: Duration = Duration::from_millis(100);
/// The commands whose reply is one frame per channel and nothing after.
const SUBSCRIBE_FAMILY: &[&str] = &[
    "subscribe",
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
];
/// Frames read for one command at most (pushes before a reply), so a flood cannot stall.
const FRAMES_MAX: usize = 1_000;
/// Mismatches printed per file before the rest are only counted.
const REPORTED_MAX: usize = 200;

/// tests/diff, or `STRATA_DIFF_DIR` to try scripts kept elsewhere.
fn diff_dir() -> PathBuf {
    match std::env::var_os("STRATA_DIFF_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("diff"),
    }
}

/// One script line, ready to send.
struct Step {
    line_number: usize,
    text: String,
    kind: StepKind,
}

enum StepKind {
    Sleep(u64),
    Command {
        args: Vec<Vec<u8>>,
        type_only: bool,
        hot_only: bool,
    },
}

fn parse_script(name: &str, text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        if line_number > SCRIPT_LINES_MAX {
            return Err(format!("{name}: more than {SCRIPT_LINES_MAX} lines"));
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let kind = if let Some(rest) = line.strip_prefix("!sleep") {
            let milliseconds: u64 = rest
                .trim()
                .parse()
                .map_err(|_| format!("{name}:{line_number}: bad !sleep: {line}"))?;
            if milliseconds > SLEEP_MS_MAX {
                return Err(format!(
                    "{name}:{line_number}: !sleep over {SLEEP_MS_MAX} ms"
                ));
            }
            StepKind::Sleep(milliseconds)
        } else {
            let (hot_only, line) = match line.strip_prefix('%') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (type_only, command) = match line.strip_prefix('?') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let args = split_line(command.as_bytes())
                .ok_or_else(|| format!("{name}:{line_number}: unbalanced quotes: {line}"))?;
            if args.is_empty() {
                return Err(format!("{name}:{line_number}: no command: {line}"));
            }
            StepKind::Command {
                args,
                type_only,
                hot_only,
            }
        };
        steps.push(Step {
            line_number,
            text: line.to_string(),
            kind,
        });
    }
    Ok(steps)
}

fn connect(server: &Server) -> Conn {
    let mut conn = server.connect();
    conn.timeout = DIFF_REPLY_TIMEOUT;
    conn
}

/// One side of the comparison: a server and the script's connection to it.
struct Side {
    server: Server,
    conn: Option<Conn>,
}

impl Side {
    fn new(server: Server) -> Side {
        let conn = Some(connect(&server));
        Side { server, conn }
    }

    /// Sends one command and renders the outcome as bytes (errors of the transport become
    /// readable markers, so both sides compare the same way).
    fn run(&mut self, args: &[Vec<u8>]) -> Vec<u8> {
        let conn = self.conn.get_or_insert_with(|| connect(&self.server));
        if conn.try_send(&common::encode_command(args)).is_err() {
            self.conn = None;
            return b"<closed before send>".to_vec();
        }
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let multi_frame = SUBSCRIBE_FAMILY.contains(&name.as_str());
        let mut frames = Vec::new();
        for _ in 0..FRAMES_MAX {
            let timeout = if multi_frame && !frames.is_empty() {
                FOLLOW_WAIT
            } else {
                DIFF_REPLY_TIMEOUT
            };
            match conn.read_reply_within(timeout) {
                Ok(frame) => {
                    let push = frame.first() == Some(&b'>');
                    frames.extend_from_slice(&frame);
                    if !push && !multi_frame {
                        return frames;
                    }
                }
                // The last frame of a multi-frame reply was read.
                Err(ReadError::Timeout(partial))
                    if multi_frame && !frames.is_empty() && partial.is_empty() =>
                {
                    return frames;
                }
                Err(error) => {
                    if matches!(error, ReadError::Closed(_) | ReadError::Malformed(_)) {
                        self.conn = None;
                    }
                    frames.extend_from_slice(error.to_string().as_bytes());
                    return frames;
                }
            }
        }
        frames
    }
}

fn first_byte(reply: &[u8]) -> &[u8] {
    &reply[..reply.len().min(1)]
}

/// Runs one script against both servers; returns the mismatch reports. `cold`: before every
/// command, Strata moves every value to its disk tier (`DEBUG SPILL` on a side connection),
/// so each command meets its keys cold and must answer exactly as with them in RAM.
fn run_script(path: &Path, cold: bool) -> Vec<String> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    let steps = match parse_script(&name, &text) {
        Ok(steps) => steps,
        Err(message) => return vec![message],
    };
    let Some(redis) = Server::redis(&[]) else {
        return Vec::new();
    };
    let mut redis = Side::new(redis);
    let strata_args: &[&str] = if cold {
        &[
            "--enable-debug-command",
            "yes",
            "--tiering-min-value-size",
            "0",
        ]
    } else {
        &[]
    };
    let mut strata = Side::new(Server::strata(strata_args));
    let mut spiller = cold.then(|| connect(&strata.server));
    // Reads borrow cold values (as when memory is full); writes bring them back.
    if let Some(spiller) = spiller.as_mut() {
        let reply = spiller.command(&[b"DEBUG".as_slice(), b"SET-TIERING-LEND", b"1"]);
        assert_eq!(reply, b"+OK\r\n", "DEBUG SET-TIERING-LEND");
    }
    // Both servers are fresh; FLUSHALL makes that explicit, and its reply is not compared
    // (the setup step is not part of the script).
    let flushall = vec![b"FLUSHALL".to_vec()];
    assert_eq!(redis.run(&flushall), b"+OK\r\n", "FLUSHALL on redis");
    let _ = strata.run(&flushall);
    let verbose = std::env::var("DIFF_VERBOSE").is_ok();
    let mut mismatches = Vec::new();
    for step in &steps {
        match &step.kind {
            StepKind::Sleep(milliseconds) => {
                std::thread::sleep(Duration::from_millis(*milliseconds));
            }
            StepKind::Command {
                args,
                type_only,
                hot_only,
            } => {
                if let Some(spiller) = spiller.as_mut() {
                    let reply = spiller.command(&[b"DEBUG".as_slice(), b"SPILL"]);
                    assert_eq!(
                        reply.first(),
                        Some(&b':'),
                        "DEBUG SPILL: {}",
                        escape(&reply)
                    );
                }
                let expected = redis.run(args);
                let actual = strata.run(args);
                let equal = if *hot_only && cold {
                    true
                } else if *type_only {
                    first_byte(&expected) == first_byte(&actual)
                } else {
                    expected == actual
                };
                if verbose {
                    eprintln!(
                        "{name}:{}: {}\n    redis:  {}\n    strata: {}",
                        step.line_number,
                        step.text,
                        escape(&expected),
                        escape(&actual)
                    );
                }
                if !equal {
                    mismatches.push(format!(
                        "{name}:{}: {}\n    redis:  {}\n    strata: {}",
                        step.line_number,
                        step.text,
                        escape(&expected),
                        escape(&actual)
                    ));
                }
            }
        }
    }
    mismatches
}

fn check_files(paths: &[PathBuf], cold: bool) {
    let mut report = String::new();
    let mut total = 0;
    for path in paths {
        let mismatches = run_script(path, cold);
        total += mismatches.len();
        for mismatch in mismatches.iter().take(REPORTED_MAX) {
            report.push_str(mismatch);
            report.push('\n');
        }
        if mismatches.len() > REPORTED_MAX {
            report.push_str(&format!(
                "... and {} more in {}\n",
                mismatches.len() - REPORTED_MAX,
                path.display()
            ));
        }
    }
    assert!(
        total == 0,
        "{total} replies differ from real Redis:\n{report}"
    );
}

/// The scripts in tests/diff, sorted by name.
fn all_scripts() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(diff_dir())
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
}

fn check_family(family: &str, cold: bool) {
    let path = diff_dir().join(format!("{family}.txt"));
    if !path.exists() {
        eprintln!("no tests/diff/{family}.txt yet: nothing to compare");
        return;
    }
    check_files(&[path], cold);
}

/// One test per family with the keys in RAM, and one (`cold::family`) with every value moved
/// to the disk tier before each command.
macro_rules! family_tests {
    ($($family:ident),* $(,)?) => {
        $(
            #[test]
            fn $family() {
                check_family(stringify!($family), false);
            }
        )*
        mod cold {
            $(
                #[test]
                fn $family() {
                    super::check_family(stringify!($family), true);
                }
            )*
        }
    };
}

family_tests!(
    connection,
    strings,
    keys,
    server,
    protocol,
    hashes,
    lists,
    sets,
    zsets,
    sort,
    streams,
    transactions,
    blocking,
    geo,
    pubsub,
    notifications,
    dump,
    bitmaps,
    hyperloglog
);

/// Scripts of families without a test of their own.
#[test]
fn other_scripts() {
    let others: Vec<PathBuf> = all_scripts()
        .into_iter()
        .filter(|path| {
            let stem = path
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default();
            !KNOWN.contains(&stem.as_str())
        })
        .collect();
    check_files(&others, false);
}

/// Every script parses (bad quoting is reported even when no server is installed).
#[test]
fn scripts_parse() {
    for path in all_scripts() {
        let text = std::fs::read_to_string(&path).expect("readable script");
        let name = path.display().to_string();
        if let Err(message) = parse_script(&name, &text) {
            panic!("{message}");
        }
    }
}

/// The script format itself: comments, blank lines, sleeps, type-only lines, quoting.
#[test]
fn script_format() {
    let text = "# comment\n\n  PING  \n!sleep 15\n%?PTTL k\nSET \"a b\" '\\x41'\n";
    let steps = parse_script("sample", text).expect("valid script");
    assert_eq!(steps.len(), 4);
    assert_eq!(steps[0].line_number, 3);
    assert!(
        matches!(&steps[0].kind, StepKind::Command { args, type_only: false, hot_only: false }
        if args == &vec![b"PING".to_vec()])
    );
    assert!(matches!(steps[1].kind, StepKind::Sleep(15)));
    assert!(
        matches!(&steps[2].kind, StepKind::Command { args, type_only: true, .. }
        if args == &vec![b"PTTL".to_vec(), b"k".to_vec()])
    );
    assert!(matches!(
        &steps[2].kind,
        StepKind::Command { hot_only: true, .. }
    ));
    // Single quotes keep backslashes as they are, like redis-cli.
    assert!(matches!(&steps[3].kind, StepKind::Command { args, .. }
        if args == &vec![b"SET".to_vec(), b"a b".to_vec(), b"\\x41".to_vec()]));
    assert!(parse_script("bad", "SET \"a\n").is_err());
    assert!(parse_script("bad", "!sleep soon\n").is_err());
    assert!(parse_script("bad", "!sleep 999999\n").is_err());
    assert!(parse_script("bad", "?\n").is_err());
}
