//! The AOF in a failed state (a write or fsync error), driven through the real server code
//! on the simulated disk: writes are refused with `-MISCONF` until a rewrite has put
//! everything in fresh files (Redis 7.0 refuses them while `aof_last_write_status` is an
//! error), nothing reaches the disk in a state the next load would replay wrongly, and what
//! changes the data without a client write (an expired key's DEL) while the recovering
//! rewrite writes its base reaches the new incr file.

use bytes::Bytes;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use strata::config::Config;
use strata::io::fs::SegmentFile;
use strata::io::{Clock, FileSystem, WritableFile};
use strata::server::clients::Session;
use strata::server::persistence;
use strata::server::state::Server;
use strata_sim::disk::{Faults, SimDisk};

const START_MS: u64 = 1_700_000_000_000;

struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs once, when the rewrite fsyncs its temp base file: after the rewrite's instant (the
/// switch to the new incr file), before its end.
type Hook = Box<dyn FnOnce() + Send>;

/// The simulated disk, with a hook on the rewrite's base fsync.
#[derive(Clone)]
struct HookedDisk {
    disk: SimDisk,
    hook: Arc<Mutex<Option<Hook>>>,
}

struct HookedFile {
    file: Box<dyn WritableFile>,
    hook: Option<Arc<Mutex<Option<Hook>>>>,
}

impl WritableFile for HookedFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        let hook = self
            .hook
            .as_ref()
            .and_then(|hook| hook.lock().unwrap().take());
        if let Some(hook) = hook {
            hook();
        }
        self.file.sync()
    }
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
}

