//! `strata-check`: validates an RDB file or an AOF directory the way redis-check-rdb and
//! redis-check-aof do, without starting a server.
//!
//! ```text
//! strata-check rdb <dump.rdb>                 every opcode, value and the checksum
//! strata-check aof <appendonlydir> [--fix]    the manifest and every file it names;
//!                                             --fix cuts a torn tail off the last file
//! ```
//! Exit status 0 when the files are sound (or were fixed), 1 when they are not.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use strata::persist::aof::load::{self, Checked};
use strata::persist::aof::manifest::Manifest;
use strata::persist::rdb::{file, DecodeOptions};

/// Databases accepted in an RDB file: Redis's maximum `databases` is far higher, but a file
/// naming more than this is surely not one a server of ours can load.
const DATABASES_MAX: usize = 1 << 20;

fn usage() -> ExitCode {
    eprintln!("usage: strata-check rdb <file> | strata-check aof <appendonlydir> [--fix]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [kind, path] if kind == "rdb" => check_rdb(Path::new(path)),
        [kind, path] if kind == "aof" => check_aof(Path::new(path), false),
        [kind, path, fix] if kind == "aof" && fix == "--fix" => check_aof(Path::new(path), true),
        _ => usage(),
    }
}

fn check_rdb(path: &Path) -> ExitCode {
    println!("[offset 0] Checking RDB file {}", path.display());
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) => {
            println!("Cannot read {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let mut per_db = std::collections::BTreeMap::new();
    let mut expiring = 0u64;
    let outcome = file::load(
        &bytes,
        &DecodeOptions::DEFAULT,
        DATABASES_MAX,
        true,
        &mut |key| {
            *per_db.entry(key.db).or_insert(0u64) += 1;
            expiring += u64::from(key.expire_ms.is_some());
            Ok(())
        },
    );
    match outcome {
        Ok(loaded) => {
            println!("[info] RDB version {}", loaded.version);
            for (name, value) in &loaded.aux {
                println!(
                    "[info] AUX FIELD {} = '{}'",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value)
                );
            }
            for (db, keys) in &per_db {
                println!("[info] db {db}: {keys} keys");
            }
            println!(
                "[info] {} keys read, {expiring} with an expire",
                loaded.keys
            );
            println!("[offset {}] Checksum OK", bytes.len());
            println!("\\o/ RDB looks OK! \\o/");
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("--- RDB ERROR DETECTED ---");
            println!("[offset {}] {}", err.offset, err.reason);
            ExitCode::FAILURE
        }
    }
}

fn check_aof(dir: &Path, fix: bool) -> ExitCode {
    let manifest_path = match manifest_in(dir) {
        Some(path) => path,
        None => {
            println!("No AOF manifest (*.manifest) in {}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    println!("Start checking Multi Part AOF");
    let manifest = match std::fs::read(&manifest_path)
        .map_err(|err| err.to_string())
        .and_then(|text| Manifest::parse(&text))
    {
        Ok(manifest) => manifest,
        Err(err) => {
            println!("Invalid AOF manifest file format: {err}");
            return ExitCode::FAILURE;
        }
    };
    let files: Vec<_> = manifest.replay_order().collect();
    let mut sound = true;
    for (index, info) in files.iter().enumerate() {
        let last = index + 1 == files.len();
        let path = dir.join(&info.name);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) => {
                println!("AOF {} cannot be read: {err}", info.name);
                sound = false;
                continue;
            }
        };
        let mut start = 0;
        if bytes.starts_with(b"REDIS") {
            let mut rdb_end = 0usize;
            match file::load(
                &bytes,
                &DecodeOptions::DEFAULT,
                DATABASES_MAX,
                true,
                &mut |_| Ok(()),
            ) {
                Ok(_) => rdb_end = bytes.len(),
                Err(err) => {
                    println!(
                        "RDB preamble of {} is not valid at offset {}: {}",
                        info.name, err.offset, err.reason
                    );
                    sound = false;
                }
            }
            start = rdb_end;
            if start == bytes.len() {
                println!(
                    "RDB preamble of {} is OK, proceeding with AOF tail...",
                    info.name
                );
            }
        }
        match load::check(&bytes, start.min(bytes.len())) {
            Checked::Valid { commands } => {
                println!(
                    "AOF {} is valid ({commands} commands, {} bytes)",
                    info.name,
                    bytes.len()
                );
            }
            Checked::Truncated { commands, valid } => {
                println!(
                    "AOF analyzed: filename={}, size={}, ok_up_to={valid}, diff={} ({commands} whole commands)",
                    info.name,
                    bytes.len(),
                    bytes.len() as u64 - valid
                );
                if !last {
                    println!(
                        "AOF {} is truncated but is not the last file: not fixable",
                        info.name
                    );
                    sound = false;
                } else if fix {
                    match truncate(&path, valid) {
                        Ok(()) => println!("Successfully truncated AOF {}", info.name),
                        Err(err) => {
                            println!("Failed to truncate AOF {}: {err}", info.name);
                            sound = false;
                        }
                    }
                } else {
                    println!(
                        "AOF {} is not valid. Use the --fix option to try fixing it.",
                        info.name
                    );
                    sound = false;
                }
            }
            Checked::Corrupt { commands, offset } => {
                println!(
                    "AOF {} format error at offset {offset} (after {commands} whole commands): not fixable by truncation",
                    info.name
                );
                sound = false;
            }
        }
    }
    if sound {
        println!("All AOF files and manifest are valid");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The manifest in `dir`, or `dir` itself when it names one.
fn manifest_in(dir: &Path) -> Option<PathBuf> {
    if dir
        .extension()
        .is_some_and(|extension| extension == "manifest")
    {
        return Some(dir.to_path_buf());
    }
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            path.extension()
                .is_some_and(|extension| extension == "manifest")
        })
}

fn truncate(path: &Path, len: u64) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}
