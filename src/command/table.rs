//! The command table: every command Strata serves, declared once.
//!
//! Redis's metadata (arity with its sign convention, flags, key positions, ACL categories,
//! docs) comes from `redis_commands.json`, generated from a real Redis 7.0.15 by
//! `tools/gen_commands.py`, the way Redis generates `commands.def` from its JSON files. Each
//! family file adds only what is Strata's: the handler and how its keys are locked. Lookup,
//! the arity check, key extraction for locking, COMMAND INFO/DOCS/GETKEYS all read this table.
//! A command exists here exactly when it has a handler.

use super::exec::Handler;
use crate::protocol::Reply;
use bytes::Bytes;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::OnceLock;

/// How the executor locks a command's keys before running it.
#[derive(Clone, Copy)]
pub enum Lock {
    /// No keys (PING, CONFIG).
    None,
    /// The keys at Redis's first/last/step positions.
    Keys,
    /// Every shard (whole-keyspace commands: DBSIZE, FLUSHALL, KEYS, SCAN, SWAPDB).
    All,
    /// Every shard, because the command may touch keys its arguments do not name (SORT's BY
    /// and GET patterns); the function still reports the named keys for COMMAND GETKEYS.
    AllNaming(fn(&[Bytes]) -> Vec<usize>),
    /// Key positions computed from the arguments (movable keys).
    Custom(fn(&[Bytes]) -> Vec<usize>),
}

/// What a family file declares for one command or subcommand.
pub struct Spec {
    /// Lower-case, `parent|sub` for subcommands.
    pub name: &'static str,
    pub handler: Handler,
    pub lock: Lock,
}

impl Spec {
    pub const fn new(name: &'static str, handler: Handler, lock: Lock) -> Spec {
        Spec {
            name,
            handler,
            lock,
        }
    }
}

/// Command flags, as Redis names them in COMMAND INFO.
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const NO_MULTI: u32 = 1 << 14;
    pub const MOVABLEKEYS: u32 = 1 << 15;
    pub const ALLOW_BUSY: u32 = 1 << 16;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 17;

    pub(super) fn from_name(name: &str) -> u32 {
        match name {
            "write" => WRITE,
            "readonly" => READONLY,
            "denyoom" => DENYOOM,
            "admin" => ADMIN,
            "pubsub" => PUBSUB,
            "noscript" => NOSCRIPT,
            "blocking" => BLOCKING,
            "loading" => LOADING,
            "stale" => STALE,
            "skip_monitor" => SKIP_MONITOR,
            "skip_slowlog" => SKIP_SLOWLOG,
            "fast" => FAST,
            "no_auth" => NO_AUTH,
            "may_replicate" => MAY_REPLICATE,
            "no_multi" => NO_MULTI,
            "movablekeys" => MOVABLEKEYS,
            "allow_busy" => ALLOW_BUSY,
            "no_mandatory_keys" => NO_MANDATORY_KEYS,
            _ => 0,
        }
    }
}

/// Key-spec flags, as Redis names them in a key spec (`COMMAND INFO`'s eighth field): what a
/// command does with a key's value.
pub mod key_flags {
    /// Reads the value without changing it.
    pub const RO: u32 = 1 << 0;
    /// Reads and changes the value.
    pub const RW: u32 = 1 << 1;
    /// Overwrites the value: the old one is not read.
    pub const OW: u32 = 1 << 2;
    /// Deletes the key.
    pub const RM: u32 = 1 << 3;
    /// The value (or data derived from it) is returned or otherwise read.
    pub const ACCESS: u32 = 1 << 4;
    pub const UPDATE: u32 = 1 << 5;
    pub const INSERT: u32 = 1 << 6;
    pub const DELETE: u32 = 1 << 7;
    pub const NOT_KEY: u32 = 1 << 8;
    pub const INCOMPLETE: u32 = 1 << 9;
    /// The flags depend on the arguments (SET's GET, BITFIELD's GET).
    pub const VARIABLE_FLAGS: u32 = 1 << 10;

    pub(super) fn from_name(name: &str) -> u32 {
        match name {
            "RO" => RO,
            "RW" => RW,
            "OW" => OW,
            "RM" => RM,
            "access" => ACCESS,
            "update" => UPDATE,
            "insert" => INSERT,
            "delete" => DELETE,
            "not_key" => NOT_KEY,
            "incomplete" => INCOMPLETE,
            "variable_flags" => VARIABLE_FLAGS,
            _ => 0,
        }
    }
}

