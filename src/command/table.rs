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
    info: Json,
    docs: Json,
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

    /// The COMMAND INFO entry, listing only the subcommands Strata implements.
    pub fn info_reply(&self) -> Reply {
        let mut items = match json_to_reply(&self.info) {
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
        let mut pairs = match json_to_reply(&self.docs) {
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
pub fn range_iter(first: i32, last: i32, step: i32, argc: usize) -> impl Iterator<Item = usize> {
    let last = if last < 0 { argc as i32 + last } else { last };
    let last = last.min(argc as i32 - 1);
    // An invalid spec (no keys) yields an empty range: first > last.
    let (first, last) = if first > 0 && step > 0 {
        (first, last)
    } else {
        (1, 0)
    };
    (first..=last)
        .step_by(step.max(1) as usize)
        .map(|i| i as usize)
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
    commands: HashMap<String, Command, ahash::RandomState>,
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
        let lower = std::str::from_utf8(&lower[..name.len()]).ok()?;
        self.commands.get(lower)
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
            let command = self.commands.get(name)?;
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
            if !table.commands.contains_key(parent) {
                let info = entry.get("info").cloned().unwrap_or(Json::Null);
                let docs = entry.get("docs").cloned().unwrap_or(Json::Null);
                let mut command = command_from_info(parent, info, docs, next_id);
                table.by_id.push((parent.to_string(), None));
                next_id += 1;
                command.lock = spec.lock;
                table.commands.insert(parent.to_string(), command);
            }
            let command = table.commands.get_mut(parent).expect("inserted above");
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
        info,
        docs,
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

    #[test]
    fn key_ranges() {
        assert_eq!(range_positions(1, -1, 2, 5), vec![1, 3]);
        assert_eq!(range_positions(1, 1, 1, 2), vec![1]);
        assert_eq!(range_positions(0, 0, 0, 3), Vec::<usize>::new());
        assert_eq!(range_positions(1, -1, 1, 4), vec![1, 2, 3]);
    }
}
