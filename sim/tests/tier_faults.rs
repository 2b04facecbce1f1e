//! A rotted bit in a cold value's record, end to end on the simulated disk: what the key's
//! commands, the other keys, a save and a restart do, and that a write replacing the value
//! never needs the old one.

use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use strata::config::Config;
use strata::io::SystemClock;
use strata::protocol::Reply;
use strata::server::clients::Session;
use strata::server::persistence;
use strata::server::state::Server;
use strata::tier::store::segment_file_name;
use strata::tier::ColdRef;
use strata::types::Value;
use strata_sim::disk::{Faults, SimDisk};
use strata_sim::tier::{TierSetup, TIER_DIR};

fn start(disk: &SimDisk) -> (Arc<Server>, Session) {
    let config = Config::default();
    config
        .load_text("dir /sim\nappendonly yes\nappendfsync always\ntiering-min-value-size 0\nenable-debug-command yes\n")
        .expect("config");
    let server = Server::into_arc(Server::new(
        config,
        Arc::new(SystemClock),
        Arc::new(disk.clone()),
        1,
    ));
    server.aof.set_manual();
    let setup = TierSetup {
        maxmemory: 0,
        policy: "noeviction",
        samples: 5,
        min_value_bytes: 0,
        max_disk_bytes: 0,
        zstd: false,
        segment_bytes: 64,
    };
    setup
        .open(&server, Arc::new(disk.clone()))
        .expect("the tier opens");
    persistence::load_at_start(&server).expect("load");
    let (handle, _outbox) = server.clients.register("test".into(), "test".into(), -1, 0);
    (server, Session::new(handle, true))
}

fn send(server: &Server, session: &mut Session, words: &[&str]) -> Reply {
    let argv: Vec<Bytes> = words.iter().map(|w| Bytes::from(w.to_string())).collect();
    let reply = strata::command::dispatch(server, session, argv).0;
    server.aof.step();
    reply
}

fn cold_ref(server: &Server, key: &str) -> ColdRef {
    let mut ks = server.keyspace.lock_keys([key.as_bytes()], 0);
    match ks
        .db(0, key.as_bytes())
        .keys
        .get(key.as_bytes())
        .map(|e| &e.value)
    {
        Some(Value::Cold(cold)) => *cold,
        other => panic!("{key} is not cold: {other:?}"),
    }
}

fn errors_of(reply: &Reply) -> Vec<String> {
    let mut texts = Vec::new();
    strata_sim::tier::errors(reply, &mut texts);
    texts
}

