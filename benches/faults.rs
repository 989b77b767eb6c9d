//! The long crash-and-fault campaign (the quick sample runs in `cargo test`, see
//! tests/fault_campaign.rs). Needs the injection hook in the binary:
//!
//!   cargo bench --bench faults --features fault-injection -- [ITERATIONS|every] [SEED]
//!
//! ITERATIONS draws that many faults at random (default 210); `every` injects each action
//! at every fault point the census finds, plus 20 random kills and 2 early warnings per
//! operation. Prints each iteration's operation, fault and recovery time, then the
//! figures: fault points covered by kind, iterations, invariant violations and the longest
//! recovery.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let plan = match args.next() {
        Some(a) if a == "every" => common::campaign::Plan::Every { kills: 20 },
        a => common::campaign::Plan::Random(a.and_then(|a| a.parse().ok()).unwrap_or(210)),
    };
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let started = std::time::Instant::now();
    let figures = common::campaign::run(plan, seed, |o| {
        println!(
            "{:<14} {:<40} {} violations, recovered in {:.2} s",
            format!("{:?}", o.operation),
            format!("{:?}", o.fault),
            o.violations.len(),
            o.recovery.as_secs_f64()
        );
    });
    println!("{}", figures.report());
    println!("seed {seed}, {:.0} s", started.elapsed().as_secs_f64());
    if !figures.violations.is_empty() {
        std::process::exit(1);
    }
}
