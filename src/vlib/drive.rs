//! A virtual drive: [`TapeDrive`] over a [`Cartridge`] directory, with the semantics the
//! conformance suite checks against Linux `st` (filemark on rewind after writing,
//! early warning then alternating `ENOSPC`, LOCATE past end of data, short reads) and the
//! streaming simulation of [`super::streaming`].

use super::cartridge::Cartridge;
use super::streaming::{Clock, ScaledClock, StreamStats, Streamer};
use super::{Library, VlibError};
use crate::tape::drive_model::DriveModel;
use crate::tape::{
    BlockLimits, DriveStatus, ReadOutcome, Result, SpaceOutcome, TapeDrive, TapeError,
    WriteOutcome, ST_MAX_BLOCK_SIZE,
};
use nix::fcntl::Flock;
use std::fs::File;
use std::sync::Arc;

/// Where the drive is relative to early warning, mirroring `st`'s end-of-medium states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eom {
    /// Before early warning.
    Normal,
    /// A write landed in the early-warning zone; the next write is refused (`ENOSPC`).
    Warned,
    /// A write was refused; the next one is let through.
    Refused,
    /// A filemark was written in the zone; writes go on until the physical end.
    AfterFilemark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Numbers {
    Known,
    FileOnly,
    Unknown,
}

/// A drive of a [`Library`], opened for exclusive use (a flock held until drop).
pub struct VirtualDrive {
    lib: Library,
    name: String,
    index: usize,
    _lock: Flock<File>,
    model: DriveModel,
    block_size: u32,
    cart: Option<Cartridge>,
    loaded: bool,
    /// (tape file, block within it); block == blocks in the file means at its filemark.
    pos: (u64, u64),
    last_op_write: bool,
    eom: Eom,
    eod_flag: bool,
    /// The last operation read, wrote or spaced over a filemark (st's `GMT_EOF`).
    filemark_flag: bool,
    /// What `st` can tell of the file and block number: after a LOCATE neither, after
    /// spacing back or to end of data not the block.
    numbers: Numbers,
    /// A write hit the physical end: no filemark fits any more.
    at_end: bool,
    streamer: Option<Streamer>,
    /// Streaming counters already added to `library.json`.
    stats_saved: StreamStats,
}

impl VirtualDrive {
    pub(super) fn open(lib: Library, name: &str) -> Result<VirtualDrive, VlibError> {
        let file = lib.read()?;
        let index = file.drive_index(name)?;
        let lock = lib
            .lock(&format!("drive-{name}"), false)
            .map_err(|e| match e {
                VlibError::InUse { holders, .. } => VlibError::InUse {
                    what: format!("virtual drive {name}"),
                    holders,
                },
                other => other,
            })?;
        let entry = &file.drives[index];
        let mut cart = match &entry.cartridge {
            Some(barcode) => Some(Cartridge::open(&lib.cartridge_dir(barcode))?),
            None => None,
        };
        if let Some(c) = cart.as_mut() {
            if c.close_abandoned_file()? {
                tracing::warn!(
                    "{name}: the last writer of {} died mid-file; its tape file was closed \
                     with a filemark",
                    c.meta.barcode
                );
            }
        }
        let streamer = (file.time_scale > 0.0).then(|| {
            Streamer::new(
                entry.model.clone(),
                Arc::new(ScaledClock::new(file.time_scale)),
            )
        });
        let mut drive = VirtualDrive {
            name: name.to_string(),
            index,
            _lock: lock,
            model: entry.model.clone(),
            block_size: entry.block_size,
            loaded: entry.loaded && cart.is_some(),
            cart,
            pos: (0, 0),
            last_op_write: false,
            eom: Eom::Normal,
            eod_flag: false,
            filemark_flag: false,
            numbers: Numbers::Unknown,
            at_end: false,
            streamer,
            stats_saved: StreamStats::default(),
            lib,
        };
        // A drive keeps its position between opens of a non-rewinding device.
        if let (Some(c), Some(p)) = (&drive.cart, entry.position) {
            drive.pos = c.locate(p.min(c.eod())).unwrap_or((0, 0));
        }
        Ok(drive)
    }

