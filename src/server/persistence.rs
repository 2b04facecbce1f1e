//! The server's side of persistence: loading the AOF at start, turning the AOF on and off
//! at run time, rewriting it, and refusing writes after a disk error.
//!
//! The file formats and the writer live in [`crate::persist`]; this module decides when they
//! run and connects them to the keyspace, the executor and the propagation log.
//!
//! A rewrite writes its base from a keyspace snapshot ([`crate::keyspace::snapshot`]): a
//! consistent point in time while clients go on writing.

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
            server.keyspace.loading.store(true, Ordering::Release);
            let report = load::load(
                fs,
                &dir,
                &manifest,
                server.config.bool("aof-load-truncated"),
                &mut replay,
            );
            server.keyspace.loading.store(false, Ordering::Release);
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
            rewrite_inner(server)?;
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
/// command): turning it on writes a base by a rewrite, as Redis's startAppendOnly does.
pub fn apply_appendonly(server: &Server) {
    let wanted = server.config.bool("appendonly");
    if wanted == server.aof.is_enabled() {
        return;
    }
    if wanted {
        attach(server);
        if let Err(err) = rewrite(server) {
            tracing::warn!("Redis needs to enable the AOF but can't trigger a background AOF rewrite operation. Check the above logs for more info about the error. ({err})");
        }
    } else {
        server.aof.close();
    }
}

/// Starts BGREWRITEAOF on its own thread; the error text when one cannot start now.
pub fn start_background_rewrite(server: &Server) -> Result<(), &'static str> {
    const CANNOT_START: &str = "ERR Can't execute an AOF background rewriting. Please check the server logs for more information.";
    let Some(server) = server.handle() else {
        return Err(CANNOT_START);
    };
    if server
        .aof
        .stats()
        .rewrite_in_progress
        .swap(true, Ordering::AcqRel)
    {
        return Err("ERR Background append only file rewriting already in progress");
    }
    let owner = server.clone();
    let spawned = std::thread::Builder::new()
        .name("aof-rewrite".into())
        .spawn(move || {
            let _ = rewrite_claimed(&owner);
        });
    spawned.map(|_| ()).map_err(|_| {
        server
            .aof
            .stats()
            .rewrite_in_progress
            .store(false, Ordering::Release);
        CANNOT_START
    })
}

/// The AOF rewrite, as Redis 7 does it with a fork but on a snapshot: at one instant the AOF
/// switches to a new incr file (listed in the manifest at once, so a crash mid-rewrite loses
/// nothing); the base is written from the snapshot while clients go on; then the manifest
/// names the new base and the new incr file only, and the old files go.
pub fn rewrite(server: &Server) -> Result<(), String> {
    if server
        .aof
        .stats()
        .rewrite_in_progress
        .swap(true, Ordering::AcqRel)
    {
        return Err("Background append only file rewriting already in progress".into());
    }
    rewrite_claimed(server)
}

