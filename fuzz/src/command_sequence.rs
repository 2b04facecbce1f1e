//! The `command_sequence` target: a random sequence of commands runs against the real
//! executor (a whole `Server`, driven without sockets) and against a plain reference model of
//! Redis 7.0 written here from its documented semantics; every reply must be the same.
//!
//! The model covers strings, keys and expiry (a manual clock that the sequence moves), lists,
//! hashes and sets: each a `std` collection, with none of Strata's encodings, sharding or
//! lazy expiry. Unordered replies (SMEMBERS, HGETALL, HKEYS, KEYS) are compared sorted.
//!
//! The input is read as a program: each command takes an opcode byte and then the bytes its
//! arguments need (keys from four names, values from a table of edge cases or raw bytes from
//! the input), so libFuzzer's mutations change commands and arguments one at a time.
//!
//! This file uses nothing but `strata` and `std`: `tests/fuzz_corpus.rs` in the main crate
//! compiles it too (`#[path]`) to run the corpus in the normal test run.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use strata::protocol::Reply;

/// Commands per input: enough to grow a list past its compact encoding, bounded so one input
/// stays fast.
const COMMANDS_MAX: usize = 400;
/// Where the clock starts (unix ms).
const START_MS: u64 = 1_700_000_000_000;

const KEYS: [&[u8]; 4] = [b"a", b"b", b"c", b"{a}d"];
/// Fields and members: few, so commands meet.
const FIELDS: [&[u8]; 5] = [b"f", b"g", b"h", b"1", b""];
/// Values that reach the edges of integer parsing and of the string type.
const VALUES: [&[u8]; 16] = [
    b"",
    b"0",
    b"1",
    b"-5",
    b"10",
    b"x",
    b"hello",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"1.5",
    b"007",
    b"-0",
    b" 1",
    b"+1",
    b"abc\r\ndef",
    b"99999999999999999999",
];
/// Integer arguments (INCRBY, HINCRBY).
const INCREMENTS: [&[u8]; 8] = [
    b"1",
    b"-1",
    b"100",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"x",
    b"",
    b"0",
];

/// Redis keeps a key until the clock is past its expiry time (`now > when` in `keyIsExpired`).
/// Strata's keyspace dropped it one millisecond early, at `now == when`: this target found
/// that (its input is in `fuzz/regressions/command_sequence/`), and the keyspace is fixed.
/// True makes the model follow the old behaviour, to reproduce the finding.
const EXPIRES_AT_WHEN: bool = false;

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const OVERFLOW: &str = "ERR increment or decrement would overflow";

/// The fuzz entry point: any bytes, and a panic means the executor and the model disagree.
pub fn run(input: &[u8]) {
    // `COMMAND_SEQUENCE_TRACE=1` prints every step (to read a crash's input).
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let trace = *TRACE.get_or_init(|| std::env::var_os("COMMAND_SEQUENCE_TRACE").is_some());
    let mut program = Program { input, at: 0 };
    let mut harness = Harness::new();
    let mut model = Model::default();
    let mut commands = 0;
    while commands < COMMANDS_MAX {
        let Some(step) = program.step() else {
            break;
        };
        match step {
            Step::Advance(ms) => {
                if trace {
                    eprintln!("advance {ms} ms");
                }
                harness.advance(ms);
            }
            Step::Command(argv) => {
                let expected = model.apply(&argv, harness.now_ms());
                let actual = harness.run(&argv);
                if trace {
                    eprintln!("{} -> {actual:?}", show(&argv));
                }
                let mut expected_normal = expected.clone();
                let mut actual_normal = actual.clone();
                expected_normal.normalize();
                actual_normal.normalize();
                assert!(
                    expected_normal == actual_normal,
                    "command {commands} {}: Strata replied {actual:?}, the model {expected:?}",
                    show(&argv)
                );
                commands += 1;
            }
        }
    }
}

