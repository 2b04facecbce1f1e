//! `maxmemory` with Redis's eviction policies: memory stays under the limit by evicting,
//! LRU keeps what is used, and with nothing to evict writes get Redis's `-OOM` while reads
//! go on. Tiering is off here: with it on, values spill to disk instead (tests/tiering.rs).

mod common;

use common::Server;

#[test]
fn allkeys_lru_stays_under_the_limit_and_keeps_the_hot_keys() {
    let server = Server::strata(&["--tiering", "no"]);
    let mut conn = server.connect();
    let baseline = common::info_number(&mut conn, "memory", "used_memory");
    let limit = baseline + 8 * 1024 * 1024;
    conn.cmd(&format!("CONFIG SET maxmemory {limit}"));
    conn.cmd("CONFIG SET maxmemory-policy allkeys-lru");
    let value = "v".repeat(1000);
    for index in 0..40_000 {
        conn.command(&["SET", &format!("cold:{index}"), &value]);
        if index % 100 == 0 {
            // The hot keys are read all along.
            for hot in 0..20 {
                conn.command(&["SET", &format!("hot:{hot}"), "x"]);
                conn.command(&["GET", &format!("hot:{hot}")]);
            }
        }
    }
    let used = common::info_number(&mut conn, "memory", "used_memory");
    assert!(
        used <= limit + 1024 * 1024,
        "used {used} over the limit {limit}"
    );
    assert!(common::info_number(&mut conn, "stats", "evicted_keys") > 20_000);
    let hot_kept = (0..20)
        .filter(|hot| conn.cmd(&format!("EXISTS hot:{hot}")) == b":1\r\n")
        .count();
    assert!(hot_kept >= 18, "LRU kept only {hot_kept} of 20 hot keys");
}

#[test]
fn with_nothing_to_evict_writes_get_oom_as_in_redis() {
    let (strata, redis) = (Server::strata(&["--tiering", "no"]), Server::redis(&[]));
    let mut servers = vec![strata];
    servers.extend(redis);
    let mut answers = Vec::new();
    for server in &servers {
        let mut conn = server.connect();
        for index in 0..2_000 {
            conn.command(&["SET", &format!("key:{index}"), &"v".repeat(500)]);
        }
        conn.cmd("CONFIG SET maxmemory 1mb");
        let mut replies = vec![conn.cmd("CONFIG SET maxmemory-policy noeviction")];
        replies.push(conn.cmd("SET another value"));
        replies.push(conn.cmd("GET key:1").len().min(1).to_string().into_bytes());
        replies.push(conn.cmd("DEL key:1"));
        conn.cmd("CONFIG SET maxmemory-policy volatile-lru");
        replies.push(conn.cmd("LPUSH list x"));
        replies.push(conn.cmd("CONFIG SET maxmemory 0"));
        replies.push(conn.cmd("SET another value"));
        answers.push(replies);
    }
    assert_eq!(
        answers[0][1],
        b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
    if answers.len() == 2 {
        assert_eq!(answers[0], answers[1], "strata vs redis");
    }
}
