//! RDB files: the layout around the values (Redis's rdbSaveRio / rdbLoadRio).
//!
//! `REDIS0010`, auxiliary fields (`redis-ver`, `redis-bits`, `ctime`, `used-mem`, and
//! `aof-base` in an AOF base), then per database `SELECTDB` and `RESIZEDB`, then each key as
//! `[EXPIRETIME_MS ms] type key value`, then `EOF` and the CRC-64 of everything before it.
//! [`Encoder`]s (one per snapshot thread) encode keys into pieces of one database each; the
//! file's one [`Writer`] puts the opcodes around them and checksums the bytes as they leave,
//! so a save never holds the file in memory.
//!
//! The loader reads versions 1 to 12 and every opcode Redis has written. What it cannot hold
//! (module values and module aux data) stops the load with a clear error; function libraries
//! are skipped with a warning until scripting exists. Every error names the byte offset.
//! [`walk`] reads everything around the values (opcodes, the checksum) and leaves each value
//! to its caller: [`load`] decodes it at once, `parallel::load` hands it to other threads.
//! RESIZEDB is written from the sizes the snapshot's caller gives (`Writer::set_sizes`) and
//! read as a hint ([`Resize`], bounded by the bytes left), so a loader sizes its tables once.

use super::decode::{decode_body, DecodeOptions, Reader};
use super::encode::{encode_value, write_len, write_string, EncodeOptions};
use super::{crc64, DecodeError, RDB_VERSION, RDB_VERSION_READ_MAX};
use crate::types::Value;
use std::borrow::Cow;

const OPCODE_SLOT_INFO: u8 = 244;
const OPCODE_FUNCTION2: u8 = 245;
const OPCODE_FUNCTION_PRE_GA: u8 = 246;
const OPCODE_MODULE_AUX: u8 = 247;
const OPCODE_IDLE: u8 = 248;
const OPCODE_FREQ: u8 = 249;
const OPCODE_AUX: u8 = 250;
const OPCODE_RESIZEDB: u8 = 251;
const OPCODE_EXPIRETIME_MS: u8 = 252;
const OPCODE_EXPIRETIME: u8 = 253;
const OPCODE_SELECTDB: u8 = 254;
const OPCODE_EOF: u8 = 255;

/// RESIZEDB's sizes are hints from outside: a database is promised at most one key per this
/// many bytes left in the file (a real record rarely takes fewer; a file of smaller ones only
/// makes its tables grow past the hint). A table's bucket takes 8 bytes, so a hostile hint
/// costs at most half the file's size.
const RESIZE_RECORD_BYTES_MIN: u64 = 16;
/// And at most this many keys per database whatever the file's size (512 MB of buckets).
pub const RESIZE_KEYS_MAX: u64 = 1 << 26;

/// Encodes keys into the body of an RDB file: each key's `[EXPIRETIME_MS ms] type key value`,
/// in pieces of one database's keys. Several encoders (one per snapshot thread) may feed one
/// file, through its [`Writer`], in whatever order their pieces come: a piece carries its
/// database and the writer selects it.
pub struct Encoder {
    options: EncodeOptions,
    /// The open piece's database and bytes.
    db: usize,
    out: Vec<u8>,
    /// Pieces closed by a change of database, not yet taken.
    sealed: Vec<Piece>,
    sealed_bytes: usize,
    scratch: Vec<u8>,
}

/// Consecutive keys of one database, encoded.
pub struct Piece {
    pub db: usize,
    pub bytes: Vec<u8>,
}

impl Encoder {
    pub fn new(options: EncodeOptions) -> Encoder {
        Encoder {
            options,
            db: 0,
            out: Vec::new(),
            sealed: Vec::new(),
            sealed_bytes: 0,
            scratch: Vec::new(),
        }
    }

    /// An empty encoder with the same options, for another thread feeding the same file.
    pub fn sibling(&self) -> Encoder {
        Encoder::new(self.options)
    }

