//! Bitmap and HyperLogLog hot paths, through the public functions the commands use (no
//! server, no protocol): BITCOUNT's popcount and BITPOS's scan over a 1 MiB bitmap, PFADD into
//! sparse and dense HyperLogLogs, PFCOUNT's estimate of a dense one and PFMERGE's register
//! fold.
//!
//! Run with `cargo bench --bench bits` (add `-- --quick` for a faster look, or a name filter
//! such as `-- pfadd`). These numbers spot regressions in the tree; the comparison with real
//! Redis end to end is `benches/compare.sh`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use strata::command::bitmaps::{first_bit, popcount};
use strata::types::hll;

/// Size of the bitmap BITCOUNT and BITPOS scan.
const BITMAP_BYTES: usize = 1 << 20;
/// Elements in the dense HyperLogLog PFCOUNT and PFMERGE read.
const DENSE_ELEMENTS: u64 = 100_000;
/// Redis's default `hll-sparse-max-bytes`.
const SPARSE_BYTES_MAX: usize = 3000;

fn bitmap() -> Vec<u8> {
    // A fixed pseudo-random pattern: popcount cost does not depend on it, but the compiler
    // must not see a constant.
    let mut state: u64 = 0x5eed_b175;
    (0..BITMAP_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn dense_hll() -> Vec<u8> {
    let mut hll = hll::new_sparse();
    for element in 0..DENSE_ELEMENTS {
        hll::add(&mut hll, &element.to_le_bytes(), SPARSE_BYTES_MAX);
    }
    assert_eq!(hll::encoding(&hll), hll::ENCODING_DENSE);
    hll
}

fn bitmaps(criterion: &mut Criterion) {
    let bytes = bitmap();
    let mut group = criterion.benchmark_group("bitmap");
    group.throughput(Throughput::Bytes(BITMAP_BYTES as u64));
    group.bench_function("bitcount_1mib", |bench| {
        bench.iter(|| popcount(black_box(&bytes)))
    });
    // The worst case for BITPOS: the only set bit is the last one.
    let mut zeros = vec![0u8; BITMAP_BYTES];
    zeros[BITMAP_BYTES - 1] = 1;
    group.bench_function("bitpos_1mib", |bench| {
        bench.iter(|| first_bit(black_box(&zeros), true))
    });
    group.finish();
}

fn hyperloglogs(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("hyperloglog");
    group.throughput(Throughput::Elements(1));
    let mut element: u64 = 0;
    let mut sparse = hll::new_sparse();
    group.bench_function("pfadd_sparse", |bench| {
        bench.iter(|| {
            element += 1;
            // Start again before promotion so every add measures the sparse path.
            if sparse.len() > SPARSE_BYTES_MAX - 16 {
                sparse = hll::new_sparse();
            }
            hll::add(&mut sparse, &element.to_le_bytes(), SPARSE_BYTES_MAX)
        })
    });
    let mut dense = dense_hll();
    group.bench_function("pfadd_dense", |bench| {
        bench.iter(|| {
            element += 1;
            hll::add(&mut dense, &element.to_le_bytes(), SPARSE_BYTES_MAX)
        })
    });
    group.bench_function("pfcount_dense", |bench| {
        bench.iter(|| hll::count(black_box(&dense)))
    });
    group.bench_function("pfmerge_dense", |bench| {
        let mut maximum = Box::new([0u8; hll::REGISTERS]);
        bench.iter(|| hll::merge_into(&mut maximum, black_box(&dense)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bitmaps, hyperloglogs
}
criterion_main!(benches);
