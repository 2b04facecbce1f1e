//! Loading the AOF at start: the manifest, then the base file, then every incr file in order,
//! each command replayed through the executor as Redis's fake AOF client does.
//!
//! What may be wrong with the files and what happens (Redis's rules and messages):
//! - the last incr file ends in the middle of a command, or inside a MULTI without its EXEC
//!   (a crash mid-append): with `aof-load-truncated yes` the file is cut back to the last
//!   complete command (or to before the MULTI) with a warning and loading goes on; with `no`
//!   loading stops;
//! - the same in any other file, or a byte that is not RESP where a command should start:
//!   loading stops with the file and the byte offset named;
//! - an unknown command stops the load.
//!
//! Nothing is ever loaded silently wrong: every declared length is checked against the bytes
//! that remain before anything is taken, and nothing is allocated from a declared length.

use super::manifest::{self, Manifest};
use crate::io::FileSystem;
use bytes::Bytes;
use std::path::Path;

/// Lines of a command header longer than this are corruption, not a command.
const HEADER_LINE_BYTES_MAX: usize = 64;

/// How a replayed command fared.
pub enum Applied {
    Ok,
    /// Not a command this server knows: the load stops.
    Unknown,
}

/// What the loader needs from the server: run a command, load an RDB base.
pub trait Replay {
    fn apply(&mut self, argv: Vec<Bytes>) -> Applied;
    /// Loads an RDB (a `.base.rdb` file or an RDB preamble); `name` is for messages; `done`
    /// is told, now and then, the offset before which the bytes are not needed again.
    /// By default the RDB is skipped (a replayer that only looks at commands).
    fn load_rdb(
        &mut self,
        _bytes: &[u8],
        _name: &str,
        _done: &dyn Fn(usize),
    ) -> Result<(), String> {
        Ok(())
    }
}

/// The outcome of a load.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub commands: u64,
    /// `(file, offset)` where a truncated tail was cut off.
    pub truncated: Option<(String, u64)>,
}

/// Reads the manifest of the AOF at `dir`/`prefix`; None when there is none yet.
pub fn read_manifest(
    fs: &dyn FileSystem,
    dir: &Path,
    prefix: &str,
) -> Result<Option<Manifest>, String> {
    let path = dir.join(manifest::manifest_name(prefix));
    if !fs.exists(&path) {
        return Ok(None);
    }
    let text = fs.read(&path).map_err(|err| {
        format!(
            "Fatal error: can't open the AOF manifest file {} for reading: {err}",
            path.display()
        )
    })?;
    Manifest::parse(&text).map(Some)
}

/// Replays every file `manifest` names.
pub fn load(
    fs: &dyn FileSystem,
    dir: &Path,
    manifest: &Manifest,
    truncated_ok: bool,
    replay: &mut dyn Replay,
) -> Result<Report, String> {
    let mut report = Report::default();
    let files: Vec<&manifest::FileInfo> = manifest.replay_order().collect();
    for (index, info) in files.iter().enumerate() {
        let last = index + 1 == files.len();
        let path = dir.join(&info.name);
        let bytes = fs.read_whole(&path).map_err(|err| {
            format!(
                "Fatal error: can't open the append only file {} for reading: {err}",
                info.name
            )
        })?;
        let done = |offset: usize| bytes.release_before(offset);
        if bytes.is_empty() {
            continue;
        }
        let mut start = 0;
        if bytes.starts_with(b"REDIS") {
            if info.kind == manifest::FileKind::Base && info.name.ends_with(".rdb") {
                tracing::info!("Reading RDB base file on AOF loading...");
            } else {
                tracing::info!("Reading RDB preamble from AOF file...");
            }
            // A preamble file continues with commands after the RDB; only pure RDB base
            // files are written by Redis 7, which is what is supported here.
            replay.load_rdb(&bytes, &info.name, &done).map_err(|err| {
                format!(
                    "Error reading the RDB base file {}, AOF loading aborted: {err}",
                    info.name
                )
            })?;
            start = bytes.len();
        }
        let replayed = replay_commands(
            &bytes[start..],
            start as u64,
            replay,
            &mut report.commands,
            &|offset| done(start + offset),
        );
        // The mapping goes before the file may be cut (a torn tail) under it.
        drop(bytes);
        match replayed {
            Ok(()) => {}
            Err(Stop::Truncated { valid, in_multi }) => {
                if in_multi {
                    tracing::warn!(
                        "Revert incomplete MULTI/EXEC transaction in AOF file {}",
                        info.name
                    );
                }
                tracing::warn!(
                    "!!! Warning: short read while loading the AOF file {}!!!",
                    info.name
                );
                // A torn file may only be cut if nothing after it depends on what is lost:
                // it is the last file, or every later one holds no command (a rewrite lists
                // its new incr file before the old one is flushed; if that flush failed,
                // nothing was written after it).
                if !last && !later_files_hold_no_commands(fs, dir, &files[index + 1..]) {
                    return Err(format!(
                        "Fatal error: the truncated file is not the last file ({} at offset {valid})",
                        info.name
                    ));
                }
                if !truncated_ok {
                    return Err(format!(
                        "Unexpected end of file reading the append only file {} (offset {valid}). You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.",
                        info.name
                    ));
                }
                tracing::warn!("!!! Truncating the AOF {} at offset {valid} !!!", info.name);
                fs.truncate(&path, valid)
                    .map_err(|err| format!("Error truncating the AOF file {}: {err}", info.name))?;
                tracing::warn!(
                    "AOF {} loaded anyway because aof-load-truncated is enabled",
                    info.name
                );
                report.truncated = Some((info.name.clone(), valid));
            }
            Err(Stop::Corrupt { offset }) => {
                return Err(format!(
                    "Bad file format reading the append only file {} at offset {offset}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>",
                    info.name
                ));
            }
            Err(Stop::Checksum { offset }) => {
                return Err(format!(
                    "Corrupt append only file {}: the commands from offset {offset} do not match their checksum annotation",
                    info.name
                ));
            }
            Err(Stop::Unknown { name, offset }) => {
                return Err(format!(
                    "Unknown command '{name}' reading the append only file {} at offset {offset}",
                    info.name
                ));
            }
        }
    }
    Ok(report)
}

