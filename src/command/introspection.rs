//! COMMAND: what the command table says about itself.
//!
//! `COMMAND`, `COMMAND COUNT`, `COMMAND INFO [name ...]`, `COMMAND DOCS [name ...]`,
//! `COMMAND LIST [FILTERBY MODULE name|ACLCAT category|PATTERN glob]`,
//! `COMMAND GETKEYS command [arg ...]`, `COMMAND GETKEYSANDFLAGS command [arg ...]`,
//! `COMMAND HELP`. Every answer is read from [`crate::command::table()`], so it lists
//! exactly the commands Strata implements, with Redis 7.0's metadata for each.

use super::exec::Ctx;
use super::server::help_reply;
use super::table::{flags, table, Command, Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::protocol::Reply;
use bytes::Bytes;

pub static COMMANDS: &[Spec] = &[
    Spec::new("command", command, Lock::None),
    Spec::new("command|count", command_count, Lock::None),
    Spec::new("command|info", command_info, Lock::None),
    Spec::new("command|docs", command_docs, Lock::None),
    Spec::new("command|list", command_list, Lock::None),
    Spec::new("command|getkeys", command_getkeys, Lock::None),
    Spec::new(
        "command|getkeysandflags",
        command_getkeysandflags,
        Lock::None,
    ),
    Spec::new("command|help", command_help, Lock::None),
];

const INVALID_COMMAND: &str = "ERR Invalid command specified";
const NO_KEY_ARGUMENTS: &str = "ERR The command has no key arguments";
const INVALID_ARGUMENT_COUNT: &str = "ERR Invalid number of arguments specified for command";
const INVALID_ARGUMENTS: &str = "ERR Invalid arguments specified for command";

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Prints this help.",
];

/// Top-level commands, sorted by name so replies are stable.
fn top_level() -> Vec<&'static Command> {
    let mut commands: Vec<&Command> = table().top_level().collect();
    commands.sort_by(|a, b| a.fullname.cmp(&b.fullname));
    commands
}

/// A command or subcommand by its full name (`get`, `config|get`), case-insensitively.
fn by_fullname(name: &[u8]) -> Option<&'static Command> {
    let text = String::from_utf8_lossy(name).to_ascii_lowercase();
    match text.split_once('|') {
        None => table().get(text.as_bytes()),
        Some((parent, sub)) => table().get(parent.as_bytes())?.subcommands.get(sub),
    }
}

/// `COMMAND`: the info of every command. COMMAND is the one container that also runs bare,
/// and the executor resolves subcommands only for containers without a handler, so
/// `COMMAND <sub> ...` arrives here and is dispatched the way the executor would (Redis's
/// unknown-subcommand and arity errors); its statistics count under `command`.
/// `COMMAND`: every command's COMMAND INFO entry. (`COMMAND <sub>` is resolved to the
/// subcommand by the executor.)
fn command(_ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(all_info())
}

fn all_info() -> Reply {
    Reply::Array(
        top_level()
            .iter()
            .map(|command| command.info_reply())
            .collect(),
    )
}

fn command_count(_ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(table().top_level().count() as i64))
}

/// `COMMAND INFO [name ...]`: a null for each unknown name.
fn command_info(_ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() == 2 {
        return Ok(all_info());
    }
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|name| match by_fullname(name) {
                Some(command) => command.info_reply(),
                None => Reply::Null,
            })
            .collect(),
    ))
}

/// `COMMAND DOCS [name ...]`: a map from name to docs; unknown names are left out.
fn command_docs(_ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let commands: Vec<&Command> = if argv.len() == 2 {
        top_level()
    } else {
        argv[2..]
            .iter()
            .filter_map(|name| by_fullname(name))
            .collect()
    };
    Ok(Reply::Map(
        commands
            .into_iter()
            .map(|command| (Reply::bulk(command.fullname.clone()), command.docs_reply()))
            .collect(),
    ))
}

/// Which commands COMMAND LIST keeps.
#[derive(Debug, PartialEq, Eq)]
pub enum ListFilter {
    All,
    /// Strata loads no modules, so this keeps nothing.
    Module,
    AclCategory(String),
    Pattern(Vec<u8>),
}

/// Parses `[FILTERBY MODULE name|ACLCAT category|PATTERN glob]`.
pub fn parse_list_filter(words: &[Bytes]) -> Result<ListFilter, Error> {
    match words {
        [] => Ok(ListFilter::All),
        [by, kind, value] if super::args::is(by, "filterby") => {
            if super::args::is(kind, "module") {
                Ok(ListFilter::Module)
            } else if super::args::is(kind, "aclcat") {
                Ok(ListFilter::AclCategory(
                    String::from_utf8_lossy(value).to_ascii_lowercase(),
                ))
            } else if super::args::is(kind, "pattern") {
                Ok(ListFilter::Pattern(value.to_vec()))
            } else {
                Err(Error::Syntax)
            }
        }
        _ => Err(Error::Syntax),
    }
}