#[test]
fn a_rotted_record_fails_its_key_only_until_deleted_or_restarted() {
    // The executor unwinds a command that meets an unreadable record with `ReadFault` and
    // replies with its text; the default hook would print it as if something crashed.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !strata::tier::memory::is_tier_unwind(info.payload()) {
            default_hook(info);
        }
    }));
    let disk = SimDisk::new(3, Faults::none());
    let (server, mut session) = start(&disk);
    let victim = "v".repeat(300);
    let other = "o".repeat(300);
    let keys = [
        ("victim", &victim),
        ("doomed", &victim),
        ("other", &other),
        ("third", &other),
    ];
    for (key, value) in keys {
        assert_eq!(
            send(&server, &mut session, &["SET", key, value]),
            Reply::Simple("OK")
        );
    }
    let spilled = send(
        &server,
        &mut session,
        &["DEBUG", "SPILL", "victim", "doomed", "other", "third"],
    );
    assert_eq!(spilled, Reply::Integer(4));
    let store = server.keyspace.tier.store().expect("the tier is open");
    store.flush().expect("flush");
    for key in ["doomed", "victim"] {
        let cold = cold_ref(&server, key);
        let path = Path::new(TIER_DIR).join(segment_file_name(cold.segment));
        disk.rot_segment_at(&path, u64::from(cold.offset) + 40)
            .expect("the record is on the disk");
    }
    let cold = cold_ref(&server, "victim");
    let faults = disk.segment_faults();

    // Every command that needs the value fails, naming the segment file and the offset.
    let named = format!(
        "corrupt record in tier segment file {} at offset {}",
        segment_file_name(cold.segment),
        cold.offset
    );
    for words in [
        &["GET", "victim"][..],
        &["STRLEN", "victim"],
        &["APPEND", "victim", "x"],
        &["SET", "victim", "new", "GET"],
    ] {
        let reply = send(&server, &mut session, words);
        let texts = errors_of(&reply);
        assert_eq!(texts.len(), 1, "{words:?}: {reply:?}");
        assert!(texts[0].contains(&named), "{words:?}: {}", texts[0]);
        strata_sim::tier::check_error(&server, &texts[0], &faults).expect("explained");
    }
    // What needs only the metadata works; so does every other key, in a transaction too.
    let kind = send(&server, &mut session, &["TYPE", "victim"]);
    assert_eq!(&kind.to_bytes(false)[..], b"+string\r\n");
    assert_eq!(
        send(&server, &mut session, &["GET", "other"]),
        Reply::Bulk(Bytes::from(other.clone()))
    );
    send(&server, &mut session, &["MULTI"]);
    send(&server, &mut session, &["GET", "victim"]);
    send(&server, &mut session, &["GET", "third"]);
    let exec = send(&server, &mut session, &["EXEC"]);
    let Reply::Array(replies) = &exec else {
        panic!("EXEC: {exec:?}");
    };
    assert!(matches!(&replies[0], Reply::Error(text) if text.contains(&named)));
    assert_eq!(replies[1], Reply::Bulk(Bytes::from(other.clone())));
    // Deleting the key ends it; the name can then be written again.
    assert_eq!(
        send(&server, &mut session, &["DEL", "doomed"]),
        Reply::Integer(1)
    );
    send(&server, &mut session, &["SET", "doomed", "new"]);
    assert_eq!(
        send(&server, &mut session, &["GET", "doomed"]),
        Reply::Bulk(Bytes::from_static(b"new"))
    );
    // A save fails rather than lose the key or write garbage.
    let rewrite = persistence::rewrite(&server).expect_err("the rewrite must fail");
    assert!(rewrite.contains(&named), "{rewrite}");
    assert!(store.stats().corrupt_records >= 6);

    // After a restart the value comes back from the AOF: segments are not the durable copy.
    drop((server, session, store));
    disk.crash();
    let (restarted, mut session) = start(&disk);
    assert_eq!(
        send(&restarted, &mut session, &["GET", "victim"]),
        Reply::Bulk(Bytes::from(victim))
    );
    assert_eq!(
        send(&restarted, &mut session, &["GET", "doomed"]),
        Reply::Bulk(Bytes::from_static(b"new"))
    );
}

/// Spills `keys` (each set to `value`), writes them out and rots a bit in each one's record;
/// the error text a read of each now names.
fn rot_keys(
    server: &Server,
    session: &mut Session,
    disk: &SimDisk,
    keys: &[&str],
    value: &str,
) -> Vec<String> {
    for key in keys {
        assert_eq!(
            send(server, session, &["SET", key, value]),
            Reply::Simple("OK")
        );
    }
    let mut spill = vec!["DEBUG", "SPILL"];
    spill.extend_from_slice(keys);
    assert_eq!(
        send(server, session, &spill),
        Reply::Integer(keys.len() as i64)
    );
    let store = server.keyspace.tier.store().expect("the tier is open");
    store.flush().expect("flush");
    keys.iter()
        .map(|key| {
            let cold = cold_ref(server, key);
            let path = Path::new(TIER_DIR).join(segment_file_name(cold.segment));
            disk.rot_segment_at(&path, u64::from(cold.offset) + 40)
                .expect("the record is on the disk");
            format!(
                "corrupt record in tier segment file {} at offset {}",
                segment_file_name(cold.segment),
                cold.offset
            )
        })
        .collect()
}

