//! The RAM guard: how large the ring buffer may be, decided from `MemAvailable` before
//! anything is allocated, so a buffer never pushes the machine into the OOM killer.

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
        "a memory buffer of {} is more than 60 % of the memory available now ({} available); \
         the largest buffer accepted is {}",
        format_size(*requested), format_size(*available), format_size(*largest)
    )]
    TooLarge {
        requested: u64,
        available: u64,
        largest: u64,
    },
    #[error(
        "a memory buffer of {} is too small: it must hold at least {} blocks of {} ({})",
        format_size(*requested), MIN_BLOCKS, format_size(*block), format_size(MIN_BLOCKS * *block)
    )]
    TooSmall { requested: u64, block: u64 },
    #[error("cannot read the available memory from /proc/meminfo: {0}")]
    Unknown(String),
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

/// The buffer size to allocate: the request if it fits in 60 % of `available`, else an
/// error naming both figures; without a request min(16 GiB, 40 % of `available`). The
/// result is rounded down to whole blocks.
pub fn buffer_size(requested: Option<u64>, available: u64, block: u64) -> Result<u64, MemoryError> {
    let largest = ((available as f64 * MAX_SHARE) as u64) / block * block;
    let asked = match requested {
        Some(r) if r > largest => {
            return Err(MemoryError::TooLarge {
                requested: r,
                available,
                largest,
            })
        }
        Some(r) => r,
        None => DEFAULT_CAP.min((available as f64 * DEFAULT_SHARE) as u64),
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
        assert_eq!(buffer_size(None, 10 * GIB, BLOCK).unwrap(), 4 * GIB);
        assert_eq!(buffer_size(None, 50 * GIB, BLOCK).unwrap(), 16 * GIB);
    }

    #[test]
    fn a_request_above_sixty_percent_is_refused_with_both_figures() {
        // The user's case: 48 GB asked on a machine with 50 GB.
        let err = buffer_size(Some(48 * GIB), 50 * GIB, BLOCK).unwrap_err();
        let MemoryError::TooLarge { largest, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(largest, 30 * GIB);
        let text = err.to_string();
        assert!(
            text.contains("48 GiB") && text.contains("50 GiB") && text.contains("30 GiB"),
            "{text}"
        );
        assert_eq!(
            buffer_size(Some(30 * GIB), 50 * GIB, BLOCK).unwrap(),
            30 * GIB
        );
    }

    #[test]
    fn sizes_are_whole_blocks_and_at_least_a_few() {
        assert_eq!(buffer_size(Some(GIB + 1000), 50 * GIB, BLOCK).unwrap(), GIB);
        assert!(matches!(
            buffer_size(Some(BLOCK), 50 * GIB, BLOCK),
            Err(MemoryError::TooSmall { .. })
        ));
    }
}