/// `rewrite` once this caller has set `rewrite_in_progress`; clears it when done.
fn rewrite_claimed(server: &Server) -> Result<(), String> {
    let stats = server.aof.stats();
    let started = std::time::Instant::now();
    let outcome = rewrite_inner(server);
    stats.rewrite_in_progress.store(false, Ordering::Release);
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

fn rewrite_inner(server: &Server) -> Result<(), String> {
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
    let enabled = server.config.bool("appendonly");
    let base_seq = previous.base_seq + 1;
    let incr_seq = previous.incr_seq + 1;
    let incr_name = manifest::incr_name(&prefix, incr_seq);
    let temp_path = dir.join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
    let file = fs.create(&temp_path).map_err(|err| {
        format!("Opening the temp file for AOF rewrite in rewriteAppendOnlyFile(): {err}")
    })?;
    let mut sink = BaseSink {
        file,
        out: BytesMut::with_capacity(WRITE_CHUNK_BYTES),
        db: None,
        size: 0,
        failure: None,
    };
    // The instant of the snapshot: writes before it are in the base, after it in the new
    // incr file, which the manifest lists before any of them is acknowledged.
    let switch = |_ks: &mut Locked<'_>| -> Result<(), String> {
        if !enabled {
            return Ok(());
        }
        // Whether the files so far hold everything acknowledged: if the AOF failed, they do
        // not, and writes are refused until this rewrite ends.
        let mut chain_sound = true;
        if server.aof.is_enabled() {
            if let Err(err) = server.aof.flush_and_sync() {
                tracing::warn!("{err}");
                chain_sound = false;
            }
        }
        let mut incr = fs
            .create(&dir.join(&incr_name))
            .map_err(|err| format!("Can't open the append-only file {incr_name}: {err}"))?;
        incr.sync()
            .map_err(|err| format!("Fail to fsync the AOF file {incr_name}: {err}"))?;
        tracing::info!("Creating AOF incr file {incr_name} on background rewrite");
        let mut during = previous.clone();
        during.incr.push(manifest::FileInfo {
            name: incr_name.clone(),
            seq: incr_seq,
            kind: manifest::FileKind::Incr,
        });
        during.incr_seq = incr_seq;
        if chain_sound {
            // Listed at once, so a crash before the rewrite ends loses nothing written
            // from now on.
            persist_manifest(server, &dir, &prefix, &during)?;
        }
        // Otherwise the old files end in an unknown state and must stay last in the chain
        // a crash would load (its torn tail is then cut off); nothing is acknowledged until
        // the new base replaces them all.
        // The new incr file must start by selecting its database, as Redis's does.
        server.log.forget_selected_db();
        if server.aof.is_enabled() {
            server.aof.switch(&dir, during)
        } else {
            server.aof.open(&dir, &prefix, during, server.log.offset())
        }
    };
    let snapshot =
        crate::keyspace::snapshot::run(&server.keyspace, server.clock.now_ms(), switch, &mut sink);
    let finished = snapshot.and_then(|()| sink.finish());
    if let Err(err) = finished {
        let _ = fs.remove(&temp_path);
        return Err(err);
    }
    let base_name = manifest::base_name(&prefix, base_seq, false);
    fs.rename(&temp_path, &dir.join(&base_name))
        .map_err(|err| {
            format!("Error moving temp append only file on the final destination: {err}")
        })?;
    let mut next = manifest::Manifest {
        base: Some(manifest::FileInfo {
            name: base_name,
            seq: base_seq,
            kind: manifest::FileKind::Base,
        }),
        base_seq,
        incr_seq,
        ..manifest::Manifest::default()
    };
    if enabled {
        next.incr.push(manifest::FileInfo {
            name: incr_name,
            seq: incr_seq,
            kind: manifest::FileKind::Incr,
        });
    }
    let history: Vec<manifest::FileInfo> = previous
        .replay_order()
        .chain(previous.history.iter())
        .cloned()
        .collect();
    persist_manifest(server, &dir, &prefix, &next)?;
    if enabled {
        server.aof.rewritten(next, sink.size);
    }
    if !server.config.bool("aof-disable-auto-gc") {
        for info in history {
            let _ = fs.remove(&dir.join(&info.name));
        }
    }
    Ok(())
}

/// Writes the snapshot as commands into the temp base file, a chunk at a time.
struct BaseSink {
    file: Box<dyn crate::io::WritableFile>,
    out: BytesMut,
    db: Option<usize>,
    size: u64,
    failure: Option<String>,
}

impl crate::keyspace::snapshot::Sink for BaseSink {
    fn entry(
        &mut self,
        db: usize,
        key: &[u8],
        value: &crate::types::Value,
        expire_ms: Option<u64>,
    ) {
        if self.failure.is_some() {
            return;
        }
        if self.db != Some(db) {
            rewrite::select(&mut self.out, db);
            self.db = Some(db);
        }
        if let Err(err) = rewrite::emit_key(&mut self.out, key, value, expire_ms) {
            self.failure = Some(err);
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        if let Some(err) = self.failure.take() {
            return Err(err);
        }
        if self.out.len() < WRITE_CHUNK_BYTES {
            return Ok(());
        }
        self.write_out()
    }
}

impl BaseSink {
    fn write_out(&mut self) -> Result<(), String> {
        self.file
            .write_all(&self.out)
            .map_err(|err| format!("Write error writing append only file on disk: {err}"))?;
        self.size += self.out.len() as u64;
        self.out.clear();
        Ok(())
    }

    /// Writes what is left and fsyncs.
    fn finish(&mut self) -> Result<(), String> {
        if let Some(err) = self.failure.take() {
            return Err(err);
        }
        self.write_out()?;
        self.file
            .sync()
            .map_err(|err| format!("Write error writing append only file on disk: {err}"))?;
        tracing::info!("Successfully created the temporary AOF base file");
        Ok(())
    }
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
    let size = stats.current_size();
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
        let mut session = Session::new(handle, true);
        session.obey = true;
        ServerReplay { server, session }
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
