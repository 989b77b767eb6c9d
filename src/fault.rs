//! Fault injection for tests: makes the N-th write at a named point fail, or kills the
//! process there, so a test can reproduce a full disk, an I/O error or a crash at an exact
//! moment. Compiled in test and debug builds, and in release with the `fault-injection`
//! feature; otherwise [`hit`] is an empty inline function.
//!
//! - `TAPEDECK_FAULT=ACTION:POINT:N[,ACTION:POINT:N...]`: ACTION is `kill` (SIGKILL, as
//!   `kill -9`), `eio` or `enospc` (the write fails with that error); POINT is a [`Point`]
//!   name; N counts from 1 the times this process reaches the point.
//! - `TAPEDECK_FAULT_TALLY=DIR`: each time a point is reached, the process appends a line
//!   `POINT N` to `DIR/<pid>`, so the last line per point is how often it was reached (a
//!   census run with no fault gives each point's count for a fault campaign).

use std::fmt;

/// A place where a write can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Just before a catalogue transaction commits.
    CatalogWrite,
    /// Half-way through a block written to a virtual cartridge.
    VtapeWrite,
    /// Half-way through a JSON file of the virtual library (`library.json`,
    /// `cartridge.json`), before it replaces the old one.
    VtapeMeta,
}

impl Point {
    pub const ALL: [Point; 3] = [Point::CatalogWrite, Point::VtapeWrite, Point::VtapeMeta];

    pub fn name(self) -> &'static str {
        match self {
            Point::CatalogWrite => "catalog-write",
            Point::VtapeWrite => "vtape-write",
            Point::VtapeMeta => "vtape-meta",
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reaches `point`: returns the injected error if a fault is planned for this reach (or
/// kills the process), `Ok(())` otherwise.
#[cfg(any(debug_assertions, feature = "fault-injection"))]
pub fn hit(point: Point) -> std::io::Result<()> {
    imp::hit(point)
}

/// Fault injection is not compiled into this build.
#[cfg(not(any(debug_assertions, feature = "fault-injection")))]
#[inline(always)]
pub fn hit(_point: Point) -> std::io::Result<()> {
    Ok(())
}

#[cfg(any(debug_assertions, feature = "fault-injection"))]
mod imp {
    use super::Point;
    use std::io::Write;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    pub const FAULT_ENV: &str = "TAPEDECK_FAULT";
    pub const TALLY_ENV: &str = "TAPEDECK_FAULT_TALLY";

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Action {
        Kill,
        Eio,
        Enospc,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Plan {
        pub action: Action,
        pub point: Point,
        /// The reach of `point` (1-based) at which the fault fires.
        pub nth: u64,
    }

    #[derive(Debug, PartialEq, Eq, thiserror::Error)]
    #[error("{FAULT_ENV}: `{spec}` is not ACTION:POINT:N (ACTION kill|eio|enospc, POINT catalog-write|vtape-write|vtape-meta, N from 1)")]
    pub struct ParseError {
        pub spec: String,
    }

    /// Parses `ACTION:POINT:N[,...]`.
    pub fn parse(text: &str) -> Result<Vec<Plan>, ParseError> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|spec| parse_one(spec).ok_or_else(|| ParseError { spec: spec.into() }))
            .collect()
    }

    fn parse_one(spec: &str) -> Option<Plan> {
        let mut parts = spec.split(':');
        let action = match parts.next()? {
            "kill" => Action::Kill,
            "eio" => Action::Eio,
            "enospc" => Action::Enospc,
            _ => return None,
        };
        let point_name = parts.next()?;
        let point = Point::ALL.into_iter().find(|p| p.name() == point_name)?;
        let nth: u64 = parts.next()?.parse().ok().filter(|n| *n >= 1)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Plan { action, point, nth })
    }

    struct State {
        plans: Vec<Plan>,
        tally: Option<PathBuf>,
        reached: [AtomicU64; Point::ALL.len()],
    }

    fn state() -> &'static State {
        static STATE: OnceLock<State> = OnceLock::new();
        STATE.get_or_init(|| {
            let plans = match std::env::var(FAULT_ENV) {
                Ok(text) => parse(&text).unwrap_or_else(|e| {
                    tracing::error!("{e}; no fault will be injected");
                    Vec::new()
                }),
                Err(_) => Vec::new(),
            };
            State {
                plans,
                tally: std::env::var_os(TALLY_ENV).map(PathBuf::from),
                reached: Default::default(),
            }
        })
    }

    pub fn hit(point: Point) -> std::io::Result<()> {
        let state = state();
        if state.plans.is_empty() && state.tally.is_none() {
            return Ok(());
        }
        let n = state.reached[point as usize].fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(dir) = &state.tally {
            record(dir, point, n);
        }
        let Some(plan) = state.plans.iter().find(|p| p.point == point && p.nth == n) else {
            return Ok(());
        };
        tracing::warn!("injected fault: {:?} at {point} (reach {n})", plan.action);
        match plan.action {
            Action::Kill => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::getpid(),
                    nix::sys::signal::Signal::SIGKILL,
                );
                // SIGKILL is not delivered synchronously on every kernel; wait for it.
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
            Action::Eio => Err(nix::errno::Errno::EIO.into()),
            Action::Enospc => Err(nix::errno::Errno::ENOSPC.into()),
        }
    }

    fn record(dir: &std::path::Path, point: Point, n: u64) {
        let path = dir.join(std::process::id().to_string());
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{point} {n}\n").as_bytes()));
        if let Err(e) = written {
            tracing::warn!("{TALLY_ENV}: cannot append to {}: {e}", path.display());
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_one_or_more_plans() {
            assert_eq!(
                parse("kill:catalog-write:3").unwrap(),
                vec![Plan {
                    action: Action::Kill,
                    point: Point::CatalogWrite,
                    nth: 3
                }]
            );
            assert_eq!(
                parse("eio:vtape-write:1, enospc:vtape-meta:12").unwrap(),
                vec![
                    Plan {
                        action: Action::Eio,
                        point: Point::VtapeWrite,
                        nth: 1
                    },
                    Plan {
                        action: Action::Enospc,
                        point: Point::VtapeMeta,
                        nth: 12
                    }
                ]
            );
            assert_eq!(parse("").unwrap(), vec![]);
        }

        #[test]
        fn refuses_what_it_does_not_know() {
            for bad in [
                "kill",
                "kill:catalog-write",
                "kill:catalog-write:0",
                "kill:catalog-write:x",
                "boom:catalog-write:1",
                "eio:disk:1",
                "eio:vtape-write:1:2",
                "EIO:vtape-write:1",
            ] {
                let err = parse(bad).unwrap_err();
                assert_eq!(err.spec, bad);
                assert!(err.to_string().contains("ACTION:POINT:N"), "{err}");
            }
            assert_eq!(parse("eio:vtape-meta:1,nope").unwrap_err().spec, "nope");
        }

        #[test]
        fn point_names_are_the_interface() {
            let names: Vec<_> = Point::ALL.iter().map(|p| p.to_string()).collect();
            assert_eq!(names, ["catalog-write", "vtape-write", "vtape-meta"]);
        }
    }
}
