//! The server's side of persistence: loading the AOF at start, turning the AOF on and off
//! at run time, rewriting it, and refusing writes after a disk error.
//!
//! The file formats and the writer live in [`crate::persist`]; this module decides when they
//! run and connects them to the keyspace, the executor and the propagation log.
//!
//! A rewrite here holds every shard while it writes the new base: it is a consistent point
//! in time and simple, but clients wait for it. The snapshot that lets writers go on while a
//! base or an RDB is written (DESIGN.md, Persistence) replaces that hold.

use super::clients::Session;
use super::state::Server;
use crate::keyspace::Locked;
use crate::persist::aof::{load, manifest, rewrite};
use bytes::{Bytes, BytesMut};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// The base file is written in pieces of about this size.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// `<dir>/<appenddirname>` and the file prefix (`appendfilename`).
pub fn aof_location(server: &Server) -> (PathBuf, String) {
    let dir = PathBuf::from(server.config.text("dir")).join(server.config.text("appenddirname"));
    (dir, server.config.text("appendfilename"))
}

/// Loads what the configuration says to load before clients are served: the AOF when
/// `appendonly yes` (creating it when missing), and opens it for appending.
pub fn load_at_start(server: &Server) -> Result<(), String> {
    if !server.config.bool("appendonly") {
        return Ok(());
    }
    let (dir, prefix) = aof_location(server);
    let fs = server.fs.as_ref();
    let started = std::time::Instant::now();
    match load::read_manifest(fs, &dir, &prefix)? {
        Some(manifest) => {
            let mut replay = ServerReplay::new(server);
            let report = load::load(
                fs,
                &dir,
                &manifest,
                server.config.bool("aof-load-truncated"),
                &mut replay,
            );
            replay.finish();
            let report = report?;
            tracing::info!(
                "DB loaded from append only file: {:.3} seconds ({} commands)",
                started.elapsed().as_secs_f64(),
                report.commands
            );
            attach(server);
            server
                .aof
                .open(&dir, &prefix, manifest, server.log.offset())?;
        }
        None => {
            attach(server);
            // Not counted as a rewrite in INFO, as Redis's start-up base is not.
            let mut ks = server.keyspace.lock_all(server.clock.now_ms());
            rewrite_inner(server, &mut ks)?;
            tracing::info!("Creating AOF base file on server start");
        }
    }
    Ok(())
}

/// Registers the AOF with the propagation log (once: the sink drops bytes while off).
fn attach(server: &Server) {
    if !server.aof_attached.swap(true, Ordering::AcqRel) {
        server.log.add_sink(server.aof.sink());
    }
}

/// Brings the AOF in line with `appendonly` after CONFIG SET (run from the cron, outside any
/// command, because turning it on rewrites with every shard held).
pub fn apply_appendonly(server: &Server) {
    let wanted = server.config.bool("appendonly");
    if wanted == server.aof.is_enabled() {
        return;
    }
    if wanted {
        attach(server);
        let mut ks = server.keyspace.lock_all(server.clock.now_ms());
        match rewrite_locked(server, &mut ks) {
            Ok(()) => tracing::info!("Background append only file rewriting started"),
            Err(err) => tracing::warn!("Redis needs to enable the AOF but can't trigger a background AOF rewrite operation. Check the above logs for more info about the error. ({err})"),
        }
    } else {
        server.aof.close();
    }
}

