//! Pub/Sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, SSUBSCRIBE,
//! SUNSUBSCRIBE, PUBLISH, SPUBLISH, PUBSUB CHANNELS / NUMSUB / NUMPAT / SHARDCHANNELS /
//! SHARDNUMSUB / HELP.
//!
//! The hub and the delivery live in `server::pubsub`; these handlers parse, (un)subscribe and
//! render. A (un)subscribe command answers with one confirmation per channel, each an array
//! in RESP2 and a push in RESP3, so its reply is built already encoded. No command here
//! touches the keyspace (`Lock::None`).

use super::exec::Ctx;
use super::server::help_reply;
use super::table::{Command, Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::protocol::Reply;
use crate::server::pubsub::{self, Kind};
use bytes::{Bytes, BytesMut};

pub static COMMANDS: &[Spec] = &[
    Spec::new("subscribe", subscribe, Lock::None),
    Spec::new("unsubscribe", unsubscribe, Lock::None),
    Spec::new("psubscribe", psubscribe, Lock::None),
    Spec::new("punsubscribe", punsubscribe, Lock::None),
    Spec::new("ssubscribe", ssubscribe, Lock::None),
    Spec::new("sunsubscribe", sunsubscribe, Lock::None),
    Spec::new("publish", publish, Lock::None),
    Spec::new("spublish", spublish, Lock::None),
    Spec::new("pubsub|channels", pubsub_channels, Lock::None),
    Spec::new("pubsub|numsub", pubsub_numsub, Lock::None),
    Spec::new("pubsub|numpat", pubsub_numpat, Lock::None),
    Spec::new("pubsub|shardchannels", pubsub_shardchannels, Lock::None),
    Spec::new("pubsub|shardnumsub", pubsub_shardnumsub, Lock::None),
    Spec::new("pubsub|help", pubsub_help, Lock::None),
];

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// The commands a RESP2 client may run while subscribed (Redis's processCommand check).
pub fn allowed_while_subscribed(command: &Command) -> bool {
    matches!(
        command.fullname.as_str(),
        "ping"
            | "subscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "quit"
            | "reset"
    )
}

/// Redis 7.0's refusal of any other command in RESP2 subscribed mode.
pub fn not_allowed_while_subscribed(command: &Command) -> Error {
    Error::err(format!(
        "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
        command.fullname
    ))
}

/// PING in RESP2 subscribed mode: `["pong", message or ""]` (Redis's pingCommand).
pub fn subscribed_ping(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    match argv {
        [_] => Ok(Reply::Array(vec![Reply::bulk("pong"), Reply::bulk("")])),
        [_, message] => Ok(Reply::Array(vec![
            Reply::bulk("pong"),
            Reply::Bulk(message.clone()),
        ])),
        _ => Err(Error::Arity(ctx.command.fullname.clone())),
    }
}

/// One (un)subscribe confirmation: `[word, channel or null, count]`.
fn confirmation(
    ctx: &Ctx<'_, '_>,
    word: &'static str,
    channel: Option<&Bytes>,
    count: usize,
    out: &mut BytesMut,
) {
    let channel = channel.map_or(Reply::Null, |channel| Reply::Bulk(channel.clone()));
    Reply::Push(vec![
        Reply::bulk(word),
        channel,
        Reply::Integer(count as i64),
    ])
    .encode(ctx.session.resp3, out);
}

/// SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE: subscribe to each argument, confirming each (even
/// one already subscribed, with the unchanged count).
fn subscribe_kind(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], kind: Kind) -> CmdResult {
    debug_assert!(argv.len() >= 2, "arity is checked before");
    let mut out = BytesMut::new();
    for channel in &argv[1..] {
        pubsub::subscribe(ctx.server, ctx.session, kind, channel);
        let count = ctx.session.subscriptions.count_for(kind);
        confirmation(ctx, kind.subscribe_word(), Some(channel), count, &mut out);
    }
    Ok(Reply::Raw(out.freeze()))
}

/// UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE: from each argument, or from everything of the
/// kind when there is none; with nothing to leave, one confirmation with a null channel.
fn unsubscribe_kind(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], kind: Kind) -> CmdResult {
    let mut out = BytesMut::new();
    let channels = if argv.len() > 1 {
        argv[1..].to_vec()
    } else {
        ctx.session.subscriptions.all(kind)
    };
    if channels.is_empty() {
        let count = ctx.session.subscriptions.count_for(kind);
        confirmation(ctx, kind.unsubscribe_word(), None, count, &mut out);
    }
    for channel in &channels {
        pubsub::unsubscribe(ctx.server, ctx.session, kind, channel);
        let count = ctx.session.subscriptions.count_for(kind);
        confirmation(ctx, kind.unsubscribe_word(), Some(channel), count, &mut out);
    }
    Ok(Reply::Raw(out.freeze()))
}

/// `SUBSCRIBE channel [channel ...]`.
fn subscribe(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    subscribe_kind(ctx, argv, Kind::Channel)
}

/// `UNSUBSCRIBE [channel [channel ...]]`.
fn unsubscribe(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    unsubscribe_kind(ctx, argv, Kind::Channel)
}

/// `PSUBSCRIBE pattern [pattern ...]`.
fn psubscribe(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    subscribe_kind(ctx, argv, Kind::Pattern)
}

/// `PUNSUBSCRIBE [pattern [pattern ...]]`.
fn punsubscribe(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    unsubscribe_kind(ctx, argv, Kind::Pattern)
}

/// `SSUBSCRIBE shardchannel [shardchannel ...]`.
fn ssubscribe(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    subscribe_kind(ctx, argv, Kind::Shard)
}