    /// Appends one key.
    pub fn entry(
        &mut self,
        db: usize,
        key: &[u8],
        value: &Value,
        expire_ms: Option<u64>,
    ) -> Result<(), String> {
        if db != self.db {
            self.seal();
            self.db = db;
        }
        self.scratch.clear();
        encode_value(&mut self.scratch, value, &self.options)
            .map_err(|err| err.reason.to_string())?;
        if let Some(at) = expire_ms {
            self.out.push(OPCODE_EXPIRETIME_MS);
            self.out.extend_from_slice(&at.to_le_bytes());
        }
        // The layout is type, key, value: the encoder wrote the type byte first.
        self.out.push(self.scratch[0]);
        write_string(&mut self.out, key, &self.options);
        self.out.extend_from_slice(&self.scratch[1..]);
        Ok(())
    }

    fn seal(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.out);
        self.sealed_bytes += bytes.len();
        self.sealed.push(Piece { db: self.db, bytes });
    }

    /// Bytes encoded and not yet taken.
    pub fn buffered(&self) -> usize {
        self.sealed_bytes + self.out.len()
    }

    /// Everything encoded so far, in order.
    pub fn take(&mut self) -> Vec<Piece> {
        self.seal();
        self.sealed_bytes = 0;
        std::mem::take(&mut self.sealed)
    }
}

/// Builds an RDB file around the pieces of one or more [`Encoder`]s: the header, `SELECTDB`
/// (and `RESIZEDB`) wherever the database changes, the end and the checksum. It hands back
/// bytes to write in order and checksums them as they leave, so a save never holds the file
/// in memory. `encoder` and `take` serve a writer fed from one thread, through an encoder
/// of its own.
pub struct Writer {
    /// Bytes of the writer's own (the header, an opcode) not yet handed out.
    head: Vec<u8>,
    checksum: crc::Digest<'static, u64, crc::Table<16>>,
    db: Option<usize>,
    /// Each database's (keys, keys with an expiry) for RESIZEDB, when the caller knows them;
    /// taken (left zero) once written, so a database selected again is not resized twice.
    sizes: Vec<(u64, u64)>,
    own: Encoder,
}

impl Writer {
    /// Starts a file with Redis's auxiliary fields (`extra` adds more, e.g. `aof-base`).
    pub fn new(
        options: EncodeOptions,
        now_ms: u64,
        used_memory: u64,
        extra: &[(&str, &str)],
    ) -> Writer {
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
        let bits = (usize::BITS as u64).to_string();
        let ctime = (now_ms / 1000).to_string();
        let memory = used_memory.to_string();
        let mut aux: Vec<(&str, &str)> = vec![
            ("redis-ver", crate::REDIS_VERSION),
            ("redis-bits", &bits),
            ("ctime", &ctime),
            ("used-mem", &memory),
        ];
        aux.extend_from_slice(extra);
        for (name, value) in aux {
            head.push(OPCODE_AUX);
            write_string(&mut head, name.as_bytes(), &options);
            write_string(&mut head, value.as_bytes(), &options);
        }
        Writer {
            head,
            checksum: crc64::digest(),
            db: None,
            sizes: Vec::new(),
            own: Encoder::new(options),
        }
    }

    /// Each database's size, (keys, keys with an expiry), as the snapshot starts: written as
    /// RESIZEDB after the database's first SELECTDB, as Redis does, so a loader sizes its
    /// tables once. A hint: a loader must not trust it beyond what the file can hold.
    pub fn set_sizes(&mut self, sizes: Vec<(u64, u64)>) {
        assert!(sizes.iter().all(|&(keys, expires)| expires <= keys));
        self.sizes = sizes;
    }

    /// Takes `piece` into the file: the bytes to write before the piece's own (the header
    /// the first time, `SELECTDB` when the database changes, with RESIZEDB the first time
    /// when sizes were given). Both are checksummed here: write them in this order, before
    /// the next call.
    pub fn append(&mut self, piece: &Piece) -> Vec<u8> {
        let mut before = std::mem::take(&mut self.head);
        if self.db != Some(piece.db) {
            before.push(OPCODE_SELECTDB);
            write_len(&mut before, piece.db as u64);
            self.db = Some(piece.db);
            if let Some(size) = self.sizes.get_mut(piece.db) {
                let (keys, expires) = std::mem::take(size);
                if keys > 0 {
                    before.push(OPCODE_RESIZEDB);
                    write_len(&mut before, keys);
                    write_len(&mut before, expires);
                }
            }
        }
        self.checksum.update(&before);
        self.checksum.update(&piece.bytes);
        before
    }