    /// Replaces the drive's clock (simulations drive a [`super::streaming::SimClock`]).
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.streamer = Some(Streamer::new(self.model.clone(), clock));
        self.stats_saved = StreamStats::default();
    }

    /// The streaming model's counters for this session (none at time scale 0).
    pub fn stream_stats(&self) -> Option<StreamStats> {
        self.streamer.as_ref().map(Streamer::stats)
    }

    /// Barcode of the cartridge in the drive.
    pub fn barcode(&self) -> Option<&str> {
        self.cart.as_ref().map(|c| c.meta.barcode.as_str())
    }

    fn not_ready(&self) -> TapeError {
        TapeError::NotReady {
            drive: self.name.clone(),
        }
    }

    /// Picks up what a changer (maybe in another process) did while the drive held no
    /// loaded cartridge: a cartridge moved in (and loaded), or an ejected one taken out.
    fn refresh(&mut self) -> Result<(), VlibError> {
        if self.loaded {
            return Ok(());
        }
        let file = self.lib.read()?;
        let entry = &file.drives[self.index];
        if self.barcode() != entry.cartridge.as_deref() {
            self.cart = match &entry.cartridge {
                Some(barcode) => Some(Cartridge::open(&self.lib.cartridge_dir(barcode))?),
                None => None,
            };
            self.pos = (0, 0);
        }
        self.loaded = entry.loaded && self.cart.is_some();
        Ok(())
    }

    fn ready(&mut self) -> Result<()> {
        self.refresh()?;
        if let Some(c) = &mut self.cart {
            c.refresh_faults()?;
        }
        match &self.cart {
            Some(c) if self.loaded && !c.meta.faults.not_ready => Ok(()),
            _ => Err(self.not_ready()),
        }
    }

    fn cart(&self) -> &Cartridge {
        self.cart.as_ref().expect("ready() checked the cartridge")
    }

    fn cart_mut(&mut self) -> &mut Cartridge {
        self.cart.as_mut().expect("ready() checked the cartridge")
    }

    fn object(&self) -> u64 {
        self.cart().file_start(self.pos.0) + self.pos.1
    }

    fn eod_pos(&self) -> (u64, u64) {
        let c = self.cart();
        (c.meta.filemarks, c.file_blocks[c.meta.filemarks as usize])
    }

    fn check_writable(&mut self) -> Result<()> {
        self.ready()?;
        let c = self.cart();
        if c.meta.write_protected {
            return Err(TapeError::WriteProtected {
                drive: self.name.clone(),
            });
        }
        self.compatible(c.meta.generation, "write")
    }

    /// Whether the drive can `what` (read, load or write) media of this generation.
    fn compatible(&self, generation: u8, what: &str) -> Result<()> {
        let ok = if what == "write" {
            self.model.writes(generation)
        } else {
            self.model.reads(generation)
        };
        if ok {
            return Ok(());
        }
        Err(TapeError::Incompatible {
            drive: self.name.clone(),
            detail: format!(
                "an {} drive cannot {what} LTO-{generation} cartridge {}",
                self.model.name,
                self.barcode().unwrap_or("?")
            ),
        })
    }

    /// Cuts the tape at the current position if it is before end of data.
    fn truncate_here(&mut self) -> Result<()> {
        let (file, block) = self.pos;
        self.cart_mut().truncate_at(file, block)?;
        Ok(())
    }

    /// The filemark `st` writes before moving away from freshly written data.
    fn close_tape_file(&mut self) -> Result<()> {
        if self.last_op_write && !self.at_end {
            self.write_filemarks(1, false)?;
        }
        Ok(())
    }

    fn flush(&mut self) {
        if let Some(s) = &mut self.streamer {
            s.flush();
        }
    }

    fn save_drive_state(&mut self) -> Result<(), VlibError> {
        let position = match &self.cart {
            Some(c) => Some(c.file_start(self.pos.0) + self.pos.1),
            None => None,
        };
        let now = self
            .streamer
            .as_ref()
            .map(Streamer::stats)
            .unwrap_or_default();
        let before = std::mem::replace(&mut self.stats_saved, now);
        let (index, block_size, loaded) = (self.index, self.block_size, self.loaded);
        self.lib.update(|f| {
            let e = &mut f.drives[index];
            e.position = position;
            e.block_size = block_size;
            e.loaded = loaded;
            e.stats.repositions += now.repositions - before.repositions;
            e.stats.bytes_written += now.bytes_written - before.bytes_written;
            e.stats.streaming_secs += now.streaming_secs - before.streaming_secs;
            e.stats.repositioning_secs += now.repositioning_secs - before.repositioning_secs;
            Ok(())
        })
    }
}