/// Replays a whole command stream that must be complete (the simulator's reference model
/// replays the propagation log this way).
pub fn replay_bytes(bytes: &[u8], replay: &mut dyn Replay) -> Result<(), String> {
    let mut count = 0;
    replay_commands(bytes, 0, replay, &mut count, &|_| {}).map_err(|stop| match stop {
        Stop::Truncated { valid, .. } => {
            format!("the stream ends inside a command (valid up to {valid})")
        }
        Stop::Corrupt { offset } => format!("not RESP at offset {offset}"),
        Stop::Checksum { offset } => format!("checksum mismatch for the range at offset {offset}"),
        Stop::Unknown { name, offset } => format!("unknown command '{name}' at offset {offset}"),
    })
}

/// True when none of `files` holds a command (absent, empty or annotations only).
fn later_files_hold_no_commands(
    fs: &dyn FileSystem,
    dir: &Path,
    files: &[&manifest::FileInfo],
) -> bool {
    files
        .iter()
        .all(|info| match fs.read(&dir.join(&info.name)) {
            Ok(bytes) => matches!(check(&bytes, 0), Checked::Valid { commands: 0 }),
            Err(_) => false,
        })
}

/// What checking one AOF file found (`strata-check`, redis-check-aof's analysis).
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// Every byte is whole commands: how many.
    Valid { commands: u64 },
    /// Whole commands up to `valid`, then a cut-off command or an open MULTI.
    Truncated { commands: u64, valid: u64 },
    /// Not RESP at `offset`.
    Corrupt { commands: u64, offset: u64 },
}

/// Checks an AOF file's commands without running them (an RDB preamble is skipped: check it
/// as an RDB).
pub fn check(bytes: &[u8], start: usize) -> Checked {
    struct Count;
    impl Replay for Count {
        fn apply(&mut self, _argv: Vec<Bytes>) -> Applied {
            Applied::Ok
        }
    }
    let mut commands = 0;
    match replay_commands(
        &bytes[start..],
        start as u64,
        &mut Count,
        &mut commands,
        &|_| {},
    ) {
        Ok(()) => Checked::Valid { commands },
        Err(Stop::Truncated { valid, .. }) => Checked::Truncated { commands, valid },
        Err(Stop::Corrupt { offset })
        | Err(Stop::Checksum { offset })
        | Err(Stop::Unknown { offset, .. }) => Checked::Corrupt { commands, offset },
    }
}

enum Stop {
    /// The bytes end inside a command (or an open MULTI): `valid` is where to cut.
    Truncated {
        valid: u64,
        in_multi: bool,
    },
    /// The commands from `offset` to a `#CRC64` annotation do not match it.
    Checksum {
        offset: u64,
    },
    Corrupt {
        offset: u64,
    },
    Unknown {
        name: String,
        offset: u64,
    },
}

