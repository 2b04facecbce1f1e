//! RESP hot loops: parsing pipelined requests and large bulks, encoding typical replies.
//!
//! Run with `cargo bench --bench resp` (add `-- --quick` for a fast look). The measurement is
//! kept short by default; these numbers are for spotting regressions in the inner loops, the
//! end-to-end comparison with real Redis is `benches/compare.sh`.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use strata::protocol::{Limits, Reply, RequestParser};

/// Requests in the pipelined-SET benchmark.
const PIPELINE_COMMANDS: usize = 1000;
/// Size of the single large bulk.
const LARGE_BULK_BYTES: usize = 1024 * 1024;

fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parses every request in `input`, returning how many there were.
fn parse_all(input: &[u8]) -> usize {
    let mut parser = RequestParser::new();
    let mut buffer = BytesMut::from(input);
    let mut count = 0;
    while let Ok(Some(args)) = parser.parse(&mut buffer, Limits::default()) {
        black_box(&args);
        count += 1;
    }
    count
}

fn parsing(criterion: &mut Criterion) {
    let mut pipeline = Vec::new();
    for index in 0..PIPELINE_COMMANDS {
        let key = format!("key:{index:012}");
        pipeline.extend(encode_command(&[
            b"SET",
            key.as_bytes(),
            b"0123456789abcdef",
        ]));
    }
    assert_eq!(parse_all(&pipeline), PIPELINE_COMMANDS);
    let mut group = criterion.benchmark_group("parse");
    group.throughput(Throughput::Bytes(pipeline.len() as u64));
    group.bench_function("pipeline_1000_set", |bencher| {
        bencher.iter(|| parse_all(black_box(&pipeline)))
    });

    let value = vec![b'x'; LARGE_BULK_BYTES];
    let large = encode_command(&[b"SET", b"large", &value]);
    assert_eq!(parse_all(&large), 1);
    group.throughput(Throughput::Bytes(large.len() as u64));
    group.bench_function("one_1mb_bulk", |bencher| {
        bencher.iter(|| parse_all(black_box(&large)))
    });
    // The same bulk arriving in 16 KiB reads, as the connection loop receives it. The buffer
    // is reused so the measurement is the parser's, not the allocator's first-touch faults.
    let mut buffer = BytesMut::with_capacity(large.len());
    group.bench_function("one_1mb_bulk_in_16k_reads", |bencher| {
        bencher.iter(|| {
            let mut parser = RequestParser::new();
            buffer.clear();
            buffer.reserve(large.len());
            let mut done = 0;
            for chunk in large.chunks(16 * 1024) {
                buffer.extend_from_slice(chunk);
                if let Ok(Some(args)) = parser.parse(&mut buffer, Limits::default()) {
                    black_box(&args);
                    done += 1;
                }
            }
            assert_eq!(done, 1);
        })
    });
    group.finish();
}

fn encoding(criterion: &mut Criterion) {
    let bulk = Reply::bulk(Bytes::from_static(b"0123456789abcdef"));
    let array = Reply::Array(
        (0..100)
            .map(|index| Reply::bulk(Bytes::from(format!("value:{index:08}"))))
            .collect(),
    );
    let integer = Reply::Integer(1_234_567_890);
    let map = Reply::Map(
        (0..10)
            .map(|index| {
                (
                    Reply::bulk(Bytes::from(format!("field{index}"))),
                    Reply::Integer(index),
                )
            })
            .collect(),
    );
    let mut group = criterion.benchmark_group("encode");
    let cases = [
        ("bulk_16b", &bulk, false),
        ("array_of_100_bulks", &array, false),
        ("integer", &integer, false),
        ("resp3_map_10", &map, true),
        ("resp2_map_10", &map, false),
    ];
    for (name, reply, resp3) in cases {
        let mut out = BytesMut::with_capacity(64 * 1024);
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                out.clear();
                black_box(reply).encode(resp3, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = short();
    targets = parsing, encoding
}
criterion_main!(benches);
