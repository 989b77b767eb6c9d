//! A virtual cartridge on disk: `cartridges/LABEL/cartridge.json` plus one plain file per
//! tape file (`00000.tar`, `00001.tar`, ...) holding exactly the bytes of its blocks, so
//! `tar -tf 00001.tar` reads a tape file without tapedeck.
//!
//! Layout of the tape: files `0..=filemarks`; each file but the last ends in a filemark;
//! the last (possibly empty or absent) ends at end of data. All blocks of a cartridge have
//! one size ([`CartridgeMeta::block_size`]), fixed when the tape is written from BOT.

use super::{write_json_atomic, VlibError};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Faults to inject, from `cartridge.json` (`"faults"`). Blocks are logical object numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Writing the block at this object number fails with a write error.
    pub write_error_at: Option<u64>,
    /// Reading the block at this object number fails with a medium error.
    pub read_error_at: Option<u64>,
    /// Early warning comes once the tape holds this many bytes (before the modelled point).
    pub early_warning_at_bytes: Option<u64>,
    /// The drive reports not ready with this cartridge loaded.
    pub not_ready: bool,
}

/// Usage counters kept with the cartridge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CartridgeCounters {
    pub loads: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub write_errors: u64,
    pub read_errors: u64,
}

/// `cartridge.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartridgeMeta {
    pub format: u32,
    pub barcode: String,
    /// LTO generation of the medium.
    pub generation: u8,
    /// Bytes the medium holds up to its physical end.
    pub capacity: u64,
    /// Early warning comes this many bytes before the physical end.
    pub early_warning_gap: u64,
    /// Size of every block on the tape; 0 while the tape is blank.
    pub block_size: u32,
    /// Filemarks on the tape (tape files `0..=filemarks` exist).
    pub filemarks: u64,
    /// Blocks in each closed tape file (`0..filemarks`), so that a tape file cut short on
    /// disk keeps its length on tape: its lost blocks read as medium errors and the tape
    /// files after it keep their object numbers. Absent in cartridges written before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<u64>,
    #[serde(default)]
    pub write_protected: bool,
    #[serde(default)]
    pub faults: Faults,
    #[serde(default)]
    pub counters: CartridgeCounters,
    /// A tape file is being written: set by its first block, cleared by its filemark. Found
    /// set when a drive opens, its writer died; the filemark `st` writes when the dead
    /// process's device is closed is written then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub writing: bool,
}

pub const CARTRIDGE_FORMAT: u32 = 1;

impl CartridgeMeta {
    pub fn blank(barcode: &str, generation: u8, capacity: u64) -> Self {
        CartridgeMeta {
            format: CARTRIDGE_FORMAT,
            barcode: barcode.to_string(),
            generation,
            capacity,
            early_warning_gap: default_early_warning_gap(capacity),
            block_size: 0,
            filemarks: 0,
            blocks: Vec::new(),
            write_protected: false,
            faults: Faults::default(),
            counters: CartridgeCounters::default(),
            writing: false,
        }
    }

    /// Bytes after which early warning is reported.
    pub fn early_warning_at(&self) -> u64 {
        let modelled = self.capacity.saturating_sub(self.early_warning_gap);
        self.faults
            .early_warning_at_bytes
            .map_or(modelled, |f| f.min(modelled))
    }
}

/// Early warning 1 % before the end, at least 1 MiB and at most 4 GiB.
pub fn default_early_warning_gap(capacity: u64) -> u64 {
    (capacity / 100).clamp(1 << 20, 4 << 30).min(capacity / 2)
}

pub use crate::tape::lto::generation_from_barcode;

/// What identifies a version of `cartridge.json`: it is replaced by rename, so its inode
/// changes with every write (the mtime alone can repeat within a clock tick).
fn modified(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    Some((m.ino(), m.modified().ok()?))
}

/// A cartridge's directory with its metadata and tape-file sizes, opened for use in a drive.
pub struct Cartridge {
    pub dir: PathBuf,
    pub meta: CartridgeMeta,
    /// Blocks in each tape file, `filemarks + 1` entries.
    pub file_blocks: Vec<u64>,
    /// Blocks of each tape file that are not (whole) on disk: the file was cut short by a
    /// crash, a full disk or damage. Reading them is a medium error.
    lost: Vec<std::ops::Range<u64>>,
    /// Open handle on the last tape file while appending.
    append: Option<(u64, File)>,
    /// Open handle on the tape file being read, so a read is one `pread`.
    reading: Option<(u64, File)>,
    /// The version of `cartridge.json` whose faults are in `meta`.
    faults_seen: Option<(u64, std::time::SystemTime)>,
}