impl Drop for VirtualDrive {
    fn drop(&mut self) {
        if self.ready().is_ok() {
            if let Err(e) = self.close_tape_file() {
                tracing::error!("{}: closing the tape file on close failed: {e}", self.name);
            }
            self.flush();
            if let Err(e) = self.cart_mut().save_meta() {
                tracing::error!("{}: saving the cartridge counters failed: {e}", self.name);
            }
        }
        if let Err(e) = self.save_drive_state() {
            tracing::error!("{}: saving the drive state failed: {e}", self.name);
        }
    }
}

impl TapeDrive for VirtualDrive {
    fn name(&self) -> &str {
        &self.name
    }

    fn status(&mut self) -> Result<DriveStatus> {
        self.refresh()?;
        let mut st = DriveStatus {
            block_size: self.block_size,
            door_open: self.cart.is_none() || !self.loaded,
            ..DriveStatus::default()
        };
        if self.ready().is_err() {
            return Ok(st);
        }
        let (file, block) = self.pos;
        let object = self.object();
        st.online = true;
        st.bot = object == 0;
        st.filemark = self.filemark_flag;
        st.eod = self.eod_flag;
        st.early_warning = self.eom == Eom::Warned;
        st.write_protected = self.cart().meta.write_protected;
        st.density = self.cart().meta.generation;
        st.file_number = (self.numbers != Numbers::Unknown).then_some(file);
        st.block_number = (self.numbers == Numbers::Known).then_some(block);
        st.position = Some(object);
        Ok(st)
    }

    fn block_limits(&mut self) -> Result<BlockLimits> {
        Ok(BlockLimits {
            min: 1,
            max: self.model.max_block.min(ST_MAX_BLOCK_SIZE),
        })
    }

    fn set_block_size(&mut self, bytes: u32) -> Result<()> {
        let limits = self.block_limits()?;
        if bytes != 0 && !(limits.min..=limits.max).contains(&bytes) {
            return Err(TapeError::BlockSizeUnsupported {
                drive: self.name.clone(),
                requested: bytes as u64,
                min: limits.min,
                max: limits.max,
            });
        }
        self.block_size = bytes;
        Ok(())
    }

    fn write_block(&mut self, block: &[u8]) -> Result<WriteOutcome> {
        self.check_writable()?;
        let len = block.len();
        let max = self.block_limits()?.max as usize;
        let fixed = self.block_size != 0;
        if (fixed && len != self.block_size as usize) || len == 0 || len > max {
            return Err(TapeError::WrongBlockLength {
                drive: self.name.clone(),
                got: len,
                block_size: self.block_size,
            });
        }
        if self.eom == Eom::Warned {
            self.eom = Eom::Refused;
            self.eod_flag = true;
            return Ok(WriteOutcome::EarlyWarning);
        }
        let object = self.object();
        self.truncate_here()?;
        self.eod_flag = false;
        let name = self.name.clone();
        let cart = self.cart_mut();
        if cart.meta.block_size == 0 {
            cart.meta.block_size = len as u32;
            cart.save_meta()?;
        } else if cart.meta.block_size as usize != len {
            return Err(TapeError::Incompatible {
                drive: name,
                detail: format!(
                    "cartridge {} holds {}-byte blocks and a virtual cartridge keeps one block \
                     size: set the drive to {} bytes (`tape setblk`) or rewrite the tape from BOT",
                    cart.meta.barcode, cart.meta.block_size, cart.meta.block_size
                ),
            });
        }
        if cart.used_bytes() + len as u64 > cart.meta.capacity {
            self.at_end = true;
            self.last_op_write = false;
            return Err(TapeError::EndOfMedium { drive: name });
        }
        if cart.meta.faults.write_error_at == Some(object) {
            cart.meta.counters.write_errors += 1;
            return Err(TapeError::WriteFailed {
                drive: name,
                position: object,
                detail: "injected write error (faults.write_error_at in cartridge.json)".into(),
            });
        }
        cart.start_writing()?;
        match cart.append_block(block) {
            Ok(()) => {}
            // A disk that fails under the cartridge is a write error of the drive, as a
            // drive reports one; a full disk is the host's, not the medium's.
            Err(VlibError::BlockWrite { path, source })
                if source.kind() != std::io::ErrorKind::StorageFull =>
            {
                cart.meta.counters.write_errors += 1;
                return Err(TapeError::WriteFailed {
                    drive: name,
                    position: object,
                    detail: format!("{}: {source}", path.display()),
                });
            }
            Err(e) => return Err(e.into()),
        }
        cart.meta.counters.bytes_written += len as u64;
        let past_warning = cart.used_bytes() > cart.meta.early_warning_at();
        self.pos.1 += 1;
        self.last_op_write = true;
        self.filemark_flag = false;
        if past_warning && self.eom != Eom::AfterFilemark {
            self.eom = Eom::Warned;
        }
        if let Some(s) = &mut self.streamer {
            s.write(len as u64);
        }
        Ok(WriteOutcome::Written)
    }