    /// The writer's own encoder, for a file fed from one thread (`take` writes out what it
    /// encoded).
    pub fn encoder(&mut self) -> &mut Encoder {
        &mut self.own
    }

    /// The bytes ready to be written (checksummed as they leave).
    pub fn take(&mut self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.own.buffered() + 16);
        for piece in self.own.take() {
            bytes.extend(self.append(&piece));
            bytes.extend_from_slice(&piece.bytes);
        }
        bytes
    }

    /// Ends the file: `EOF` and the checksum; the last bytes to write.
    pub fn finish(mut self, checksum: bool) -> Vec<u8> {
        let mut bytes = self.take();
        let mut tail = std::mem::take(&mut self.head);
        tail.push(OPCODE_EOF);
        self.checksum.update(&tail);
        bytes.extend_from_slice(&tail);
        let sum = if checksum {
            self.checksum.finalize()
        } else {
            0
        };
        bytes.extend_from_slice(&sum.to_le_bytes());
        bytes
    }
}

/// What a load found besides the keys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub version: u16,
    pub keys: u64,
    /// Keys skipped because their time had passed.
    pub expired: u64,
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One key as the file holds it.
pub struct Key<'a> {
    pub db: usize,
    pub key: &'a [u8],
    pub value: Value,
    pub expire_ms: Option<u64>,
    /// Where the key's record starts: the loader never reads before it again (a mapped file's
    /// pages behind it can go).
    pub offset: usize,
}

/// A database's size as RESIZEDB gives it (Redis sizes its tables with it before the keys
/// come), bounded by what the rest of the file could hold: `RESIZE_RECORD_BYTES_MIN`,
/// `RESIZE_KEYS_MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    pub db: usize,
    pub keys: usize,
    /// Keys with an expiry; at most `keys`.
    pub expires: usize,
}

impl Resize {
    /// The bounded hint from RESIZEDB's two lengths, with `left` bytes of file after them.
    fn bounded(db: usize, keys: u64, expires: u64, left: usize) -> Resize {
        let keys_max = (left as u64 / RESIZE_RECORD_BYTES_MIN).min(RESIZE_KEYS_MAX);
        let keys = keys.min(keys_max);
        let expires = expires.min(keys);
        let resize = Resize {
            db,
            keys: keys as usize,
            expires: expires as usize,
        };
        assert!(resize.expires <= resize.keys && resize.keys as u64 <= RESIZE_KEYS_MAX);
        resize
    }
}

