//! The fuzz corpus in the normal test run: every input under `fuzz/corpus/<target>/` (seeds,
//! minimized) and `fuzz/regressions/<target>/` (inputs that once crashed a decoder) goes
//! through the same entry point as the cargo-fuzz target, so a fixed crash stays fixed without
//! cargo-fuzz or a nightly toolchain. The real Redis files among the seeds must also decode
//! fully, so the fuzzer starts from inputs that reach deep into each decoder.

use std::path::{Path, PathBuf};

/// The `command_sequence` target's executor-against-model check, compiled here from the fuzz
/// crate's source (it uses nothing but `strata` and `std`).
#[path = "../fuzz/src/command_sequence.rs"]
mod command_sequence;

/// A fuzz target's entry point: any bytes, never a panic.
type Entry = fn(&[u8]);

/// A target's name (its directory under `fuzz/corpus` and `fuzz/regressions`) and its entry.
const TARGETS: &[(&str, Entry)] = &[
    ("resp", strata::protocol::parser::fuzz_requests),
    ("restore", strata::persist::fuzz_restore_payload),
    ("rdb_file", strata::persist::rdb::file::fuzz_rdb_file),
    ("aof", strata::persist::aof::load::fuzz_aof),
    ("config", fuzz_config),
    ("command_sequence", command_sequence::run),
];

/// Inputs per target and directory: the checked-in sets are minimized, so more means someone
/// committed a raw fuzzing corpus, which would slow every test run.
const INPUTS_PER_DIRECTORY_MAX: usize = 200;

/// The `config` target's entry (the target itself is the same two lines).
fn fuzz_config(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let _ = strata::config::Config::default().load_text(&text);
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `directory`, sorted; none when it does not exist.
fn inputs(directory: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .filter(|path| {
            // libFuzzer's own bookkeeping files start with a dot.
            !path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    assert!(
        files.len() <= INPUTS_PER_DIRECTORY_MAX,
        "{} holds {} inputs: minimize it with `cargo fuzz cmin`",
        directory.display(),
        files.len()
    );
    files
}

#[test]
fn every_corpus_and_regression_input_runs_clean() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for &(target, entry) in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(target));
        assert!(!corpus.is_empty(), "the {target} target has no seeds");
        let regressions = inputs(&fuzz_dir().join("regressions").join(target));
        for path in corpus.iter().chain(regressions.iter()) {
            let bytes = std::fs::read(path).expect("readable input");
            ran += 1;
            if std::panic::catch_unwind(|| entry(&bytes)).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "inputs that fail: {failures:#?}");
    assert!(ran > 0);
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = fuzz_dir().join("corpus").join(target).join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Streams are the one type the RDB codec may still refuse as unsupported (their codec comes
/// separately); anything else must load.
fn stream_unsupported(error: &strata::persist::rdb::DecodeError) -> bool {
    error.unsupported && error.reason.contains("stream")
}

#[test]
fn real_redis_rdb_files_load_fully() {
    use strata::persist::rdb::{file, DecodeOptions};
    // The small file has no stream, so it loads whole whatever the stream codec's state.
    for (name, keys, has_stream) in [
        ("redis-7.0-all-types", 18, true),
        ("redis-7.0-small", 12, false),
    ] {
        let bytes = seed("rdb_file", name);
        let mut seen = Vec::new();
        let loaded = file::load(&bytes, &DecodeOptions::DEFAULT, 16, true, &mut |key| {
            seen.push((key.db, key.key.to_vec(), key.value.type_name()));
            Ok(())
        });
        match loaded {
            Ok(loaded) => assert_eq!(loaded.keys, keys, "{name}: {seen:?}"),
            Err(error) if has_stream && stream_unsupported(&error) => {}
            Err(error) => panic!("{name}: {error}"),
        }
        if !has_stream {
            // Redis stores the name "7" as an 8-bit integer.
            assert!(seen.iter().any(|key| key.1 == b"7"), "{name}: {seen:?}");
        }
    }
}

#[test]
fn real_redis_dump_payloads_restore() {
    use strata::persist::rdb::payload::{decode_dump_body, verify_dump_payload};
    use strata::persist::rdb::DecodeOptions;
    let directory = fuzz_dir().join("corpus").join("restore");
    let mut payloads = 0;
    for path in inputs(&directory) {
        let name = path.file_name().expect("a file").to_string_lossy();
        if !name.starts_with("redis-dump-") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("readable");
        assert!(verify_dump_payload(&bytes, false).is_some(), "{name}");
        match decode_dump_body(&bytes, &DecodeOptions::DEFAULT) {
            Ok(_) => {}
            Err(error) if name.ends_with("stream") && stream_unsupported(&error) => {}
            Err(error) => panic!("{name}: {error}"),
        }
        payloads += 1;
    }
    assert!(payloads >= 10);
}

#[test]
fn real_redis_aof_files_parse() {
    use strata::persist::aof::load::{replay_bytes, Applied, Replay};
    use strata::persist::aof::manifest::Manifest;
    let manifest = seed("aof", "manifest-redis-7.0");
    let manifest = Manifest::parse(&manifest[1..]).expect("a real manifest");
    assert!(manifest.base.is_some());
    assert_eq!(manifest.incr.len(), 1);

    struct Names(Vec<String>);
    impl Replay for Names {
        fn apply(&mut self, argv: Vec<bytes::Bytes>) -> Applied {
            self.0
                .push(String::from_utf8_lossy(&argv[0]).to_ascii_lowercase());
            Applied::Ok
        }
    }
    for (name, expected) in [
        ("commands-redis-7.0-base", "xadd"),
        ("commands-redis-7.0-incr", "exec"),
    ] {
        let bytes = seed("aof", name);
        let mut names = Names(Vec::new());
        replay_bytes(&bytes[1..], &mut names).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(names.0.iter().any(|command| command == expected), "{name}");
    }
}