fn show(argv: &[Vec<u8>]) -> String {
    argv.iter()
        .map(|arg| format!("{:?}", String::from_utf8_lossy(arg)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A reply, as both sides are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    NilArray,
    Array(Vec<Value>),
    /// An array whose order is unspecified (compared sorted).
    Unordered(Vec<Value>),
    /// Field/value pairs in an unspecified order (HGETALL).
    Pairs(Vec<(Value, Value)>),
}

impl Value {
    fn ok() -> Value {
        Value::Status("OK".into())
    }

    fn error(text: &str) -> Value {
        Value::Error(text.into())
    }

    fn bulk(bytes: impl AsRef<[u8]>) -> Value {
        Value::Bulk(bytes.as_ref().to_vec())
    }

    /// Sorts what has no order, so equal contents compare equal.
    fn normalize(&mut self) {
        match self {
            Value::Unordered(items) => {
                for item in items.iter_mut() {
                    item.normalize();
                }
                items.sort_by_key(|item| format!("{item:?}"));
            }
            Value::Pairs(pairs) => pairs.sort_by_key(|pair| format!("{pair:?}")),
            Value::Array(items) => items.iter_mut().for_each(Value::normalize),
            _ => {}
        }
    }

    /// Strata's reply, shaped as the model's for `argv` (which says what is unordered).
    fn from_reply(reply: Reply, argv: &[Vec<u8>]) -> Value {
        let name = argv[0].to_ascii_uppercase();
        let value = Value::convert(reply);
        match (name.as_slice(), value) {
            (b"SMEMBERS" | b"HKEYS" | b"KEYS", Value::Array(items)) => Value::Unordered(items),
            (b"HGETALL", Value::Array(items)) => {
                let mut pairs = Vec::new();
                let mut items = items.into_iter();
                while let (Some(field), Some(value)) = (items.next(), items.next()) {
                    pairs.push((field, value));
                }
                Value::Pairs(pairs)
            }
            (_, value) => value,
        }
    }

    fn convert(reply: Reply) -> Value {
        match reply {
            Reply::Simple(text) => Value::Status(text.into()),
            Reply::Status(text) => Value::Status(text),
            Reply::Error(text) => Value::Error(text),
            Reply::Integer(number) => Value::Int(number),
            Reply::Bulk(bytes) => Value::Bulk(bytes.to_vec()),
            Reply::Null => Value::Nil,
            Reply::NullArray => Value::NilArray,
            Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
                Value::Array(items.into_iter().map(Value::convert).collect())
            }
            Reply::Map(pairs) => Value::Array(
                pairs
                    .into_iter()
                    .flat_map(|(key, value)| [Value::convert(key), Value::convert(value)])
                    .collect(),
            ),
            Reply::Bool(flag) => Value::Int(i64::from(flag)),
            Reply::Verbatim(_, bytes) => Value::Bulk(bytes.to_vec()),
            // Encoded already (LRANGE's array of bulk strings): read back into its structure.
            Reply::Raw(bytes) => match Value::decode(&bytes) {
                Some((value, used)) if used == bytes.len() => value,
                _ => Value::Bulk(bytes.to_vec()),
            },
            other => Value::Bulk(other.to_bytes(false).to_vec()),
        }
    }

    /// One RESP2 reply from the start of `bytes`, and how many bytes it took.
    fn decode(bytes: &[u8]) -> Option<(Value, usize)> {
        let end = bytes.windows(2).position(|pair| pair == b"\r\n")?;
        let line = std::str::from_utf8(bytes.get(1..end)?).ok()?;
        let after = end + 2;
        match bytes.first()? {
            b'+' => Some((Value::Status(line.into()), after)),
            b'-' => Some((Value::Error(line.into()), after)),
            b':' => Some((Value::Int(line.parse().ok()?), after)),
            b'$' => {
                let Ok(length) = usize::try_from(line.parse::<i64>().ok()?) else {
                    return Some((Value::Nil, after));
                };
                let body = bytes.get(after..after.checked_add(length)?)?;
                Some((Value::Bulk(body.to_vec()), after + length + 2))
            }
            b'*' => {
                let Ok(count) = usize::try_from(line.parse::<i64>().ok()?) else {
                    return Some((Value::NilArray, after));
                };
                let mut at = after;
                let mut items = Vec::new();
                for _ in 0..count {
                    let (item, used) = Value::decode(bytes.get(at..)?)?;
                    items.push(item);
                    at += used;
                }
                Some((Value::Array(items), at))
            }
            _ => None,
        }
    }
}

/// The input, read as commands.
struct Program<'a> {
    input: &'a [u8],
    at: usize,
}

enum Step {
    Command(Vec<Vec<u8>>),
    Advance(u64),
}

