//! The simulator's own guarantees: a seed replays exactly, runs pass on the real code, and
//! the checker catches a deliberately broken persistence variant.

use strata_sim::run::{run, Options};

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [1, 2, 3] {
        let first = run(Options {
            seed,
            steps: 800,
            broken: false,
        });
        let second = run(Options {
            seed,
            steps: 800,
            broken: false,
        });
        assert_eq!(first.trace_hash, second.trace_hash, "seed {seed}");
        assert_eq!(first.commands, second.commands);
    }
    let other = run(Options {
        seed: 4,
        steps: 800,
        broken: false,
    });
    let first = run(Options {
        seed: 1,
        steps: 800,
        broken: false,
    });
    assert_ne!(first.trace_hash, other.trace_hash);
}

#[test]
fn seeds_pass_on_the_real_code() {
    let mut crashes = 0;
    for seed in 0..24 {
        let outcome = run(Options {
            seed,
            steps: 1_500,
            broken: false,
        });
        assert!(
            outcome.failures.is_empty(),
            "seed {seed}: {:?}",
            outcome.failures
        );
        crashes += outcome.crashes;
    }
    assert!(crashes > 10, "the seeds crash and recover ({crashes})");
}

#[test]
fn the_checker_catches_acknowledging_before_fsync() {
    // Only `always` runs promise anything the broken variant breaks; within 60 seeds some
    // are `always` runs that crash with acknowledged, unsynced writes.
    let caught = (0..60)
        .map(|seed| {
            run(Options {
                seed,
                steps: 1_500,
                broken: true,
            })
        })
        .filter(|outcome| !outcome.failures.is_empty())
        .count();
    assert!(caught > 0, "the broken variant went unnoticed");
}