fn keeps(filter: &ListFilter, command: &Command) -> bool {
    match filter {
        ListFilter::All => true,
        ListFilter::Module => false,
        ListFilter::AclCategory(category) => command
            .acl_categories
            .iter()
            .any(|name| name.trim_start_matches('@') == category),
        ListFilter::Pattern(pattern) => {
            crate::util::glob_match(pattern, command.fullname.as_bytes(), true)
        }
    }
}

/// `COMMAND LIST [FILTERBY ...]`: command and subcommand names.
fn command_list(_ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let filter = parse_list_filter(&argv[2..])?;
    let mut names = Vec::new();
    for command in top_level() {
        if keeps(&filter, command) {
            names.push(Reply::bulk(command.fullname.clone()));
        }
        for sub in command.sorted_subcommands() {
            if keeps(&filter, sub) {
                names.push(Reply::bulk(sub.fullname.clone()));
            }
        }
    }
    Ok(Reply::Array(names))
}

/// The command named by `words[0]` (with its subcommand when it is a container) and the key
/// positions in `words`, with Redis's `getKeysSubcommandImpl` errors.
fn keys_of(words: &[Bytes]) -> Result<(&'static Command, Vec<usize>), Error> {
    let command = table().get(&words[0]).ok_or(Error::from(INVALID_COMMAND))?;
    let command = if command.subcommands.is_empty() || words.len() < 2 {
        command
    } else {
        let sub = String::from_utf8_lossy(&words[1]).to_ascii_lowercase();
        command
            .subcommands
            .get(&sub)
            .ok_or(Error::from(INVALID_COMMAND))?
    };
    let has_keys = command.first_key != 0 || command.has(flags::MOVABLEKEYS);
    if !has_keys {
        return Err(NO_KEY_ARGUMENTS.into());
    }
    let count = words.len() as i32;
    if (command.arity > 0 && command.arity != count) || count < -command.arity {
        return Err(INVALID_ARGUMENT_COUNT.into());
    }
    let positions = command.key_positions(words);
    if positions.is_empty() && !command.has(flags::NO_MANDATORY_KEYS) {
        return Err(INVALID_ARGUMENTS.into());
    }
    Ok((command, positions))
}

/// `COMMAND GETKEYS command [arg ...]`.
fn command_getkeys(_ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let (_, positions) = keys_of(&argv[2..])?;
    Ok(Reply::Array(
        positions
            .iter()
            .map(|&index| Reply::Bulk(argv[2 + index].clone()))
            .collect(),
    ))
}

/// `COMMAND GETKEYSANDFLAGS command [arg ...]`: each key with its key spec's flags.
///
/// The flags are those of the key spec the position falls in (index + range specs), or of
/// the first spec otherwise. Redis refines `variable_flags` specs per call; Strata does so
/// for SET (the only such command implemented so far) and reports the declared flags
/// otherwise.
fn command_getkeysandflags(_ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let words = &argv[2..];
    let (command, positions) = keys_of(words)?;
    let specs = key_specs(command);
    Ok(Reply::Array(
        positions
            .iter()
            .map(|&index| {
                let spec_flags = specs
                    .iter()
                    .find(|spec| spec.covers(index, words.len()))
                    .or(specs.first())
                    .map(|spec| spec.flags.clone())
                    .unwrap_or_default();
                let spec_flags = refine_flags(command, words, spec_flags);
                Reply::Array(vec![
                    Reply::Bulk(words[index].clone()),
                    Reply::Set(spec_flags.into_iter().map(Reply::Status).collect()),
                ])
            })
            .collect(),
    ))
}

/// Redis's per-command refinement of `variable_flags` specs (`setGetKeys`): SET overwrites
/// without reading unless it has GET.
fn refine_flags(command: &Command, words: &[Bytes], flags: Vec<String>) -> Vec<String> {
    if command.fullname == "set"
        && !words[3.min(words.len())..]
            .iter()
            .any(|w| super::args::is(w, "get"))
    {
        return vec!["OW".to_string(), "update".to_string()];
    }
    flags
}

/// What GETKEYSANDFLAGS needs of one key spec.
struct KeySpec {
    flags: Vec<String>,
    /// `begin_search` index, when the spec searches by index.
    begin: Option<i64>,
    /// `find_keys` range (lastkey, keystep), when it is a range.
    range: Option<(i64, i64)>,
}

impl KeySpec {
    fn covers(&self, index: usize, argc: usize) -> bool {
        let (Some(begin), Some((last, step))) = (self.begin, self.range) else {
            return false;
        };
        let index = index as i64;
        let last = if last < 0 {
            argc as i64 + last
        } else {
            begin + last
        };
        index >= begin && index <= last && step > 0 && (index - begin) % step == 0
    }
}