impl Program<'_> {
    fn byte(&mut self) -> Option<u8> {
        let byte = *self.input.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn pick<'t>(&mut self, table: &[&'t [u8]]) -> Option<&'t [u8]> {
        Some(table[self.byte()? as usize % table.len()])
    }

    fn key(&mut self) -> Option<Vec<u8>> {
        self.pick(&KEYS).map(<[u8]>::to_vec)
    }

    fn field(&mut self) -> Option<Vec<u8>> {
        self.pick(&FIELDS).map(<[u8]>::to_vec)
    }

    /// A value from the table, or (high bit set) up to 15 raw bytes of the input.
    fn value(&mut self) -> Option<Vec<u8>> {
        let choice = self.byte()?;
        if choice & 0x80 == 0 {
            return Some(VALUES[choice as usize % VALUES.len()].to_vec());
        }
        let len = (choice & 0x0f) as usize;
        let end = (self.at + len).min(self.input.len());
        let bytes = self.input[self.at..end].to_vec();
        self.at = end;
        Some(bytes)
    }

    /// A small signed number in `low..=high`.
    fn number(&mut self, low: i64, high: i64) -> Option<i64> {
        let span = (high - low + 1) as u64;
        Some(low + (u64::from(self.byte()?) % span) as i64)
    }

    /// 1 to `max` of something.
    fn count(&mut self, max: u8) -> Option<usize> {
        Some(1 + (self.byte()? % max) as usize)
    }

    fn step(&mut self) -> Option<Step> {
        let opcode = self.byte()?;
        let words =
            |words: &[&[u8]]| -> Vec<Vec<u8>> { words.iter().map(|word| word.to_vec()).collect() };
        let mut argv: Vec<Vec<u8>> = match opcode % 40 {
            0 => return Some(Step::Advance(self.number(0, 2_000)? as u64)),
            1 => {
                let mut argv = vec![b"SET".to_vec(), self.key()?, self.value()?];
                let options = self.byte()?;
                match options % 5 {
                    1 => argv.extend([b"EX".to_vec(), self.number(1, 3)?.to_string().into()]),
                    2 => argv.extend([b"PX".to_vec(), self.number(1, 3_000)?.to_string().into()]),
                    3 => argv.push(b"KEEPTTL".to_vec()),
                    _ => {}
                }
                match (options / 5) % 3 {
                    1 => argv.push(b"NX".to_vec()),
                    2 => argv.push(b"XX".to_vec()),
                    _ => {}
                }
                if options & 0x80 != 0 {
                    argv.push(b"GET".to_vec());
                }
                argv
            }
            2 | 3 => vec![b"GET".to_vec(), self.key()?],
            4 => vec![b"APPEND".to_vec(), self.key()?, self.value()?],
            5 => vec![b"STRLEN".to_vec(), self.key()?],
            6 => vec![b"INCR".to_vec(), self.key()?],
            7 => vec![
                b"INCRBY".to_vec(),
                self.key()?,
                self.pick(&INCREMENTS)?.to_vec(),
            ],
            8 => {
                let mut argv = words(&[b"DEL"]);
                for _ in 0..self.count(3)? {
                    argv.push(self.key()?);
                }
                argv
            }
            9 => {
                let mut argv = words(&[b"EXISTS"]);
                for _ in 0..self.count(3)? {
                    argv.push(self.key()?);
                }
                argv
            }
            10 => vec![b"TYPE".to_vec(), self.key()?],
            11 => vec![
                b"EXPIRE".to_vec(),
                self.key()?,
                self.number(-1, 3)?.to_string().into(),
            ],
            12 => vec![
                b"PEXPIRE".to_vec(),
                self.key()?,
                self.number(-5, 3_000)?.to_string().into(),
            ],
            13 => vec![b"TTL".to_vec(), self.key()?],
            14 => vec![b"PTTL".to_vec(), self.key()?],
            15 => vec![b"PERSIST".to_vec(), self.key()?],
            16 => vec![b"RENAME".to_vec(), self.key()?, self.key()?],
            17 | 18 => {
                let name: &[u8] = if opcode % 40 == 17 {
                    b"LPUSH"
                } else {
                    b"RPUSH"
                };
                let mut argv = vec![name.to_vec(), self.key()?];
                for _ in 0..self.count(8)? {
                    argv.push(self.value()?);
                }
                argv
            }
            19 | 20 => {
                let name: &[u8] = if opcode % 40 == 19 { b"LPOP" } else { b"RPOP" };
                let mut argv = vec![name.to_vec(), self.key()?];
                let count = self.byte()?;
                if count & 1 == 1 {
                    argv.push(((count >> 1) % 5).to_string().into());
                }
                argv
            }
            21 => vec![b"LLEN".to_vec(), self.key()?],
            22 => vec![
                b"LRANGE".to_vec(),
                self.key()?,
                self.number(-6, 6)?.to_string().into(),
                self.number(-6, 6)?.to_string().into(),
            ],
            23 => vec![
                b"LINDEX".to_vec(),
                self.key()?,
                self.number(-6, 6)?.to_string().into(),
            ],
            24 => {
                let mut argv = vec![b"HSET".to_vec(), self.key()?];
                for _ in 0..self.count(4)? {
                    argv.push(self.field()?);
                    argv.push(self.value()?);
                }
                argv
            }
            25 => vec![b"HGET".to_vec(), self.key()?, self.field()?],
            26 => {
                let mut argv = vec![b"HDEL".to_vec(), self.key()?];
                for _ in 0..self.count(3)? {
                    argv.push(self.field()?);
                }
                argv
            }
            27 => vec![b"HLEN".to_vec(), self.key()?],
            28 => vec![
                b"HINCRBY".to_vec(),
                self.key()?,
                self.field()?,
                self.pick(&INCREMENTS)?.to_vec(),
            ],
            29 => vec![b"HGETALL".to_vec(), self.key()?],
            30 => vec![b"HKEYS".to_vec(), self.key()?],
            31 => vec![b"HEXISTS".to_vec(), self.key()?, self.field()?],
            32 => {
                let mut argv = vec![b"SADD".to_vec(), self.key()?];
                for _ in 0..self.count(6)? {
                    argv.push(self.value()?);
                }
                argv
            }
            33 => {
                let mut argv = vec![b"SREM".to_vec(), self.key()?];
                for _ in 0..self.count(3)? {
                    argv.push(self.value()?);
                }
                argv
            }
            34 => vec![b"SCARD".to_vec(), self.key()?],
            35 => vec![b"SISMEMBER".to_vec(), self.key()?, self.value()?],
            36 => vec![b"SMEMBERS".to_vec(), self.key()?],
            37 => {
                let mut argv = words(&[b"MSET"]);
                for _ in 0..self.count(2)? {
                    argv.push(self.key()?);
                    argv.push(self.value()?);
                }
                argv
            }
            38 => {
                let mut argv = words(&[b"MGET"]);
                for _ in 0..self.count(3)? {
                    argv.push(self.key()?);
                }
                argv
            }
            _ => words(&[b"KEYS", b"*"]),
        };
        // Command names are case-insensitive: the executor must see them so.
        if opcode & 0x80 != 0 {
            argv[0].make_ascii_lowercase();
        }
        Some(Step::Command(argv))
    }
}