/// BGREWRITEAOF and the automatic rewrite: a new base from memory, a new empty incr file,
/// the old files dropped. `ks` must hold every shard.
pub fn rewrite_locked(server: &Server, ks: &mut Locked<'_>) -> Result<(), String> {
    assert!(ks.holds_all(), "a rewrite needs the whole keyspace still");
    let stats = server.aof.stats();
    stats.rewrite_in_progress.store(true, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let outcome = rewrite_inner(server, ks);
    stats.rewrite_in_progress.store(false, Ordering::Relaxed);
    stats
        .last_rewrite_ms
        .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    stats
        .last_rewrite_failed
        .store(outcome.is_err(), Ordering::Relaxed);
    match &outcome {
        Ok(()) => {
            stats.rewrites.fetch_add(1, Ordering::Relaxed);
            tracing::info!("Background AOF rewrite terminated with success");
        }
        Err(err) => tracing::warn!("Background AOF rewrite failed: {err}"),
    }
    outcome
}

fn rewrite_inner(server: &Server, ks: &mut Locked<'_>) -> Result<(), String> {
    let fs = server.fs.as_ref();
    let (dir, prefix) = aof_location(server);
    fs.create_dir_all(&dir)
        .map_err(|err| format!("Can't create the AOF directory {}: {err}", dir.display()))?;
    let previous = match server.aof.location() {
        Some(_) => server.aof.manifest(),
        None => load::read_manifest(fs, &dir, &prefix)
            .ok()
            .flatten()
            .unwrap_or_default(),
    };
    // What was fed before this point belongs to the old files (and to the new base).
    if server.aof.is_enabled() {
        if let Err(err) = server.aof.flush_and_sync() {
            tracing::warn!("{err}");
        }
    }
    let mut next = manifest::Manifest {
        base_seq: previous.base_seq + 1,
        incr_seq: previous.incr_seq + 1,
        ..manifest::Manifest::default()
    };
    let base_name = manifest::base_name(&prefix, next.base_seq, false);
    let base_path = dir.join(&base_name);
    let base_size = write_base(server, ks, &base_path)?;
    next.base = Some(manifest::FileInfo {
        name: base_name,
        seq: next.base_seq,
        kind: manifest::FileKind::Base,
    });
    let enabled = server.config.bool("appendonly");
    if enabled {
        let incr_name = manifest::incr_name(&prefix, next.incr_seq);
        let mut incr = fs
            .create(&dir.join(&incr_name))
            .map_err(|err| format!("Can't open the append-only file {incr_name}: {err}"))?;
        incr.sync()
            .map_err(|err| format!("Fail to fsync the AOF file {incr_name}: {err}"))?;
        next.incr.push(manifest::FileInfo {
            name: incr_name,
            seq: next.incr_seq,
            kind: manifest::FileKind::Incr,
        });
    }
    let history: Vec<manifest::FileInfo> = previous
        .replay_order()
        .chain(previous.history.iter())
        .cloned()
        .collect();
    persist_manifest(server, &dir, &prefix, &next)?;
    // The new incr file must start by selecting its database, as Redis's does.
    server.log.forget_selected_db();
    if enabled {
        if server.aof.location().is_some() && server.aof.is_enabled() {
            server.aof.switch(&dir, next, base_size)?;
        } else {
            server.aof.open(&dir, &prefix, next, server.log.offset())?;
        }
    }
    if !server.config.bool("aof-disable-auto-gc") {
        for info in history {
            let _ = fs.remove(&dir.join(&info.name));
        }
    }
    Ok(())
}

/// Writes every live key of every database as commands to `path`, fsynced; its size.
fn write_base(server: &Server, ks: &mut Locked<'_>, path: &std::path::Path) -> Result<u64, String> {
    let fs = server.fs.as_ref();
    let name = path.display().to_string();
    let mut file = fs.create(path).map_err(|err| {
        format!("Opening the temp file for AOF rewrite in rewriteAppendOnlyFile(): {err}")
    })?;
    let now_ms = ks.now_ms;
    let mut out = BytesMut::with_capacity(WRITE_CHUNK_BYTES);
    let mut size = 0u64;
    let mut failure: Option<String> = None;
    for db in 0..server.keyspace.databases() {
        let mut selected = false;
        for slice in ks.slices(db) {
            let expires = &slice.expires;
            slice.keys.for_each(|key, entry| {
                if failure.is_some() {
                    return;
                }
                let expire_ms = if entry.has_expire() {
                    expires.get(key.as_slice()).copied()
                } else {
                    None
                };
                if expire_ms.is_some_and(|at| at <= now_ms) {
                    return;
                }
                if !selected {
                    rewrite::select(&mut out, db);
                    selected = true;
                }
                if let Err(err) =
                    rewrite::emit_key(&mut out, key.as_slice(), &entry.value, expire_ms)
                {
                    failure = Some(err);
                    return;
                }
                if out.len() >= WRITE_CHUNK_BYTES {
                    size += out.len() as u64;
                    if let Err(err) = file.write_all(&out) {
                        failure = Some(format!(
                            "Write error writing append only file on disk: {err}"
                        ));
                    }
                    out.clear();
                }
            });
        }
    }
    if let Some(err) = failure {
        let _ = fs.remove(path);
        return Err(err);
    }
    size += out.len() as u64;
    let written = file
        .write_all(&out)
        .and_then(|()| file.sync())
        .map_err(|err| format!("Write error writing append only file on disk: {err}"));
    if let Err(err) = written {
        let _ = fs.remove(path);
        return Err(err);
    }
    tracing::info!("Successfully created the temporary AOF base file {name}");
    Ok(size)
}

/// Writes the manifest through a temp file, fsync, rename, directory fsync: a crash leaves
/// either the old manifest or the new one.
fn persist_manifest(
    server: &Server,
    dir: &std::path::Path,
    prefix: &str,
    manifest: &manifest::Manifest,
) -> Result<(), String> {
    let fs = server.fs.as_ref();
    let name = manifest::manifest_name(prefix);
    let temp = dir.join(format!("temp-{name}"));
    let mut file = fs
        .create(&temp)
        .map_err(|err| format!("Can't open the AOF manifest file {}: {err}", temp.display()))?;
    file.write_all(manifest.render().as_bytes())
        .map_err(|err| {
            format!(
                "Error trying to write the temporary AOF manifest file {}: {err}",
                temp.display()
            )
        })?;
    file.sync()
        .map_err(|err| format!("Fail to fsync the temp AOF file {}: {err}", temp.display()))?;
    drop(file);
    fs.rename(&temp, &dir.join(&name)).map_err(|err| {
        format!(
            "Error trying to rename the temporary AOF manifest file {} into {name}: {err}",
            temp.display()
        )
    })?;
    fs.sync_dir(dir)
        .map_err(|err| format!("Fail to fsync AOF directory {}: {err}", dir.display()))
}

/// The automatic rewrite of `auto-aof-rewrite-percentage` / `auto-aof-rewrite-min-size`:
/// true when the AOF grew enough since its base to be worth rewriting.
pub fn rewrite_due(server: &Server) -> bool {
    if !server.aof.is_enabled() {
        return false;
    }
    let percentage = server.config.int("auto-aof-rewrite-percentage");
    if percentage <= 0 {
        return false;
    }
    let stats = server.aof.stats();
    let size = stats.current_size.load(Ordering::Relaxed);
    let base = stats.base_size.load(Ordering::Relaxed).max(1);
    let min_size = server.config.int("auto-aof-rewrite-min-size").max(0) as u64;
    size >= min_size && size.saturating_sub(base) * 100 / base >= percentage as u64
}

/// The error write commands get after the AOF failed (Redis's `-MISCONF`).
pub fn write_refusal(server: &Server) -> Option<String> {
    if !server.aof.is_enabled() {
        return None;
    }
    server.aof.write_error()
}

/// Replays AOF commands as Redis's fake AOF client: a session nobody sees, every command
/// through the executor so it behaves exactly as when it first ran.
struct ServerReplay<'a> {
    server: &'a Server,
    session: Session,
}

impl<'a> ServerReplay<'a> {
    fn new(server: &'a Server) -> ServerReplay<'a> {
        let (handle, _outbox) = server.clients.register(
            "AOF-loading-client".into(),
            String::new(),
            -1,
            server.clock.now_ms(),
        );
        ServerReplay {
            server,
            session: Session::new(handle, true),
        }
    }

    fn finish(self) {
        self.server.clients.unregister(self.session.id);
    }
}

impl load::Replay for ServerReplay<'_> {
    fn apply(&mut self, argv: Vec<Bytes>) -> load::Applied {
        if crate::command::table().get(&argv[0]).is_none() {
            return load::Applied::Unknown;
        }
        let _ = crate::command::dispatch(self.server, &mut self.session, argv);
        load::Applied::Ok
    }

    fn load_rdb(&mut self, _bytes: &[u8], _name: &str) -> Result<(), String> {
        Err("RDB base files (aof-use-rdb-preamble) cannot be loaded yet".into())
    }
}