/// Reads a whole RDB file, handing each key to `visit` (which may refuse it with an error
/// that stops the load). `databases` bounds SELECTDB; `verify_checksum` is `rdbchecksum`.
pub fn load(
    bytes: &[u8],
    options: &DecodeOptions,
    databases: usize,
    verify_checksum: bool,
    visit: &mut dyn FnMut(Key<'_>) -> Result<(), String>,
) -> Result<Loaded, DecodeError> {
    load_sized(
        bytes,
        options,
        databases,
        verify_checksum,
        visit,
        &mut |_| {},
    )
}

/// [`load`], telling `resize` each database's size before its keys (RESIZEDB, bounded).
pub fn load_sized(
    bytes: &[u8],
    options: &DecodeOptions,
    databases: usize,
    verify_checksum: bool,
    visit: &mut dyn FnMut(Key<'_>) -> Result<(), String>,
    resize: &mut dyn FnMut(Resize),
) -> Result<Loaded, DecodeError> {
    let mut record = |reader: &mut Reader<'_>, head: Head<'_>| {
        let value = decode_body(reader, head.kind, options)?;
        visit(Key {
            db: head.db,
            key: &head.key,
            value,
            expire_ms: head.expire_ms,
            offset: head.offset,
        })
        .map_err(|reason| DecodeError::new(head.offset, reason))
    };
    walk(bytes, databases, verify_checksum, &mut record, resize)
}

/// A key record as the walk meets it, its value next in the reader.
pub struct Head<'a> {
    pub db: usize,
    /// Borrowed from the file unless stored as an integer or compressed.
    pub key: Cow<'a, [u8]>,
    /// The value's RDB type.
    pub kind: u8,
    pub expire_ms: Option<u64>,
    /// Where the record starts (its expiry, if any, first).
    pub offset: usize,
}

/// Walks the records of a whole RDB file: reads the header, the opcodes and the trailing
/// checksum itself, and hands each key record to `record`, which must read the value (the
/// reader is just past the key). `record` counts in `Loaded::keys` once it returns `Ok`.
/// `resize` hears each RESIZEDB, bounded ([`Resize`]).
pub fn walk<'a>(
    bytes: &'a [u8],
    databases: usize,
    verify_checksum: bool,
    record: &mut dyn FnMut(&mut Reader<'a>, Head<'a>) -> Result<(), DecodeError>,
    resize: &mut dyn FnMut(Resize),
) -> Result<Loaded, DecodeError> {
    let mut reader = Reader::new(bytes);
    let magic = reader.take(9)?;
    if &magic[..5] != b"REDIS" {
        return Err(DecodeError::new(
            0,
            "Wrong signature trying to load DB from file",
        ));
    }
    let version = std::str::from_utf8(&magic[5..])
        .ok()
        .and_then(|text| text.parse::<u16>().ok())
        .filter(|version| (1..=RDB_VERSION_READ_MAX).contains(version))
        .ok_or_else(|| {
            DecodeError::new(
                5,
                format!(
                    "Can't handle RDB format version {}",
                    String::from_utf8_lossy(&magic[5..])
                ),
            )
        })?;
    let mut loaded = Loaded {
        version,
        ..Loaded::default()
    };
    let mut db = 0usize;
    let mut expire_ms: Option<u64> = None;
    // The checksum runs along with the reading, so the file is walked once (a file larger than
    // memory is not read a second time at the end).
    let mut digest = crc64::digest();
    let mut summed = 0usize;
    loop {
        let at = reader.position();
        if verify_checksum {
            digest.update(&bytes[summed..at]);
            summed = at;
        }
        let opcode = reader.byte()?;
        match opcode {
            OPCODE_EXPIRETIME_MS => {
                let raw = reader.take(8)?;
                expire_ms = Some(u64::from_le_bytes(
                    raw.try_into().map_err(|_| reader.error("short expire"))?,
                ));
            }
            OPCODE_EXPIRETIME => {
                let raw = reader.take(4)?;
                let seconds =
                    u32::from_le_bytes(raw.try_into().map_err(|_| reader.error("short expire"))?);
                expire_ms = Some(u64::from(seconds) * 1000);
            }
            OPCODE_IDLE => {
                reader.length()?;
            }
            OPCODE_FREQ => {
                reader.byte()?;
            }
            OPCODE_SELECTDB => {
                let index = reader.length()?;
                if index >= databases as u64 {
                    return Err(DecodeError::new(
                        at,
                        format!("FATAL: Data file was created with a Redis server configured to handle more than {databases} databases. Exiting"),
                    ));
                }
                db = index as usize;
            }
            OPCODE_RESIZEDB => {
                let keys = reader.length()?;
                let expires = reader.length()?;
                resize(Resize::bounded(db, keys, expires, reader.remaining()));
            }
            OPCODE_SLOT_INFO => {
                reader.length()?;
                reader.length()?;
                reader.length()?;
            }
            OPCODE_AUX => {
                let name = reader.string()?.into_owned();
                let value = reader.string()?.into_owned();
                loaded.aux.push((name, value));
            }
            OPCODE_MODULE_AUX => {
                return Err(DecodeError::unsupported(
                    at,
                    "the RDB holds module aux data, and Strata has no modules",
                ));
            }
            OPCODE_FUNCTION2 => {
                reader.string()?;
                tracing::warn!(
                    "Skipping a function library in the RDB: scripting is not built yet"
                );
            }
            OPCODE_FUNCTION_PRE_GA => {
                return Err(DecodeError::unsupported(
                    at,
                    "pre-release function format in the RDB is not supported",
                ));
            }
            OPCODE_EOF => {
                let end = reader.position();
                if version >= 5 {
                    let raw = reader.take(8)?;
                    let expected = u64::from_le_bytes(
                        raw.try_into().map_err(|_| reader.error("short checksum"))?,
                    );
                    if verify_checksum && expected != 0 {
                        digest.update(&bytes[summed..end]);
                        let actual = digest.finalize();
                        if actual != expected {
                            return Err(DecodeError::new(
                                end,
                                format!("Wrong RDB checksum expected: ({expected:x}) got ({actual:x}). Aborting now."),
                            ));
                        }
                    }
                }
                return Ok(loaded);
            }
            kind => {
                // Redis (and `Writer`) store a key like any string: "12345" as an integer,
                // a long key LZF-compressed.
                let key = reader.string()?;
                let head = Head {
                    db,
                    key,
                    kind,
                    expire_ms: expire_ms.take(),
                    offset: at,
                };
                record(&mut reader, head)?;
                loaded.keys += 1;
            }
        }
    }
}