/// Where a key spec's search for keys begins (Redis's `begin_search`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum BeginSearch {
    Index(i32),
    /// After the first argument equal to `keyword` (case-insensitively), searching from
    /// `start_from` forwards, or backwards from the end when negative.
    Keyword {
        keyword: String,
        start_from: i32,
    },
    Unknown,
}

/// How a key spec finds its keys from where the search began (Redis's `find_keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum FindKeys {
    Range {
        last_key: i32,
        key_step: i32,
        limit: i32,
    },
    Keynum {
        keynum_index: i32,
        first_key: i32,
        key_step: i32,
    },
    Unknown,
}

/// One of a command's key specs (Redis 7): which arguments are keys and what is done to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// `key_flags` bits.
    pub flags: u32,
    begin_search: BeginSearch,
    find_keys: FindKeys,
}

/// Most commands have a key spec or two.
pub type Positions = smallvec::SmallVec<[usize; 4]>;

impl KeySpec {
    /// Whether the command never reads this key's old value: it overwrites or deletes it
    /// (`OW` or `RM` without `ACCESS`). Existence and TTL are metadata, always in RAM.
    fn value_unread(&self, flags: u32) -> bool {
        flags & (key_flags::OW | key_flags::RM) != 0 && flags & key_flags::ACCESS == 0
    }

    /// The argument positions of this spec's keys in `args` (Redis's
    /// `getKeysUsingKeySpecs`); none when the spec is unknown or does not match.
    fn positions(&self, args: &[Bytes], out: &mut Positions) {
        let argc = args.len() as i64;
        let first = match &self.begin_search {
            BeginSearch::Index(index) => i64::from(*index),
            BeginSearch::Keyword {
                keyword,
                start_from,
            } => {
                let start = i64::from(*start_from);
                let is_keyword =
                    |i: &i64| args[*i as usize].eq_ignore_ascii_case(keyword.as_bytes());
                let found = match start.cmp(&0) {
                    std::cmp::Ordering::Greater => (start..argc - 1).find(is_keyword),
                    std::cmp::Ordering::Less => (1..=argc + start).rev().find(is_keyword),
                    std::cmp::Ordering::Equal => None,
                };
                match found {
                    Some(at) => at + 1,
                    None => return,
                }
            }
            BeginSearch::Unknown => return,
        };
        let (first, last, step) = match self.find_keys {
            FindKeys::Range {
                last_key,
                key_step,
                limit,
            } => {
                let last = if last_key >= 0 {
                    first + i64::from(last_key)
                } else if limit == 0 {
                    argc + i64::from(last_key)
                } else {
                    first + (argc - first) / i64::from(limit) + i64::from(last_key)
                };
                (first, last, i64::from(key_step))
            }
            FindKeys::Keynum {
                keynum_index,
                first_key,
                key_step,
            } => {
                let Some(count) = usize::try_from(first + i64::from(keynum_index))
                    .ok()
                    .and_then(|at| args.get(at))
                    .and_then(|word| std::str::from_utf8(word).ok()?.parse::<i64>().ok())
                else {
                    return;
                };
                let first = first + i64::from(first_key);
                (
                    first,
                    first + (count - 1) * i64::from(key_step),
                    i64::from(key_step),
                )
            }
            FindKeys::Unknown => return,
        };
        if first < 1 || step < 1 {
            return;
        }
        // Bounded by the arguments: a spec naming positions past them names no more keys.
        let mut at = first;
        while at <= last && at < argc {
            out.push(at as usize);
            at += step;
        }
    }

