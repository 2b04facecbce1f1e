//! `strata-sim --seeds N [--steps S]` runs N seeds and prints a summary;
//! `strata-sim --seed S [--steps S]` replays one run and prints its trace hash last.
//! A failing seed prints the command that replays it; the exit status is 1 on any failure.

use strata_sim::run::{run, Options};

/// Requests per run unless `--steps` says otherwise.
const STEPS_DEFAULT: usize = 3_000;

fn usage() -> ! {
    eprintln!("usage: strata-sim (--seeds N | --seed S) [--steps STEPS] [--first SEED] [--broken]");
    std::process::exit(2);
}

fn number(value: Option<&String>) -> u64 {
    value
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| usage())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds: Option<u64> = None;
    let mut single: Option<u64> = None;
    let mut steps = STEPS_DEFAULT;
    let mut first = 0u64;
    let mut broken = false;
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
            "--broken" => broken = true,
            _ => usage(),
        }
        index += 1;
    }
    if let Some(seed) = single {
        let outcome = run(Options {
            seed,
            steps,
            broken,
        });
        println!(
            "seed {seed}: policy {}, {} commands, {} acknowledged, {} crashes, {} rewrites, {} faults",
            outcome.policy,
            outcome.commands,
            outcome.acknowledged,
            outcome.crashes,
            outcome.rewrites,
            outcome.faults
        );
        for failure in &outcome.failures {
            println!("FAILED: {failure}");
        }
        println!("trace hash {:016x}", outcome.trace_hash);
        std::process::exit(i32::from(!outcome.failures.is_empty()));
    }
    let Some(count) = seeds else { usage() };
    let mut failed = 0u64;
    let (mut commands, mut crashes, mut rewrites, mut faults) = (0u64, 0u64, 0u64, 0u64);
    for seed in first..first + count {
        let outcome = run(Options {
            seed,
            steps,
            broken,
        });
        commands += outcome.commands;
        crashes += outcome.crashes;
        rewrites += outcome.rewrites;
        faults += outcome.faults;
        if !outcome.failures.is_empty() {
            failed += 1;
            println!(
                "seed {seed} FAILED ({}): {}",
                outcome.policy, outcome.failures[0]
            );
            let extra = if broken { " --broken" } else { "" };
            println!("  replay: cargo run -p strata-sim --release -- --seed {seed} --steps {steps}{extra}");
        }
    }
    println!(
        "{count} seeds, {failed} failed: {commands} commands, {crashes} crashes and recoveries, {rewrites} rewrites, {faults} disk faults"
    );
    std::process::exit(i32::from(failed > 0));
}