/// The key specs in a command's COMMAND INFO entry (its 9th field).
fn key_specs(command: &Command) -> Vec<KeySpec> {
    let Reply::Array(items) = command.info_reply() else {
        return Vec::new();
    };
    let specs = match items.get(8) {
        Some(Reply::Set(specs) | Reply::Array(specs)) => specs.clone(),
        _ => return Vec::new(),
    };
    specs.iter().filter_map(key_spec).collect()
}

fn field<'r>(pairs: &'r [(Reply, Reply)], name: &str) -> Option<&'r Reply> {
    pairs
        .iter()
        .find(|(key, _)| matches!(key, Reply::Bulk(bytes) if bytes == name.as_bytes()))
        .map(|(_, value)| value)
}

fn key_spec(spec: &Reply) -> Option<KeySpec> {
    let Reply::Map(pairs) = spec else {
        return None;
    };
    let flags = match field(pairs, "flags") {
        Some(Reply::Set(flags) | Reply::Array(flags)) => flags
            .iter()
            .filter_map(|flag| match flag {
                Reply::Status(text) if text != "variable_flags" => Some(text.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let typed = |name: &str, kind: &str| -> Option<Vec<(Reply, Reply)>> {
        let Some(Reply::Map(search)) = field(pairs, name) else {
            return None;
        };
        if field(search, "type") != Some(&Reply::bulk(kind.to_string())) {
            return None;
        }
        match field(search, "spec") {
            Some(Reply::Map(spec)) => Some(spec.clone()),
            _ => None,
        }
    };
    let int = |pairs: &[(Reply, Reply)], name: &str| match field(pairs, name) {
        Some(Reply::Integer(value)) => Some(*value),
        _ => None,
    };
    let begin = typed("begin_search", "index").and_then(|spec| int(&spec, "index"));
    let range = typed("find_keys", "range")
        .and_then(|spec| Some((int(&spec, "lastkey")?, int(&spec, "keystep")?)));
    Some(KeySpec {
        flags,
        begin,
        range,
    })
}

fn command_help(_ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(COMMAND_HELP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::argv as words;

    #[test]
    fn list_filters() {
        assert_eq!(parse_list_filter(&[]), Ok(ListFilter::All));
        assert_eq!(
            parse_list_filter(&words(&["FILTERBY", "aclcat", "Keyspace"])),
            Ok(ListFilter::AclCategory("keyspace".into()))
        );
        assert_eq!(
            parse_list_filter(&words(&["filterby", "pattern", "c*", "x"])),
            Err(Error::Syntax)
        );
        assert_eq!(parse_list_filter(&words(&["foo"])), Err(Error::Syntax));
    }

    #[test]
    fn getkeys_errors_match_redis() {
        assert_eq!(
            keys_of(&words(&["nosuch", "a"])).err().expect("an error"),
            Error::from(INVALID_COMMAND)
        );
        assert_eq!(
            keys_of(&words(&["ping", "x"])).err().expect("an error"),
            Error::from(NO_KEY_ARGUMENTS)
        );
        assert_eq!(
            keys_of(&words(&["set", "a"])).err().expect("an error"),
            Error::from(INVALID_ARGUMENT_COUNT)
        );
        assert_eq!(keys_of(&words(&["get", "a"])).unwrap().1, vec![1]);
        let map = |pairs: Vec<(&str, Reply)>| {
            Reply::Map(
                pairs
                    .into_iter()
                    .map(|(name, value)| (Reply::bulk(name.to_string()), value))
                    .collect(),
            )
        };
        // GET's key spec as COMMAND INFO shows it.
        let spec = map(vec![
            (
                "flags",
                Reply::Set(vec![
                    Reply::Status("RO".into()),
                    Reply::Status("access".into()),
                ]),
            ),
            (
                "begin_search",
                map(vec![
                    ("type", Reply::bulk("index")),
                    ("spec", map(vec![("index", Reply::Integer(1))])),
                ]),
            ),
            (
                "find_keys",
                map(vec![
                    ("type", Reply::bulk("range")),
                    (
                        "spec",
                        map(vec![
                            ("lastkey", Reply::Integer(0)),
                            ("keystep", Reply::Integer(1)),
                            ("limit", Reply::Integer(0)),
                        ]),
                    ),
                ]),
            ),
        ]);
        let specs: Vec<KeySpec> = key_spec(&spec).into_iter().collect();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].flags, vec!["RO".to_string(), "access".to_string()]);
        assert!(!specs[0].covers(2, 3));
        assert!(specs[0].covers(1, 2));
    }
}