/// Entry point for a fuzz target: any bytes, as an RDB file, with and without the deep checks
/// and the checksum. Must never panic. What loads must save and load again to the same keys
/// (database, name, type, expiry).
pub fn fuzz_rdb_file(bytes: &[u8]) {
    let shallow = DecodeOptions {
        deep: false,
        ..DecodeOptions::DEFAULT
    };
    for (options, verify_checksum) in [(DecodeOptions::DEFAULT, true), (shallow, false)] {
        let mut writer = Writer::new(EncodeOptions::DEFAULT, 0, 0, &[]);
        let mut saved = Vec::new();
        let mut seen = Vec::new();
        let mut encodable = true;
        let loaded = load(bytes, &options, 16, verify_checksum, &mut |key| {
            seen.push(fuzz_summary(&key));
            // Keys come in file order, and a database may come back: the writer starts a new
            // SELECTDB whenever it changes, as the file did.
            encodable &= writer
                .encoder()
                .entry(key.db, key.key, &key.value, key.expire_ms)
                .is_ok();
            saved.extend(writer.take());
            Ok(())
        });
        let Ok(loaded) = loaded else {
            continue;
        };
        assert_eq!(loaded.keys, seen.len() as u64);
        if !encodable {
            continue;
        }
        saved.extend(writer.finish(true));
        let mut again = Vec::new();
        load(&saved, &options, 16, true, &mut |key| {
            again.push(fuzz_summary(&key));
            Ok(())
        })
        .expect("a file Strata wrote loads");
        assert_eq!(seen, again, "keys change through a save and a load");
    }
}