    fn write_filemarks(&mut self, count: u32, immediate: bool) -> Result<()> {
        self.check_writable()?;
        if self.at_end && count > 0 {
            return Err(TapeError::EndOfMedium {
                drive: self.name.clone(),
            });
        }
        self.truncate_here()?;
        for _ in 0..count {
            self.cart_mut().append_filemark()?;
            self.pos = (self.pos.0 + 1, 0);
        }
        self.last_op_write = false;
        self.eod_flag = false;
        if count > 0 {
            self.filemark_flag = true;
            if self.numbers == Numbers::FileOnly {
                self.numbers = Numbers::Known;
            }
            if self.eom != Eom::Normal {
                self.eom = Eom::AfterFilemark;
            }
        }
        if !immediate {
            self.flush();
        }
        Ok(())
    }

    fn read_block(&mut self, buf: &mut [u8]) -> Result<ReadOutcome> {
        self.ready()?;
        self.last_op_write = false;
        let (file, block) = self.pos;
        let blocks = self.cart().file_blocks[file as usize];
        if block == blocks {
            if file < self.cart().meta.filemarks {
                self.pos = (file + 1, 0);
                self.eod_flag = false;
                self.filemark_flag = true;
                if self.numbers == Numbers::FileOnly {
                    self.numbers = Numbers::Known;
                }
                return Ok(ReadOutcome::Filemark);
            }
            self.eod_flag = true;
            self.filemark_flag = false;
            if self.numbers == Numbers::Known {
                self.numbers = Numbers::FileOnly;
            }
            return Ok(ReadOutcome::EndOfData);
        }
        self.eod_flag = false;
        self.filemark_flag = false;
        self.compatible(self.cart().meta.generation, "read")?;
        let tape_block = self.cart().meta.block_size as usize;
        if self.block_size != 0 && self.block_size as usize != tape_block {
            return Err(TapeError::Incompatible {
                drive: self.name.clone(),
                detail: format!(
                    "the tape holds {tape_block}-byte blocks but the drive is set to {} bytes \
                     (`tape setblk {tape_block}`)",
                    self.block_size
                ),
            });
        }
        if buf.len() < tape_block {
            let skipped = self.block_size == 0;
            if skipped {
                self.pos.1 += 1;
            }
            return Err(TapeError::ShortBuffer {
                drive: self.name.clone(),
                buffer: buf.len(),
                block: Some(tape_block),
                skipped,
            });
        }
        let object = self.object();
        if self.cart().is_lost(file, block) {
            self.cart_mut().meta.counters.read_errors += 1;
            return Err(TapeError::Medium {
                drive: self.name.clone(),
                position: object,
                detail: format!(
                    "block {block} of tape file {file} is not whole on cartridge {} (the tape \
                     file was cut short)",
                    self.cart().meta.barcode
                ),
            });
        }
        if self.cart().meta.faults.read_error_at == Some(object) {
            // As a drive does: the tape stays at the block it could not read.
            self.cart_mut().meta.counters.read_errors += 1;
            return Err(TapeError::Medium {
                drive: self.name.clone(),
                position: object,
                detail: "injected medium error (faults.read_error_at in cartridge.json)".into(),
            });
        }
        self.cart_mut()
            .read_block(file, block, &mut buf[..tape_block])?;
        self.cart_mut().meta.counters.bytes_read += tape_block as u64;
        self.pos.1 += 1;
        if let Some(s) = &mut self.streamer {
            s.read(tape_block as u64);
        }
        Ok(ReadOutcome::Block(tape_block))
    }