impl FileSystem for HookedDisk {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.disk.create_dir_all(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let base = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("temp-rewriteaof"));
        Ok(Box::new(HookedFile {
            file: self.disk.create(path)?,
            hook: base.then(|| self.hook.clone()),
        }))
    }
    fn append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.disk.append(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.disk.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.disk.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.disk.remove(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.disk.exists(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.disk.list(dir)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.disk.truncate(path, len)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.disk.sync_dir(dir)
    }
    fn create_segment(&self, path: &Path, capacity: u64) -> io::Result<Arc<dyn SegmentFile>> {
        self.disk.create_segment(path, capacity)
    }
}

const HEALTHY: Faults = Faults {
    sync_failure: 0.0,
    capacity_bytes: usize::MAX,
    segment_write_failure: 0.0,
    segment_read_failure: 0.0,
    segment_read_flip: 0.0,
};

const FSYNC_FAILS: Faults = Faults {
    sync_failure: 1.0,
    ..HEALTHY
};

struct Node {
    server: Arc<Server>,
    session: Session,
}

impl Node {
    /// A new client of `server`.
    fn client(server: &Arc<Server>, name: &str) -> Node {
        let now_ms = server.clock.now_ms();
        let (handle, _outbox) = server
            .clients
            .register(name.into(), name.into(), -1, now_ms);
        Node {
            server: server.clone(),
            session: Session::new(handle, true),
        }
    }

    fn command(&mut self, line: &str) -> String {
        let argv: Vec<Bytes> = line
            .split(' ')
            .map(|word| Bytes::copy_from_slice(word.as_bytes()))
            .collect();
        let (reply, _action) = strata::command::dispatch(&self.server, &mut self.session, argv);
        String::from_utf8_lossy(&reply.to_bytes(false)).into_owned()
    }
}

fn start(disk: &HookedDisk, clock: &Arc<TestClock>) -> Node {
    let config = Config::default();
    config
        .load_text(
            "dir /sim\nappendonly yes\nappendfsync everysec\nauto-aof-rewrite-percentage 0\n",
        )
        .expect("config");
    let server = Server::into_arc(Server::new(
        config,
        clock.clone(),
        Arc::new(disk.clone()),
        7,
    ));
    server.aof.set_manual();
    persistence::load_at_start(&server).expect("load");
    Node::client(&server, "test")
}

/// Fails the AOF: a write whose everysec fsync fails.
fn fail_the_aof(node: &mut Node, disk: &HookedDisk, clock: &TestClock) {
    disk.disk.set_faults(FSYNC_FAILS);
    assert_eq!(node.command("SET doomed 1"), "+OK\r\n");
    clock.0.fetch_add(1_001, Ordering::Relaxed);
    node.server.aof.step();
    assert!(node.server.aof.write_error().is_some(), "the fsync failed");
    disk.disk.set_faults(HEALTHY);
}

fn fresh() -> (HookedDisk, Arc<TestClock>) {
    let disk = HookedDisk {
        disk: SimDisk::new(7, HEALTHY),
        hook: Arc::new(Mutex::new(None)),
    };
    (disk, Arc::new(TestClock(AtomicU64::new(START_MS))))
}

/// The newest incr file's bytes.
fn last_incr(disk: &HookedDisk) -> String {
    let dir = Path::new("/sim/appendonlydir");
    let manifest = disk
        .read(&dir.join("appendonly.aof.manifest"))
        .expect("manifest");
    let manifest = strata::persist::aof::manifest::Manifest::parse(&manifest).expect("parse");
    let name = &manifest.incr.last().expect("an incr file").name;
    String::from_utf8_lossy(&disk.read(&dir.join(name)).expect("incr")).into_owned()
}

#[test]
fn writes_and_transactions_are_refused_while_the_aof_is_failed() {
    let (disk, clock) = fresh();
    let mut node = start(&disk, &clock);
    assert_eq!(node.command("MULTI"), "+OK\r\n");
    assert_eq!(node.command("SET queued 1"), "+QUEUED\r\n");
    let mut other = Node::client(&node.server, "other");
    fail_the_aof(&mut other, &disk, &clock);
    let refusal = "-MISCONF Errors writing to the AOF file: Input/output error\r\n";
    assert_eq!(other.command("SET b 1"), refusal);
    assert_eq!(other.command("PING"), refusal);
    // Queued before the failure, executed after it: refused as a whole (Redis's EXEC counts
    // as a write when it holds one).
    assert_eq!(
        node.command("EXEC"),
        "-EXECABORT Transaction discarded because of: MISCONF Errors writing to the AOF file: \
         Input/output error\r\n"
    );
    assert_eq!(node.command("EXISTS queued"), ":0\r\n");
    // A read-only transaction still runs.
    assert_eq!(node.command("MULTI"), "+OK\r\n");
    assert_eq!(node.command("GET b"), "+QUEUED\r\n");
    assert_eq!(node.command("EXEC"), "*1\r\n$-1\r\n");
}

/// The reported gap: the AOF failed, the recovering rewrite switched to a new incr file and
/// is writing its base; meanwhile a key expires (a DEL no MISCONF stops). That DEL is in
/// neither the base nor the old files: it must reach the new incr file, or the AOF replays
/// to a state that never was once writes are acknowledged again.
#[test]
fn a_del_fed_while_the_recovering_rewrite_writes_its_base_reaches_the_new_file() {
    let (disk, clock) = fresh();
    let mut node = start(&disk, &clock);
    assert_eq!(node.command("SET kept 1"), "+OK\r\n");
    assert_eq!(node.command("SET brief 1 PX 500"), "+OK\r\n");
    node.server.aof.step();
    fail_the_aof(&mut node, &disk, &clock);
    assert!(node.command("SET refused 1").starts_with("-MISCONF"));
    // `brief` expires while the rewrite writes its base: a GET deletes it and propagates DEL.
    let server = node.server.clone();
    *disk.hook.lock().unwrap() = Some(Box::new(move || {
        let mut reader = Node::client(&server, "reader");
        assert_eq!(reader.command("GET brief"), "$-1\r\n");
        // The writer thread runs meanwhile.
        reader.server.aof.step();
    }));
    persistence::rewrite(&node.server).expect("the recovering rewrite");
    assert!(disk.hook.lock().unwrap().is_none(), "the hook ran");
    assert!(node.server.aof.write_error().is_none(), "recovered");
    node.server.aof.step();
    assert_eq!(node.command("SET after 1"), "+OK\r\n");
    clock.0.fetch_add(1_001, Ordering::Relaxed);
    node.server.aof.step();
    let incr = last_incr(&disk);
    assert!(
        incr.contains("$3\r\nDEL\r\n$5\r\nbrief\r\n"),
        "the DEL is in the new incr file: {incr:?}"
    );
    assert!(incr.contains("after"), "{incr:?}");
    assert!(!incr.contains("refused"), "{incr:?}");
    // What comes back is what the server held.
    drop(node);
    let mut restarted = start(&disk, &clock);
    assert_eq!(restarted.command("GET kept"), "$1\r\n1\r\n");
    assert_eq!(restarted.command("GET doomed"), "$1\r\n1\r\n");
    assert_eq!(restarted.command("GET after"), "$1\r\n1\r\n");
    assert_eq!(restarted.command("EXISTS brief refused"), ":0\r\n");
}
