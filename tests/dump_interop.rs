//! DUMP/RESTORE interoperability with real Redis 7.0, in both directions.
//!
//! The same commands build keys of every type and encoding in a real redis-server and in
//! Strata. Then: Redis's DUMP restores into Strata and reads back the same; Strata's DUMP
//! restores into Redis and reads back the same; OBJECT ENCODING agrees after each restore;
//! and where the encodings carry a deterministic order (everything but hashtables) the DUMP
//! payloads are byte-identical.
//!
//! Streams too: built with explicit IDs (so both servers hold the same entries and nodes),
//! read back with XRANGE, XINFO STREAM FULL (times normalized: the servers' clocks differ),
//! XINFO GROUPS and XPENDING. Keys `x:timed:*` hold consumers and deliveries, whose times
//! differ between the servers, so their payloads are compared only after a round trip
//! (Redis's payload restored into Strata dumps back to Redis's bytes). Keys `x:deleted:*`
//! hold entries XDEL or XTRIM marked deleted, which Strata keeps as Redis does (same bytes).
//!
//! Needs redis-server: skipped loudly when it is missing, a failure when CI=true.

mod common;

use common::{Conn, Server};

/// Commands that build the data set, identical on both servers. Lists are built by RPUSH
/// only, so Redis's quicklist splits them where Strata's encoder expects.
fn setup_commands() -> Vec<Vec<Vec<u8>>> {
    let mut commands: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut add = |words: Vec<Vec<u8>>| commands.push(words);
    let text = |words: &[&str]| {
        words
            .iter()
            .map(|word| word.as_bytes().to_vec())
            .collect::<Vec<_>>()
    };
    let pseudo_random = |len: usize, seed: u64| -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect()
    };

    // Strings: every integer encoding, plain, LZF, binary, empty.
    for (key, value) in [
        ("s:small", "hello"),
        ("s:int8", "12"),
        ("s:int16", "-300"),
        ("s:int32", "100000"),
        ("s:int64", "12345678901"),
        ("s:long-int", "99999999999999999"),
        ("s:leading-zero", "0123"),
        ("s:empty", ""),
    ] {
        add(text(&["SET", key, value]));
    }
    add(vec![
        b"SET".to_vec(),
        b"s:lzf".to_vec(),
        [vec![b'a'; 60], vec![b'b'; 60]].concat(),
    ]);
    add(vec![
        b"SET".to_vec(),
        b"s:random".to_vec(),
        pseudo_random(300, 1),
    ]);
    add(vec![
        b"SET".to_vec(),
        b"s:text".to_vec(),
        b"The quick brown fox jumps over the lazy dog, the quick brown fox again".to_vec(),
    ]);

    // Lists: mixed small elements; many nodes; big elements; compressible listpacks.
    add(text(&[
        "RPUSH",
        "l:small",
        "a",
        "b",
        "1",
        "-5",
        "300",
        "70000",
        "-2147483649",
        "hello",
        "9223372036854775807",
    ]));
    let mut many = text(&["RPUSH", "l:many"]);
    for index in 0..3000u64 {
        let element = match index % 4 {
            0 => index.to_string().into_bytes(),
            1 => format!("element-{index}").into_bytes(),
            2 => pseudo_random((index % 90) as usize, index),
            _ => vec![b'z'; (index % 300) as usize],
        };
        many.push(element);
    }
    add(many);
    let mut big = text(&["RPUSH", "l:big"]);
    for index in 0..4u64 {
        big.push(pseudo_random(9000, index));
    }
    big.push(b"tail".to_vec());
    add(big);
    let mut compressible = text(&["RPUSH", "l:compressible"]);
    for _ in 0..50 {
        compressible.push(b"same-value-again".to_vec());
    }
    add(compressible);

    // Hashes: listpack; hashtable by count; hashtable by value length.
    add(text(&[
        "HSET", "h:small", "f1", "v1", "n", "12", "neg", "-7", "empty", "",
    ]));
    let mut by_count = text(&["HSET", "h:count"]);
    for index in 0..600 {
        by_count.push(format!("field:{index}").into_bytes());
        by_count.push(index.to_string().into_bytes());
    }
    add(by_count);
    add(vec![
        b"HSET".to_vec(),
        b"h:long".to_vec(),
        b"f".to_vec(),
        vec![b'v'; 100],
    ]);

    // Sets: intsets of each width; hashtables by content and by count.
    add(text(&["SADD", "set:int16", "3", "1", "2", "-100"]));
    add(text(&["SADD", "set:int32", "1", "100000", "-100000"]));
    add(text(&[
        "SADD",
        "set:int64",
        "1",
        "9223372036854775807",
        "-9223372036854775808",
    ]));
    add(text(&["SADD", "set:strings", "a", "b", "c", "1"]));
    let mut set_count = text(&["SADD", "set:count"]);
    for index in 0..600 {
        set_count.push(index.to_string().into_bytes());
    }
    add(set_count);

    // Sorted sets: listpack with every kind of score; skiplist by count and by length.
    add(text(&[
        "ZADD",
        "z:small",
        "1",
        "one",
        "1.5",
        "frac",
        "-inf",
        "low",
        "inf",
        "high",
        "1e20",
        "big",
        "0.1",
        "tenth",
        "-3",
        "neg",
        "4503599627370496",
        "two52",
        "5",
        "12",
    ]));
    let mut z_count = text(&["ZADD", "z:count"]);
    for index in 0..200 {
        z_count.push(format!("{}", index as f64 / 7.0).into_bytes());
        z_count.push(format!("member:{index}").into_bytes());
    }
    add(z_count);
    add(vec![
        b"ZADD".to_vec(),
        b"z:long".to_vec(),
        b"2".to_vec(),
        vec![b'm'; 100],
        b"1".to_vec(),
        b"short".to_vec(),
    ]);
    add_streams(&mut add, &text, &pseudo_random);
    commands
}