    /// Parses one spec from the generator's typed JSON map.
    fn from_json(spec: &Json) -> Option<KeySpec> {
        let field = |map: &Json, name: &str| -> Option<Json> {
            map.get("v")?
                .as_array()?
                .iter()
                .find(|pair| pair.pointer("/0/v").and_then(Json::as_str) == Some(name))
                .and_then(|pair| pair.get(1).cloned())
        };
        let int = |map: &Json, name: &str| -> i32 {
            field(map, name)
                .and_then(|value| value.get("v")?.as_i64())
                .unwrap_or(0) as i32
        };
        let text = |map: &Json, name: &str| -> String {
            field(map, name)
                .and_then(|value| Some(value.get("v")?.as_str()?.to_string()))
                .unwrap_or_default()
        };
        let flags = field(spec, "flags")?
            .get("v")?
            .as_array()?
            .iter()
            .filter_map(|flag| flag.get("v")?.as_str())
            .map(key_flags::from_name)
            .fold(0, |a, b| a | b);
        let begin = field(spec, "begin_search")?;
        let begin_spec = field(&begin, "spec").unwrap_or(Json::Null);
        let begin_search = match text(&begin, "type").as_str() {
            "index" => BeginSearch::Index(int(&begin_spec, "index")),
            "keyword" => BeginSearch::Keyword {
                keyword: text(&begin_spec, "keyword"),
                start_from: int(&begin_spec, "startfrom"),
            },
            _ => BeginSearch::Unknown,
        };
        let find = field(spec, "find_keys")?;
        let find_spec = field(&find, "spec").unwrap_or(Json::Null);
        let find_keys = match text(&find, "type").as_str() {
            "range" => FindKeys::Range {
                last_key: int(&find_spec, "lastkey"),
                key_step: int(&find_spec, "keystep"),
                limit: int(&find_spec, "limit"),
            },
            "keynum" => FindKeys::Keynum {
                keynum_index: int(&find_spec, "keynumidx"),
                first_key: int(&find_spec, "firstkey"),
                key_step: int(&find_spec, "keystep"),
            },
            _ => FindKeys::Unknown,
        };
        Some(KeySpec {
            flags,
            begin_search,
            find_keys,
        })
    }
}

/// The flags of a `VARIABLE_FLAGS` spec for these arguments (Redis's `setGetKeys`): SET
/// reads the old value only with GET. Unknown cases keep the declared flags, which read.
fn variable_key_flags(command: &str, declared: u32, args: &[Bytes]) -> u32 {
    match command {
        "set"
            if !args
                .iter()
                .skip(3)
                .any(|word| word.eq_ignore_ascii_case(b"get")) =>
        {
            key_flags::OW | key_flags::UPDATE
        }
        _ => declared,
    }
}

/// One command or subcommand in the table.
pub struct Command {
    /// Index into per-command statistics.
    pub id: usize,
    /// `get`, or `config|get` for a subcommand.
    pub fullname: String,
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub key_step: i32,
    pub acl_categories: Vec<String>,
    pub lock: Lock,
    /// None for a container (CONFIG, CLIENT) whose subcommands carry the handlers.
    pub handler: Option<Handler>,
    pub subcommands: HashMap<String, Command>,
    /// Redis's key specs: what the command does with each of its keys.
    pub key_specs: Vec<KeySpec>,
    /// Redis's COMMAND INFO and COMMAND DOCS entries as JSON text, parsed when asked for: as
    /// `serde_json` trees they were most of an idle server's 17 MB.
    info: Box<str>,
    docs: Box<str>,
}

impl Command {
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn is_write(&self) -> bool {
        self.has(flags::WRITE)
    }

    /// Argument positions of the keys, as COMMAND GETKEYS reports and the executor locks.
    pub fn key_positions(&self, args: &[Bytes]) -> Vec<usize> {
        match self.lock {
            Lock::Custom(find) | Lock::AllNaming(find) => find(args),
            _ => range_positions(self.first_key, self.last_key, self.key_step, args.len()),
        }
    }

    /// The positions among `key_positions(args)` whose old value the command never reads,
    /// by its key specs: it only overwrites or deletes them (MSET's keys, RENAME's and COPY's
    /// destinations, SET without GET). A key also named at another position may still be read
    /// there.
    pub fn unread_key_positions(&self, args: &[Bytes]) -> Positions {
        let mut unread = Positions::new();
        for spec in &self.key_specs {
            let flags = if spec.flags & key_flags::VARIABLE_FLAGS != 0 {
                variable_key_flags(&self.fullname, spec.flags, args)
            } else {
                spec.flags
            };
            if spec.value_unread(flags) {
                spec.positions(args, &mut unread);
            }
        }
        unread
    }

    /// The COMMAND INFO entry, listing only the subcommands Strata implements.
    pub fn info_reply(&self) -> Reply {
        let mut items = match json_to_reply(&parse_metadata(&self.info)) {
            Reply::Array(items) => items,
            _ => return Reply::NullArray,
        };
        // Redis sends an empty *set* when there are no subcommands: keep the metadata's.
        if let Some(slot) = items.get_mut(9).filter(|_| !self.subcommands.is_empty()) {
            *slot = Reply::Array(
                self.sorted_subcommands()
                    .iter()
                    .map(|sub| sub.info_reply())
                    .collect(),
            );
        }
        Reply::Array(items)
    }

