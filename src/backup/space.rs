//! Disk space checked before a backup starts: the free space of a file system (read once,
//! here, for the spool and for the catalogue), and whether the catalogue's disk can take
//! the files the backup will record.
//!
//! The catalogue's need is the expected files times the bytes per file the catalogue
//! measures (its database and write-ahead log over the files it holds), plus a second
//! batch of them (the write-ahead log holds a whole batch before it is copied into the
//! database) and a fixed margin. A catalogue too small to measure counts
//! [`DEFAULT_BYTES_PER_FILE`].

use crate::catalog::{Catalog, CatalogError, FileBatch};
use crate::units::format_size;
use std::path::{Path, PathBuf};

/// Bytes per file of a catalogue too small to measure: on the safe side of what large
/// catalogues measure, name and path indexes included.
pub const DEFAULT_BYTES_PER_FILE: u64 = 200;

/// Below this many files, a catalogue's size is mostly schema and free pages: the default
/// is used instead of what it measures.
pub const MEASURED_FROM_FILES: u64 = 10_000;

/// Room always kept free on the catalogue's disk, whatever the backup.
pub const MARGIN: u64 = 16 << 20;

/// Bytes an unprivileged user may still write in the file system holding `dir`.
pub fn available(dir: &Path) -> Result<u64, nix::Error> {
    let st = nix::sys::statvfs::statvfs(dir)?;
    Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// What the catalogue's disk must hold for one backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogNeed {
    /// Files the backup is expected to record.
    pub files: u64,
    pub bytes_per_file: u64,
    /// Bytes that must be free.
    pub bytes: u64,
}

impl CatalogNeed {
    /// The need for `files` files at `bytes_per_file` each.
    pub fn new(files: u64, bytes_per_file: u64) -> CatalogNeed {
        let in_log = files.min(FileBatch::BATCH as u64);
        let bytes = files
            .saturating_add(in_log)
            .saturating_mul(bytes_per_file)
            .saturating_add(MARGIN);
        CatalogNeed {
            files,
            bytes_per_file,
            bytes,
        }
    }

    /// Whether `free` bytes are enough.
    pub fn fits(&self, free: u64) -> bool {
        free >= self.bytes
    }
}

/// Bytes per file of a catalogue of `catalogue_bytes` (database and log) holding `files`.
pub fn bytes_per_file(catalogue_bytes: u64, files: u64) -> u64 {
    if files < MEASURED_FROM_FILES {
        DEFAULT_BYTES_PER_FILE
    } else {
        catalogue_bytes.div_ceil(files)
    }
}

/// Why a backup may not start for the catalogue's disk.
#[derive(Debug, thiserror::Error)]
pub enum CatalogSpaceError {
    #[error(
        "catalogue {}: its disk has {} free, the backup needs about {} ({} files expected \
         x {} B per file, with the write-ahead log and a margin of {}); free some space on \
         that disk, or move the catalogue ([catalog] path) to a larger one",
        path.display(), format_size(*free), format_size(need.bytes), need.files,
        need.bytes_per_file, format_size(MARGIN)
    )]
    NoSpace {
        path: PathBuf,
        free: u64,
        need: CatalogNeed,
    },
    #[error("catalogue {}: cannot read the free space of its disk: {reason}", path.display())]
    Unknown { path: PathBuf, reason: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl CatalogSpaceError {
    /// Errors the operator can fix before trying again (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, CatalogSpaceError::NoSpace { .. })
    }
}

/// Refuses a backup expected to record `expected_files` when the catalogue's disk cannot
/// take them: what it needs, from what the catalogue measures.
pub fn check_catalog(cat: &Catalog, expected_files: u64) -> Result<CatalogNeed, CatalogSpaceError> {
    let path = cat.path();
    let unknown = |reason: String| CatalogSpaceError::Unknown {
        path: path.to_path_buf(),
        reason,
    };
    let size_of = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let catalogue_bytes = size_of(path) + size_of(Path::new(&wal));
    let need = CatalogNeed::new(
        expected_files,
        bytes_per_file(catalogue_bytes, cat.files_recorded()?),
    );
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let free = available(dir).map_err(|e| unknown(e.desc().to_string()))?;
    if !need.fits(free) {
        return Err(CatalogSpaceError::NoSpace {
            path: path.to_path_buf(),
            free,
            need,
        });
    }
    Ok(need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_catalogue_counts_the_default_per_file() {
        assert_eq!(bytes_per_file(0, 0), DEFAULT_BYTES_PER_FILE);
        // 3 files in a fresh 200 KiB database: schema, not files.
        assert_eq!(bytes_per_file(200 << 10, 3), DEFAULT_BYTES_PER_FILE);
        assert_eq!(bytes_per_file(1_500_000, 10_000), 150);
        assert_eq!(bytes_per_file(1_500_001, 10_000), 151);
    }

    #[test]
    fn the_need_is_files_and_one_batch_in_the_log_and_a_margin() {
        assert_eq!(CatalogNeed::new(0, 200).bytes, MARGIN);
        assert_eq!(CatalogNeed::new(1_000, 200).bytes, 2 * 1_000 * 200 + MARGIN);
        // The write-ahead log holds one batch at most.
        let batch = FileBatch::BATCH as u64;
        assert_eq!(
            CatalogNeed::new(1_000_000, 150).bytes,
            (1_000_000 + batch) * 150 + MARGIN
        );
        assert_eq!(CatalogNeed::new(u64::MAX, 200).bytes, u64::MAX);
    }

    #[test]
    fn a_disk_with_less_free_than_needed_is_refused() {
        let need = CatalogNeed::new(40_041, 200);
        assert!(need.fits(need.bytes));
        assert!(need.fits(u64::MAX));
        assert!(!need.fits(need.bytes - 1));
        assert!(!need.fits(0));
        // The case: 40 041 files and a few MiB left.
        assert!(!need.fits(10 << 20));
    }

    #[test]
    fn the_refusal_names_the_catalogue_the_free_and_the_needed_space() {
        let err = CatalogSpaceError::NoSpace {
            path: PathBuf::from("/srv/tapedeck/catalog.db"),
            free: 3 << 20,
            need: CatalogNeed::new(40_041, 200),
        };
        assert!(err.is_bad_input());
        let text = err.to_string();
        for part in [
            "catalogue /srv/tapedeck/catalog.db",
            "3 MiB free",
            "needs about 31.27 MiB",
            "40041 files expected x 200 B per file",
            "free some space",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
    }

    #[test]
    fn a_fresh_catalogue_on_a_disk_with_room_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let need = check_catalog(&cat, 1_000).unwrap();
        assert_eq!(need.bytes_per_file, DEFAULT_BYTES_PER_FILE);
        assert_eq!(need.files, 1_000);
        assert!(available(dir.path()).unwrap() >= need.bytes);
        // More files than any disk holds.
        match check_catalog(&cat, u64::MAX / 1_000) {
            Err(CatalogSpaceError::NoSpace { free, need, .. }) => assert!(free < need.bytes),
            other => panic!("{other:?}"),
        }
    }
}