/// The real server and one client session on it.
struct Harness {
    server: Arc<strata::server::Server>,
    session: strata::server::Session,
    clock: Arc<Clock>,
}

struct Clock(AtomicU64);

impl strata::io::Clock for Clock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Harness {
    fn new() -> Harness {
        let clock = Arc::new(Clock(AtomicU64::new(START_MS)));
        let server = strata::server::Server::into_arc(strata::server::Server::new(
            strata::config::Config::default(),
            clock.clone(),
            Arc::new(strata::io::StdFileSystem),
            7,
        ));
        let (handle, _outbox) =
            server
                .clients
                .register("fuzz:1".into(), "fuzz:0".into(), -1, START_MS);
        let session = strata::server::Session::new(handle, true);
        Harness {
            server,
            session,
            clock,
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.0.load(Ordering::Relaxed)
    }

    fn advance(&self, ms: u64) {
        self.clock.0.fetch_add(ms, Ordering::Relaxed);
    }

    fn run(&mut self, argv: &[Vec<u8>]) -> Value {
        let args = argv.iter().map(|arg| arg.clone().into()).collect();
        let (reply, _action) = strata::command::dispatch(&self.server, &mut self.session, args);
        Value::from_reply(reply, argv)
    }
}

type Hash = BTreeMap<Vec<u8>, Vec<u8>>;

/// A value in the model.
#[derive(Debug, Clone)]
enum Data {
    String(Vec<u8>),
    List(VecDeque<Vec<u8>>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
}

#[derive(Debug, Clone)]
struct Entry {
    data: Data,
    /// Unix ms; the key is gone once the clock is past it (Redis: `now > when`; but see
    /// [`EXPIRES_AT_WHEN`]).
    expire_ms: Option<u64>,
}

/// Redis 7.0's keyspace for the commands above, one database.
#[derive(Default)]
struct Model {
    keys: HashMap<Vec<u8>, Entry>,
}

/// Redis's `string2ll`: the strict form of a 64-bit integer (no sign but a leading `-`, no
/// leading zeros, no spaces).
fn parse_integer(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    if bytes == b"0" {
        return Some(0);
    }
    let (negative, digits) = match bytes.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, bytes),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let parsed: i64 = text.parse().ok()?;
    debug_assert_eq!(parsed < 0, negative);
    Some(parsed)
}

fn integer_arg(bytes: &[u8]) -> Result<i64, Value> {
    parse_integer(bytes).ok_or_else(|| Value::error(NOT_INTEGER))
}

impl Model {
    /// Runs one command at `now_ms` and returns Redis's reply.
    fn apply(&mut self, argv: &[Vec<u8>], now_ms: u64) -> Value {
        // Expired keys are gone for every command here (none reports them).
        self.keys.retain(|_, entry| {
            entry.expire_ms.is_none_or(|when| {
                if EXPIRES_AT_WHEN {
                    now_ms < when
                } else {
                    now_ms <= when
                }
            })
        });
        let name = argv[0].to_ascii_uppercase();
        let args = &argv[1..];
        let result = match name.as_slice() {
            b"SET" => self.set(args, now_ms),
            b"GET" => self.string(&args[0]).map(|value| match value {
                Some(bytes) => Value::bulk(&bytes),
                None => Value::Nil,
            }),
            b"APPEND" => self.append(&args[0], &args[1]),
            b"STRLEN" => self
                .string(&args[0])
                .map(|value| Value::Int(value.map_or(0, |bytes| bytes.len() as i64))),
            b"INCR" => self.incr_by(&args[0], 1),
            b"INCRBY" => integer_arg(&args[1]).and_then(|by| self.incr_by(&args[0], by)),
            b"DEL" => {
                let mut deleted = 0;
                for key in args {
                    deleted += i64::from(self.keys.remove(key).is_some());
                }
                Ok(Value::Int(deleted))
            }
            b"EXISTS" => Ok(Value::Int(
                args.iter()
                    .filter(|key| self.keys.contains_key(*key))
                    .count() as i64,
            )),
            b"TYPE" => Ok(Value::Status(
                match self.keys.get(&args[0]).map(|entry| &entry.data) {
                    None => "none",
                    Some(Data::String(_)) => "string",
                    Some(Data::List(_)) => "list",
                    Some(Data::Hash(_)) => "hash",
                    Some(Data::Set(_)) => "set",
                }
                .into(),
            )),
            b"EXPIRE" | b"PEXPIRE" => integer_arg(&args[1]).map(|amount| {
                let unit = if name.as_slice() == b"EXPIRE" {
                    1000
                } else {
                    1
                };
                let when = now_ms as i64 + amount * unit;
                match self.keys.get_mut(&args[0]) {
                    None => Value::Int(0),
                    Some(_) if when <= now_ms as i64 => {
                        self.keys.remove(&args[0]);
                        Value::Int(1)
                    }
                    Some(entry) => {
                        entry.expire_ms = Some(when as u64);
                        Value::Int(1)
                    }
                }
            }),
            b"TTL" | b"PTTL" => Ok(Value::Int(match self.keys.get(&args[0]) {
                None => -2,
                Some(Entry {
                    expire_ms: None, ..
                }) => -1,
                Some(Entry {
                    expire_ms: Some(when),
                    ..
                }) => {
                    let left_ms = when.saturating_sub(now_ms) as i64;
                    if name.as_slice() == b"TTL" {
                        (left_ms + 500) / 1000
                    } else {
                        left_ms
                    }
                }
            })),
            b"PERSIST" => Ok(Value::Int(match self.keys.get_mut(&args[0]) {
                Some(entry) if entry.expire_ms.is_some() => {
                    entry.expire_ms = None;
                    1
                }
                _ => 0,
            })),
            b"RENAME" => match self.keys.remove(&args[0]) {
                None => Err(Value::error("ERR no such key")),
                Some(entry) => {
                    self.keys.insert(args[1].clone(), entry);
                    Ok(Value::ok())
                }
            },
            b"LPUSH" | b"RPUSH" => self.list_mut(&args[0], true).map(|list| {
                let list = list.expect("created");
                for value in &args[1..] {
                    if name.as_slice() == b"LPUSH" {
                        list.push_front(value.clone());
                    } else {
                        list.push_back(value.clone());
                    }
                }
                Value::Int(list.len() as i64)
            }),
            b"LPOP" | b"RPOP" => self.pop(&args[0], args.get(1), name.as_slice() == b"LPOP"),
            b"LLEN" => self
                .list(&args[0])
                .map(|list| Value::Int(list.map_or(0, |list| list.len() as i64))),
            b"LRANGE" => self.lrange(args),
            b"LINDEX" => self.lindex(args),
            b"HSET" => self.hash_mut(&args[0], true).map(|hash| {
                let hash = hash.expect("created");
                let mut added = 0;
                for pair in args[1..].chunks(2) {
                    added += i64::from(hash.insert(pair[0].clone(), pair[1].clone()).is_none());
                }
                Value::Int(added)
            }),
            b"HGET" => self.hash(&args[0]).map(|hash| {
                match hash.as_ref().and_then(|hash| hash.get(&args[1])) {
                    Some(value) => Value::bulk(value),
                    None => Value::Nil,
                }
            }),
            b"HDEL" => self.hash_mut(&args[0], false).map(|hash| {
                let Some(hash) = hash else {
                    return Value::Int(0);
                };
                let removed = args[1..]
                    .iter()
                    .filter(|field| hash.remove(*field).is_some())
                    .count();
                Value::Int(removed as i64)
            }),
            b"HLEN" => self
                .hash(&args[0])
                .map(|hash| Value::Int(hash.map_or(0, |hash| hash.len() as i64))),
            b"HEXISTS" => self.hash(&args[0]).map(|hash| {
                Value::Int(i64::from(
                    hash.is_some_and(|hash| hash.contains_key(&args[1])),
                ))
            }),
            b"HINCRBY" => self.hincr_by(args),
            b"HGETALL" => self.hash(&args[0]).map(|hash| {
                Value::Pairs(
                    hash.into_iter()
                        .flatten()
                        .map(|(field, value)| (Value::bulk(field), Value::bulk(value)))
                        .collect(),
                )
            }),
            b"HKEYS" => self.hash(&args[0]).map(|hash| {
                Value::Unordered(
                    hash.into_iter()
                        .flatten()
                        .map(|(field, _)| Value::bulk(field))
                        .collect(),
                )
            }),
            b"SADD" => self.set_mut(&args[0], true).map(|set| {
                let set = set.expect("created");
                let added = args[1..]
                    .iter()
                    .filter(|member| set.insert(member.to_vec()))
                    .count();
                Value::Int(added as i64)
            }),
            b"SREM" => self.set_mut(&args[0], false).map(|set| {
                let Some(set) = set else {
                    return Value::Int(0);
                };
                let removed = args[1..]
                    .iter()
                    .filter(|member| set.remove(*member))
                    .count();
                Value::Int(removed as i64)
            }),
            b"SCARD" => self
                .members(&args[0])
                .map(|set| Value::Int(set.map_or(0, |set| set.len() as i64))),
            b"SISMEMBER" => self
                .members(&args[0])
                .map(|set| Value::Int(i64::from(set.is_some_and(|set| set.contains(&args[1]))))),
            b"SMEMBERS" => self
                .members(&args[0])
                .map(|set| Value::Unordered(set.into_iter().flatten().map(Value::bulk).collect())),
            b"MSET" => {
                for pair in args.chunks(2) {
                    self.keys.insert(
                        pair[0].clone(),
                        Entry {
                            data: Data::String(pair[1].clone()),
                            expire_ms: None,
                        },
                    );
                }
                Ok(Value::ok())
            }
            b"MGET" => Ok(Value::Array(
                args.iter()
                    .map(|key| match self.keys.get(key).map(|entry| &entry.data) {
                        Some(Data::String(bytes)) => Value::bulk(bytes),
                        _ => Value::Nil,
                    })
                    .collect(),
            )),
            b"KEYS" => Ok(Value::Unordered(
                self.keys.keys().map(Value::bulk).collect(),
            )),
            other => panic!("the model has no {}", String::from_utf8_lossy(other)),
        };
        // A collection emptied by the command is deleted with its last element.
        self.keys.retain(|_, entry| match &entry.data {
            Data::String(_) => true,
            Data::List(list) => !list.is_empty(),
            Data::Hash(hash) => !hash.is_empty(),
            Data::Set(set) => !set.is_empty(),
        });
        result.unwrap_or_else(|error| error)
    }

