//! The pub/sub hub: which clients listen to which channels, patterns and shard channels, and
//! the delivery of messages to them.
//!
//! Both directions are kept, as Redis keeps them: the hub maps a channel (pattern, shard
//! channel) to its subscribers, and each connection's [`Subscriptions`] lists what it is
//! subscribed to, so unsubscribing everything (UNSUBSCRIBE without arguments, RESET, a
//! disconnect) leaves nothing behind. Invariant: a client is in the hub's list of a channel if
//! and only if the channel is in its `Subscriptions`; a channel with no subscriber is removed
//! from the hub, so channels nobody listens to cost nothing.
//!
//! Publishing encodes the message once and hands every subscriber a clone of the same bytes
//! (a reference count, no copy) through its outbox; no keyspace lock is involved. What a
//! subscriber has not read counts in its output memory, and a subscriber over its
//! `client-output-buffer-limit pubsub` is closed instead of being sent more, so a client that
//! never reads cannot make the server's memory grow without bound.

use super::clients::{ClientHandle, Outgoing, OutputClass, Session};
use super::state::Server;
use crate::keyspace::notify::{self, Event};
use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::RwLock;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The three kinds of subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    /// The confirmation pushed for a subscription of this kind.
    pub fn subscribe_word(self) -> &'static str {
        match self {
            Kind::Channel => "subscribe",
            Kind::Pattern => "psubscribe",
            Kind::Shard => "ssubscribe",
        }
    }

    /// The confirmation pushed when a subscription of this kind ends.
    pub fn unsubscribe_word(self) -> &'static str {
        match self {
            Kind::Channel => "unsubscribe",
            Kind::Pattern => "punsubscribe",
            Kind::Shard => "sunsubscribe",
        }
    }
}

/// What one client is subscribed to. Sets are ordered, so unsubscribing from everything
/// answers in a stable order (Redis's order is its dict's, which varies from run to run).
#[derive(Debug, Default)]
pub struct Subscriptions {
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shard_channels: BTreeSet<Bytes>,
}

impl Subscriptions {
    fn set(&self, kind: Kind) -> &BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        }
    }

    fn set_mut(&mut self, kind: Kind) -> &mut BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }

    /// The count a (un)subscribe confirmation carries: channels + patterns for those two
    /// kinds, shard channels alone for the shard kind (Redis's clientSubscriptionsCount and
    /// clientShardSubscriptionsCount).
    pub fn count_for(&self, kind: Kind) -> usize {
        match kind {
            Kind::Channel | Kind::Pattern => self.channels.len() + self.patterns.len(),
            Kind::Shard => self.shard_channels.len(),
        }
    }

    /// True when subscribed to nothing: the client is out of pub/sub mode.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty() && self.shard_channels.is_empty()
    }

    /// Everything of one kind, in order (for unsubscribing from all of them).
    pub fn all(&self, kind: Kind) -> Vec<Bytes> {
        self.set(kind).iter().cloned().collect()
    }
}

/// A channel's (pattern's) subscribers in subscription order; removal is a linear search,
/// delivery a walk.
type Subscribers = Vec<Arc<ClientHandle>>;

/// The server's side: channel -> subscribers, for each kind.
#[derive(Default)]
pub struct Hub {
    channels: RwLock<HashMap<Bytes, Subscribers>>,
    patterns: RwLock<HashMap<Bytes, Subscribers>>,
    shard_channels: RwLock<HashMap<Bytes, Subscribers>>,
    /// Subscriptions of every kind: while 0, a PUBLISH (or a keyspace event) touches no lock.
    subscriptions: std::sync::atomic::AtomicUsize,
}

