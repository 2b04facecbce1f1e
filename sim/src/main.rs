//! `strata-sim --seeds N [--steps S]` runs N seeds and prints a summary;
//! `strata-sim --seed S [--steps S]` replays one run and prints its trace hash last.
//! `--broken [durability|checksums]` runs a deliberately broken server (the AOF acknowledging
//! before its fsync; the memory tier skipping its crc check) that the checker must catch.
//! A failing seed prints the command that replays it; the exit status is 1 on any failure.

use strata_sim::disk::FaultCounts;
use strata_sim::run::{run, Broken, Options, Outcome};
use strata_sim::tier::TierCounts;

/// Requests per run unless `--steps` says otherwise.
const STEPS_DEFAULT: usize = 3_000;

fn usage() -> ! {
    eprintln!(
        "usage: strata-sim (--seeds N | --seed S) [--steps STEPS] [--first SEED] \
         [--broken [durability|checksums]]"
    );
    std::process::exit(2);
}

fn number(value: Option<&String>) -> u64 {
    value
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| usage())
}

/// Runs one seed; a panic (which the server must never raise) is a failure of that seed.
fn run_seed(options: Options) -> Outcome {
    let seed = options.seed;
    std::panic::catch_unwind(|| run(options)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        strata::tier::alloc::set_thread_gauge(None);
        Outcome {
            policy: "?".into(),
            failures: vec![format!("seed {seed} panicked: {what}")],
            ..Outcome::default()
        }
    })
}

fn broken_flag(broken: Option<Broken>) -> &'static str {
    match broken {
        None => "",
        Some(Broken::Durability) => " --broken durability",
        Some(Broken::Checksums) => " --broken checksums",
    }
}

fn main() {
    // A record the tier cannot read unwinds the command that met it with `ReadFault`, which
    // the executor turns into an error reply: not a crash, so not printed (as the server's
    // own hook does). Every other panic is printed.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !strata::tier::memory::is_tier_unwind(info.payload()) {
            default_hook(info);
        }
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds: Option<u64> = None;
    let mut single: Option<u64> = None;
    let mut steps = STEPS_DEFAULT;
    let mut first = 0u64;
    let mut broken = None;
    let mut index = 0;
    while index < args.len() {
        match args[index].as_str() {
            "--seeds" => {
                seeds = Some(number(args.get(index + 1)));
                index += 1;
            }
            "--seed" => {
                single = Some(number(args.get(index + 1)));
                index += 1;
            }
            "--steps" => {
                steps = number(args.get(index + 1)) as usize;
                index += 1;
            }
            "--first" => {
                first = number(args.get(index + 1));
                index += 1;
            }
            "--broken" => {
                broken = Some(Broken::Durability);
                match args.get(index + 1).map(String::as_str) {
                    Some("durability") => index += 1,
                    Some("checksums") => {
                        broken = Some(Broken::Checksums);
                        index += 1;
                    }
                    _ => {}
                }
            }
            _ => usage(),
        }
        index += 1;
    }
    if let Some(seed) = single {
        let outcome = run_seed(Options {
            seed,
            steps,
            broken,
        });
        println!(
            "seed {seed}: policy {}{}, {} commands, {} acknowledged, {} crashes, {} rewrites \
             ({} failed), {} reads compared",
            outcome.policy,
            outcome
                .tier
                .as_ref()
                .map(|tier| format!(", {tier}"))
                .unwrap_or_default(),
            outcome.commands,
            outcome.acknowledged,
            outcome.crashes,
            outcome.rewrites,
            outcome.rewrites_failed,
            outcome.reads_compared,
        );
        println!("faults: {}", describe_faults(&outcome.fault_counts));
        if outcome.tier.is_some() {
            println!(
                "tier: {}",
                describe_tier(&outcome.tier_counts, outcome.tier_errors)
            );
        }
        for failure in &outcome.failures {
            println!("FAILED: {failure}");
        }
        println!("trace hash {:016x}", outcome.trace_hash);
        std::process::exit(i32::from(!outcome.failures.is_empty()));
    }
    let Some(count) = seeds else { usage() };
    let started = std::time::Instant::now();
    let mut failed = 0u64;
    let (mut commands, mut crashes, mut rewrites, mut rewrites_failed) = (0u64, 0u64, 0u64, 0u64);
    let (mut tiered, mut reads, mut tier_errors) = (0u64, 0u64, 0u64);
    let mut faults = FaultCounts::default();
    let mut tier = TierCounts::default();
    for seed in first..first + count {
        let outcome = run_seed(Options {
            seed,
            steps,
            broken,
        });
        commands += outcome.commands;
        crashes += outcome.crashes;
        rewrites += outcome.rewrites;
        rewrites_failed += outcome.rewrites_failed;
        reads += outcome.reads_compared;
        tier_errors += outcome.tier_errors;
        tiered += u64::from(outcome.tier.is_some());
        faults.add(&outcome.fault_counts);
        tier.add(&outcome.tier_counts);
        if !outcome.failures.is_empty() {
            failed += 1;
            println!(
                "seed {seed} FAILED ({}): {}",
                outcome.policy, outcome.failures[0]
            );
            println!(
                "  replay: cargo run -p strata-sim --release -- --seed {seed} --steps {steps}{}",
                broken_flag(broken)
            );
        }
    }
    println!(
        "{count} seeds, {failed} failed, in {:.1} s: {commands} commands, {reads} reads compared \
         with the shadow, {crashes} crashes and recoveries, {rewrites} rewrites \
         ({rewrites_failed} failed)",
        started.elapsed().as_secs_f64()
    );
    println!("faults: {} ({})", faults.total(), describe_faults(&faults));
    println!(
        "tier ({tiered} tiered seeds): {}",
        describe_tier(&tier, tier_errors)
    );
    std::process::exit(i32::from(failed > 0));
}

fn describe_faults(faults: &FaultCounts) -> String {
    format!(
        "{} failed fsyncs, {} disk full, {} segment write errors, {} segment read errors, \
         {} flipped segment reads, {} rotted segment bits",
        faults.sync_failures,
        faults.disk_full,
        faults.segment_write_errors,
        faults.segment_read_errors,
        faults.segment_read_flips,
        faults.segment_rot
    )
}

fn describe_tier(tier: &TierCounts, errors: u64) -> String {
    let values = (tier.hot_values + tier.cold_values).max(1);
    format!(
        "{}% of values cold after an upkeep step, {} spills ({} refused), {} promotions, {} \
         cold reads, {} compactions, {} disk errors (failed writes and reads), {} corrupt records caught, {} command \
         errors explained by faults",
        tier.cold_values * 100 / values,
        tier.spills,
        tier.spill_failures,
        tier.promotions,
        tier.cold_reads,
        tier.compactions,
        tier.disk_errors,
        tier.corrupt_reads,
        errors
    )
}
