//! The RAM guard: how large the ring buffer may be, decided from `MemAvailable` before
//! anything is allocated, so a buffer never pushes the machine into the OOM killer.
//!
//! Jobs running at once share the guard: their whole buffers count as taken. The memory
//! the shares are taken of is what is available now plus what the other jobs' buffers
//! already occupy (a ring's pages are committed as it first fills, so a job that just
//! started holds little yet, and counting its whole buffer back would count it twice); all
//! buffers together stay under 60 % of it, and the default of a job that starts second is
//! what is left under that line, at most 40 %.

use crate::units::format_size;

/// Largest share of `MemAvailable` a requested buffer may take.
pub const MAX_SHARE: f64 = 0.60;
/// Share of `MemAvailable` the default buffer takes.
pub const DEFAULT_SHARE: f64 = 0.40;
/// Upper bound of the default buffer.
pub const DEFAULT_CAP: u64 = 16 << 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MemoryError {
    #[error(
        "a memory buffer of {} is more than 60 % of the memory available now ({} available{}); \
         the largest buffer accepted is {}",
        format_size(*requested), format_size(*available), held_by(others),
        format_size(*largest)
    )]
    TooLarge {
        requested: u64,
        available: u64,
        largest: u64,
        /// The buffers of other running jobs, which count as taken.
        others: Vec<Held>,
    },
    #[error(
        "a memory buffer of {} is too small: it must hold at least {} blocks of {} ({})",
        format_size(*requested), MIN_BLOCKS, format_size(*block), format_size(MIN_BLOCKS * *block)
    )]
    TooSmall { requested: u64, block: u64 },
    #[error("cannot read the available memory from /proc/meminfo: {0}")]
    Unknown(String),
}

/// Another running job's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub job: String,
    pub bytes: u64,
    /// How much of it occupies memory now (at most `bytes`).
    pub resident: u64,
}

impl Held {
    /// Job `job`'s buffer of `bytes`, occupying what its process `pid` has resident.
    pub fn of(job: String, bytes: u64, pid: u32) -> Held {
        let resident = resident_bytes(pid).unwrap_or(0).min(bytes);
        Held {
            job,
            bytes,
            resident,
        }
    }
}

/// The resident memory of process `pid` (`VmRSS`), in bytes.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn held_by(others: &[Held]) -> String {
    if others.is_empty() {
        return String::new();
    }
    let list: Vec<String> = others
        .iter()
        .map(|h| format!("job {} holds {}", h.job, format_size(h.bytes)))
        .collect();
    format!(", besides the buffers of running jobs: {}", list.join(", "))
}

/// A buffer holds at least this many blocks.
pub const MIN_BLOCKS: u64 = 4;

/// `MemAvailable` from the text of `/proc/meminfo`, in bytes.
pub fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory available now, in bytes.
pub fn mem_available() -> Result<u64, MemoryError> {
    let text = std::fs::read_to_string("/proc/meminfo")
        .map_err(|e| MemoryError::Unknown(e.to_string()))?;
    parse_mem_available(&text).ok_or_else(|| MemoryError::Unknown("no MemAvailable line".into()))
}

/// The buffer size to allocate: the request if it fits, with the buffers of the `others`
/// running jobs, under 60 % of the memory (`available` now plus what they occupy), else an
/// error naming the figures and the other jobs; without a request min(16 GiB, 40 %, what
/// is left under the 60 % line). The result is rounded down to whole blocks.
pub fn buffer_size(
    requested: Option<u64>,
    available: u64,
    block: u64,
    others: &[Held],
) -> Result<u64, MemoryError> {
    let held: u64 = others.iter().map(|h| h.bytes).sum();
    let resident: u64 = others.iter().map(|h| h.resident).sum();
    let memory = available.saturating_add(resident);
    let largest = ((memory as f64 * MAX_SHARE) as u64).saturating_sub(held) / block * block;
    let asked = match requested {
        Some(r) if r > largest => {
            return Err(MemoryError::TooLarge {
                requested: r,
                available,
                largest,
                others: others.to_vec(),
            })
        }
        Some(r) => r,
        None => DEFAULT_CAP
            .min((memory as f64 * DEFAULT_SHARE) as u64)
            .min(largest),
    };
    let size = asked / block * block;
    if size < MIN_BLOCKS * block {
        return Err(MemoryError::TooSmall {
            requested: asked,
            block,
        });
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const BLOCK: u64 = 512 << 10;

    #[test]
    fn reads_mem_available_from_meminfo() {
        let text = "MemTotal:       52428800 kB\nMemFree:  1000 kB\nMemAvailable:   41943040 kB\n";
        assert_eq!(parse_mem_available(text), Some(40 * GIB));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn default_is_forty_percent_capped_at_sixteen_gib() {
        assert_eq!(buffer_size(None, 10 * GIB, BLOCK, &[]).unwrap(), 4 * GIB);
        assert_eq!(buffer_size(None, 50 * GIB, BLOCK, &[]).unwrap(), 16 * GIB);
    }

    #[test]
    fn a_request_above_sixty_percent_is_refused_with_both_figures() {
        // The user's case: 48 GB asked on a machine with 50 GB.
        let err = buffer_size(Some(48 * GIB), 50 * GIB, BLOCK, &[]).unwrap_err();
        let MemoryError::TooLarge { largest, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*largest, 30 * GIB);
        let text = err.to_string();
        assert!(
            text.contains("48 GiB") && text.contains("50 GiB") && text.contains("30 GiB"),
            "{text}"
        );
        assert_eq!(
            buffer_size(Some(30 * GIB), 50 * GIB, BLOCK, &[]).unwrap(),
            30 * GIB
        );
    }

    #[test]
    fn a_second_job_fits_beside_the_first_under_sixty_percent() {
        // The first took 40 % of 50 GiB and filled it; 30 GiB are available now.
        let first = Held {
            job: "backup-aaaaaa".into(),
            bytes: 20 * GIB,
            resident: 20 * GIB,
        };
        // Had it only just started, its buffer would not be in memory yet: not counted twice.
        let fresh = Held {
            resident: 0,
            ..first.clone()
        };
        assert_eq!(
            buffer_size(None, 50 * GIB, BLOCK, std::slice::from_ref(&fresh)).unwrap(),
            10 * GIB
        );
        let second = buffer_size(None, 30 * GIB, BLOCK, std::slice::from_ref(&first)).unwrap();
        assert_eq!(second, 10 * GIB);
        assert!(
            first.bytes + second <= 30 * GIB,
            "both under 60 % of 50 GiB"
        );
        let err = buffer_size(Some(16 * GIB), 30 * GIB, BLOCK, &[first]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("backup-aaaaaa holds 20 GiB") && text.contains("10 GiB"),
            "{text}"
        );
    }

    #[test]
    fn sizes_are_whole_blocks_and_at_least_a_few() {
        assert_eq!(
            buffer_size(Some(GIB + 1000), 50 * GIB, BLOCK, &[]).unwrap(),
            GIB
        );
        assert!(matches!(
            buffer_size(Some(BLOCK), 50 * GIB, BLOCK, &[]),
            Err(MemoryError::TooSmall { .. })
        ));
    }
}
