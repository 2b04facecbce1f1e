//! Helpers for the persistence tests: a seeded write workload of every type, the state a
//! client can read back (to compare servers and restarts), waiting for background work.

use super::Server;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::Duration;

/// Everything a client can read back, per database, in a canonical order: the state two
/// servers must agree on. TTLs are compared by presence (their values move with time).
pub fn snapshot(server: &Server) -> Vec<String> {
    let client = redis::Client::open(server.url()).expect("client");
    let mut conn = client.get_connection().expect("connection");
    let mut lines = Vec::new();
    for db in 0..3 {
        redis::cmd("SELECT")
            .arg(db)
            .exec(&mut conn)
            .expect("select");
        let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut conn).expect("keys");
        keys.sort();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).expect("type");
            let body: Vec<Vec<u8>> = match kind.as_str() {
                "string" => vec![redis::cmd("GET").arg(&key).query(&mut conn).expect("get")],
                "list" => redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query(&mut conn)
                    .expect("lrange"),
                "hash" => {
                    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
                        .arg(&key)
                        .query(&mut conn)
                        .expect("hgetall");
                    pairs.sort();
                    pairs.into_iter().flat_map(|(f, v)| [f, v]).collect()
                }
                "set" => {
                    let mut members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
                        .arg(&key)
                        .query(&mut conn)
                        .expect("smembers");
                    members.sort();
                    members
                }
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(&mut conn)
                    .expect("zrange"),
                "stream" => {
                    let entries: redis::Value = redis::cmd("XRANGE")
                        .arg(&key)
                        .arg("-")
                        .arg("+")
                        .query(&mut conn)
                        .expect("xrange");
                    // Each group without `entries-read` and `lag`: Redis itself does not
                    // keep them across a reload of its AOF (the counter becomes unknown), so
                    // they are not part of what persistence promises.
                    let groups: Vec<Vec<(String, redis::Value)>> = redis::cmd("XINFO")
                        .arg("GROUPS")
                        .arg(&key)
                        .query(&mut conn)
                        .expect("xinfo");
                    let groups: Vec<Vec<(String, redis::Value)>> = groups
                        .into_iter()
                        .map(|fields| {
                            fields
                                .into_iter()
                                .filter(|(name, _)| name != "entries-read" && name != "lag")
                                .collect()
                        })
                        .collect();
                    vec![format!("{entries:?} {groups:?}").into_bytes()]
                }
                other => panic!("unexpected type {other}"),
            };
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).expect("pttl");
            lines.push(format!(
                "db{db} {} {kind} ttl={} {:?}",
                String::from_utf8_lossy(&key),
                ttl > 0,
                body.iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect::<Vec<_>>()
            ));
        }
    }
    lines
}