    fn set(&mut self, args: &[Vec<u8>], now_ms: u64) -> Result<Value, Value> {
        let options: Vec<Vec<u8>> = args[2..].iter().map(|o| o.to_ascii_uppercase()).collect();
        let has = |word: &[u8]| options.iter().any(|option| option == word);
        let get = has(b"GET");
        let mut reply = if get {
            match self.string(&args[0])? {
                Some(old) => Value::bulk(&old),
                None => Value::Nil,
            }
        } else {
            Value::ok()
        };
        let found = self.keys.contains_key(&args[0]);
        if (has(b"NX") && found) || (has(b"XX") && !found) {
            if !get {
                reply = Value::Nil;
            }
            return Ok(reply);
        }
        let mut expire_ms = None;
        let mut index = 0;
        while index < options.len() {
            match options[index].as_slice() {
                b"EX" | b"PX" => {
                    let amount = integer_arg(&args[2 + index + 1])?;
                    let unit = if options[index] == b"EX" { 1000 } else { 1 };
                    expire_ms = Some(now_ms + (amount * unit) as u64);
                    index += 1;
                }
                b"KEEPTTL" => expire_ms = self.keys.get(&args[0]).and_then(|e| e.expire_ms),
                _ => {}
            }
            index += 1;
        }
        self.keys.insert(
            args[0].clone(),
            Entry {
                data: Data::String(args[1].clone()),
                expire_ms,
            },
        );
        Ok(reply)
    }