    fn rewind(&mut self) -> Result<()> {
        self.ready()?;
        self.close_tape_file()?;
        self.flush();
        self.pos = (0, 0);
        self.eom = Eom::Normal;
        self.eod_flag = false;
        self.filemark_flag = false;
        self.numbers = Numbers::Known;
        self.at_end = false;
        Ok(())
    }

    fn space_filemarks(&mut self, count: i32) -> Result<SpaceOutcome> {
        self.ready()?;
        let mut remaining = count;
        if count < 0 && self.last_op_write {
            // st writes the filemark and spaces back over it too.
            self.close_tape_file()?;
            remaining -= 1;
        }
        self.last_op_write = false;
        self.eom = Eom::Normal;
        self.eod_flag = false;
        self.filemark_flag = false;
        self.at_end = false;
        while remaining > 0 {
            let file = self.pos.0;
            if file < self.cart().meta.filemarks {
                self.pos = (file + 1, 0);
                self.filemark_flag = true;
                if self.numbers == Numbers::FileOnly {
                    self.numbers = Numbers::Known;
                }
            } else {
                self.pos = self.eod_pos();
                self.eod_flag = true;
                self.filemark_flag = false;
                if self.numbers == Numbers::Known {
                    self.numbers = Numbers::FileOnly;
                }
                return Ok(SpaceOutcome::EndOfData);
            }
            remaining -= 1;
        }
        while remaining < 0 {
            let file = self.pos.0;
            if file == 0 {
                self.pos = (0, 0);
                return Ok(SpaceOutcome::BeginningOfTape);
            }
            self.pos = (file - 1, self.cart().file_blocks[file as usize - 1]);
            if self.numbers == Numbers::Known {
                self.numbers = Numbers::FileOnly;
            }
            remaining += 1;
        }
        Ok(SpaceOutcome::Done)
    }

    fn space_to_eod(&mut self) -> Result<()> {
        self.ready()?;
        self.last_op_write = false;
        self.pos = self.eod_pos();
        self.eod_flag = true;
        self.filemark_flag = false;
        self.at_end = false;
        if self.numbers == Numbers::Known {
            self.numbers = Numbers::FileOnly;
        }
        Ok(())
    }

    fn position(&mut self) -> Result<u64> {
        self.ready()?;
        Ok(self.object())
    }

    fn locate(&mut self, object: u64) -> Result<()> {
        self.ready()?;
        self.close_tape_file()?;
        self.eom = Eom::Normal;
        self.filemark_flag = false;
        self.at_end = false;
        // st knows neither the file nor the block number after a LOCATE, except at BOT.
        self.numbers = if object == 0 {
            Numbers::Known
        } else {
            Numbers::Unknown
        };
        let eod = self.cart().eod();
        match self.cart().locate(object) {
            Some(pos) => {
                self.pos = pos;
                self.eod_flag = false;
                Ok(())
            }
            None => {
                self.pos = self.eod_pos();
                self.eod_flag = true;
                Err(TapeError::BeyondEndOfData {
                    drive: self.name.clone(),
                    requested: object,
                    eod,
                })
            }
        }
    }

    fn load(&mut self) -> Result<()> {
        self.refresh()?;
        let Some(cart) = &self.cart else {
            return Err(self.not_ready());
        };
        if cart.meta.faults.not_ready {
            return Err(self.not_ready());
        }
        self.compatible(cart.meta.generation, "load")?;
        if !self.loaded {
            let cart = self.cart_mut();
            cart.meta.counters.loads += 1;
            cart.save_meta()?;
        }
        self.loaded = true;
        self.pos = (0, 0);
        self.eom = Eom::Normal;
        self.eod_flag = false;
        self.filemark_flag = false;
        self.numbers = Numbers::Known;
        self.at_end = false;
        self.save_drive_state()?;
        Ok(())
    }

    fn unload(&mut self) -> Result<()> {
        if self.ready().is_ok() {
            self.close_tape_file()?;
            self.flush();
            self.cart_mut().save_meta()?;
        }
        self.pos = (0, 0);
        self.loaded = false;
        self.at_end = false;
        self.save_drive_state()?;
        Ok(())
    }

    fn erase(&mut self) -> Result<()> {
        self.check_writable()?;
        self.truncate_here()?;
        self.last_op_write = false;
        self.eod_flag = false;
        Ok(())
    }

    fn repositions(&mut self) -> Option<u64> {
        self.stream_stats().map(|s| s.repositions)
    }
}