/// `SUNSUBSCRIBE [shardchannel [shardchannel ...]]`.
fn sunsubscribe(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    unsubscribe_kind(ctx, argv, Kind::Shard)
}

/// `PUBLISH channel message`: the number of clients that received it (channel and pattern
/// subscribers). Redis propagates PUBLISH to replicas only, never to the AOF; the
/// propagation log feeds both, so it is not propagated (see the lead's note in the report).
fn publish(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let receivers = ctx.server.pubsub.publish(ctx.server, &argv[1], &argv[2]);
    Ok(Reply::Integer(receivers as i64))
}

/// `SPUBLISH shardchannel message`: to the shard channel's subscribers only.
fn spublish(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let receivers = ctx
        .server
        .pubsub
        .publish_shard(ctx.server, &argv[1], &argv[2]);
    Ok(Reply::Integer(receivers as i64))
}

/// Redis's addReplySubcommandSyntaxError for PUBSUB.
fn subcommand_syntax_error(argv: &[Bytes]) -> Error {
    let name = String::from_utf8_lossy(&argv[1][..argv[1].len().min(128)]).into_owned();
    Error::err(format!(
        "unknown subcommand or wrong number of arguments for '{name}'. Try PUBSUB HELP."
    ))
}

/// CHANNELS / SHARDCHANNELS `[pattern]`: active channels, matching the pattern if given.
fn channels_of(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], kind: Kind) -> CmdResult {
    if argv.len() > 3 {
        return Err(subcommand_syntax_error(argv));
    }
    let pattern = argv.get(2).map(|pattern| &pattern[..]);
    let channels = ctx.server.pubsub.matching(kind, pattern);
    Ok(Reply::Array(
        channels.into_iter().map(Reply::Bulk).collect(),
    ))
}

/// NUMSUB / SHARDNUMSUB `[channel ...]`: channel, count, channel, count (an array in RESP3
/// too, as in Redis 7.0).
fn numsub_of(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], kind: Kind) -> CmdResult {
    let mut items = Vec::with_capacity(2 * argv.len().saturating_sub(2));
    for channel in &argv[2..] {
        items.push(Reply::Bulk(channel.clone()));
        items.push(Reply::Integer(
            ctx.server.pubsub.subscribers(kind, channel) as i64
        ));
    }
    Ok(Reply::Array(items))
}

/// `PUBSUB CHANNELS [pattern]`.
fn pubsub_channels(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    channels_of(ctx, argv, Kind::Channel)
}

/// `PUBSUB SHARDCHANNELS [pattern]`.
fn pubsub_shardchannels(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    channels_of(ctx, argv, Kind::Shard)
}

/// `PUBSUB NUMSUB [channel ...]`.
fn pubsub_numsub(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    numsub_of(ctx, argv, Kind::Channel)
}

/// `PUBSUB SHARDNUMSUB [shardchannel ...]`.
fn pubsub_shardnumsub(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    numsub_of(ctx, argv, Kind::Shard)
}

/// `PUBSUB NUMPAT`: distinct patterns with at least one subscriber.
fn pubsub_numpat(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(ctx.server.pubsub.count(Kind::Pattern) as i64))
}

/// `PUBSUB HELP`.
fn pubsub_help(_ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(PUBSUB_HELP))
}

#[cfg(test)]
mod tests {
    use crate::testing::TestServer;

    #[test]
    fn subscribe_confirms_each_channel_with_the_running_count() {
        let test = TestServer::new();
        let mut session = test.session();
        assert_eq!(
            test.run(&mut session, "SUBSCRIBE a b a"),
            "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:2\r\n"
        );
        assert_eq!(
            test.run(&mut session, "PSUBSCRIBE p*"),
            "*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:3\r\n"
        );
        assert_eq!(
            test.run(&mut session, "SSUBSCRIBE s"),
            "*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n"
        );
        assert_eq!(
            test.run(&mut session, "GET x"),
            "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
        );
        assert_eq!(
            test.run(&mut session, "UNSUBSCRIBE"),
            "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n"
        );
        assert_eq!(
            test.run(&mut session, "PUNSUBSCRIBE"),
            "*3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:0\r\n"
        );
        assert_eq!(
            test.run(&mut session, "SUNSUBSCRIBE"),
            "*3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n"
        );
        assert_eq!(
            test.run(&mut session, "UNSUBSCRIBE"),
            "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
        );
        assert_eq!(test.run(&mut session, "GET x"), "$-1\r\n");
    }

    #[test]
    fn pubsub_introspection() {
        let test = TestServer::new();
        let mut subscriber = test.session();
        let mut other = test.session();
        test.run(&mut subscriber, "SUBSCRIBE news sports");
        test.run(&mut subscriber, "PSUBSCRIBE n* n*");
        assert_eq!(
            test.run(&mut other, "PUBSUB CHANNELS n*"),
            "*1\r\n$4\r\nnews\r\n"
        );
        assert_eq!(
            test.run(&mut other, "PUBSUB NUMSUB news none"),
            "*4\r\n$4\r\nnews\r\n:1\r\n$4\r\nnone\r\n:0\r\n"
        );
        assert_eq!(test.run(&mut other, "PUBSUB NUMPAT"), ":1\r\n");
        assert_eq!(
            test.run(&mut other, "PUBSUB CHANNELS a b"),
            "-ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP.\r\n"
        );
        // The hub counts the subscriber once per channel and once for the pattern.
        assert_eq!(test.run(&mut other, "PUBLISH news x"), ":2\r\n");
        test.run(&mut subscriber, "RESET");
        assert_eq!(test.run(&mut other, "PUBSUB NUMPAT"), ":0\r\n");
        assert_eq!(test.run(&mut other, "PUBSUB CHANNELS"), "*0\r\n");
    }
}
