//! DUMP and RESTORE: a key's value as a self-checking RDB payload, and back.
//!
//! Commands: DUMP, RESTORE.
//!
//! The payload is Redis's: the value in RDB form (`persist::rdb`, the same codec as RDB files
//! and the tier), the RDB version as u16 LE (Strata writes 10, what Redis 7.0 writes, and
//! reads up to 12) and a CRC-64 of all that, u64 LE. So payloads move between Strata and
//! real Redis in both directions.

use super::args;
use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::keyspace::entry::{lru_clock, LRU_CLOCK_MAX};
use crate::keyspace::notify;
use crate::keyspace::AccessMode;
use crate::persist::rdb::{self, DecodeOptions, EncodeOptions};
use crate::protocol::Reply;
use bytes::Bytes;

pub static COMMANDS: &[Spec] = &[
    Spec::new("dump", dump, Lock::Keys),
    Spec::new("restore", restore, Lock::Keys),
];

const BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
const BAD_DATA: &str = "ERR Bad data format";
const BUSY_KEY: &str = "BUSYKEY Target key name already exists.";
const INVALID_TTL: &str = "ERR Invalid TTL value, must be >= 0";
const INVALID_IDLETIME: &str = "ERR Invalid IDLETIME value, must be >= 0";
const INVALID_FREQ: &str = "ERR Invalid FREQ value, must be >= 0 and <= 255";

/// `DUMP key`: the serialized value, or nil when the key does not exist.
fn dump(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let options = EncodeOptions::from_config(&ctx.server.config);
    let db = ctx.db();
    let Some(entry) = ctx.ks.lookup_read(db, &argv[1]) else {
        return Ok(Reply::Null);
    };
    match rdb::create_dump_payload(&entry.value, &options) {
        Ok(payload) => Ok(Reply::Bulk(Bytes::from(payload))),
        Err(error) => Err(Error::err(format!("DUMP is not possible: {error}"))),
    }
}

/// RESTORE's options after the payload.
#[derive(Debug, Default)]
struct RestoreOptions {
    replace: bool,
    absolute_ttl: bool,
    idle_seconds: Option<i64>,
    frequency: Option<i64>,
}

/// Redis's option loop: IDLETIME and FREQ exclude each other (the second one is a syntax
/// error), each needs its argument.
fn parse_restore_options(argv: &[Bytes]) -> Result<RestoreOptions, Error> {
    let mut options = RestoreOptions::default();
    let mut index = 4;
    while index < argv.len() {
        let has_argument = index + 1 < argv.len();
        let word = &argv[index];
        if args::is(word, "replace") {
            options.replace = true;
        } else if args::is(word, "absttl") {
            options.absolute_ttl = true;
        } else if args::is(word, "idletime") && has_argument && options.frequency.is_none() {
            let idle = args::int(&argv[index + 1])?;
            if idle < 0 {
                return Err(INVALID_IDLETIME.into());
            }
            options.idle_seconds = Some(idle);
            index += 1;
        } else if args::is(word, "freq") && has_argument && options.idle_seconds.is_none() {
            let frequency = args::int(&argv[index + 1])?;
            if !(0..=255).contains(&frequency) {
                return Err(INVALID_FREQ.into());
            }
            options.frequency = Some(frequency);
            index += 1;
        } else {
            return Err(Error::Syntax);
        }
        index += 1;
    }
    Ok(options)
}

/// Whether RESTORE checks payloads deeply (`sanitize-dump-payload`). `clients` means every
/// client here: Strata has no replication link or ACL skip-sanitize flag yet, the two
/// exemptions Redis makes.
fn deep_sanitization(ctx: &Ctx<'_, '_>) -> bool {
    ctx.server.config.word("sanitize-dump-payload") != "no"
}