    /// The COMMAND DOCS entry (a map), listing only implemented subcommands.
    pub fn docs_reply(&self) -> Reply {
        let mut pairs = match json_to_reply(&parse_metadata(&self.docs)) {
            Reply::Map(pairs) => pairs,
            _ => Vec::new(),
        };
        let subs: Vec<(Reply, Reply)> = self
            .sorted_subcommands()
            .iter()
            .map(|sub| (Reply::bulk(sub.fullname.clone()), sub.docs_reply()))
            .collect();
        pairs.retain(|(key, _)| key != &Reply::bulk("subcommands"));
        if !subs.is_empty() {
            pairs.push((Reply::bulk("subcommands"), Reply::Map(subs)));
        }
        Reply::Map(pairs)
    }

    pub fn sorted_subcommands(&self) -> Vec<&Command> {
        let mut subs: Vec<&Command> = self.subcommands.values().collect();
        subs.sort_by(|a, b| a.fullname.cmp(&b.fullname));
        subs
    }
}

/// Redis's first/last/step key positions: a negative last counts from the end.
pub fn range_positions(first: i32, last: i32, step: i32, argc: usize) -> Vec<usize> {
    range_iter(first, last, step, argc).collect()
}

/// The same positions without allocating (the executor's hot path).
pub fn range_iter(first: i32, last: i32, step: i32, argc: usize) -> KeyRange {
    let argc = argc as i64;
    let last = if last < 0 {
        argc + last as i64
    } else {
        last as i64
    };
    let last = last.min(argc - 1);
    // An invalid spec (no keys) yields an empty range: next > last.
    if first > 0 && step > 0 && last >= first as i64 {
        KeyRange {
            next: first as usize,
            last: last as usize,
            step: step as usize,
        }
    } else {
        KeyRange {
            next: 1,
            last: 0,
            step: 1,
        }
    }
}

/// Key positions `next, next + step, ...` up to `last` inclusive: a plain counter, because
/// the executor walks a command's key range several times per command and `StepBy` over a
/// `RangeInclusive` cost more than the walk.
#[derive(Clone, Copy, Debug)]
pub struct KeyRange {
    next: usize,
    last: usize,
    step: usize,
}

impl Iterator for KeyRange {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.next > self.last {
            return None;
        }
        let at = self.next;
        self.next += self.step;
        Some(at)
    }
}

/// A command's stored metadata text as JSON (it was written from a parsed tree, so it parses).
fn parse_metadata(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or(Json::Null)
}

/// Converts the generator's typed JSON into a reply tree.
fn json_to_reply(json: &Json) -> Reply {
    let kind = json.get("t").and_then(Json::as_str).unwrap_or("null");
    let value = json.get("v").unwrap_or(&Json::Null);
    let list = || value.as_array().cloned().unwrap_or_default();
    match kind {
        "simple" => Reply::Status(value.as_str().unwrap_or_default().to_string()),
        "bulk" => Reply::bulk(value.as_str().unwrap_or_default().to_string()),
        "int" => Reply::Integer(value.as_i64().unwrap_or_default()),
        "array" => Reply::Array(list().iter().map(json_to_reply).collect()),
        "set" => Reply::Set(list().iter().map(json_to_reply).collect()),
        "map" => Reply::Map(
            list()
                .iter()
                .map(|pair| {
                    let key = pair.get(0).map(json_to_reply).unwrap_or(Reply::Null);
                    let value = pair.get(1).map(json_to_reply).unwrap_or(Reply::Null);
                    (key, value)
                })
                .collect(),
        ),
        _ => Reply::Null,
    }
}

/// The whole table.
pub struct Table {
    /// By lower-case name, as bytes: a request's name is looked up without a UTF-8 check.
    commands: HashMap<Box<[u8]>, Command, ahash::RandomState>,
    /// (parent name, subcommand name) by id.
    by_id: Vec<(String, Option<String>)>,
    count: usize,
}

/// Longest command name we look up (Redis's are at most 20 bytes).
const NAME_BYTES_MAX: usize = 64;