/// A seeded mix of writes of every type (streams with consumer groups included),
/// transactions, expiries, random pops and blocking pops that find data (each propagates as
/// Redis rewrites it).
pub fn workload(server: &Server, seed: u64, commands: usize) {
    let client = redis::Client::open(server.url()).expect("client");
    let mut conn = client.get_connection().expect("connection");
    let mut rng = SmallRng::seed_from_u64(seed);
    for _ in 0..commands {
        let key = rng.gen_range(0..20);
        let member = rng.gen_range(0..30);
        let mut cmd = match rng.gen_range(0..24) {
            0 => redis::cmd("SET").arg(format!("s{key}")).arg(member).clone(),
            1 => redis::cmd("APPEND").arg(format!("s{key}")).arg("x").clone(),
            2 => redis::cmd("INCRBYFLOAT")
                .arg(format!("f{key}"))
                .arg("1.5")
                .clone(),
            3 => redis::cmd("RPUSH")
                .arg(format!("l{key}"))
                .arg(member)
                .clone(),
            4 => redis::cmd("LPOP").arg(format!("l{key}")).clone(),
            5 => redis::cmd("BLPOP")
                .arg(format!("l{key}"))
                .arg("0.01")
                .clone(),
            6 => redis::cmd("HSET")
                .arg(format!("h{key}"))
                .arg(member)
                .arg(key)
                .clone(),
            7 => redis::cmd("HINCRBYFLOAT")
                .arg(format!("h{key}"))
                .arg("x")
                .arg("0.25")
                .clone(),
            8 => redis::cmd("SADD")
                .arg(format!("t{key}"))
                .arg(member)
                .arg("word")
                .clone(),
            9 => redis::cmd("SPOP").arg(format!("t{key}")).clone(),
            10 => redis::cmd("ZADD")
                .arg(format!("z{key}"))
                .arg(member)
                .arg(format!("m{member}"))
                .clone(),
            11 => redis::cmd("ZINCRBY")
                .arg(format!("z{key}"))
                .arg("2.5")
                .arg("m1")
                .clone(),
            12 => redis::cmd("ZPOPMIN").arg(format!("z{key}")).clone(),
            13 => redis::cmd("EXPIRE")
                .arg(format!("s{key}"))
                .arg(1000)
                .clone(),
            14 => redis::cmd("PERSIST").arg(format!("s{key}")).clone(),
            15 => redis::cmd("DEL").arg(format!("l{key}")).clone(),
            16 => redis::cmd("RENAME")
                .arg(format!("h{key}"))
                .arg(format!("h{member}"))
                .clone(),
            17 => redis::cmd("LMOVE")
                .arg(format!("l{key}"))
                .arg(format!("l{member}"))
                .arg("LEFT")
                .arg("RIGHT")
                .clone(),
            18 => {
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("INCR")
                    .arg(format!("n{key}"))
                    .cmd("SADD")
                    .arg(format!("t{key}"))
                    .arg("in-multi")
                    .cmd("SELECT")
                    .arg(1)
                    .cmd("SET")
                    .arg(format!("d1:{key}"))
                    .arg(member);
                let _: redis::RedisResult<redis::Value> = pipe.query(&mut conn);
                continue;
            }
            19 => redis::cmd("XADD")
                .arg(format!("x{}", key % 3))
                .arg("MAXLEN")
                .arg("~")
                .arg(40)
                .arg("*")
                .arg("f")
                .arg(member)
                .clone(),
            20 => redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(format!("x{}", key % 3))
                .arg(format!("g{}", member % 2))
                .arg("0")
                .clone(),
            21 => redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(format!("g{}", member % 2))
                .arg(format!("c{}", key % 2))
                .arg("COUNT")
                .arg(2)
                .arg("STREAMS")
                .arg(format!("x{}", key % 3))
                .arg(">")
                .clone(),
            22 => redis::cmd("XACK")
                .arg(format!("x{}", key % 3))
                .arg(format!("g{}", member % 2))
                .arg(format!("0-{member}"))
                .clone(),
            _ => redis::cmd("SETEX")
                .arg(format!("e{key}"))
                .arg(1000)
                .arg(member)
                .clone(),
        };
        // Errors (WRONGTYPE, RENAME of a missing key) are part of the mix.
        let _: redis::RedisResult<redis::Value> = cmd.query(&mut conn);
        let _ = &mut cmd;
    }
}

/// Waits until no AOF rewrite is running or scheduled.
pub fn wait_rewrite(server: &Server) {
    let mut conn = server.connect();
    for _ in 0..500 {
        let info = String::from_utf8_lossy(&conn.cmd("INFO persistence")).into_owned();
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the AOF rewrite did not finish");
}

/// SHUTDOWN (which closes without a reply) and waits for the process to end.
pub fn shutdown(mut server: Server) {
    server.connect().send_command(&["SHUTDOWN"]);
    assert!(
        server.wait_exit(Duration::from_secs(10)).is_some(),
        "{} did not exit on SHUTDOWN",
        server.kind.name()
    );
}

pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
