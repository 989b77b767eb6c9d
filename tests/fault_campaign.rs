//! The quick sample of the crash-and-fault campaign (tests/common/campaign.rs) that CI runs:
//! every operation under faults of every kind, every invariant checked after each.
//! `TAPEDECK_CAMPAIGN_ITERATIONS` and `TAPEDECK_CAMPAIGN_SEED` change the sample; the long
//! campaign is `cargo bench --bench faults --features fault-injection -- ITERATIONS SEED`.

mod common;

use common::campaign;

#[test]
fn every_invariant_holds_after_every_fault() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let iterations = env("TAPEDECK_CAMPAIGN_ITERATIONS", 21) as usize;
    let seed = env("TAPEDECK_CAMPAIGN_SEED", 11);
    let figures = campaign::run(campaign::Plan::Random(iterations), seed, |o| {
        eprintln!(
            "{:?} under {:?}: {} violations, recovered in {:.2} s",
            o.operation,
            o.fault,
            o.violations.len(),
            o.recovery.as_secs_f64()
        )
    });
    eprintln!("{}", figures.report());
    assert!(figures.violations.is_empty(), "{}", figures.report());
}