impl Table {
    /// Top-level command by name, case-insensitively.
    pub fn get(&self, name: &[u8]) -> Option<&Command> {
        if name.len() > NAME_BYTES_MAX {
            return None;
        }
        let mut lower = [0u8; NAME_BYTES_MAX];
        for (slot, c) in lower.iter_mut().zip(name) {
            *slot = c.to_ascii_lowercase();
        }
        self.commands.get(&lower[..name.len()])
    }

    /// Commands and subcommands, for sizing per-command statistics.
    pub fn count(&self) -> usize {
        self.count
    }

    pub fn top_level(&self) -> impl Iterator<Item = &Command> {
        self.commands.values()
    }

    /// A command or subcommand by its id.
    pub fn by_id(&self, id: usize) -> Option<&Command> {
        self.by_id.get(id).and_then(|(name, sub)| {
            let command = self.commands.get(name.as_bytes())?;
            match sub {
                Some(sub) => command.subcommands.get(sub),
                None => Some(command),
            }
        })
    }

    /// Every command and subcommand.
    pub fn all(&self) -> Vec<&Command> {
        let mut out = Vec::new();
        for command in self.commands.values() {
            out.push(command);
            out.extend(command.subcommands.values());
        }
        out.sort_by_key(|command| command.id);
        out
    }

    /// Builds the table from Redis's metadata and the families' specs.
    pub fn build(specs: &[&[Spec]]) -> Table {
        let metadata: Vec<Json> = serde_json::from_str(include_str!("redis_commands.json"))
            .expect("redis_commands.json is generated and valid");
        let by_name: HashMap<&str, &Json> = metadata
            .iter()
            .filter_map(|entry| Some((entry.get("name")?.as_str()?, entry)))
            .collect();
        let mut table = Table {
            commands: HashMap::with_hasher(ahash::RandomState::with_seeds(5, 6, 7, 8)),
            by_id: Vec::new(),
            count: 0,
        };
        let mut next_id = 0;
        for spec in specs.iter().flat_map(|family| family.iter()) {
            let (parent, sub) = match spec.name.split_once('|') {
                Some((parent, sub)) => (parent, Some(sub)),
                None => (spec.name, None),
            };
            let entry = by_name
                .get(parent)
                .unwrap_or_else(|| panic!("{parent} is not a Redis 7.0 command"));
            if !table.commands.contains_key(parent.as_bytes()) {
                let info = entry.get("info").cloned().unwrap_or(Json::Null);
                let docs = entry.get("docs").cloned().unwrap_or(Json::Null);
                let mut command = command_from_info(parent, info, docs, next_id);
                table.by_id.push((parent.to_string(), None));
                next_id += 1;
                command.lock = spec.lock;
                table.commands.insert(parent.as_bytes().into(), command);
            }
            let command = table
                .commands
                .get_mut(parent.as_bytes())
                .expect("inserted above");
            match sub {
                None => {
                    command.handler = Some(spec.handler);
                    command.lock = spec.lock;
                }
                Some(sub) => {
                    let (info, docs) = subcommand_metadata(entry, spec.name);
                    let mut subcommand = command_from_info(spec.name, info, docs, next_id);
                    table
                        .by_id
                        .push((parent.to_string(), Some(sub.to_string())));
                    next_id += 1;
                    subcommand.handler = Some(spec.handler);
                    subcommand.lock = spec.lock;
                    command.subcommands.insert(sub.to_string(), subcommand);
                }
            }
        }
        table.count = next_id;
        debug_assert_eq!(table.by_id.len(), table.count);
        table
    }
}

fn subcommand_metadata(entry: &Json, fullname: &str) -> (Json, Json) {
    let info = entry
        .pointer("/info/v/9/v")
        .and_then(Json::as_array)
        .and_then(|subs| {
            subs.iter()
                .find(|sub| sub.pointer("/v/0/v").and_then(Json::as_str) == Some(fullname))
        })
        .cloned()
        .unwrap_or_else(|| panic!("{fullname} is not a Redis 7.0 subcommand"));
    let docs = entry
        .pointer("/docs/v")
        .and_then(Json::as_array)
        .and_then(|pairs| {
            pairs
                .iter()
                .find(|pair| pair.pointer("/0/v").and_then(Json::as_str) == Some("subcommands"))
        })
        .and_then(|pair| pair.pointer("/1/v"))
        .and_then(Json::as_array)
        .and_then(|subs| {
            subs.iter()
                .find(|pair| pair.pointer("/0/v").and_then(Json::as_str) == Some(fullname))
        })
        .and_then(|pair| pair.get(1))
        .cloned()
        .unwrap_or(Json::Null);
    (info, docs)
}