/// Streams of several shapes, every ID explicit so both servers agree.
fn add_streams(
    add: &mut impl FnMut(Vec<Vec<u8>>),
    text: &impl Fn(&[&str]) -> Vec<Vec<u8>>,
    pseudo_random: &impl Fn(usize, u64) -> Vec<u8>,
) {
    // Emptied by XDEL: no nodes left, the counters kept.
    add(text(&["XADD", "x:empty-after-xdel", "1-1", "f", "v"]));
    add(text(&["XDEL", "x:empty-after-xdel", "1-1"]));
    // Created empty by a group.
    add(text(&[
        "XGROUP",
        "CREATE",
        "x:mkstream",
        "g",
        "$",
        "MKSTREAM",
    ]));
    // Entries with the master's fields, other fields, other orders, integers, long values.
    for (id, pairs) in [
        ("1-0", vec!["a", "1", "b", "2"]),
        ("1-1", vec!["a", "3", "b", "4"]),
        ("2-0", vec!["b", "1", "a", "2"]),
        ("3-0", vec!["a", ""]),
        (
            "4-0",
            vec!["num", "-9223372036854775808", "n2", "4096", "1", "x"],
        ),
        ("5-0", vec!["a", "1", "b", "2", "c", "3"]),
        ("7-5", vec!["a", "12", "b", "-4"]),
    ] {
        let mut command = text(&["XADD", "x:fields", id]);
        command.extend(text(&pairs));
        add(command);
    }
    add(vec![
        b"XADD".to_vec(),
        b"x:fields".to_vec(),
        b"9-0".to_vec(),
        b"a".to_vec(),
        vec![b'y'; 5000],
        b"b".to_vec(),
        pseudo_random(300, 7),
    ]);
    // Many nodes: split by entry count, and by bytes.
    for index in 1..=250u64 {
        let value = if index % 3 == 0 {
            format!("value-{index}")
        } else {
            (index * 7919).to_string()
        };
        add(text(&[
            "XADD",
            "x:multi",
            &format!("{index}-0"),
            "n",
            &value,
        ]));
    }
    for index in 1..=20u64 {
        add(vec![
            b"XADD".to_vec(),
            b"x:bytes".to_vec(),
            format!("{index}-{index}").into_bytes(),
            b"blob".to_vec(),
            pseudo_random(900, index),
        ]);
    }
    // Approximate trimming removes whole nodes only: no tombstones.
    for index in 1..=250u64 {
        add(text(&[
            "XADD",
            "x:trimmed",
            &format!("{index}-1"),
            "f",
            "v",
        ]));
    }
    add(text(&["XTRIM", "x:trimmed", "MAXLEN", "~", "120"]));
    // Groups without consumers (a consumer's seen time is the server's clock).
    for index in 1..=5u64 {
        add(text(&[
            "XADD",
            "x:groups",
            &format!("{index}-0"),
            "f",
            &index.to_string(),
        ]));
    }
    add(text(&["XGROUP", "CREATE", "x:groups", "g1", "0"]));
    add(text(&["XGROUP", "CREATE", "x:groups", "g2", "$"]));
    add(text(&[
        "XGROUP",
        "CREATE",
        "x:groups",
        "12",
        "3-0",
        "ENTRIESREAD",
        "3",
    ]));
    // XSETID's counters.
    add(text(&["XADD", "x:setid", "1-0", "f", "v"]));
    add(text(&[
        "XSETID",
        "x:setid",
        "100-5",
        "ENTRIESADDED",
        "50",
        "MAXDELETEDID",
        "20-0",
    ]));
    // Pending entries, claims, acknowledgements: delivery and seen times are the servers'.
    for index in 1..=10u64 {
        add(text(&[
            "XADD",
            "x:timed:pel",
            &format!("{index}-0"),
            "f",
            &index.to_string(),
        ]));
    }
    add(text(&["XGROUP", "CREATE", "x:timed:pel", "g", "0"]));
    add(text(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "COUNT",
        "3",
        "STREAMS",
        "x:timed:pel",
        ">",
    ]));
    add(text(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "bob",
        "COUNT",
        "2",
        "STREAMS",
        "x:timed:pel",
        ">",
    ]));
    add(text(&["XACK", "x:timed:pel", "g", "1-0"]));
    add(text(&["XCLAIM", "x:timed:pel", "g", "bob", "0", "2-0"]));
    add(text(&[
        "XGROUP",
        "CREATECONSUMER",
        "x:timed:pel",
        "g",
        "carol",
    ]));
    add(text(&["XGROUP", "CREATE", "x:timed:pel", "other", "0"]));
    add(text(&[
        "XREADGROUP",
        "GROUP",
        "other",
        "7",
        "COUNT",
        "1",
        "STREAMS",
        "x:timed:pel",
        ">",
    ]));
    // Tombstones: XDEL in the middle of a node, and exact trimming inside the first node.
    for index in 1..=8u64 {
        add(text(&[
            "XADD",
            "x:deleted:xdel",
            &format!("{index}-0"),
            "f",
            &index.to_string(),
        ]));
    }
    add(text(&["XDEL", "x:deleted:xdel", "3-0", "5-0"]));
    add(text(&["XTRIM", "x:deleted:xdel", "MINID", "2"]));
    for index in 1..=150u64 {
        add(text(&[
            "XADD",
            "x:deleted:trim",
            &format!("{index}-0"),
            "f",
            "v",
        ]));
    }
    // Exact MINID trimming over a deleted last entry: a node with nothing live is kept.
    for index in 1..=5u64 {
        add(text(&[
            "XADD",
            "x:deleted:all",
            &format!("{index}-0"),
            "f",
            "v",
        ]));
    }
    add(text(&["XDEL", "x:deleted:all", "5-0"]));
    add(text(&["XTRIM", "x:deleted:all", "MINID", "5"]));
    add(text(&["XTRIM", "x:deleted:trim", "MAXLEN", "120"]));
    add(text(&["XGROUP", "CREATE", "x:deleted:trim", "g", "0"]));
    // Where two reads would have left the group (31-0 and 32-0 delivered), set directly: a
    // read would record delivery and seen times from each server's clock, and this key's
    // bytes are compared exactly (the `x:timed:` keys cover reads).
    add(text(&[
        "XGROUP",
        "SETID",
        "x:deleted:trim",
        "g",
        "32-0",
        "ENTRIESREAD",
        "32",
    ]));
}