/// Replays the commands in `bytes`, which start at file offset `base`; `done` is told, now and
/// then, the offset in `bytes` before which they are not needed again.
fn replay_commands(
    bytes: &[u8],
    base: u64,
    replay: &mut dyn Replay,
    count: &mut u64,
    done: &dyn Fn(usize),
) -> Result<(), Stop> {
    let mut position = 0usize;
    let mut released = 0usize;
    let mut verifier = super::checksum::Verifier::new(base);
    // Where the file is valid up to if it ends inside the open MULTI.
    let mut before_multi: Option<usize> = None;
    while position < bytes.len() {
        // Annotations (`#TS:...`) are lines of their own.
        if bytes[position] == b'#' {
            match find_line_end(bytes, position) {
                Some(end) => {
                    let next = base + (end + 2) as u64;
                    if let Err(offset) = verifier.annotation(&bytes[position..end], next) {
                        return Err(Stop::Checksum { offset });
                    }
                    position = end + 2;
                    continue;
                }
                None => {
                    return Err(truncated(
                        base,
                        before_multi.unwrap_or(position),
                        before_multi,
                    ))
                }
            }
        }
        let start = position;
        if start >= released + crate::server::persistence::RELEASE_EVERY {
            released = start;
            done(released);
        }
        let argv = match read_command(bytes, &mut position) {
            Ok(argv) => argv,
            Err(Short::End) => {
                return Err(truncated(base, before_multi.unwrap_or(start), before_multi))
            }
            Err(Short::Corrupt(at)) => {
                return Err(Stop::Corrupt {
                    offset: base + at as u64,
                })
            }
        };
        verifier.add(&bytes[start..position]);
        let name = argv[0].to_ascii_lowercase();
        if name == b"multi" {
            before_multi = Some(start);
        } else if name == b"exec" {
            before_multi = None;
        }
        match replay.apply(argv) {
            Applied::Ok => *count += 1,
            Applied::Unknown => {
                return Err(Stop::Unknown {
                    name: String::from_utf8_lossy(&name).into_owned(),
                    offset: base + start as u64,
                })
            }
        }
    }
    if let Some(valid) = before_multi {
        return Err(truncated(base, valid, Some(valid)));
    }
    Ok(())
}

fn truncated(base: u64, valid: usize, multi: Option<usize>) -> Stop {
    Stop::Truncated {
        valid: base + valid as u64,
        in_multi: multi.is_some(),
    }
}

enum Short {
    /// The bytes end before the command does.
    End,
    /// Not RESP at this offset.
    Corrupt(usize),
}

fn find_line_end(bytes: &[u8], from: usize) -> Option<usize> {
    bytes[from..]
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .map(|at| from + at)
}

/// `<prefix><number>\r\n` at `position`; the number must be sane for the bytes left.
fn read_header(bytes: &[u8], position: &mut usize, prefix: u8) -> Result<usize, Short> {
    let start = *position;
    if start >= bytes.len() {
        return Err(Short::End);
    }
    if bytes[start] != prefix {
        return Err(Short::Corrupt(start));
    }
    let limit = (start + HEADER_LINE_BYTES_MAX).min(bytes.len());
    let Some(end) = find_line_end(&bytes[..limit], start) else {
        return if limit == bytes.len() {
            Err(Short::End)
        } else {
            Err(Short::Corrupt(start))
        };
    };
    let digits = &bytes[start + 1..end];
    let number = std::str::from_utf8(digits)
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
        .ok_or(Short::Corrupt(start))?;
    *position = end + 2;
    Ok(number)
}

/// One `*<n>` multibulk of `$<len>` bulks.
fn read_command(bytes: &[u8], position: &mut usize) -> Result<Vec<Bytes>, Short> {
    let start = *position;
    let count = read_header(bytes, position, b'*')?;
    if count == 0 {
        return Err(Short::Corrupt(start));
    }
    // Each argument takes at least 4 bytes ("$0\r\n" plus "\r\n"): a count the remaining bytes
    // cannot hold is a truncation, and nothing is reserved from it.
    let mut argv = Vec::with_capacity(count.min((bytes.len() - *position) / 6 + 1));
    for _ in 0..count {
        let length = read_header(bytes, position, b'$')?;
        let end = position.checked_add(length).ok_or(Short::Corrupt(start))?;
        if end + 2 > bytes.len() {
            return Err(Short::End);
        }
        if &bytes[end..end + 2] != b"\r\n" {
            return Err(Short::Corrupt(end));
        }
        argv.push(Bytes::copy_from_slice(&bytes[*position..end]));
        *position = end + 2;
    }
    Ok(argv)
}

