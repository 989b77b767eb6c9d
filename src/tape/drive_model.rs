//! The figures of LTO drive types, real and virtual: speed-matching steps between a
//! floor and the native rate, the data cache, what a stop-and-reposition costs, the largest
//! block, and the native capacity of each generation's cartridges. Pacing (the flow
//! controller's speed range), restore estimates, configuration checks and the virtual
//! library's streaming simulation (`vlib::streaming`) all read them here; which
//! cartridges a drive takes is [`super::lto`]'s.

use serde::{Deserialize, Serialize};

/// The performance and media figures of a drive type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveModel {
    /// Model name, e.g. `LTO-9`.
    pub name: String,
    /// LTO generation, for media compatibility.
    pub generation: u8,
    /// Speed-matching steps in bytes per second, ascending; the last is the native rate.
    pub speed_steps: Vec<u64>,
    /// The drive's data cache in bytes.
    pub cache: u64,
    /// Seconds a stop-and-reposition costs before the drive writes again.
    pub reposition_secs: f64,
    /// The share of the cache that must be filled before a stopped drive starts again.
    pub restart_fill: f64,
    /// Largest block the drive accepts.
    pub max_block: u32,
}

impl DriveModel {
    /// The built-in models, by name (`LTO-5` .. `LTO-9`).
    pub fn builtin(name: &str) -> Option<DriveModel> {
        let key = name.to_ascii_uppercase().replace(['-', '_', ' '], "");
        let (generation, floor, native, steps, cache_mib) = match key.as_str() {
            "LTO9" => (9, 177, 408, 12, 1024),
            "LTO8" => (8, 112, 360, 12, 1024),
            "LTO7" => (7, 101, 300, 12, 1024),
            "LTO6" => (6, 40, 160, 13, 512),
            "LTO5" => (5, 47, 140, 14, 256),
            _ => return None,
        };
        Some(DriveModel {
            name: format!("LTO-{generation}"),
            generation,
            speed_steps: linear_steps(floor * 1_000_000, native * 1_000_000, steps),
            cache: cache_mib << 20,
            reposition_secs: 2.5,
            restart_fill: 0.5,
            max_block: 8 << 20,
        })
    }

    /// Names accepted by [`DriveModel::builtin`].
    pub const BUILTIN: &'static [&'static str] = &["LTO-5", "LTO-6", "LTO-7", "LTO-8", "LTO-9"];

    /// The slowest rate the drive streams at.
    pub fn floor(&self) -> u64 {
        self.speed_steps.first().copied().unwrap_or(1)
    }

    /// The fastest (native) rate.
    pub fn native(&self) -> u64 {
        self.speed_steps.last().copied().unwrap_or(1)
    }

    /// Whether this drive can write a cartridge of `media_generation` (see
    /// [`super::lto`]).
    pub fn writes(&self, media_generation: u8) -> bool {
        super::lto::writes(self.generation, media_generation)
    }

    /// Whether this drive can read a cartridge of `media_generation` (see
    /// [`super::lto`]).
    pub fn reads(&self, media_generation: u8) -> bool {
        super::lto::reads(self.generation, media_generation)
    }

    /// The smallest speed step at or above `rate` (the native rate above the last step).
    pub fn step_for(&self, rate: f64) -> u64 {
        self.speed_steps
            .iter()
            .copied()
            .find(|&s| s as f64 >= rate)
            .unwrap_or_else(|| self.native())
    }
}

/// `n` evenly spaced steps from `floor` to `native`, both included.
pub fn linear_steps(floor: u64, native: u64, n: u32) -> Vec<u64> {
    let n = n.max(2) as u64;
    (0..n)
        .map(|i| floor + (native - floor) * i / (n - 1))
        .collect()
}

/// Native capacity of an LTO generation in bytes.
pub fn native_capacity(generation: u8) -> u64 {
    const TB: u64 = 1_000_000_000_000;
    match generation {
        ..=5 => 1_500_000_000_000,
        6 => 2_500_000_000_000,
        7 => 6 * TB,
        8 => 12 * TB,
        _ => 18 * TB,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1e6;

    fn lto9() -> DriveModel {
        DriveModel::builtin("lto9").unwrap()
    }

    #[test]
    fn builtin_models_have_ordered_steps() {
        let m = lto9();
        assert_eq!(m.speed_steps.len(), 12);
        assert_eq!(m.floor(), 177_000_000);
        assert_eq!(m.native(), 408_000_000);
        assert!(m.speed_steps.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(m.step_for(100.0 * MB), 177_000_000);
        assert_eq!(m.step_for(900.0 * MB), 408_000_000);
        assert!(DriveModel::builtin("LTO-6").unwrap().writes(5));
        assert!(!DriveModel::builtin("LTO-6").unwrap().writes(9));
        assert!(lto9().reads(8) && !lto9().reads(7));
        assert!(DriveModel::builtin("nonsense").is_none());
    }
}