impl Hub {
    fn map(&self, kind: Kind) -> &RwLock<HashMap<Bytes, Subscribers>> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        }
    }

    /// Channels (patterns, shard channels) with at least one subscriber (INFO, NUMPAT).
    pub fn count(&self, kind: Kind) -> usize {
        self.map(kind).read().len()
    }

    /// Subscribers of one channel, not counting patterns (PUBSUB NUMSUB / SHARDNUMSUB).
    pub fn subscribers(&self, kind: Kind, channel: &[u8]) -> usize {
        self.map(kind).read().get(channel).map_or(0, Vec::len)
    }

    /// Active channels matching `pattern` (PUBSUB CHANNELS / SHARDCHANNELS).
    pub fn matching(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.map(kind)
            .read()
            .keys()
            .filter(|channel| {
                pattern.is_none_or(|pattern| crate::util::glob_match(pattern, channel, false))
            })
            .cloned()
            .collect()
    }

    fn add(&self, kind: Kind, channel: &Bytes, client: &Arc<ClientHandle>) {
        let mut map = self.map(kind).write();
        let subscribers = map.entry(channel.clone()).or_default();
        debug_assert!(subscribers.iter().all(|known| known.id != client.id));
        subscribers.push(client.clone());
        self.subscriptions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn remove(&self, kind: Kind, channel: &[u8], id: u64) {
        let mut map = self.map(kind).write();
        let Some(subscribers) = map.get_mut(channel) else {
            debug_assert!(false, "a subscription the hub does not know");
            return;
        };
        let position = subscribers.iter().position(|client| client.id == id);
        debug_assert!(position.is_some(), "a subscriber the hub does not know");
        if let Some(position) = position {
            subscribers.swap_remove(position);
            self.subscriptions
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        // Forgotten with its last subscriber, so abandoned channels cost nothing.
        if subscribers.is_empty() {
            map.remove(channel);
        }
    }

    /// Delivers `message` on `channel` to its subscribers and to the pattern subscribers whose
    /// pattern matches; returns how many received it (PUBLISH's reply).
    pub fn publish(&self, server: &Server, channel: &[u8], message: &[u8]) -> usize {
        if self
            .subscriptions
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            return 0;
        }
        let limit = server.output_limit(OutputClass::PubSub);
        let now_ms = server.clock.now_ms();
        let mut receivers = 0;
        {
            let channels = self.channels.read();
            if let Some(subscribers) = channels.get(channel) {
                let encoded = encode(&[b"message", channel, message]);
                for client in subscribers {
                    deliver(client, &encoded, &limit, now_ms);
                }
                receivers += subscribers.len();
            }
        }
        let patterns = self.patterns.read();
        for (pattern, subscribers) in patterns.iter() {
            if !crate::util::glob_match(pattern, channel, false) {
                continue;
            }
            let encoded = encode(&[b"pmessage", pattern, channel, message]);
            for client in subscribers {
                deliver(client, &encoded, &limit, now_ms);
            }
            receivers += subscribers.len();
        }
        receivers
    }

    /// SPUBLISH: shard channels have no patterns.
    pub fn publish_shard(&self, server: &Server, channel: &[u8], message: &[u8]) -> usize {
        if self
            .subscriptions
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            return 0;
        }
        let limit = server.output_limit(OutputClass::PubSub);
        let now_ms = server.clock.now_ms();
        let shard_channels = self.shard_channels.read();
        let Some(subscribers) = shard_channels.get(channel) else {
            return 0;
        };
        let encoded = encode(&[b"smessage", channel, message]);
        for client in subscribers {
            deliver(client, &encoded, &limit, now_ms);
        }
        subscribers.len()
    }

    /// Publishes keyspace notifications as Redis's notifyKeyspaceEvent: first on
    /// `__keyspace@<db>__:<key>` (the event as message) if `K` is set, then on
    /// `__keyevent@<db>__:<event>` (the key as message) if `E` is set.
    pub fn notify(&self, server: &Server, events: &[Event]) {
        let flags = server
            .keyspace
            .notify_flags
            .load(std::sync::atomic::Ordering::Relaxed);
        for event in events {
            if flags & notify::KEYSPACE != 0 {
                let mut channel = Vec::with_capacity(event.key.len() + 20);
                channel.extend_from_slice(format!("__keyspace@{}__:", event.db).as_bytes());
                channel.extend_from_slice(&event.key);
                self.publish(server, &channel, event.name.as_bytes());
            }
            if flags & notify::KEYEVENT != 0 {
                let channel = format!("__keyevent@{}__:{}", event.db, event.name);
                self.publish(server, channel.as_bytes(), &event.key);
            }
        }
    }
}

