//! Sorted-set hot paths on a large set: ZADD, ZRANGE by rank and ZRANK against one
//! 1,000,000-member set in the `skiplist` encoding, built and queried through the public API
//! of `strata::types::ZSet` (no server, no protocol: the type's own cost).
//!
//! Run with `cargo bench --bench zset` (under two minutes, most of it building the set; add
//! `-- --quick` for a faster look, or a name filter such as `-- zrank`). The measurement is
//! kept short by default; these numbers are for spotting regressions in the tree, the
//! end-to-end comparison with real Redis is `benches/compare.sh`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::time::{Duration, Instant};
use strata::types::zset::Limits;
use strata::types::ZSet;

/// Members in the set every benchmark runs against.
const MEMBERS: usize = 1_000_000;
/// Elements each ZRANGE returns (`ZRANGE key start start+9`).
const RANGE_ELEMENTS: usize = 10;
/// Scores are drawn uniformly from `0..SCORE_MAX`, like redis-benchmark's random ZADD scores.
const SCORE_MAX: f64 = 1_000_000.0;
/// Fixed seed so every run measures the same set and the same query sequence.
const SEED: u64 = 0x5eed_2a5e;

fn member_name(index: usize) -> Vec<u8> {
    format!("member:{index:010}").into_bytes()
}

/// The member names (kept to pick random existing members) and the set built from them by
/// ZADD's path: a score lookup, then an insert of the new member.
fn build(rng: &mut SmallRng) -> (Vec<Vec<u8>>, ZSet) {
    let members: Vec<Vec<u8>> = (0..MEMBERS).map(member_name).collect();
    let mut zset = ZSet::new();
    for member in &members {
        let score = rng.gen_range(0.0..SCORE_MAX);
        assert!(zset.score(member).is_none(), "member names are unique");
        zset.insert(score, member, Limits::ZSET_DEFAULT);
    }
    assert_eq!(zset.len(), MEMBERS);
    assert_eq!(zset.encoding(), "skiplist");
    zset.check();
    (members, zset)
}

fn zset_operations(criterion: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(SEED);
    let build_started = Instant::now();
    let (members, mut zset) = build(&mut rng);
    eprintln!(
        "built a {MEMBERS}-member skiplist sorted set in {:.2?}",
        build_started.elapsed()
    );

    let mut group = criterion.benchmark_group("zset_1m");
    group.throughput(Throughput::Elements(1));

    // ZADD of a member that is not there yet. Only the adds are timed; the members added in
    // one sample are removed afterwards, so the set stays near a million across samples.
    let mut next_new = MEMBERS;
    group.bench_function("zadd_new_member", |bencher| {
        bencher.iter_custom(|iterations| {
            let count = usize::try_from(iterations).expect("iteration count fits in memory");
            let added: Vec<(f64, Vec<u8>)> = (0..count)
                .map(|offset| {
                    (
                        rng.gen_range(0.0..SCORE_MAX),
                        member_name(next_new + offset),
                    )
                })
                .collect();
            next_new += count;
            let started = Instant::now();
            for (score, member) in &added {
                if zset.score(black_box(member)).is_none() {
                    zset.insert(*score, member, Limits::ZSET_DEFAULT);
                }
            }
            let elapsed = started.elapsed();
            for (_, member) in &added {
                let removed = zset.remove(member);
                debug_assert!(removed.is_some());
            }
            assert_eq!(zset.len(), MEMBERS, "the set is back to its size");
            elapsed
        })
    });

    // ZADD of an existing member with a new score (the tree moves it).
    group.bench_function("zadd_update_score", |bencher| {
        bencher.iter(|| {
            let member = &members[rng.gen_range(0..MEMBERS)];
            let score = rng.gen_range(0.0..SCORE_MAX);
            if zset.score(black_box(member)).is_some() {
                zset.update(member, score);
            }
        })
    });

    // ZRANGE key start start+9 WITHSCORES at a random start: select, then walk ten.
    group.bench_function("zrange_10_at_random_rank", |bencher| {
        bencher.iter(|| {
            let start = rng.gen_range(0..MEMBERS - RANGE_ELEMENTS);
            let mut returned = 0usize;
            for (score, member) in zset.iter_range(start, start + RANGE_ELEMENTS, false) {
                black_box((score, member));
                returned += 1;
            }
            debug_assert_eq!(returned, RANGE_ELEMENTS);
            returned
        })
    });

    // ZRANK of a random existing member: dict lookup of the score, then the rank in the tree.
    group.bench_function("zrank_random_member", |bencher| {
        bencher.iter(|| {
            let member = &members[rng.gen_range(0..MEMBERS)];
            let rank = zset.rank(black_box(member));
            debug_assert!(rank.is_some());
            rank
        })
    });
    group.finish();
    assert_eq!(zset.len(), MEMBERS);
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
}

criterion_group! {
    name = benches;
    config = short();
    targets = zset_operations
}
criterion_main!(benches);