impl Cartridge {
    pub fn meta_path(dir: &Path) -> PathBuf {
        dir.join("cartridge.json")
    }

    pub fn tape_file_path(dir: &Path, index: u64) -> PathBuf {
        dir.join(format!("{index:05}.tar"))
    }

    /// Reads `cartridge.json`; a missing or unreadable one is an error naming the file.
    pub fn read_meta(dir: &Path) -> Result<CartridgeMeta, VlibError> {
        let path = Self::meta_path(dir);
        let text = fs::read_to_string(&path).map_err(|e| VlibError::io(&path, e))?;
        let meta: CartridgeMeta = serde_json::from_str(&text).map_err(|e| VlibError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if meta.format != CARTRIDGE_FORMAT {
            return Err(VlibError::Corrupt {
                path,
                detail: format!(
                    "format {} is not one this tapedeck knows ({CARTRIDGE_FORMAT})",
                    meta.format
                ),
            });
        }
        Ok(meta)
    }

    /// Creates a blank cartridge directory; refuses to touch an existing one.
    pub fn create(dir: &Path, meta: &CartridgeMeta) -> Result<(), VlibError> {
        if dir.exists() {
            return Err(VlibError::Exists(dir.to_path_buf()));
        }
        fs::create_dir_all(dir).map_err(|e| VlibError::io(dir, e))?;
        write_json_atomic(&Self::meta_path(dir), meta)
    }

    /// Opens a cartridge: reads its metadata and measures the tape files against it. A
    /// tape file cut short (not a whole number of blocks, or fewer blocks than
    /// `cartridge.json` records) keeps its recorded length; what is missing reads as a
    /// medium error, so the cut costs only that tape file's blocks.
    pub fn open(dir: &Path) -> Result<Cartridge, VlibError> {
        let meta = Self::read_meta(dir)?;
        let recorded = (meta.blocks.len() as u64 == meta.filemarks).then_some(&meta.blocks);
        let mut file_blocks = Vec::with_capacity(meta.filemarks as usize + 1);
        let mut lost = Vec::with_capacity(meta.filemarks as usize + 1);
        for index in 0..=meta.filemarks {
            let path = Self::tape_file_path(dir, index);
            let len = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && index == meta.filemarks => 0,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(VlibError::Corrupt {
                        path,
                        detail: format!(
                            "tape file missing: cartridge.json counts {} filemarks",
                            meta.filemarks
                        ),
                    })
                }
                Err(e) => return Err(VlibError::io(&path, e)),
            };
            if len > 0 && meta.block_size == 0 {
                return Err(VlibError::Corrupt {
                    path,
                    detail: format!("{len} bytes of data but no block size recorded"),
                });
            }
            let whole = len.checked_div(meta.block_size as u64).unwrap_or(0);
            let cut = whole + u64::from(len % meta.block_size.max(1) as u64 != 0);
            let blocks = recorded
                .and_then(|r| r.get(index as usize))
                .map_or(cut, |&r| r.max(cut));
            if blocks > whole {
                tracing::warn!(
                    "{}: {len} bytes holds {whole} whole {}-byte blocks of {blocks}; blocks \
                     {whole} to {} of this tape file read as medium errors",
                    path.display(),
                    meta.block_size,
                    blocks - 1
                );
            }
            file_blocks.push(blocks);
            lost.push(whole..blocks);
        }
        Ok(Cartridge {
            lost,
            faults_seen: modified(&Self::meta_path(dir)),
            dir: dir.to_path_buf(),
            meta,
            file_blocks,
            append: None,
            reading: None,
        })
    }

    pub fn save_meta(&mut self) -> Result<(), VlibError> {
        self.meta.blocks = self.file_blocks[..self.meta.filemarks as usize].to_vec();
        let path = Self::meta_path(&self.dir);
        write_json_atomic(&path, &self.meta)?;
        self.faults_seen = modified(&path);
        Ok(())
    }

    /// Picks up faults injected into `cartridge.json` while the cartridge is in use (by
    /// `vlib set` or a test): one `stat` per call, a re-read only when the file changed.
    pub fn refresh_faults(&mut self) -> Result<(), VlibError> {
        let path = Self::meta_path(&self.dir);
        let now = modified(&path);
        if now != self.faults_seen {
            self.meta.faults = Self::read_meta(&self.dir)?.faults;
            self.faults_seen = now;
        }
        Ok(())
    }

    /// Bytes recorded on the tape.
    pub fn used_bytes(&self) -> u64 {
        self.file_blocks.iter().sum::<u64>() * self.meta.block_size as u64
    }

    /// Logical object number of the first block of tape file `file`.
    pub fn file_start(&self, file: u64) -> u64 {
        self.file_blocks[..file as usize]
            .iter()
            .map(|b| b + 1)
            .sum()
    }

    /// Logical object number of end of data.
    pub fn eod(&self) -> u64 {
        self.file_start(self.meta.filemarks) + self.file_blocks[self.meta.filemarks as usize]
    }

    /// (tape file, block in file) of logical object `object`; `None` beyond end of data.
    pub fn locate(&self, object: u64) -> Option<(u64, u64)> {
        let mut start = 0;
        for (file, &blocks) in self.file_blocks.iter().enumerate() {
            let end = start + blocks; // the filemark's object number, or EOD for the last file
            if object <= end {
                return Some((file as u64, object - start));
            }
            start = end + 1;
        }
        None
    }

    /// Cuts the tape at (file, block): everything from there on is gone, as when a drive
    /// writes in the middle of a tape. The metadata is saved before files are removed,
    /// so a crash in between leaves only stale files beyond end of data.
    pub fn truncate_at(&mut self, file: u64, block: u64) -> Result<(), VlibError> {
        if file == self.meta.filemarks && block == self.file_blocks[file as usize] {
            return Ok(());
        }
        self.append = None;
        self.reading = None;
        let old_filemarks = self.meta.filemarks;
        self.meta.filemarks = file;
        self.file_blocks.truncate(file as usize + 1);
        self.file_blocks[file as usize] = block;
        self.lost.truncate(file as usize + 1);
        let cut = &mut self.lost[file as usize];
        *cut = cut.start.min(block)..cut.end.min(block);
        if file == 0 && block == 0 {
            self.meta.block_size = 0;
        }
        self.save_meta()?;
        let path = Self::tape_file_path(&self.dir, file);
        if path.exists() {
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| VlibError::io(&path, e))?;
            f.set_len(block * self.meta.block_size as u64)
                .map_err(|e| VlibError::io(&path, e))?;
        }
        for stale in file + 1..=old_filemarks {
            let p = Self::tape_file_path(&self.dir, stale);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(VlibError::io(&p, e)),
            }
        }
        Ok(())
    }

    /// Whether block `block` of tape file `file` is lost (the file was cut short on disk).
    pub fn is_lost(&self, file: u64, block: u64) -> bool {
        self.lost
            .get(file as usize)
            .is_some_and(|cut| cut.contains(&block))
    }

    /// Appends one block to the last tape file (the caller has truncated to end of data).
    /// The block goes on whole or not at all, as on a drive: a write that fails part-way
    /// (a full or failing disk) is cut back to the last whole block.
    pub fn append_block(&mut self, data: &[u8]) -> Result<(), VlibError> {
        let file = self.meta.filemarks;
        if self.append.as_ref().map(|(i, _)| *i) != Some(file) {
            let path = Self::tape_file_path(&self.dir, file);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| VlibError::io(&path, e))?;
            self.append = Some((file, f));
        }
        let (_, f) = self.append.as_mut().expect("append handle opened above");
        let (head, tail) = data.split_at(data.len() / 2);
        let written = f
            .write_all(head)
            .and_then(|_| crate::fault::hit(crate::fault::Point::VtapeWrite))
            .and_then(|_| f.write_all(tail));
        let path = Self::tape_file_path(&self.dir, file);
        if let Err(e) = written {
            let whole = self.file_blocks[file as usize] * self.meta.block_size as u64;
            self.append = None;
            let cut_back = OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(whole));
            if let Err(cut) = cut_back {
                tracing::error!(
                    "{}: cannot cut a failed block write back to {whole} bytes: {cut}",
                    path.display()
                );
            }
            return Err(VlibError::BlockWrite { path, source: e });
        }
        self.file_blocks[file as usize] += 1;
        Ok(())
    }

    /// Ends the last tape file with a filemark and starts an empty one.
    pub fn append_filemark(&mut self) -> Result<(), VlibError> {
        self.append = None;
        let last = self.meta.filemarks;
        let path = Self::tape_file_path(&self.dir, last);
        if !path.exists() {
            File::create(&path).map_err(|e| VlibError::io(&path, e))?;
        }
        self.meta.filemarks += 1;
        self.file_blocks.push(0);
        self.lost.push(0..0);
        self.meta.writing = false;
        self.save_meta()
    }

    /// Marks that a tape file is being written (before its first block goes on tape).
    pub fn start_writing(&mut self) -> Result<(), VlibError> {
        if !self.meta.writing {
            self.meta.writing = true;
            self.save_meta()?;
        }
        Ok(())
    }

    /// Closes a tape file whose writer died without a filemark, as `st` does when the
    /// dead process's device is closed. Returns whether a filemark was written.
    pub fn close_abandoned_file(&mut self) -> Result<bool, VlibError> {
        // A part of a block at end of data is a block write that never finished: a drive
        // never records one.
        let last = self.meta.filemarks;
        let whole = self.lost[last as usize].start;
        if whole < self.file_blocks[last as usize] {
            tracing::warn!(
                "{}: tape file {last} ends in part of a block; cut back to its {whole} whole \
                 blocks",
                self.meta.barcode
            );
            let path = Self::tape_file_path(&self.dir, last);
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| VlibError::io(&path, e))?;
            f.set_len(whole * self.meta.block_size as u64)
                .map_err(|e| VlibError::io(&path, e))?;
            self.file_blocks[last as usize] = whole;
            self.lost[last as usize] = whole..whole;
        }
        if !self.meta.writing {
            return Ok(false);
        }
        if self.file_blocks.last().copied().unwrap_or(0) > 0 {
            self.append_filemark()?;
            return Ok(true);
        }
        self.meta.writing = false;
        self.save_meta()?;
        Ok(false)
    }

    /// Reads block `block` of tape file `file` into `buf` (exactly one block long).
    pub fn read_block(&mut self, file: u64, block: u64, buf: &mut [u8]) -> Result<(), VlibError> {
        if let Some((_, f)) = &mut self.append {
            f.flush()
                .map_err(|e| VlibError::io(&Self::tape_file_path(&self.dir, file), e))?;
        }
        let path = Self::tape_file_path(&self.dir, file);
        let f = match &mut self.reading {
            Some((open, f)) if *open == file => f,
            slot => {
                let f = File::open(&path).map_err(|e| VlibError::io(&path, e))?;
                &mut slot.insert((file, f)).1
            }
        };
        std::os::unix::fs::FileExt::read_exact_at(f, buf, block * self.meta.block_size as u64)
            .map_err(|e| VlibError::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_generation_from_barcode() {
        assert_eq!(generation_from_barcode("TD0001L9"), Some(9));
        assert_eq!(generation_from_barcode("ABC123L6"), Some(6));
        assert_eq!(generation_from_barcode("CLN001CU"), None);
        assert_eq!(generation_from_barcode("L"), None);
    }

    #[test]
    fn objects_map_to_files_and_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("T1");
        Cartridge::create(&cdir, &CartridgeMeta::blank("T1", 9, 1 << 30)).unwrap();
        let mut c = Cartridge::open(&cdir).unwrap();
        c.meta.block_size = 4;
        for _ in 0..3 {
            c.append_block(b"abcd").unwrap();
        }
        c.append_filemark().unwrap();
        c.append_block(b"efgh").unwrap();
        // objects: 0,1,2 blocks; 3 filemark; 4 block; EOD 5
        assert_eq!(c.eod(), 5);
        assert_eq!(c.locate(0), Some((0, 0)));
        assert_eq!(c.locate(3), Some((0, 3)));
        assert_eq!(c.locate(4), Some((1, 0)));
        assert_eq!(c.locate(5), Some((1, 1)));
        assert_eq!(c.locate(6), None);
        assert_eq!(fs::read(cdir.join("00000.tar")).unwrap(), b"abcdabcdabcd");
        let reopened = Cartridge::open(&cdir).unwrap();
        assert_eq!(reopened.file_blocks, vec![3, 1]);
        c.truncate_at(0, 1).unwrap();
        assert_eq!(c.eod(), 1);
        assert!(!cdir.join("00001.tar").exists());
        assert_eq!(fs::read(cdir.join("00000.tar")).unwrap(), b"abcd");
    }

    #[test]
    fn corrupt_metadata_is_named_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cartridge.json"), "{ not json").unwrap();
        let err = Cartridge::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("cartridge.json"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join("cartridge.json")).unwrap(),
            "{ not json"
        );
    }
}