    /// The string at `key`; WRONGTYPE for another type.
    fn string(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Value> {
        match self.keys.get(key).map(|entry| &entry.data) {
            None => Ok(None),
            Some(Data::String(bytes)) => Ok(Some(bytes.clone())),
            Some(_) => Err(Value::error(WRONGTYPE)),
        }
    }

    fn append(&mut self, key: &[u8], suffix: &[u8]) -> Result<Value, Value> {
        let mut value = self.string(key)?.unwrap_or_default();
        value.extend_from_slice(suffix);
        let len = value.len() as i64;
        let expire_ms = self.keys.get(key).and_then(|entry| entry.expire_ms);
        self.keys.insert(
            key.to_vec(),
            Entry {
                data: Data::String(value),
                expire_ms,
            },
        );
        Ok(Value::Int(len))
    }

    fn incr_by(&mut self, key: &[u8], by: i64) -> Result<Value, Value> {
        let current = match self.string(key)? {
            None => 0,
            Some(bytes) => integer_arg(&bytes)?,
        };
        let next = current
            .checked_add(by)
            .ok_or_else(|| Value::error(OVERFLOW))?;
        let expire_ms = self.keys.get(key).and_then(|entry| entry.expire_ms);
        self.keys.insert(
            key.to_vec(),
            Entry {
                data: Data::String(next.to_string().into_bytes()),
                expire_ms,
            },
        );
        Ok(Value::Int(next))
    }

    /// The entry at `key` when it holds the type `pick` accepts; `create` makes an empty one.
    fn typed_mut<T>(
        &mut self,
        key: &[u8],
        create: Option<fn() -> Data>,
        pick: fn(&mut Data) -> Option<&mut T>,
    ) -> Result<Option<&mut T>, Value> {
        if !self.keys.contains_key(key) {
            let Some(create) = create else {
                return Ok(None);
            };
            self.keys.insert(
                key.to_vec(),
                Entry {
                    data: create(),
                    expire_ms: None,
                },
            );
        }
        let entry = self.keys.get_mut(key).expect("present");
        pick(&mut entry.data)
            .map(Some)
            .ok_or_else(|| Value::error(WRONGTYPE))
    }

    fn list_mut(
        &mut self,
        key: &[u8],
        create: bool,
    ) -> Result<Option<&mut VecDeque<Vec<u8>>>, Value> {
        let create: Option<fn() -> Data> = create.then_some(|| Data::List(VecDeque::new()));
        self.typed_mut(key, create, |data| match data {
            Data::List(list) => Some(list),
            _ => None,
        })
    }

    fn hash_mut(&mut self, key: &[u8], create: bool) -> Result<Option<&mut Hash>, Value> {
        let create: Option<fn() -> Data> = create.then_some(|| Data::Hash(BTreeMap::new()));
        self.typed_mut(key, create, |data| match data {
            Data::Hash(hash) => Some(hash),
            _ => None,
        })
    }

    fn set_mut(
        &mut self,
        key: &[u8],
        create: bool,
    ) -> Result<Option<&mut BTreeSet<Vec<u8>>>, Value> {
        let create: Option<fn() -> Data> = create.then_some(|| Data::Set(BTreeSet::new()));
        self.typed_mut(key, create, |data| match data {
            Data::Set(set) => Some(set),
            _ => None,
        })
    }

    fn list(&mut self, key: &[u8]) -> Result<Option<VecDeque<Vec<u8>>>, Value> {
        self.list_mut(key, false).map(|list| list.cloned())
    }

    fn hash(&mut self, key: &[u8]) -> Result<Option<Hash>, Value> {
        self.hash_mut(key, false).map(|hash| hash.cloned())
    }

    fn members(&mut self, key: &[u8]) -> Result<Option<BTreeSet<Vec<u8>>>, Value> {
        self.set_mut(key, false).map(|set| set.cloned())
    }

    fn pop(&mut self, key: &[u8], count: Option<&Vec<u8>>, left: bool) -> Result<Value, Value> {
        let count = match count {
            None => None,
            Some(bytes) => {
                let count = integer_arg(bytes)?;
                if count < 0 {
                    return Err(Value::error("ERR value is out of range, must be positive"));
                }
                Some(count as usize)
            }
        };
        let Some(list) = self.list_mut(key, false)? else {
            return Ok(if count.is_some() {
                Value::NilArray
            } else {
                Value::Nil
            });
        };
        let take = count.unwrap_or(1).min(list.len());
        let mut popped = Vec::with_capacity(take);
        for _ in 0..take {
            let item = if left {
                list.pop_front()
            } else {
                list.pop_back()
            };
            popped.push(Value::Bulk(item.expect("counted")));
        }
        Ok(match count {
            None => popped.pop().expect("a list is never empty"),
            Some(_) => Value::Array(popped),
        })
    }

    fn lrange(&mut self, args: &[Vec<u8>]) -> Result<Value, Value> {
        let start = integer_arg(&args[1])?;
        let stop = integer_arg(&args[2])?;
        let Some(list) = self.list(&args[0])? else {
            return Ok(Value::Array(Vec::new()));
        };
        let len = list.len() as i64;
        let start = if start < 0 {
            (len + start).max(0)
        } else {
            start
        };
        let stop = if stop < 0 {
            len + stop
        } else {
            stop.min(len - 1)
        };
        if start > stop || start >= len {
            return Ok(Value::Array(Vec::new()));
        }
        Ok(Value::Array(
            (start..=stop)
                .map(|index| Value::bulk(&list[index as usize]))
                .collect(),
        ))
    }

    fn lindex(&mut self, args: &[Vec<u8>]) -> Result<Value, Value> {
        let index = integer_arg(&args[1])?;
        let Some(list) = self.list(&args[0])? else {
            return Ok(Value::Nil);
        };
        let index = if index < 0 {
            list.len() as i64 + index
        } else {
            index
        };
        Ok(usize::try_from(index)
            .ok()
            .and_then(|index| list.get(index))
            .map_or(Value::Nil, Value::bulk))
    }

    fn hincr_by(&mut self, args: &[Vec<u8>]) -> Result<Value, Value> {
        let by = integer_arg(&args[2])?;
        let hash = self.hash_mut(&args[0], true)?.expect("created");
        let current = match hash.get(&args[1]) {
            None => 0,
            Some(bytes) => parse_integer(bytes)
                .ok_or_else(|| Value::error("ERR hash value is not an integer"))?,
        };
        let next = current
            .checked_add(by)
            .ok_or_else(|| Value::error(OVERFLOW))?;
        hash.insert(args[1].clone(), next.to_string().into_bytes());
        Ok(Value::Int(next))
    }
}