/// The payload of a DUMP reply (`$len\r\n<bytes>\r\n`).
fn bulk(reply: &[u8]) -> Vec<u8> {
    assert_eq!(
        reply.first(),
        Some(&b'$'),
        "not a bulk reply: {:?}",
        String::from_utf8_lossy(reply)
    );
    let header_end = reply
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .expect("a bulk header");
    let len: usize = std::str::from_utf8(&reply[1..header_end])
        .unwrap()
        .parse()
        .unwrap();
    reply[header_end + 2..header_end + 2 + len].to_vec()
}

/// The elements of a flat array reply of bulk strings, for order-free comparison.
fn array(reply: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut position = reply
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .expect("an array header")
        + 2;
    while position < reply.len() {
        let rest = &reply[position..];
        let header_end = rest.windows(2).position(|pair| pair == b"\r\n").unwrap();
        let len: usize = std::str::from_utf8(&rest[1..header_end])
            .unwrap()
            .parse()
            .unwrap();
        out.push(rest[header_end + 2..header_end + 2 + len].to_vec());
        position += header_end + 2 + len + 2;
    }
    out
}

/// A canonical reading of a key: type, encoding and contents (order-free for hashtables).
fn read_key(conn: &mut Conn, key: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
    let kind = conn.command(&[&b"TYPE"[..], key]);
    let encoding = conn.command(&[&b"OBJECT"[..], b"ENCODING", key]);
    let contents = match kind.as_slice() {
        b"+string\r\n" => vec![bulk(&conn.command(&[&b"GET"[..], key]))],
        b"+list\r\n" => array(&conn.command(&[&b"LRANGE"[..], key, b"0", b"-1"])),
        b"+hash\r\n" => {
            let flat = array(&conn.command(&[&b"HGETALL"[..], key]));
            let mut pairs: Vec<Vec<u8>> = flat
                .chunks(2)
                .map(|pair| [pair[0].clone(), b"=".to_vec(), pair[1].clone()].concat())
                .collect();
            pairs.sort();
            pairs
        }
        b"+set\r\n" => {
            let mut members = array(&conn.command(&[&b"SMEMBERS"[..], key]));
            members.sort();
            members
        }
        b"+zset\r\n" => array(&conn.command(&[&b"ZRANGE"[..], key, b"0", b"-1", b"WITHSCORES"])),
        b"+stream\r\n" => read_stream(conn, key),
        other => panic!("unexpected type {:?}", String::from_utf8_lossy(other)),
    };
    (kind, encoding, contents)
}