/// Entry point for a fuzz target: any bytes must neither panic nor loop. The first byte picks
/// the parser: even, the rest is a manifest (which, when it parses, must render to text that
/// parses back to the same manifest); odd, the rest is a command stream, replayed into a
/// recorder that must see only non-empty commands, each holding no more than the stream did.
pub fn fuzz_aof(bytes: &[u8]) {
    let Some((&first, rest)) = bytes.split_first() else {
        return;
    };
    if first % 2 == 0 {
        if let Ok(manifest) = Manifest::parse(rest) {
            let text = manifest.render();
            let again = Manifest::parse(text.as_bytes()).expect("a rendered manifest parses");
            assert_eq!(again.base, manifest.base);
            assert_eq!(again.incr, manifest.incr);
            assert_eq!(again.history, manifest.history);
        }
        return;
    }
    struct Recorder {
        commands: usize,
        bytes: usize,
    }
    impl Replay for Recorder {
        fn apply(&mut self, argv: Vec<Bytes>) -> Applied {
            assert!(!argv.is_empty(), "a command has a name");
            self.commands += 1;
            self.bytes += argv.iter().map(Bytes::len).sum::<usize>();
            // A made-up name stands for the commands the server does not know.
            if argv[0].eq_ignore_ascii_case(b"nosuch") {
                Applied::Unknown
            } else {
                Applied::Ok
            }
        }
    }
    let mut recorder = Recorder {
        commands: 0,
        bytes: 0,
    };
    let _ = replay_bytes(rest, &mut recorder);
    assert!(recorder.bytes <= rest.len());
    // Every command takes at least "*1\r\n$0\r\n\r\n" (10 bytes).
    assert!(recorder.commands <= rest.len() / 10);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record(Vec<Vec<String>>);

    impl Replay for Record {
        fn apply(&mut self, argv: Vec<Bytes>) -> Applied {
            if argv[0].eq_ignore_ascii_case(b"nosuch") {
                return Applied::Unknown;
            }
            self.0.push(
                argv.iter()
                    .map(|arg| String::from_utf8_lossy(arg).into_owned())
                    .collect(),
            );
            Applied::Ok
        }
    }

    fn run(bytes: &[u8]) -> (Result<(), Stop>, Vec<Vec<String>>) {
        let mut record = Record::default();
        let mut count = 0;
        let outcome = replay_commands(bytes, 0, &mut record, &mut count, &|_| {});
        (outcome, record.0)
    }

    const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n";

    #[test]
    fn replays_commands_and_skips_annotations() {
        let mut bytes = b"#TS:1700000000\r\n".to_vec();
        bytes.extend_from_slice(SET);
        bytes.extend_from_slice(SET);
        let (outcome, seen) = run(&bytes);
        assert!(outcome.is_ok());
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], ["SET", "a", "1"]);
    }

    #[test]
    fn every_cut_is_a_truncation_at_the_last_whole_command() {
        let mut bytes = SET.to_vec();
        bytes.extend_from_slice(SET);
        for cut in SET.len() + 1..bytes.len() {
            match run(&bytes[..cut]).0 {
                Err(Stop::Truncated { valid, in_multi }) => {
                    assert_eq!(valid, SET.len() as u64, "cut at {cut}");
                    assert!(!in_multi);
                }
                _ => panic!("cut at {cut} must be a truncation"),
            }
        }
    }

    #[test]
    fn an_open_multi_truncates_to_before_it() {
        let mut bytes = SET.to_vec();
        bytes.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
        bytes.extend_from_slice(SET);
        match run(&bytes).0 {
            Err(Stop::Truncated { valid, in_multi }) => {
                assert_eq!(valid, SET.len() as u64);
                assert!(in_multi);
            }
            _ => panic!("an open MULTI is a truncation"),
        }
        bytes.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
        assert!(run(&bytes).0.is_ok());
    }

    #[test]
    fn corruption_names_the_offset() {
        let mut bytes = SET.to_vec();
        bytes.extend_from_slice(b"+OK\r\n");
        match run(&bytes).0 {
            Err(Stop::Corrupt { offset }) => assert_eq!(offset, SET.len() as u64),
            _ => panic!("not RESP is corruption"),
        }
        // A bulk whose declared length is wrong: the terminator is not where it says.
        match run(b"*2\r\n$3\r\nGET\r\n$1\r\nab\r\n").0 {
            Err(Stop::Corrupt { offset }) => assert_eq!(offset, 18),
            _ => panic!("a bad terminator is corruption"),
        }
        // A huge declared length is a truncation (the bytes are not there), never an
        // allocation.
        assert!(matches!(
            run(b"*1\r\n$999999999999\r\n").0,
            Err(Stop::Truncated { .. })
        ));
        assert!(matches!(
            run(b"*99999999999999999999999\r\n").0,
            Err(Stop::Corrupt { .. })
        ));
        assert!(matches!(
            run(b"*1\r\n$5\r\nNOSUCH\r\n").0,
            Err(Stop::Corrupt { .. })
        ));
        assert!(matches!(
            run(b"*1\r\n$6\r\nNOSUCH\r\n").0,
            Err(Stop::Unknown { .. })
        ));
    }
}