/// Queues one message for a subscriber, then closes the subscriber if that took it over its
/// limit (Redis adds the reply, then closes the client asynchronously). A client already
/// being closed gets nothing more, so its memory stops growing at the limit plus a message.
fn deliver(
    client: &ClientHandle,
    encoded: &Bytes,
    limit: &crate::config::OutputBufferLimit,
    now_ms: u64,
) {
    if client.is_killed() {
        return;
    }
    client.queue(Outgoing::Push(encoded.clone()));
    if client.over_output_limit(limit, now_ms) {
        client.close_for_output_limit(now_ms);
    }
}

/// A RESP2 array of bulk strings (the connection turns it into a push for RESP3 clients).
fn encode(parts: &[&[u8]]) -> Bytes {
    let length: usize = parts.iter().map(|part| part.len() + 16).sum();
    let mut out = BytesMut::with_capacity(length + 8);
    out.put_u8(b'*');
    out.put_slice(itoa::Buffer::new().format(parts.len()).as_bytes());
    out.put_slice(b"\r\n");
    for part in parts {
        out.put_u8(b'$');
        out.put_slice(itoa::Buffer::new().format(part.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(part);
        out.put_slice(b"\r\n");
    }
    out.freeze()
}

/// Subscribes the session to `channel`; true if it was not subscribed already.
pub fn subscribe(server: &Server, session: &mut Session, kind: Kind, channel: &Bytes) -> bool {
    if !session.subscriptions.set_mut(kind).insert(channel.clone()) {
        return false;
    }
    server.pubsub.add(kind, channel, &session.handle);
    note_counts(session);
    true
}

/// Unsubscribes the session from `channel`; true if it was subscribed.
pub fn unsubscribe(server: &Server, session: &mut Session, kind: Kind, channel: &[u8]) -> bool {
    if !session.subscriptions.set_mut(kind).remove(channel) {
        return false;
    }
    server.pubsub.remove(kind, channel, session.id);
    note_counts(session);
    true
}

/// Drops every subscription of the session, silently (RESET, disconnect).
pub fn unsubscribe_all(server: &Server, session: &mut Session) {
    if session.subscriptions.is_empty() {
        return;
    }
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        for channel in session.subscriptions.all(kind) {
            unsubscribe(server, session, kind, &channel);
        }
    }
    debug_assert!(session.subscriptions.is_empty());
}

/// Publishes the events the session's last command raised after its reply.
pub fn publish_deferred(server: &Server, session: &mut Session) {
    if session.deferred_events.is_empty() {
        return;
    }
    let events = std::mem::take(&mut session.deferred_events);
    server.pubsub.notify(server, &events);
}

/// Mirrors the counts into what CLIENT LIST shows (`sub=`, `psub=`, `ssub=`, flag `P`).
fn note_counts(session: &Session) {
    let mut info = session.handle.info.lock();
    info.subscribed_channels = session.subscriptions.channels.len();
    info.subscribed_patterns = session.subscriptions.patterns.len();
    info.subscribed_shard_channels = session.subscriptions.shard_channels.len();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestServer;

    fn client(test: &TestServer) -> (Session, tokio::sync::mpsc::UnboundedReceiver<Outgoing>) {
        let (handle, outbox) = test.server.clients.register(
            "test:2".into(),
            "test:0".into(),
            -1,
            test.server.clock.now_ms(),
        );
        (Session::new(handle, true), outbox)
    }

    fn config_set(server: &Server, name: &str, value: &str) {
        let set = server
            .config
            .set(name, &[value], crate::config::Source::ConfigSet);
        assert_eq!(set, Ok(()));
        server.apply_config();
    }

    fn received(outbox: &mut tokio::sync::mpsc::UnboundedReceiver<Outgoing>) -> Vec<Vec<u8>> {
        let mut messages = Vec::new();
        while let Ok(message) = outbox.try_recv() {
            let mut out = BytesMut::new();
            message.write_to(false, &mut out);
            messages.push(out.to_vec());
        }
        messages
    }

    #[test]
    fn both_directions_agree_and_nothing_is_left_behind() {
        let test = TestServer::new();
        let server = &test.server;
        let (mut session, _outbox) = client(&test);
        let a = Bytes::from_static(b"a");
        assert!(subscribe(server, &mut session, Kind::Channel, &a));
        assert!(!subscribe(server, &mut session, Kind::Channel, &a));
        assert!(subscribe(
            server,
            &mut session,
            Kind::Pattern,
            &Bytes::from_static(b"a*")
        ));
        assert!(subscribe(server, &mut session, Kind::Shard, &a));
        assert_eq!(session.subscriptions.count_for(Kind::Channel), 2);
        assert_eq!(session.subscriptions.count_for(Kind::Shard), 1);
        assert_eq!(server.pubsub.subscribers(Kind::Channel, b"a"), 1);
        assert_eq!(server.pubsub.count(Kind::Pattern), 1);
        assert_eq!(session.handle.info.lock().subscribed_patterns, 1);
        unsubscribe_all(server, &mut session);
        assert!(session.subscriptions.is_empty());
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            assert_eq!(server.pubsub.count(kind), 0);
        }
        assert_eq!(session.handle.info.lock().subscribed_channels, 0);
    }

    #[test]
    fn publish_reaches_channel_and_pattern_subscribers_once_each() {
        let test = TestServer::new();
        let server = &test.server;
        let (mut first, mut first_outbox) = client(&test);
        let (mut second, mut second_outbox) = client(&test);
        subscribe(
            server,
            &mut first,
            Kind::Channel,
            &Bytes::from_static(b"news"),
        );
        subscribe(
            server,
            &mut second,
            Kind::Pattern,
            &Bytes::from_static(b"n*"),
        );
        subscribe(
            server,
            &mut second,
            Kind::Shard,
            &Bytes::from_static(b"news"),
        );
        assert_eq!(server.pubsub.publish(server, b"news", b"hi"), 2);
        assert_eq!(
            received(&mut first_outbox),
            vec![b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n".to_vec()]
        );
        assert_eq!(
            received(&mut second_outbox),
            vec![b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n".to_vec()]
        );
        assert_eq!(server.pubsub.publish_shard(server, b"news", b"x"), 1);
        assert_eq!(
            received(&mut second_outbox),
            vec![b"*3\r\n$8\r\nsmessage\r\n$4\r\nnews\r\n$1\r\nx\r\n".to_vec()]
        );
        assert_eq!(server.pubsub.publish(server, b"other", b"hi"), 0);
        unsubscribe_all(server, &mut first);
        unsubscribe_all(server, &mut second);
    }

    #[test]
    fn a_push_becomes_resp3_by_its_first_byte() {
        let message = Outgoing::Push(encode(&[b"message", b"c", b"m"]));
        let mut out = BytesMut::new();
        message.write_to(true, &mut out);
        assert_eq!(&out[..], b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
    }

    #[test]
    fn a_subscriber_over_its_hard_limit_is_closed_and_gets_nothing_more() {
        let test = TestServer::new();
        let server = &test.server;
        config_set(server, "client-output-buffer-limit", "pubsub 64kb 0 0");
        let (mut session, _outbox) = client(&test);
        subscribe(
            server,
            &mut session,
            Kind::Channel,
            &Bytes::from_static(b"c"),
        );
        let payload = vec![b'x'; 1024];
        for _ in 0..200 {
            server.pubsub.publish(server, b"c", &payload);
        }
        assert!(session.handle.is_killed());
        let queued = session
            .handle
            .outbox_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(queued < 64 * 1024 + 16 * 1024 + 2 * 1100, "queued {queued}");
        unsubscribe_all(server, &mut session);
    }

    /// The keyspace channel and message of each notification received, in order.
    fn notifications(
        outbox: &mut tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
    ) -> Vec<(String, String)> {
        received(outbox)
            .iter()
            .map(|message| {
                let text = String::from_utf8_lossy(message).into_owned();
                let parts: Vec<&str> = text.split("\r\n").collect();
                // *4 $8 pmessage $n pattern $n channel $n message
                (parts[6].to_string(), parts[8].to_string())
            })
            .collect()
    }

    fn run(test: &TestServer, session: &mut Session, line: &str) -> String {
        test.run(session, line)
    }

    #[test]
    fn lazy_expiry_raises_expired_then_a_read_miss_raises_keymiss() {
        let test = TestServer::new();
        let server = &test.server;
        config_set(server, "notify-keyspace-events", "Kgxm$");
        let (mut listener, mut outbox) = client(&test);
        subscribe(
            server,
            &mut listener,
            Kind::Pattern,
            &Bytes::from_static(b"__key*__:*"),
        );
        let mut writer = test.session();
        run(&test, &mut writer, "SET k v PX 10");
        test.advance_ms(20);
        assert_eq!(run(&test, &mut writer, "GET k"), "$-1\r\n");
        // A write that misses raises no keymiss.
        run(&test, &mut writer, "DEL nosuch");
        assert_eq!(
            notifications(&mut outbox),
            vec![
                ("__keyspace@0__:k".to_string(), "set".to_string()),
                ("__keyspace@0__:k".to_string(), "expire".to_string()),
                ("__keyspace@0__:k".to_string(), "expired".to_string()),
                ("__keyspace@0__:k".to_string(), "keymiss".to_string()),
            ]
        );
        unsubscribe_all(server, &mut listener);
    }

    #[test]
    fn new_keys_and_transactions_raise_their_events_in_order() {
        let test = TestServer::new();
        let server = &test.server;
        config_set(server, "notify-keyspace-events", "KEA");
        let (mut listener, mut outbox) = client(&test);
        subscribe(
            server,
            &mut listener,
            Kind::Pattern,
            &Bytes::from_static(b"__keyevent*"),
        );
        let mut writer = test.session();
        run(&test, &mut writer, "MULTI");
        run(&test, &mut writer, "HSET h f v");
        run(&test, &mut writer, "RPUSH l a");
        run(&test, &mut writer, "LPOP l");
        run(&test, &mut writer, "EXEC");
        assert_eq!(
            notifications(&mut outbox),
            vec![
                ("__keyevent@0__:hset".to_string(), "h".to_string()),
                ("__keyevent@0__:rpush".to_string(), "l".to_string()),
                ("__keyevent@0__:lpop".to_string(), "l".to_string()),
                ("__keyevent@0__:del".to_string(), "l".to_string()),
            ]
        );
        config_set(server, "notify-keyspace-events", "En");
        run(&test, &mut writer, "SET fresh v");
        run(&test, &mut writer, "SET fresh again");
        // Events raised after the reply reach the listener with the next command at the latest.
        run(&test, &mut writer, "PING");
        assert_eq!(
            notifications(&mut outbox),
            vec![("__keyevent@0__:new".to_string(), "fresh".to_string())]
        );
        unsubscribe_all(server, &mut listener);
    }

    #[test]
    fn keyspace_events_go_to_both_channel_kinds_in_order() {
        let test = TestServer::new();
        let server = &test.server;
        config_set(server, "notify-keyspace-events", "KE$");
        let (mut session, mut outbox) = client(&test);
        subscribe(
            server,
            &mut session,
            Kind::Pattern,
            &Bytes::from_static(b"__key*__:*"),
        );
        let event = Event {
            class: notify::STRING,
            name: "set",
            db: 0,
            key: crate::types::CompactBytes::new(b"k"),
        };
        server.pubsub.notify(server, &[event]);
        let messages = received(&mut outbox);
        assert_eq!(messages.len(), 2);
        assert!(messages[0].ends_with(b"$16\r\n__keyspace@0__:k\r\n$3\r\nset\r\n"));
        assert!(messages[1].ends_with(b"$18\r\n__keyevent@0__:set\r\n$1\r\nk\r\n"));
        unsubscribe_all(server, &mut session);
    }
}