/// The keys the setup builds, each once, in order (XGROUP names its key third).
fn keys_of(commands: &[Vec<Vec<u8>>]) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for command in commands {
        let key = match command[0].as_slice() {
            b"XGROUP" => &command[2],
            b"XREADGROUP" => continue,
            _ => &command[1],
        };
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    keys
}

/// A parsed RESP2 reply, enough for XINFO.
#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

fn parse_resp(bytes: &[u8]) -> Resp {
    let (value, used) = parse_resp_at(bytes, 0);
    assert_eq!(used, bytes.len(), "one reply");
    value
}

fn parse_resp_at(bytes: &[u8], start: usize) -> (Resp, usize) {
    let line_end = start
        + bytes[start..]
            .windows(2)
            .position(|pair| pair == b"\r\n")
            .expect("a RESP line");
    let line = &bytes[start + 1..line_end];
    let number = || -> i64 { std::str::from_utf8(line).unwrap().parse().unwrap() };
    let next = line_end + 2;
    match bytes[start] {
        b'+' => (Resp::Simple(line.to_vec()), next),
        b'-' => (Resp::Error(line.to_vec()), next),
        b':' => (Resp::Integer(number()), next),
        b'$' if number() < 0 => (Resp::Bulk(None), next),
        b'$' => {
            let end = next + number() as usize;
            (Resp::Bulk(Some(bytes[next..end].to_vec())), end + 2)
        }
        b'*' if number() < 0 => (Resp::Array(None), next),
        b'*' => {
            let mut items = Vec::new();
            let mut position = next;
            for _ in 0..number() {
                let (item, after) = parse_resp_at(bytes, position);
                items.push(item);
                position = after;
            }
            (Resp::Array(Some(items)), position)
        }
        other => panic!("unexpected RESP type {:?}", other as char),
    }
}