/// What a key must keep through a save and a load: database, name, type and expiry.
fn fuzz_summary(key: &Key<'_>) -> (usize, Vec<u8>, &'static str, Option<u64>) {
    (
        key.db,
        key.key.to_vec(),
        key.value.type_name(),
        key.expire_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entries: &[(usize, &[u8], Value, Option<u64>)]) -> Vec<u8> {
        let mut writer = Writer::new(EncodeOptions::DEFAULT, 1_700_000_000_000, 1000, &[]);
        let mut bytes = Vec::new();
        for (db, key, value, expire) in entries {
            writer
                .encoder()
                .entry(*db, key, value, *expire)
                .expect("encodable");
            bytes.extend(writer.take());
        }
        bytes.extend(writer.finish(true));
        bytes
    }

    /// A key as read back: database, name, value, expiry.
    type Read = (usize, Vec<u8>, Value, Option<u64>);

    fn read(bytes: &[u8]) -> Result<Vec<Read>, DecodeError> {
        let mut keys = Vec::new();
        load(bytes, &DecodeOptions::DEFAULT, 16, true, &mut |key| {
            keys.push((key.db, key.key.to_vec(), key.value, key.expire_ms));
            Ok(())
        })?;
        Ok(keys)
    }

    #[test]
    fn round_trips_keys_databases_and_expiry() {
        let entries = [
            (0, &b"a"[..], Value::string(b"1"), None),
            (
                0,
                &b"b"[..],
                Value::string(&[b'x'; 100]),
                Some(1_800_000_000_123),
            ),
            (3, &b"c"[..], Value::string(b"hello"), None),
        ];
        let bytes = file(&entries);
        assert!(bytes.starts_with(b"REDIS0010"));
        let keys = read(&bytes).expect("valid");
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[1].3, Some(1_800_000_000_123));
        assert_eq!(keys[2].0, 3);
    }

    #[test]
    fn integer_and_compressed_keys_load() {
        let long_key = [b'k'; 100];
        let entries = [
            (0, &b"12345"[..], Value::string(b"integer key"), None),
            (0, &b"-7"[..], Value::string(b"negative"), None),
            (0, &long_key[..], Value::string(b"compressed key"), None),
        ];
        let bytes = file(&entries);
        let keys = read(&bytes).expect("valid");
        let names: Vec<&[u8]> = keys.iter().map(|key| key.1.as_slice()).collect();
        assert_eq!(names, [&b"12345"[..], b"-7", &long_key[..]]);
    }

    #[test]
    fn damage_is_refused_with_its_offset() {
        let bytes = file(&[(0, &b"a"[..], Value::string(b"value"), None)]);
        for cut in 0..bytes.len() {
            assert!(read(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x40;
        assert!(read(&flipped).is_err());
        let mut future = bytes.clone();
        future[5..9].copy_from_slice(b"0099");
        let error = read(&future).expect_err("unknown version");
        assert!(error
            .reason
            .contains("Can't handle RDB format version 0099"));
        let many = file(&[(15, &b"a"[..], Value::string(b"v"), None)]);
        let error = load(&many, &DecodeOptions::DEFAULT, 4, true, &mut |_| Ok(())).expect_err("db");
        assert!(error.reason.contains("more than 4 databases"));
    }

    fn sizes_heard(bytes: &[u8]) -> Vec<Resize> {
        let mut heard = Vec::new();
        let options = DecodeOptions::DEFAULT;
        load_sized(bytes, &options, 16, true, &mut |_| Ok(()), &mut |size| {
            heard.push(size)
        })
        .expect("valid");
        heard
    }

    #[test]
    fn resizedb_is_written_once_per_database_and_heard_before_its_keys() {
        let mut writer = Writer::new(EncodeOptions::DEFAULT, 0, 0, &[]);
        writer.set_sizes(vec![(2, 1), (0, 0), (1, 0)]);
        let mut bytes = Vec::new();
        let value = Value::string(b"v");
        for (db, key, expire) in [(0, "a", Some(5)), (2, "b", None), (0, "c", None)] {
            writer
                .encoder()
                .entry(db, key.as_bytes(), &value, expire)
                .expect("encodable");
        }
        bytes.extend(writer.take());
        bytes.extend(writer.finish(true));
        let resize = |db, keys, expires| Resize { db, keys, expires };
        // Database 0 is selected twice, resized once.
        assert_eq!(sizes_heard(&bytes), [resize(0, 2, 1), resize(2, 1, 0)]);
        assert_eq!(read(&bytes).expect("valid").len(), 3);
    }

    /// A file whose RESIZEDB claims `keys` and `expires` for database 0, then holds one key.
    fn claiming(keys: u64, expires: u64) -> Vec<u8> {
        let mut bytes = b"REDIS0010".to_vec();
        bytes.extend([OPCODE_SELECTDB, 0, OPCODE_RESIZEDB]);
        write_len(&mut bytes, keys);
        write_len(&mut bytes, expires);
        bytes.push(crate::persist::rdb::TYPE_STRING);
        write_string(&mut bytes, b"k", &EncodeOptions::DEFAULT);
        write_string(&mut bytes, b"v", &EncodeOptions::DEFAULT);
        bytes.push(OPCODE_EOF);
        bytes.extend(0u64.to_le_bytes());
        bytes
    }

    #[test]
    fn a_hostile_resizedb_is_bounded_by_the_bytes_left() {
        // 2^60 keys, and more expiring keys than keys: what 14 bytes left can hold.
        let heard = sizes_heard(&claiming(1 << 60, u64::MAX));
        let left = 14u64;
        let bound = (left / RESIZE_RECORD_BYTES_MIN) as usize;
        assert_eq!(
            heard,
            [Resize {
                db: 0,
                keys: bound,
                expires: bound
            }]
        );
        // However large the file, never past the absolute bound.
        let huge = Resize::bounded(0, u64::MAX, 3, usize::MAX);
        assert_eq!(huge.keys as u64, RESIZE_KEYS_MAX);
        assert_eq!(huge.expires, 3);
        // An honest hint passes as it is.
        assert_eq!(
            Resize::bounded(1, 10, 4, 1 << 20),
            Resize {
                db: 1,
                keys: 10,
                expires: 4
            }
        );
    }
}