/// `RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]`.
fn restore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let options = parse_restore_options(argv)?;
    let db = ctx.db();
    let key = &argv[1];
    if !options.replace && ctx.ks.lookup_meta(db, key).is_some() {
        return Err(BUSY_KEY.into());
    }
    let ttl = args::int(&argv[2])?;
    if ttl < 0 {
        return Err(INVALID_TTL.into());
    }
    if rdb::verify_dump_payload(&argv[3], false).is_none() {
        return Err(BAD_PAYLOAD.into());
    }
    let decode_options = DecodeOptions::from_config(&ctx.server.config, deep_sanitization(ctx));
    // The whole payload, footer included, as Redis reads it: a value whose lengths run into
    // the footer still loads there, and so here.
    let value = match rdb::payload::decode_dump_body(&argv[3], &decode_options) {
        Ok(value) => value,
        Err(error) if error.unsupported => {
            return Err(Error::err(format!("Bad data format: {}", error.reason)))
        }
        Err(error) => {
            tracing::debug!("RESTORE refused a payload: {error}");
            return Err(BAD_DATA.into());
        }
    };

    let now_ms = ctx.now_ms();
    let mut expire_at_ms = None;
    if ttl > 0 {
        let when = if options.absolute_ttl {
            ttl
        } else {
            ttl.saturating_add(now_ms as i64)
        };
        expire_at_ms = Some(when);
    }
    if let Some(when) = expire_at_ms {
        if when <= now_ms as i64 {
            // Already expired: the old key (with REPLACE) goes, the new one never appears.
            if options.replace && ctx.ks.delete(db, key) {
                ctx.ks.notify(notify::GENERIC, "del", db, key);
                let delete: &'static [u8] = if ctx.server.config.bool("lazyfree-lazy-server-del") {
                    b"UNLINK"
                } else {
                    b"DEL"
                };
                ctx.propagate(vec![Bytes::from_static(delete), key.clone()]);
            }
            return Ok(Reply::OK);
        }
    }

    if options.replace {
        ctx.ks.delete(db, key);
    }
    ctx.ks.set(db, key, value, false);
    if let Some(when) = expire_at_ms {
        ctx.ks.set_expire(db, key, when as u64);
        if !options.absolute_ttl {
            // Replicas and the AOF get the absolute time, as Redis propagates it.
            let mut rewritten = argv.to_vec();
            rewritten[2] = Bytes::from(when.to_string());
            rewritten.push(Bytes::from_static(b"ABSTTL"));
            ctx.propagate(rewritten);
        }
    }
    set_access(ctx, db, key, &options);
    ctx.ks.notify(notify::GENERIC, "restore", db, key);
    Ok(Reply::OK)
}