/// Replaces every integer that can only be a Unix time in ms (seen times, delivery times)
/// with 0: the two servers built their streams at different moments.
fn without_times(reply: Resp) -> Resp {
    const UNIX_MS_MIN: i64 = 1_000_000_000_000;
    match reply {
        Resp::Integer(value) if value >= UNIX_MS_MIN => Resp::Integer(0),
        Resp::Array(Some(items)) => {
            Resp::Array(Some(items.into_iter().map(without_times).collect()))
        }
        other => other,
    }
}

/// A stream's contents and metadata, comparable across servers.
fn read_stream(conn: &mut Conn, key: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![conn.command(&[&b"XRANGE"[..], key, b"-", b"+"])];
    let full = parse_resp(&conn.command(&[&b"XINFO"[..], b"STREAM", key, b"FULL"]));
    out.push(format!("{:?}", without_times(full)).into_bytes());
    let groups_reply = conn.command(&[&b"XINFO"[..], b"GROUPS", key]);
    out.push(groups_reply.clone());
    let Resp::Array(Some(groups)) = parse_resp(&groups_reply) else {
        panic!("XINFO GROUPS is an array");
    };
    for group in groups {
        let Resp::Array(Some(fields)) = group else {
            panic!("a group is an array");
        };
        let name = fields
            .chunks(2)
            .find(|pair| pair[0] == Resp::Bulk(Some(b"name".to_vec())))
            .map(|pair| pair[1].clone());
        let Some(Resp::Bulk(Some(name))) = name else {
            panic!("a group has a name");
        };
        out.push(conn.command(&[&b"XPENDING"[..], key, &name]));
    }
    out
}

#[test]
fn dump_restore_both_ways() {
    check_both_ways(&[]);
}

/// Without compression, and with other quicklist fill factors (node splits by count, and by
/// 4 KB and 64 KB sizes).
#[test]
fn dump_restore_both_ways_under_other_settings() {
    check_both_ways(&["--rdbcompression", "no", "--list-max-listpack-size", "5"]);
    check_both_ways(&[
        "--list-max-listpack-size",
        "-1",
        "--stream-node-max-entries",
        "7",
        "--stream-node-max-bytes",
        "300",
    ]);
    check_both_ways(&["--list-max-listpack-size", "-5", "--rdbcompression", "no"]);
}