fn command_from_info(name: &str, info: Json, docs: Json, id: usize) -> Command {
    let field = |index: usize| {
        info.pointer(&format!("/v/{index}/v"))
            .cloned()
            .unwrap_or(Json::Null)
    };
    let int = |index: usize| field(index).as_i64().unwrap_or(0) as i32;
    let words = |index: usize| -> Vec<String> {
        field(index)
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.get("v").and_then(Json::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Command {
        id,
        fullname: name.to_string(),
        arity: int(1),
        flags: words(2)
            .iter()
            .map(|flag| flags::from_name(flag))
            .fold(0, |a, b| a | b),
        first_key: int(3),
        last_key: int(4),
        key_step: int(5),
        acl_categories: words(6),
        lock: Lock::None,
        handler: None,
        subcommands: HashMap::new(),
        key_specs: field(8)
            .as_array()
            .map(|specs| specs.iter().filter_map(KeySpec::from_json).collect())
            .unwrap_or_default(),
        info: info.to_string().into_boxed_str(),
        docs: docs.to_string().into_boxed_str(),
    }
}

/// The table of every family, built once.
pub fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table::build(super::FAMILIES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_builds_and_every_command_has_redis_metadata() {
        let table = table();
        let get = table.get(b"GeT").expect("GET is implemented");
        assert_eq!(get.arity, 2);
        assert!(get.has(flags::READONLY) && get.has(flags::FAST));
        assert_eq!((get.first_key, get.last_key, get.key_step), (1, 1, 1));
        for command in table.all() {
            assert!(
                command.handler.is_some() || !command.subcommands.is_empty(),
                "{} has neither handler nor subcommands",
                command.fullname
            );
        }
    }

    fn unread(words: &[&str]) -> Vec<usize> {
        let args: Vec<Bytes> = words.iter().map(|w| Bytes::from(w.to_string())).collect();
        let command = table().get(&args[0]).expect("a command");
        command.unread_key_positions(&args).into_vec()
    }

    #[test]
    fn key_specs_say_which_old_values_are_never_read() {
        // Overwritten or deleted only.
        assert_eq!(unread(&["set", "k", "v"]), vec![1]);
        assert_eq!(unread(&["set", "k", "v", "NX", "KEEPTTL"]), vec![1]);
        assert_eq!(unread(&["mset", "a", "1", "b", "2"]), vec![1, 3]);
        assert_eq!(unread(&["rename", "a", "b"]), vec![2]);
        assert_eq!(unread(&["copy", "a", "b", "REPLACE"]), vec![2]);
        assert_eq!(unread(&["restore", "k", "0", "x", "REPLACE"]), vec![1]);
        assert_eq!(unread(&["setex", "k", "10", "v"]), vec![1]);
        assert_eq!(unread(&["sunionstore", "d", "a", "b"]), vec![1]);
        assert_eq!(unread(&["bitop", "and", "d", "a", "b"]), vec![2]);
        assert_eq!(unread(&["del", "a", "b"]), vec![1, 2]);
        assert_eq!(
            unread(&["georadius", "g", "0", "0", "1", "km", "STORE", "d"]),
            vec![7]
        );
        assert_eq!(
            unread(&["zunionstore", "d", "2", "a", "b", "WEIGHTS", "1", "2"]),
            vec![1]
        );
        // Read: SET with GET, the sources, SMOVE's and LMOVE's destinations, GETDEL.
        assert!(unread(&["set", "k", "v", "get"]).is_empty());
        assert!(unread(&["smove", "a", "b", "m"]).is_empty());
        assert!(unread(&["lmove", "a", "b", "LEFT", "RIGHT"]).is_empty());
        assert!(unread(&["getdel", "k"]).is_empty());
        assert!(unread(&["append", "k", "v"]).is_empty());
        assert!(unread(&["georadius", "g", "0", "0", "1", "km"]).is_empty());
    }

    #[test]
    fn key_ranges() {
        assert_eq!(range_positions(1, -1, 2, 5), vec![1, 3]);
        assert_eq!(range_positions(1, 1, 1, 2), vec![1]);
        assert_eq!(range_positions(0, 0, 0, 3), Vec::<usize>::new());
        assert_eq!(range_positions(1, -1, 1, 4), vec![1, 2, 3]);
    }
}