#[test]
fn a_write_that_replaces_a_rotted_value_does_not_read_it() {
    let disk = SimDisk::new(5, Faults::none());
    let (server, mut session) = start(&disk);
    let old = "o".repeat(300);
    let keys = [
        "set", "renamed", "mset", "copied", "setex", "nx", "restored", "stored",
    ];
    let named = rot_keys(&server, &mut session, &disk, &keys, &old);
    let store = server.keyspace.tier.store().expect("the tier is open");
    let faults = disk.segment_faults();

    // A read still fails, naming the segment file and the offset.
    let reply = send(&server, &mut session, &["GET", "set"]);
    let texts = errors_of(&reply);
    assert_eq!(texts.len(), 1, "{reply:?}");
    assert!(texts[0].contains(&named[0]), "{}", texts[0]);
    strata_sim::tier::check_error(&server, &texts[0], &faults).expect("explained");
    let corrupt_before = store.stats().corrupt_records;

    send(&server, &mut session, &["SET", "source", "moved"]);
    send(&server, &mut session, &["SADD", "members", "m"]);
    let dump = send(&server, &mut session, &["DUMP", "source"]);
    let Reply::Bulk(payload) = dump else {
        panic!("DUMP: {dump:?}");
    };
    // Each write replaces the rotted value; none reads it.
    let writes: [(&[&str], Reply); 8] = [
        (&["SET", "set", "new"], Reply::Simple("OK")),
        (&["RENAME", "source", "renamed"], Reply::Simple("OK")),
        (&["MSET", "mset", "new"], Reply::Simple("OK")),
        (&["COPY", "renamed", "copied", "REPLACE"], Reply::Integer(1)),
        (&["SETEX", "setex", "100", "new"], Reply::Simple("OK")),
        // NX and XX need only the key's existence, which is in RAM.
        (&["SET", "nx", "new", "NX"], Reply::Null),
        (&["SET", "nx", "new", "XX", "KEEPTTL"], Reply::Simple("OK")),
        (&["SUNIONSTORE", "stored", "members"], Reply::Integer(1)),
    ];
    for (words, expected) in writes {
        let reply = send(&server, &mut session, words);
        assert_eq!(reply, expected, "{words:?}");
    }
    // RESTORE's payload is binary.
    let restore: Vec<Bytes> = ["RESTORE", "restored", "0"]
        .iter()
        .map(|word| Bytes::from(word.to_string()))
        .chain([payload, Bytes::from_static(b"REPLACE")])
        .collect();
    let reply = strata::command::dispatch(&server, &mut session, restore).0;
    server.aof.step();
    assert_eq!(reply, Reply::Simple("OK"));
    for (key, value) in [
        ("set", "new"),
        ("renamed", "moved"),
        ("mset", "new"),
        ("copied", "moved"),
        ("setex", "new"),
        ("nx", "new"),
        ("restored", "moved"),
    ] {
        assert_eq!(
            send(&server, &mut session, &["GET", key]),
            Reply::Bulk(Bytes::from(value)),
            "{key}"
        );
    }
    let members = send(&server, &mut session, &["SMEMBERS", "stored"]);
    assert_eq!(&members.to_bytes(false)[..], b"*1\r\n$1\r\nm\r\n");
    assert_eq!(
        store.stats().corrupt_records,
        corrupt_before,
        "no write read a record"
    );
    // Nothing refers to a rotted record any more: a save works.
    persistence::rewrite(&server).expect("the rewrite works");
}

#[test]
fn a_segment_whose_rotted_record_died_is_compacted_away() {
    let disk = SimDisk::new(7, Faults::none());
    let (server, mut session) = start(&disk);
    let value = "d".repeat(300);
    let named = rot_keys(&server, &mut session, &disk, &["dead", "live"], &value);
    let store = server.keyspace.tier.store().expect("the tier is open");
    let (dead, live) = (cold_ref(&server, "dead"), cold_ref(&server, "live"));
    // A later spill seals the segments that hold them (each record fills its own here).
    send(&server, &mut session, &["SET", "later", &value]);
    send(&server, &mut session, &["DEBUG", "SPILL", "later"]);
    store.flush().expect("flush");
    let files = || strata_sim::tier::segment_files(&disk, Path::new(TIER_DIR));
    let dead_file = segment_file_name(dead.segment);
    assert!(files().contains(&dead_file));

    // Overwritten (without reading it): the rotted record is dead, and its segment goes.
    send(&server, &mut session, &["SET", "dead", "new"]);
    let disk_before = store.stats().disk_bytes;
    let tier = &*server.keyspace.tier;
    assert!(strata::tier::compact::compact_once(&server, tier, &store));
    assert!(!files().contains(&dead_file), "{:?}", files());
    assert_eq!(
        store.stats().disk_bytes,
        disk_before - u64::from(dead.length)
    );
    // The rotted live record keeps its segment, and its key its error.
    assert!(files().contains(&segment_file_name(live.segment)));
    let texts = errors_of(&send(&server, &mut session, &["GET", "live"]));
    assert!(
        texts.len() == 1 && texts[0].contains(&named[1]),
        "{texts:?}"
    );
    assert_eq!(
        send(&server, &mut session, &["GET", "dead"]),
        Reply::Bulk(Bytes::from_static(b"new"))
    );
}