/// A client blocked on a key wakes when RESTORE creates it.
#[test]
fn restore_wakes_blocked_clients() {
    let (strata, Some(redis)) = Server::pair(&[]) else {
        return;
    };
    let mut source = redis.connect();
    source.cmd("RPUSH l a b");
    let payload = bulk(&source.command(&[&b"DUMP"[..], b"l"]));
    for server in [&strata, &redis] {
        let mut waiter = server.connect();
        let mut writer = server.connect();
        waiter.cmd("CLIENT SETNAME waiter");
        waiter.send_command(&["BLPOP", "woken", "5"]);
        // Wait until the server has the client blocked.
        for _ in 0..100 {
            let list = String::from_utf8_lossy(&writer.cmd("CLIENT LIST")).into_owned();
            if list.contains("name=waiter") && list.contains("cmd=blpop") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let reply = writer.command(&[&b"RESTORE"[..], b"woken", b"0", &payload]);
        assert_eq!(reply, b"+OK\r\n");
        let woken = waiter.read_reply().expect("the blocked client is served");
        assert_eq!(
            woken, b"*2\r\n$5\r\nwoken\r\n$1\r\na\r\n",
            "{:?}",
            server.kind
        );
    }
}

fn check_both_ways(settings: &[&str]) {
    let (strata, Some(redis)) = Server::pair(settings) else {
        return;
    };
    let mut strata = strata.connect();
    let mut redis = redis.connect();
    let commands = setup_commands();
    for command in &commands {
        let from_redis = redis.command(command);
        let from_strata = strata.command(command);
        assert_eq!(
            from_strata,
            from_redis,
            "setup {:?}",
            String::from_utf8_lossy(&command[0])
        );
    }
    for sanitize in ["yes", "no"] {
        strata.cmd(&format!("CONFIG SET sanitize-dump-payload {sanitize}"));
        redis.cmd(&format!("CONFIG SET sanitize-dump-payload {sanitize}"));
        for key in keys_of(&commands) {
            let name = String::from_utf8_lossy(&key).into_owned();
            let expected = read_key(&mut redis, &key);
            let redis_payload = bulk(&redis.command(&[&b"DUMP"[..], &key]));
            let strata_payload = bulk(&strata.command(&[&b"DUMP"[..], &key]));

            // Redis -> Strata.
            let copy = [b"from-redis:".as_slice(), &key].concat();
            let reply = strata.command(&[&b"RESTORE"[..], &copy, b"0", &redis_payload, b"REPLACE"]);
            assert_eq!(
                reply,
                b"+OK\r\n",
                "{name}: {}",
                String::from_utf8_lossy(&reply)
            );
            assert_eq!(
                read_key(&mut strata, &copy),
                expected,
                "{name} restored into Strata"
            );

            // Strata -> Redis.
            let copy = [b"from-strata:".as_slice(), &key].concat();
            let reply = redis.command(&[&b"RESTORE"[..], &copy, b"0", &strata_payload, b"REPLACE"]);
            assert_eq!(
                reply,
                b"+OK\r\n",
                "{name}: {}",
                String::from_utf8_lossy(&reply)
            );
            assert_eq!(
                read_key(&mut redis, &copy),
                expected,
                "{name} restored into Redis"
            );

            // Same encoding with a deterministic order: the same bytes (see the module doc
            // for the stream keys that cannot be).
            let ordered = expected.1 != b"$9\r\nhashtable\r\n";
            let timed = key.starts_with(b"x:timed:");
            if ordered {
                let copy = [b"from-redis:".as_slice(), &key].concat();
                let again = bulk(&strata.command(&[&b"DUMP"[..], &copy]));
                assert!(
                    again == redis_payload,
                    "{name}: Redis's payload restored into Strata dumps back differently"
                );
            }
            if ordered && !timed && strata_payload != redis_payload {
                let first_difference = strata_payload
                    .iter()
                    .zip(&redis_payload)
                    .position(|(a, b)| a != b);
                panic!(
                    "{name}: DUMP bytes differ: Strata {} bytes, Redis {} bytes, first difference at {first_difference:?}",
                    strata_payload.len(),
                    redis_payload.len()
                );
            }
        }
    }
}

/// A stream restored from Redis's payload keeps growing as Redis's does: the loaded nodes'
/// sizes and counts (tombstones included) decide where the next XADDs split, so the node
/// counts agree, and so do the payloads.
#[test]
fn restored_streams_grow_like_redis() {
    let (strata, Some(redis)) = Server::pair(&[]) else {
        return;
    };
    let mut strata = strata.connect();
    let mut redis = redis.connect();
    let mut build = |line: &str| {
        let reply = redis.cmd(line);
        assert!(!reply.starts_with(b"-"), "{line}: {reply:?}");
    };
    for index in 1..=150u64 {
        build(&format!("XADD multi {index}-0 n {}", index * 31));
        build(&format!("XADD tomb {index}-0 n v{index}"));
    }
    build("XDEL tomb 149-0 120-0 3-0");
    build("XTRIM tomb MAXLEN 140");
    for index in 1..=3u64 {
        build(&format!("XADD big {index}-0 blob {}", "q".repeat(1500)));
    }
    for key in ["multi", "tomb", "big"] {
        let payload = bulk(&redis.command(&["DUMP", key]));
        let copy = format!("{key}:copy");
        for conn in [&mut strata, &mut redis] {
            let reply = conn.command(&[b"RESTORE".as_slice(), copy.as_bytes(), b"0", &payload]);
            assert_eq!(reply, b"+OK\r\n", "{key}");
        }
        for index in 1..=160u64 {
            let id = format!("{}-0", 1000 + index);
            let value = if index % 10 == 0 {
                "w".repeat(700)
            } else {
                index.to_string()
            };
            for conn in [&mut strata, &mut redis] {
                conn.command(&["XADD", &copy, &id, "n", &value]);
            }
        }
        let info = |conn: &mut Conn| {
            let reply = parse_resp(&conn.command(&["XINFO", "STREAM", &copy, "FULL"]));
            format!("{:?}", without_times(reply))
        };
        assert_eq!(info(&mut strata), info(&mut redis), "{key}");
        let from_strata = bulk(&strata.command(&["DUMP", &copy]));
        let from_redis = bulk(&redis.command(&["DUMP", &copy]));
        assert!(
            from_strata == from_redis,
            "{key}: the grown payloads differ"
        );
    }
}

#[test]
fn restore_errors_match() {
    let (strata, Some(redis)) = Server::pair(&[]) else {
        return;
    };
    let mut strata = strata.connect();
    let mut redis = redis.connect();
    for conn in [&mut strata, &mut redis] {
        conn.cmd("SET k v");
    }
    let payload = bulk(&redis.command(&[&b"DUMP"[..], b"k"]));
    let mut flipped = payload.clone();
    flipped[1] ^= 0x40;
    // An unknown type; and a string whose length runs into the footer (Redis reads it).
    let mut bad_data = b"\x63bar\x0a\x00".to_vec();
    let mut into_footer = b"\x00\x0bbar\x0a\x00".to_vec();
    let crc = crc64_redis(&into_footer);
    into_footer.extend_from_slice(&crc.to_le_bytes());
    let crc = crc64_redis(&bad_data);
    bad_data.extend_from_slice(&crc.to_le_bytes());
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"k", b"0", &payload],
        vec![b"RESTORE", b"n", b"-5", &payload],
        vec![b"RESTORE", b"n", b"0", &flipped],
        vec![b"RESTORE", b"n", b"0", &bad_data],
        vec![b"RESTORE", b"n", b"0", &into_footer],
        vec![b"STRLEN", b"n"],
        vec![b"RESTORE", b"n", b"0", b"short"],
        vec![b"RESTORE", b"n", b"0", &payload, b"FREQ", b"300"],
        vec![b"RESTORE", b"n", b"0", &payload, b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"n", b"0", &payload, b"IDLETIME"],
        vec![
            b"RESTORE",
            b"n",
            b"0",
            &payload,
            b"REPLACE",
            b"ABSTTL",
            b"IDLETIME",
            b"10",
        ],
        vec![b"OBJECT", b"IDLETIME", b"n"],
        vec![b"RESTORE", b"n", b"1", &payload, b"ABSTTL", b"REPLACE"],
        vec![b"EXISTS", b"n"],
    ];
    for case in &cases {
        let from_redis = redis.command(case);
        let from_strata = strata.command(case);
        assert_eq!(
            String::from_utf8_lossy(&from_strata),
            String::from_utf8_lossy(&from_redis),
            "{:?}",
            case.iter()
                .map(|word| String::from_utf8_lossy(word).into_owned())
                .collect::<Vec<_>>()
        );
    }
}

