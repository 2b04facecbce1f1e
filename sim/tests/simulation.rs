//! The simulator's own guarantees: a seed replays exactly, runs pass on the real code (with
//! the memory tier under pressure in half of them), and the checker catches deliberately
//! broken variants of the server.

use strata_sim::run::{run, Broken, Options, Outcome};

fn run_seed(seed: u64, steps: usize, broken: Option<Broken>) -> Outcome {
    run(Options {
        seed,
        steps,
        broken,
    })
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let mut tiered = 0;
    let mut traces = Vec::new();
    for seed in [1, 2, 3, 4] {
        let first = run_seed(seed, 800, None);
        let second = run_seed(seed, 800, None);
        assert_eq!(first.trace_hash, second.trace_hash, "seed {seed}");
        assert_eq!(first.commands, second.commands);
        assert_eq!(first.tier_counts, second.tier_counts, "seed {seed}");
        tiered += u32::from(first.tier.is_some());
        traces.push(first.trace_hash);
    }
    assert!(tiered > 0, "some of the seeds run the memory tier");
    let other = run_seed(5, 800, None);
    // Run after other seeds in the same process, a seed still gives its own trace: nothing
    // (a process-wide hasher seed, a random source) carries over from one run to the next.
    for (seed, trace) in [1, 2, 3, 4].into_iter().zip(traces) {
        let again = run_seed(seed, 800, None);
        assert_eq!(again.trace_hash, trace, "seed {seed} after others");
        assert_ne!(again.trace_hash, other.trace_hash);
    }
}

#[test]
fn seeds_pass_on_the_real_code() {
    let mut crashes = 0;
    let mut reads = 0;
    let (mut spills, mut promotions, mut compactions, mut explained) = (0, 0, 0, 0);
    for seed in 0..24 {
        let outcome = run_seed(seed, 1_500, None);
        assert!(
            outcome.failures.is_empty(),
            "seed {seed}: {:?}",
            outcome.failures
        );
        crashes += outcome.crashes;
        reads += outcome.reads_compared;
        spills += outcome.tier_counts.spills;
        promotions += outcome.tier_counts.promotions;
        compactions += outcome.tier_counts.compactions;
        explained += outcome.tier_errors;
    }
    assert!(crashes > 10, "the seeds crash and recover ({crashes})");
    assert!(reads > 1000, "reads are compared with the shadow ({reads})");
    assert!(
        spills > 1000 && promotions > 100 && compactions > 10,
        "the tier spills ({spills}), promotes ({promotions}) and compacts ({compactions})"
    );
    assert!(explained > 0, "segment faults reach commands as errors");
}

#[test]
fn the_checker_catches_acknowledging_before_fsync() {
    // The broken AOF reports bytes fsynced before they are; whatever the policy, what it
    // reported must survive a crash, so a run that crashes with such bytes is caught.
    let caught = (0..20)
        .map(|seed| run_seed(seed, 1_500, Some(Broken::Durability)))
        .filter(|outcome| !outcome.failures.is_empty())
        .count();
    assert!(
        caught >= 10,
        "the broken variant went unnoticed ({caught} of 20)"
    );
}

#[test]
fn the_checker_catches_a_tier_that_skips_its_checksums() {
    // Every run is tiered; those with segment faults read flipped bits back as data, which a
    // read reply, the comparison with the shadow or a recovery after a save must notice.
    let caught = (0..40)
        .map(|seed| run_seed(seed, 1_500, Some(Broken::Checksums)))
        .filter(|outcome| !outcome.failures.is_empty())
        .count();
    assert!(caught > 0, "the broken variant went unnoticed");
}
