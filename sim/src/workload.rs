//! The random command mix: every type, expiries, transactions, random pops, large values,
//! several databases. Keys come from a small space so commands meet on the same keys. Reads
//! come alone (`Request::Read`) when their replies are compared with a reference's: only
//! reads whose reply does not depend on a value's internal order or encoding.

use rand::rngs::SmallRng;
use rand::Rng;

/// Distinct keys per type.
const KEYS: u32 = 12;

/// One client request: a command, a transaction of several, or a read whose reply the
/// checker compares with the reference's.
pub enum Request {
    Command(Vec<Vec<u8>>),
    Transaction(Vec<Vec<Vec<u8>>>),
    Read(Vec<Vec<u8>>),
}

fn argv(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|word| word.as_bytes().to_vec()).collect()
}

/// A random write (or read) command; `now_ms` for absolute expiry times.
pub fn command(random: &mut SmallRng, now_ms: u64) -> Vec<Vec<u8>> {
    let key = random.gen_range(0..KEYS);
    let member = random.gen_range(0..20u32).to_string();
    let k = |prefix: &str| format!("{prefix}{key}");
    let number = random.gen_range(-50..50i64).to_string();
    match random.gen_range(0..36) {
        0 => argv(&["SET", &k("s"), &member]),
        1 => {
            // A large value now and then, so writes cross sectors and get torn.
            let size = random.gen_range(1_000..20_000);
            let mut words = argv(&["SET", &k("s")]);
            words.push(vec![b'a' + (size % 26) as u8; size]);
            words
        }
        2 => argv(&["APPEND", &k("s"), &member]),
        3 => argv(&["INCRBY", &k("n"), &number]),
        4 => argv(&["INCRBYFLOAT", &k("f"), "1.25"]),
        5 => argv(&[
            "SET",
            &k("e"),
            &member,
            "PX",
            &random.gen_range(1..3_000u32).to_string(),
        ]),
        6 => argv(&["GETDEL", &k("s")]),
        7 => argv(&["RPUSH", &k("l"), &member, &number]),
        8 => argv(&["LPOP", &k("l")]),
        9 => argv(&["LMOVE", &k("l"), &format!("l{member}"), "LEFT", "RIGHT"]),
        10 => argv(&["LTRIM", &k("l"), "0", "5"]),
        11 => argv(&["HSET", &k("h"), &member, &number]),
        12 => argv(&["HDEL", &k("h"), &member]),
        13 => argv(&["HINCRBYFLOAT", &k("h"), "x", "0.5"]),
        14 => argv(&["SADD", &k("t"), &member, "word"]),
        15 => argv(&["SREM", &k("t"), &member]),
        16 => argv(&["SPOP", &k("t")]),
        17 => argv(&["ZADD", &k("z"), &number, &member]),
        18 => argv(&["ZINCRBY", &k("z"), "2.5", &member]),
        19 => argv(&["ZPOPMIN", &k("z")]),
        20 => argv(&["XADD", &k("x"), "MAXLEN", "~", "20", "*", "f", &member]),
        21 => argv(&["XGROUP", "CREATE", &k("x"), "g", "0"]),
        22 => argv(&[
            "XREADGROUP",
            "GROUP",
            "g",
            &format!("c{member}"),
            "COUNT",
            "2",
            "STREAMS",
            &k("x"),
            ">",
        ]),
        23 => argv(&[
            "XACK",
            &k("x"),
            "g",
            &format!("{}-0", now_ms.saturating_sub(50)),
        ]),
        24 => argv(&["DEL", &k("s"), &k("l")]),
        25 => argv(&["EXPIRE", &k("h"), &random.gen_range(1..5u32).to_string()]),
        26 => argv(&[
            "PEXPIREAT",
            &k("t"),
            &(now_ms + random.gen_range(0..4_000u64)).to_string(),
        ]),
        27 => argv(&["PERSIST", &k("h")]),
        28 => argv(&["RENAME", &k("z"), &format!("z{member}")]),
        29 => argv(&["MOVE", &k("s"), "1"]),
        30 => argv(&["COPY", &k("l"), &format!("l{member}"), "REPLACE"]),
        31 => argv(&["SELECT", &random.gen_range(0..3u32).to_string()]),
        32 => argv(&["SWAPDB", "0", "1"]),
        33 => argv(&["SINTERSTORE", &k("t"), &k("t"), &format!("t{member}")]),
        34 => argv(&["GET", &k("s")]),
        _ => {
            if random.gen_bool(0.1) {
                argv(&["FLUSHDB"])
            } else {
                argv(&[
                    "SETRANGE",
                    &k("s"),
                    &random.gen_range(0..100u32).to_string(),
                    "xyz",
                ])
            }
        }
    }
}

/// A read of one key whose reply is the same on any server holding the same data.
pub fn read(random: &mut SmallRng) -> Vec<Vec<u8>> {
    let key = random.gen_range(0..KEYS);
    let k = |prefix: &str| format!("{prefix}{key}");
    match random.gen_range(0..16) {
        0 => argv(&["GET", &k("s")]),
        1 => argv(&["GETRANGE", &k("s"), "5", "40"]),
        2 => argv(&["DUMP", &k("s")]),
        3 => argv(&["MGET", &k("n"), &k("f"), &k("e")]),
        4 => argv(&["LRANGE", &k("l"), "0", "-1"]),
        5 => argv(&["LINDEX", &k("l"), "1"]),
        6 => argv(&["HMGET", &k("h"), "x", "0", "1", "2", "3"]),
        7 => argv(&["HLEN", &k("h")]),
        8 => argv(&["SMISMEMBER", &k("t"), "word", "0", "1", "2", "3"]),
        9 => argv(&["SCARD", &k("t")]),
        10 => argv(&["ZRANGE", &k("z"), "0", "-1", "WITHSCORES"]),
        11 => argv(&["ZSCORE", &k("z"), "3"]),
        12 => argv(&["XRANGE", &k("x"), "-", "+"]),
        13 => argv(&["XLEN", &k("x")]),
        14 => argv(&["PTTL", &k("h")]),
        _ => argv(&["STRLEN", &k("s")]),
    }
}

/// A request: mostly single commands, some reads, sometimes a MULTI/EXEC of a few.
pub fn request(random: &mut SmallRng, now_ms: u64) -> Request {
    if random.gen_bool(0.15) {
        return Request::Read(read(random));
    }
    if random.gen_bool(0.08) {
        let count = random.gen_range(2..6);
        Request::Transaction((0..count).map(|_| command(random, now_ms)).collect())
    } else {
        Request::Command(command(random, now_ms))
    }
}