/// Corrupt stream payloads: what Redis always refuses, Strata refuses; what Redis refuses
/// only with `sanitize-dump-payload yes` (the listpack's inner structure), Strata refuses
/// then too. (Without sanitization Redis accepts a corrupt node, or a pending entry no
/// consumer owns, and would trip over it later; Strata refuses them always, since it must
/// parse every entry and give every pending entry an owner to hold the stream.) A pending
/// entry two consumers claim, Redis 7.0.15 as Debian ships it now (1~deb12u10) refuses in
/// both modes, and so does Strata. Debian's 1~deb12u7 loaded it (leaving the entry in both
/// consumers' PELs); against that build those rows are skipped, loudly.
#[test]
fn corrupt_stream_payloads_are_refused_as_redis_does() {
    let (strata, Some(redis)) = Server::pair(&[]) else {
        return;
    };
    let mut strata = strata.connect();
    let mut redis = redis.connect();
    let with_footer = |mut body: Vec<u8>| {
        body.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc64_redis(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    };
    // An empty stream whose group's consumer owns an ID missing from the group's PEL.
    let mut orphan =
        b"\x13\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01g\x00\x00\x00\x00\x01\x01c".to_vec();
    orphan.extend_from_slice(&[0; 8]);
    orphan.push(1);
    orphan.extend_from_slice(&[0; 15]);
    orphan.push(1);
    let orphan = with_footer(orphan);
    // The same with the entry in the PEL and owned twice (by two consumers).
    let mut twice = b"\x13\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01g\x00\x00\x00\x01".to_vec();
    twice.extend_from_slice(&[0; 15]);
    twice.push(1);
    twice.extend_from_slice(&[0; 8]);
    twice.push(1);
    twice.push(2);
    for name in [b'c', b'd'] {
        twice.extend_from_slice(&[1, name]);
        twice.extend_from_slice(&[0; 8]);
        twice.push(1);
        twice.extend_from_slice(&[0; 15]);
        twice.push(1);
    }
    let twice = with_footer(twice);
    // A node whose only entry's lp-count is wrong.
    redis.cmd("XADD s 1-0 f v");
    let good = bulk(&redis.command(&["DUMP", "s"]));
    let body = &good[..good.len() - 10];
    let at = body
        .windows(3)
        .position(|window| window == b"\x04\x01\xff")
        .expect("the lp-count 4 before the listpack's end");
    let mut bad_count = body.to_vec();
    bad_count[at] = 5;
    let bad_count = with_footer(bad_count);
    let probe: [&[u8]; 4] = [b"RESTORE", b"probe", b"0", &twice];
    let redis_refuses_twice = redis.command(&probe) != b"+OK\r\n";
    if !redis_refuses_twice {
        eprintln!(
            "*** WARNING: this redis-server loads a pending entry two consumers claim; \
             Debian's 1~deb12u10 refuses it, as Strata does. Those rows are not compared."
        );
    }
    let mut cases: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"x1", b"0", &orphan],
        vec![b"RESTORE", b"x2", b"0", &twice],
        vec![b"EXISTS", b"x2"],
        vec![b"CONFIG", b"SET", b"sanitize-dump-payload", b"yes"],
        vec![b"RESTORE", b"x5", b"0", &orphan],
        vec![b"RESTORE", b"x6", b"0", &twice],
        vec![b"EXISTS", b"x6"],
        vec![b"RESTORE", b"x3", b"0", &bad_count],
        vec![b"RESTORE", b"x4", b"0", &good],
        vec![b"XRANGE", b"x4", b"-", b"+"],
        vec![b"EXISTS", b"x1", b"x3", b"x5"],
    ];
    if !redis_refuses_twice {
        cases.retain(|case| !matches!(case[1], b"x2" | b"x6"));
    }
    for case in &cases {
        let from_redis = redis.command(case);
        let from_strata = strata.command(case);
        assert_eq!(
            String::from_utf8_lossy(&from_strata),
            String::from_utf8_lossy(&from_redis),
            "{:?} {:?}",
            String::from_utf8_lossy(case[0]),
            String::from_utf8_lossy(case[1])
        );
    }
}

/// Redis's CRC-64 (bitwise; the tests stay independent of the crate's implementation).
fn crc64_redis(bytes: &[u8]) -> u64 {
    const POLY: u64 = 0x95ac9329ac4bc9b5;
    let mut crc = 0u64;
    for &byte in bytes {
        crc ^= byte as u64;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    crc
}