/// Redis's `objectSetLRUOrLFU`: FREQ under an LFU policy, IDLETIME under an LRU one; the
/// other option is ignored.
fn set_access(ctx: &mut Ctx<'_, '_>, db: usize, key: &[u8], options: &RestoreOptions) {
    let mode = ctx.ks.keyspace().access_mode();
    let now_ms = ctx.now_ms();
    let Some(entry) = ctx.ks.peek(db, key) else {
        debug_assert!(false, "the key was just restored");
        return;
    };
    match (mode, options.frequency, options.idle_seconds) {
        (AccessMode::Lfu { .. }, Some(frequency), _) => {
            let minutes = ((now_ms / 60_000) & 0xffff) as u32;
            entry.access = (minutes << 8) | frequency as u32;
        }
        (AccessMode::Lru, _, Some(idle)) => {
            // The clock wraps: an idle time past it wraps too, as Redis's 24-bit field does.
            let mut absolute = lru_clock(now_ms) as i64 - idle;
            if absolute < 0 {
                absolute += LRU_CLOCK_MAX as i64;
            }
            entry.access = (absolute as u64 & LRU_CLOCK_MAX as u64) as u32;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::Reply;
    use crate::testing::TestServer;
    use bytes::Bytes;

    fn call(
        test: &TestServer,
        session: &mut crate::server::clients::Session,
        words: &[&[u8]],
    ) -> Reply {
        let argv: Vec<Bytes> = words
            .iter()
            .map(|word| Bytes::copy_from_slice(word))
            .collect();
        crate::command::dispatch(&test.server, session, argv).0
    }

    fn payload_of(reply: Reply) -> Vec<u8> {
        match reply {
            Reply::Bulk(bytes) => bytes.to_vec(),
            other => panic!("not a payload: {other:?}"),
        }
    }

    fn error_text(reply: Reply) -> String {
        String::from_utf8_lossy(&reply.to_bytes(false))
            .trim_end()
            .to_string()
    }

    #[test]
    fn dumps_what_redis_dumps() {
        let test = TestServer::new();
        let mut session = test.session();
        test.run(&mut session, "SET foo bar");
        let payload = payload_of(call(&test, &mut session, &[b"DUMP", b"foo"]));
        // Redis 7.0.15's DUMP of the same key.
        assert_eq!(payload, b"\x00\x03bar\n\x00\xe6\xbeI`\xeef\xfd\x17");
        assert_eq!(test.run(&mut session, "DUMP missing"), "$-1\r\n");
    }

    #[test]
    fn round_trips_every_type() {
        let test = TestServer::new();
        let mut session = test.session();
        for line in [
            "SET s hello",
            "RPUSH l a b 1 -5 300",
            "HSET h f v g 12",
            "SADD si 3 1 2",
            "SADD ss a b c",
            "ZADD z 1 a 2.5 b -inf c",
        ] {
            test.run(&mut session, line);
        }
        for key in ["s", "l", "h", "si", "ss", "z"] {
            let payload = payload_of(call(&test, &mut session, &[b"DUMP", key.as_bytes()]));
            let target = format!("{key}-copy");
            let reply = call(
                &test,
                &mut session,
                &[b"RESTORE", target.as_bytes(), b"0", &payload],
            );
            assert_eq!(reply, Reply::OK, "{key}");
            let again = payload_of(call(&test, &mut session, &[b"DUMP", target.as_bytes()]));
            assert_eq!(again, payload, "{key}");
        }
        assert_eq!(
            test.run(&mut session, "LRANGE l-copy 0 -1"),
            "*5\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\n1\r\n$2\r\n-5\r\n$3\r\n300\r\n"
        );
        assert_eq!(test.run(&mut session, "ZSCORE z-copy c"), "$4\r\n-inf\r\n");
        assert_eq!(
            test.run(&mut session, "OBJECT ENCODING si-copy"),
            "$6\r\nintset\r\n"
        );
    }

    #[test]
    fn errors_in_redis_order() {
        let test = TestServer::new();
        let mut session = test.session();
        test.run(&mut session, "SET foo bar");
        let payload = payload_of(call(&test, &mut session, &[b"DUMP", b"foo"]));
        let restore = |session: &mut _, extra: &[&[u8]]| {
            let mut words: Vec<&[u8]> = vec![b"RESTORE"];
            words.extend_from_slice(extra);
            error_text(call(&test, session, &words))
        };
        assert_eq!(
            restore(&mut session, &[b"foo", b"0", &payload]),
            "-BUSYKEY Target key name already exists."
        );
        // BUSYKEY comes before the TTL check, the TTL before the payload.
        assert_eq!(
            restore(&mut session, &[b"foo", b"-1", b"x"]),
            "-BUSYKEY Target key name already exists."
        );
        assert_eq!(
            restore(&mut session, &[b"new", b"-1", b"x"]),
            "-ERR Invalid TTL value, must be >= 0"
        );
        assert_eq!(
            restore(&mut session, &[b"new", b"x", b"x"]),
            "-ERR value is not an integer or out of range"
        );
        assert_eq!(
            restore(&mut session, &[b"new", b"0", b"x"]),
            "-ERR DUMP payload version or checksum are wrong"
        );
        let mut corrupt = payload.clone();
        corrupt[2] ^= 1;
        assert_eq!(
            restore(&mut session, &[b"new", b"0", &corrupt]),
            "-ERR DUMP payload version or checksum are wrong"
        );
        assert_eq!(
            restore(&mut session, &[b"new", b"0", &payload, b"bogus"]),
            "-ERR syntax error"
        );
        assert_eq!(
            restore(&mut session, &[b"new", b"0", &payload, b"idletime"]),
            "-ERR syntax error"
        );
        assert_eq!(
            restore(
                &mut session,
                &[b"new", b"0", &payload, b"freq", b"1", b"idletime", b"1"]
            ),
            "-ERR syntax error"
        );
        assert_eq!(
            restore(&mut session, &[b"new", b"0", &payload, b"idletime", b"-1"]),
            "-ERR Invalid IDLETIME value, must be >= 0"
        );
        assert_eq!(
            restore(&mut session, &[b"new", b"0", &payload, b"freq", b"256"]),
            "-ERR Invalid FREQ value, must be >= 0 and <= 255"
        );
        // A sound footer around a value that does not parse.
        let mut bad = b"\x63bar".to_vec();
        bad.extend_from_slice(&10u16.to_le_bytes());
        let crc = crate::persist::rdb::crc64::checksum(&bad);
        bad.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            restore(&mut session, &[b"new", b"0", &bad]),
            "-ERR Bad data format"
        );
        assert_eq!(test.run(&mut session, "EXISTS new"), ":0\r\n");
    }

    #[test]
    fn propagates_absolute_ttls_and_deletes() {
        let test = TestServer::new();
        let mut session = test.session();
        test.run(&mut session, "SET foo bar");
        let payload = payload_of(call(&test, &mut session, &[b"DUMP", b"foo"]));
        assert_eq!(
            call(&test, &mut session, &[b"RESTORE", b"a", b"1000", &payload]),
            Reply::OK
        );
        assert_eq!(test.run(&mut session, "PTTL a"), ":1000\r\n");
        // Already expired: nothing happens unless REPLACE removes an old key.
        assert_eq!(
            call(
                &test,
                &mut session,
                &[b"RESTORE", b"b", b"1", &payload, b"ABSTTL"]
            ),
            Reply::OK
        );
        assert_eq!(
            call(
                &test,
                &mut session,
                &[b"RESTORE", b"foo", b"1", &payload, b"ABSTTL", b"REPLACE"]
            ),
            Reply::OK
        );
        assert_eq!(test.run(&mut session, "EXISTS b foo"), ":0\r\n");
        let expected_ttl = crate::testing::START_MS + 1000;
        let propagated = test.propagated();
        let restores: Vec<&String> = propagated
            .iter()
            .filter(|line| !line.starts_with("SELECT"))
            .collect();
        assert_eq!(restores.len(), 3, "{propagated:?}");
        assert!(
            restores[1].starts_with(&format!("RESTORE a {expected_ttl} ")),
            "{restores:?}"
        );
        assert!(restores[1].ends_with(" ABSTTL"), "{restores:?}");
        assert_eq!(restores[2], "DEL foo");
    }

    #[test]
    fn idletime_sets_the_access_clock() {
        let test = TestServer::new();
        let mut session = test.session();
        test.run(&mut session, "SET foo bar");
        let payload = payload_of(call(&test, &mut session, &[b"DUMP", b"foo"]));
        assert_eq!(
            call(
                &test,
                &mut session,
                &[b"RESTORE", b"a", b"0", &payload, b"IDLETIME", b"100"]
            ),
            Reply::OK
        );
        assert_eq!(test.run(&mut session, "OBJECT IDLETIME a"), ":100\r\n");
    }

    #[test]
    fn freq_sets_the_lfu_counter_under_an_lfu_policy() {
        let test = TestServer::new();
        let mut session = test.session();
        test.run(&mut session, "SET foo bar");
        let payload = payload_of(call(&test, &mut session, &[b"DUMP", b"foo"]));
        // Under LRU, FREQ is accepted and ignored.
        assert_eq!(
            call(
                &test,
                &mut session,
                &[b"RESTORE", b"a", b"0", &payload, b"FREQ", b"100"]
            ),
            Reply::OK
        );
        assert_eq!(
            test.run(&mut session, "CONFIG SET maxmemory-policy allkeys-lfu"),
            "+OK\r\n"
        );
        assert_eq!(
            call(
                &test,
                &mut session,
                &[b"RESTORE", b"b", b"0", &payload, b"FREQ", b"100"]
            ),
            Reply::OK
        );
        assert_eq!(test.run(&mut session, "OBJECT FREQ b"), ":100\r\n");
    }

    #[test]
    fn sanitization_follows_the_config() {
        let test = TestServer::new();
        let mut session = test.session();
        // A listpack hash with a duplicate field, in a sound payload.
        let mut writer = crate::persist::rdb::listpack::Writer::new();
        for element in ["f", "1", "f", "2"] {
            writer.push(element.as_bytes());
        }
        let blob = writer.finish();
        let mut payload = vec![crate::persist::rdb::TYPE_HASH_LISTPACK, blob.len() as u8];
        payload.extend_from_slice(&blob);
        payload.extend_from_slice(&10u16.to_le_bytes());
        let crc = crate::persist::rdb::crc64::checksum(&payload);
        payload.extend_from_slice(&crc.to_le_bytes());
        for (setting, expected) in [
            ("yes", "-ERR Bad data format"),
            ("clients", "-ERR Bad data format"),
            ("no", "+OK"),
        ] {
            test.run(
                &mut session,
                &format!("CONFIG SET sanitize-dump-payload {setting}"),
            );
            let reply = call(
                &test,
                &mut session,
                &[b"RESTORE", b"h", b"0", &payload, b"REPLACE"],
            );
            assert_eq!(error_text(reply), expected, "{setting}");
        }
        assert_eq!(test.run(&mut session, "HGET h f"), "$1\r\n1\r\n");
    }
}
