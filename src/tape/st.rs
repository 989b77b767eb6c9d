//! The Linux `st` tape driver: [`StDrive`] implements [`TapeDrive`] over a non-rewinding
//! device node (`/dev/nst0`) with the `MTIOCTOP`/`MTIOCGET`/`MTIOCPOS` ioctls.
//!
//! Positions are what `MTIOCPOS` reports (SCSI logical object numbers, the drive's own READ
//! POSITION), so they survive `st` losing track of file and block numbers after a seek.
//!
//! How `st` reports the conditions the trait makes outcomes of (measured against `st` over
//! `scsi_debug`'s tape, see `.ci/tape-vm-conformance`):
//!
//! * A filemark read returns 0 bytes and passes it (`GMT_EOF`). The first read into end of
//!   data right after a filemark also returns 0 bytes, but with `GMT_EOD` set and without
//!   moving; any other read at end of data fails with `EIO`, sometimes without `GMT_EOD`.
//!   An `EIO` read is told apart from a medium error by spacing one block forward
//!   (`MTFSR`): at end of data that fails with `GMT_EOD` and the tape stays put.
//! * Early warning: `st` refuses one write with `ENOSPC` (nothing written), lets the next
//!   through, and alternates. Two refusals in a row, or a refusal after a filemark was
//!   written in the zone, is the drive itself refusing: the physical end of the medium.
//!   `EIO` on a write in the zone (buffered data that did not fit) is the physical end too.
//! * Rewinding, seeking, spacing back, unloading or closing right after writing makes `st`
//!   write a filemark first. At the physical end that filemark fails, and `st` refuses the
//!   move with `EIO` however often it is asked; `MTEOM` gets it out of that state (see
//!   [`StDrive::move_after_write`]).

use super::holders::holders_of;
use super::sg;
use super::{
    BlockLimits, DriveStatus, ReadOutcome, Result, SpaceOutcome, TapeDrive, TapeError,
    WriteOutcome, ST_MAX_BLOCK_SIZE,
};
use nix::errno::Errno;
use nix::fcntl::{self, FcntlArg, OFlag};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// `struct mtop` from `<linux/mtio.h>`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct MtOp {
    mt_op: libc::c_short,
    mt_count: libc::c_int,
}

/// `struct mtget` from `<linux/mtio.h>`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct MtGet {
    mt_type: libc::c_long,
    /// Residual count (`st` puts the partition number here).
    mt_resid: libc::c_long,
    /// Block size (low 24 bits) and density code (high 8 bits).
    mt_dsreg: libc::c_long,
    /// `GMT_*` status bits.
    mt_gstat: libc::c_long,
    mt_erreg: libc::c_long,
    /// File number, -1 when unknown.
    mt_fileno: libc::c_int,
    /// Block number within the file, -1 when unknown.
    mt_blkno: libc::c_int,
}

/// `struct mtpos` from `<linux/mtio.h>`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct MtPos {
    mt_blkno: libc::c_long,
}

nix::ioctl_write_ptr!(mtioctop, b'm', 1, MtOp);
nix::ioctl_read!(mtiocget, b'm', 2, MtGet);
nix::ioctl_read!(mtiocpos, b'm', 3, MtPos);

/// `mt_op` codes of `MTIOCTOP`.
mod op {
    use libc::c_short;
    pub const MTFSF: c_short = 1;
    pub const MTBSF: c_short = 2;
    pub const MTFSR: c_short = 3;
    pub const MTWEOF: c_short = 5;
    pub const MTREW: c_short = 6;
    pub const MTOFFL: c_short = 7;
    pub const MTEOM: c_short = 12;
    pub const MTERASE: c_short = 13;
    pub const MTSETBLK: c_short = 20;
    pub const MTSEEK: c_short = 22;
    pub const MTLOAD: c_short = 30;
    pub const MTWEOFI: c_short = 35;
}

/// `mt_gstat` bits of `MTIOCGET`.
mod gmt {
    pub const EOF: u64 = 0x8000_0000;
    pub const BOT: u64 = 0x4000_0000;
    pub const EOT: u64 = 0x2000_0000;
    pub const EOD: u64 = 0x0800_0000;
    pub const WR_PROT: u64 = 0x0400_0000;
    pub const ONLINE: u64 = 0x0100_0000;
    pub const DR_OPEN: u64 = 0x0004_0000;
}

/// `MT_ST_BLKSIZE_MASK` and `MT_ST_DENSITY_SHIFT` of `mt_dsreg`.
const DSREG_BLKSIZE_MASK: u64 = 0x00ff_ffff;
const DSREG_DENSITY_SHIFT: u32 = 24;

/// Why the device is open read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadOnly {
    /// `st` refused read-write access because the cartridge is write-protected (`EROFS`).
    WriteProtected,
    /// The device node does not grant this user write access (`EACCES`).
    NoPermission,
}

/// Where the drive is relative to the early-warning zone, as far as writes have shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eom {
    /// No early warning seen since the last positioning.
    Normal,
    /// A write was refused with early warning.
    Zone,
    /// A filemark went on in the zone: the next refusal is the physical end.
    AfterFilemark,
}

/// What an `ENOSPC` from `write(2)` means, given what came before it.
fn enospc_outcome(eom: Eom, last_write_refused: bool) -> Option<WriteOutcome> {
    // st lets the write after a refused one through; a second refusal in a row (or one
    // after a filemark in the zone) comes from the drive: the physical end.
    if last_write_refused || eom == Eom::AfterFilemark {
        None
    } else {
        Some(WriteOutcome::EarlyWarning)
    }
}

/// Turns `MTIOCGET` (and `MTIOCPOS`, when known) into a [`DriveStatus`].
fn decode_status(get: &MtGet, position: Option<u64>, read_only_protected: bool) -> DriveStatus {
    let gstat = get.mt_gstat as u64;
    let dsreg = get.mt_dsreg as u64;
    let online = gstat & gmt::ONLINE != 0;
    let known = |n: libc::c_int| (online && n >= 0).then_some(n as u64);
    let position = if online { position } else { None };
    DriveStatus {
        online,
        door_open: gstat & gmt::DR_OPEN != 0,
        // Object 0 is BOT. st derives GMT_BOT from its file and block counters, which it
        // loses after MTSEEK (no BOT at 0) and resets after MTWEOF 0 (BOT at object 2).
        bot: online
            && match position {
                Some(p) => p == 0,
                None => gstat & gmt::BOT != 0,
            },
        eod: online && gstat & gmt::EOD != 0,
        filemark: online && gstat & gmt::EOF != 0,
        early_warning: online && gstat & gmt::EOT != 0,
        write_protected: gstat & gmt::WR_PROT != 0 || read_only_protected,
        block_size: (dsreg & DSREG_BLKSIZE_MASK) as u32,
        density: ((dsreg >> DSREG_DENSITY_SHIFT) & 0xff) as u8,
        file_number: known(get.mt_fileno),
        block_number: known(get.mt_blkno),
        position,
    }
}

/// A tape drive driven through the Linux `st` driver. Holds the device open (exclusively:
/// `st` refuses a second open with `EBUSY`) until dropped; closing right after writing makes
/// `st` write a filemark.
pub struct StDrive {
    name: String,
    path: PathBuf,
    /// `None` only after a failed reopen.
    fd: Option<OwnedFd>,
    read_only: Option<ReadOnly>,
    /// The block size `st` is set to (0 = variable), kept so writes need no status call.
    block_size: u32,
    limits: Option<BlockLimits>,
    eom: Eom,
    last_write_refused: bool,
    /// The last write or filemark failed (end of medium or a write error): `st` still
    /// means to write a filemark before the tape moves, and cannot.
    write_trouble: bool,
}

impl std::fmt::Debug for StDrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StDrive")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .field("block_size", &self.block_size)
            .finish_non_exhaustive()
    }
}

/// Opens the device without waiting for a tape (`O_NONBLOCK`), then switches to blocking
/// I/O so loads and reads wait for the drive.
fn open_device(path: &Path, write: bool) -> std::result::Result<OwnedFd, Errno> {
    let access = if write {
        OFlag::O_RDWR
    } else {
        OFlag::O_RDONLY
    };
    let fd = fcntl::open(
        path,
        access | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let flags = OFlag::from_bits_truncate(fcntl::fcntl(&fd, FcntlArg::F_GETFL)?);
    fcntl::fcntl(&fd, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(fd)
}

/// Opens the device for writing, or read-only where `st` or the device node's permissions
/// refuse write access (saying which).
fn open_best(path: &Path) -> std::result::Result<(OwnedFd, Option<ReadOnly>), Errno> {
    match open_device(path, true) {
        Ok(fd) => Ok((fd, None)),
        Err(e @ (Errno::EROFS | Errno::EACCES)) => {
            let why = if e == Errno::EROFS {
                ReadOnly::WriteProtected
            } else {
                ReadOnly::NoPermission
            };
            Ok((open_device(path, false)?, Some(why)))
        }
        Err(e) => Err(e),
    }
}

impl StDrive {
    /// Opens an `st` device (use the non-rewinding node, `/dev/nstN`). A drive without a tape
    /// opens too; operations then fail with [`TapeError::NotReady`] until [`TapeDrive::load`].
    /// A write-protected cartridge opens read-only.
    pub fn open(name: &str, path: &Path) -> Result<StDrive> {
        let io = |op: &'static str, e: Errno| TapeError::Io {
            drive: name.to_string(),
            op,
            source: std::io::Error::from(e),
        };
        let (fd, read_only) = match open_best(path) {
            Ok(opened) => opened,
            Err(Errno::EBUSY) => {
                return Err(TapeError::Busy {
                    device: path.to_path_buf(),
                    holders: holders_of(path),
                })
            }
            Err(e) => {
                return Err(TapeError::Open {
                    drive: name.to_string(),
                    device: path.to_path_buf(),
                    source: std::io::Error::from(e),
                })
            }
        };
        let mut drive = StDrive {
            name: name.to_string(),
            path: path.to_path_buf(),
            fd: Some(fd),
            read_only,
            block_size: 0,
            limits: None,
            eom: Eom::Normal,
            last_write_refused: false,
            write_trouble: false,
        };
        // Also checks that this is a tape device at all (anything else answers ENOTTY).
        let get = drive.mtget().map_err(|e| io("MTIOCGET", e))?;
        drive.block_size = decode_status(&get, None, false).block_size;
        Ok(drive)
    }

    /// The device node this drive was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fd(&self) -> Result<BorrowedFd<'_>> {
        match &self.fd {
            Some(fd) => Ok(fd.as_fd()),
            None => Err(TapeError::Io {
                drive: self.name.clone(),
                op: "reopen",
                source: std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "the device was closed to be reopened for a new cartridge, and the reopen \
                     failed; load again",
                ),
            }),
        }
    }

    fn raw_fd(&self) -> std::result::Result<BorrowedFd<'_>, Errno> {
        self.fd.as_ref().map(AsFd::as_fd).ok_or(Errno::EBADF)
    }

    fn io(&self, op: &'static str, e: Errno) -> TapeError {
        TapeError::Io {
            drive: self.name.clone(),
            op,
            source: std::io::Error::from(e),
        }
    }

    fn not_ready(&self) -> TapeError {
        TapeError::NotReady {
            drive: self.name.clone(),
        }
    }

    fn write_protected(&self) -> TapeError {
        TapeError::WriteProtected {
            drive: self.name.clone(),
        }
    }

    fn end_of_medium(&self) -> TapeError {
        TapeError::EndOfMedium {
            drive: self.name.clone(),
        }
    }

    /// One `MTIOCTOP` operation.
    fn mtop(&self, mt_op: libc::c_short, count: i32) -> std::result::Result<(), Errno> {
        let fd = self.raw_fd()?;
        let arg = MtOp {
            mt_op,
            mt_count: count,
        };
        // SAFETY: `fd` is an open descriptor owned by `self`; `arg` is a live, correctly laid
        // out `struct mtop` that the kernel only reads during the call.
        unsafe { mtioctop(fd.as_raw_fd(), &arg) }.map(drop)
    }

    /// `MTIOCGET`, asked twice when the first answer is `EIO`: `st` reports an error left
    /// over from buffered writes on the next call, whatever it is.
    fn mtget(&self) -> std::result::Result<MtGet, Errno> {
        let fd = self.raw_fd()?;
        let mut get = MtGet::default();
        for attempt in 0..2 {
            // SAFETY: `fd` is an open descriptor owned by `self`; `get` is a live, correctly
            // laid out `struct mtget` the kernel fills in.
            match unsafe { mtiocget(fd.as_raw_fd(), &mut get) } {
                Ok(_) => return Ok(get),
                Err(Errno::EIO) if attempt == 0 => {
                    tracing::debug!("{}: MTIOCGET failed with EIO, asking again", self.name);
                }
                Err(e) => return Err(e),
            }
        }
        Err(Errno::EIO)
    }

    /// `MTIOCPOS`: the logical object number the drive reports.
    fn mtpos(&self) -> std::result::Result<u64, Errno> {
        let fd = self.raw_fd()?;
        let mut pos = MtPos::default();
        // SAFETY: `fd` is an open descriptor owned by `self`; `pos` is a live, correctly laid
        // out `struct mtpos` the kernel fills in.
        unsafe { mtiocpos(fd.as_raw_fd(), &mut pos) }?;
        u64::try_from(pos.mt_blkno).map_err(|_| Errno::EIO)
    }

    fn online(&self) -> bool {
        self.mtget()
            .is_ok_and(|g| (g.mt_gstat as u64) & gmt::ONLINE != 0)
    }

    /// The error for a failed operation: not ready when there is no (ready) tape.
    fn op_error(&self, op: &'static str, e: Errno) -> TapeError {
        match e {
            Errno::ENOMEDIUM => self.not_ready(),
            Errno::EIO if !self.online() => self.not_ready(),
            _ => self.io(op, e),
        }
    }

    fn position_or(&self, op: &'static str) -> Result<u64> {
        self.mtpos().map_err(|e| self.op_error(op, e))
    }

    /// Refuses writing on a device opened read-only.
    fn check_writable(&self, op: &'static str) -> Result<()> {
        match self.read_only {
            None => Ok(()),
            Some(ReadOnly::WriteProtected) => Err(self.write_protected()),
            Some(ReadOnly::NoPermission) => Err(TapeError::Io {
                drive: self.name.clone(),
                op,
                source: std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{} is open read-only: no write permission on the device node",
                        self.path.display()
                    ),
                ),
            }),
        }
    }

    /// Positioning ends any early-warning episode.
    fn positioned(&mut self) {
        self.eom = Eom::Normal;
        self.last_write_refused = false;
        self.write_trouble = false;
    }

    /// MTSEEK, or MTREW for object 0 (so that `st` knows it is at BOT again).
    fn seek_op(object: u64) -> std::result::Result<(libc::c_short, i32), Errno> {
        if object == 0 {
            return Ok((op::MTREW, 1));
        }
        let arg = i32::try_from(object).map_err(|_| Errno::EINVAL)?;
        Ok((op::MTSEEK, arg))
    }

    fn seek_raw(&self, object: u64) -> std::result::Result<(), Errno> {
        let (mt_op, count) = Self::seek_op(object)?;
        self.mtop(mt_op, count)
    }

    /// An operation before which `st` writes a filemark when the last operation was a write
    /// (`MTREW`, `MTOFFL`, `MTSEEK`, `MTBSF`). At the physical end that filemark cannot go
    /// on, and `st` then refuses the operation with `EIO` every time (and so would leave the
    /// tape stuck there). After a failed write, `MTEOM` ends `st`'s writing state without a
    /// filemark (the tape is at end of data already) and the operation is tried again.
    fn move_after_write(
        &mut self,
        mt_op: libc::c_short,
        count: i32,
    ) -> std::result::Result<(), Errno> {
        let trouble = self.write_trouble || self.last_write_refused;
        self.positioned();
        match self.mtop(mt_op, count) {
            Err(Errno::EIO) if trouble => {
                tracing::warn!(
                    "{}: st could not write the filemark it writes before moving the tape \
                     (end of medium); the last tape file stays without one",
                    self.name
                );
                self.mtop(op::MTEOM, 1)?;
                self.mtop(mt_op, count)
            }
            other => other,
        }
    }

    /// Closes the device and opens it again (for writing where `st` allows it), after the
    /// cartridge's write protection changed.
    fn reopen(&mut self) -> Result<()> {
        self.fd = None;
        match open_best(&self.path) {
            Ok((fd, read_only)) => {
                self.fd = Some(fd);
                self.read_only = read_only;
                Ok(())
            }
            Err(Errno::EBUSY) => Err(TapeError::Busy {
                device: self.path.clone(),
                holders: holders_of(&self.path),
            }),
            Err(e) => Err(self.io("reopen", e)),
        }
    }

    /// After a read failed with `EIO` and `st` did not flag end of data: space one block
    /// forward. At end of data that fails with `GMT_EOD` and the tape stays; anywhere else
    /// the tape moves, and is put back where the failed read left it.
    fn classify_read_eio(&mut self) -> Result<ReadOutcome> {
        let get = self.mtget().map_err(|e| self.op_error("read", e))?;
        let gstat = get.mt_gstat as u64;
        if gstat & gmt::ONLINE == 0 {
            return Err(self.not_ready());
        }
        if gstat & gmt::EOD != 0 {
            return Ok(ReadOutcome::EndOfData);
        }
        let at = self.position_or("read")?;
        let spaced = self.mtop(op::MTFSR, 1);
        let after = self.mtpos();
        let eod_flag = self
            .mtget()
            .is_ok_and(|g| (g.mt_gstat as u64) & gmt::EOD != 0);
        if spaced == Err(Errno::EIO) && eod_flag && after == Ok(at) {
            return Ok(ReadOutcome::EndOfData);
        }
        if after != Ok(at) {
            if let Err(e) = self.seek_raw(at) {
                tracing::warn!(
                    "{}: could not return to object {at} after a failed read: {e}",
                    self.name
                );
            }
        }
        Err(TapeError::Medium {
            drive: self.name.clone(),
            position: at,
            detail: format!(
                "read failed (EIO) before end of data: a medium error, or a block of another \
                 size than the drive's fixed block size of {} bytes (the kernel log has the \
                 sense data)",
                self.block_size
            ),
        })
    }

    /// Notes that a write failed, for [`StDrive::move_after_write`].
    fn write_failed(&mut self, e: TapeError) -> TapeError {
        self.write_trouble = true;
        e
    }

    fn cached_limits(&mut self) -> BlockLimits {
        self.block_limits().unwrap_or(BlockLimits {
            min: 1,
            max: ST_MAX_BLOCK_SIZE,
        })
    }
}

impl TapeDrive for StDrive {
    fn name(&self) -> &str {
        &self.name
    }

    fn status(&mut self) -> Result<DriveStatus> {
        let get = self.mtget().map_err(|e| self.io("MTIOCGET", e))?;
        let online = (get.mt_gstat as u64) & gmt::ONLINE != 0;
        let position = if online { self.mtpos().ok() } else { None };
        let status = decode_status(
            &get,
            position,
            self.read_only == Some(ReadOnly::WriteProtected),
        );
        if online {
            self.block_size = status.block_size;
        }
        Ok(status)
    }

    /// READ BLOCK LIMITS through `SG_IO` on the `st` descriptor, or on the drive's `sg` node;
    /// when neither answers, what `st` can express.
    fn block_limits(&mut self) -> Result<BlockLimits> {
        if let Some(limits) = self.limits {
            return Ok(limits);
        }
        let fd = self.fd()?;
        let answer = sg::read_block_limits(fd).or_else(|e| {
            tracing::debug!("{}: READ BLOCK LIMITS on the st device: {e}", self.name);
            let sg_path = sg::sg_device_for(&self.path).ok_or(e)?;
            let sg_fd = open_device(&sg_path, true)
                .or_else(|_| open_device(&sg_path, false))
                .map_err(|e| sg::SgError::Io(e.into()))?;
            sg::read_block_limits(sg_fd.as_fd())
        });
        match answer {
            Ok(limits) => {
                self.limits = Some(limits);
                Ok(limits)
            }
            Err(e) => {
                tracing::debug!(
                    "{}: no block limits from the drive ({e}); using st's",
                    self.name
                );
                // Kept until the next load, so writes do not ask again every time.
                let limits = BlockLimits {
                    min: 1,
                    max: ST_MAX_BLOCK_SIZE,
                };
                self.limits = Some(limits);
                Ok(limits)
            }
        }
    }

    fn set_block_size(&mut self, bytes: u32) -> Result<()> {
        if bytes != 0 {
            let limits = self.block_limits()?;
            if !(limits.min..=limits.max).contains(&bytes) {
                return Err(TapeError::BlockSizeUnsupported {
                    drive: self.name.clone(),
                    requested: u64::from(bytes),
                    min: limits.min,
                    max: limits.max,
                });
            }
        }
        let arg = i32::try_from(bytes).map_err(|_| self.io("MTSETBLK", Errno::EINVAL))?;
        match self.mtop(op::MTSETBLK, arg) {
            Ok(()) => {}
            Err(Errno::EINVAL) => {
                let limits = self.cached_limits();
                return Err(TapeError::BlockSizeUnsupported {
                    drive: self.name.clone(),
                    requested: u64::from(bytes),
                    min: limits.min,
                    max: limits.max,
                });
            }
            Err(e) => return Err(self.op_error("MTSETBLK", e)),
        }
        // st masks the size to 24 bits and can fall back silently: check what it took.
        let get = self.mtget().map_err(|e| self.op_error("MTIOCGET", e))?;
        let now = decode_status(&get, None, false).block_size;
        self.block_size = now;
        if now != bytes {
            return Err(self.io("MTSETBLK", Errno::EINVAL));
        }
        Ok(())
    }

    fn write_block(&mut self, block: &[u8]) -> Result<WriteOutcome> {
        self.check_writable("write")?;
        let len = block.len();
        let limits = self.cached_limits();
        let wrong = if self.block_size != 0 {
            len != self.block_size as usize
        } else {
            len == 0 || len < limits.min as usize || len > limits.max as usize
        };
        if wrong {
            return Err(TapeError::WrongBlockLength {
                drive: self.name.clone(),
                got: len,
                block_size: self.block_size,
            });
        }
        let fd = self.fd()?;
        match nix::unistd::write(fd, block) {
            Ok(n) if n == len => {
                self.last_write_refused = false;
                self.write_trouble = false;
                Ok(WriteOutcome::Written)
            }
            Ok(n) => Err(self.write_failed(TapeError::WriteFailed {
                drive: self.name.clone(),
                position: self.mtpos().unwrap_or(0),
                detail: format!("short write: {n} of {len} bytes"),
            })),
            Err(Errno::ENOSPC) => match enospc_outcome(self.eom, self.last_write_refused) {
                Some(outcome) => {
                    self.eom = Eom::Zone;
                    self.last_write_refused = true;
                    Ok(outcome)
                }
                None => {
                    self.last_write_refused = true;
                    Err(self.write_failed(self.end_of_medium()))
                }
            },
            Err(Errno::EIO) => {
                let get = self.mtget();
                let gstat = get.map_or(0, |g| g.mt_gstat as u64);
                if get.is_ok() && gstat & gmt::ONLINE == 0 {
                    return Err(self.not_ready());
                }
                if self.eom != Eom::Normal || gstat & gmt::EOT != 0 {
                    return Err(self.write_failed(self.end_of_medium()));
                }
                let position = self.mtpos().unwrap_or(0);
                Err(self.write_failed(TapeError::WriteFailed {
                    drive: self.name.clone(),
                    position,
                    detail: "write failed (EIO); the kernel log has the sense data".into(),
                }))
            }
            Err(Errno::EACCES | Errno::EROFS) => Err(self.write_protected()),
            Err(Errno::EINVAL) => Err(TapeError::WrongBlockLength {
                drive: self.name.clone(),
                got: len,
                block_size: self.block_size,
            }),
            Err(e) => Err(self.op_error("write", e)),
        }
    }

    fn write_filemarks(&mut self, count: u32, immediate: bool) -> Result<()> {
        self.check_writable("write filemarks")?;
        let arg = i32::try_from(count).map_err(|_| self.io("MTWEOF", Errno::EINVAL))?;
        let mt_op = if immediate { op::MTWEOFI } else { op::MTWEOF };
        match self.mtop(mt_op, arg) {
            Ok(()) => {
                if count > 0 && self.eom == Eom::Zone {
                    self.eom = Eom::AfterFilemark;
                }
                self.last_write_refused = false;
                Ok(())
            }
            Err(Errno::EACCES | Errno::EROFS) => Err(self.write_protected()),
            Err(Errno::ENOSPC) => Err(self.write_failed(self.end_of_medium())),
            Err(Errno::EIO) if self.eom != Eom::Normal => {
                Err(self.write_failed(self.end_of_medium()))
            }
            Err(e) => Err(self.op_error("MTWEOF", e)),
        }
    }

    fn read_block(&mut self, buf: &mut [u8]) -> Result<ReadOutcome> {
        let bs = self.block_size as usize;
        let target = if bs != 0 {
            // st would read part of the block and drop the rest: refuse before moving.
            if buf.len() < bs {
                return Err(TapeError::ShortBuffer {
                    drive: self.name.clone(),
                    buffer: buf.len(),
                    block: Some(bs),
                    skipped: false,
                });
            }
            // A read of n * bs bytes would read n blocks.
            &mut buf[..bs]
        } else {
            buf
        };
        let buffer = target.len();
        let fd = self.fd()?;
        match nix::unistd::read(fd, target) {
            Ok(0) => {
                let get = self.mtget().map_err(|e| self.op_error("read", e))?;
                if (get.mt_gstat as u64) & gmt::EOD != 0 {
                    Ok(ReadOutcome::EndOfData)
                } else {
                    Ok(ReadOutcome::Filemark)
                }
            }
            Ok(n) => Ok(ReadOutcome::Block(n)),
            Err(Errno::ENOMEM) => Err(TapeError::ShortBuffer {
                drive: self.name.clone(),
                buffer,
                block: None,
                skipped: true,
            }),
            Err(Errno::EIO) => self.classify_read_eio(),
            Err(e) => Err(self.op_error("read", e)),
        }
    }

    fn rewind(&mut self) -> Result<()> {
        self.move_after_write(op::MTREW, 1)
            .map_err(|e| self.op_error("rewind", e))
    }

    fn space_filemarks(&mut self, count: i32) -> Result<SpaceOutcome> {
        if count == 0 {
            return Ok(SpaceOutcome::Done);
        }
        if count > 0 {
            self.positioned();
            return match self.mtop(op::MTFSF, count) {
                Ok(()) => Ok(SpaceOutcome::Done),
                Err(Errno::EIO) => {
                    let get = self.mtget().map_err(|e| self.op_error("MTFSF", e))?;
                    let gstat = get.mt_gstat as u64;
                    if gstat & gmt::ONLINE == 0 {
                        Err(self.not_ready())
                    } else if gstat & gmt::EOD != 0 {
                        Ok(SpaceOutcome::EndOfData)
                    } else {
                        Err(self.io("MTFSF", Errno::EIO))
                    }
                }
                Err(e) => Err(self.op_error("MTFSF", e)),
            };
        }
        let back = count.checked_neg().unwrap_or(i32::MAX);
        match self.move_after_write(op::MTBSF, back) {
            Ok(()) => Ok(SpaceOutcome::Done),
            Err(Errno::EIO) => match self.mtpos() {
                Ok(0) => Ok(SpaceOutcome::BeginningOfTape),
                _ => Err(self.op_error("MTBSF", Errno::EIO)),
            },
            Err(e) => Err(self.op_error("MTBSF", e)),
        }
    }

    fn space_to_eod(&mut self) -> Result<()> {
        self.positioned();
        self.mtop(op::MTEOM, 1)
            .map_err(|e| self.op_error("MTEOM", e))
    }

    fn position(&mut self) -> Result<u64> {
        self.position_or("MTIOCPOS")
    }

    fn locate(&mut self, object: u64) -> Result<()> {
        let Ok((mt_op, count)) = Self::seek_op(object) else {
            return Err(TapeError::Io {
                drive: self.name.clone(),
                op: "MTSEEK",
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("object {object} is beyond what MTSEEK can express"),
                ),
            });
        };
        match self.move_after_write(mt_op, count) {
            Ok(()) => Ok(()),
            Err(Errno::EIO) => {
                if !self.online() {
                    return Err(self.not_ready());
                }
                // st leaves the tape at end of data when the object lies beyond it.
                self.mtop(op::MTEOM, 1)
                    .map_err(|e| self.op_error("MTEOM", e))?;
                let eod = self.position_or("MTIOCPOS")?;
                if object > eod {
                    Err(TapeError::BeyondEndOfData {
                        drive: self.name.clone(),
                        requested: object,
                        eod,
                    })
                } else {
                    Err(self.io("MTSEEK", Errno::EIO))
                }
            }
            Err(e) => Err(self.op_error("MTSEEK", e)),
        }
    }

    fn load(&mut self) -> Result<()> {
        self.positioned();
        self.limits = None;
        if self.fd.is_none() {
            self.reopen()?;
        }
        match self.mtop(op::MTLOAD, 1) {
            Ok(()) => {}
            // The cartridge is in but write-protected: st wants a read-only descriptor.
            Err(Errno::EROFS) => self.reopen()?,
            Err(e) => return Err(self.op_error("load", e)),
        }
        let mut get = self.mtget().map_err(|e| self.op_error("MTIOCGET", e))?;
        if self.read_only == Some(ReadOnly::WriteProtected)
            && (get.mt_gstat as u64) & gmt::WR_PROT == 0
        {
            // Maybe a writable cartridge after a protected one: ask for write access again.
            self.reopen()?;
            get = self.mtget().map_err(|e| self.op_error("MTIOCGET", e))?;
        }
        let gstat = get.mt_gstat as u64;
        if gstat & gmt::ONLINE == 0 {
            return Err(self.not_ready());
        }
        self.block_size = decode_status(&get, None, false).block_size;
        Ok(())
    }

    fn unload(&mut self) -> Result<()> {
        match self.move_after_write(op::MTOFFL, 1) {
            Ok(()) | Err(Errno::ENOMEDIUM) => Ok(()),
            Err(e) => Err(self.op_error("unload", e)),
        }
    }

    /// A short erase (`MTERASE` with count 0): the drive writes end of data here, so
    /// nothing after this position can be read back. (A long erase overwrites the rest of
    /// the tape physically and takes hours on LTO.)
    fn erase(&mut self) -> Result<()> {
        self.check_writable("erase")?;
        self.positioned();
        match self.mtop(op::MTERASE, 0) {
            Ok(()) => Ok(()),
            Err(Errno::EACCES | Errno::EROFS) => Err(self.write_protected()),
            Err(e) => Err(self.op_error("erase", e)),
        }
    }
}

impl Drop for StDrive {
    fn drop(&mut self) {
        // st writes a filemark on close after writing; report when that fails.
        if let Some(fd) = self.fd.take() {
            if let Err(e) = nix::unistd::close(fd) {
                tracing::error!("{}: closing {} failed: {e}", self.name, self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_have_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<MtOp>(), 8);
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(std::mem::size_of::<MtGet>(), 48);
            assert_eq!(std::mem::size_of::<MtPos>(), 8);
            // What <linux/mtio.h> gives on x86_64.
            assert_eq!(nix::request_code_write!(b'm', 1, 8), 0x4008_6d01);
            assert_eq!(nix::request_code_read!(b'm', 2, 48), 0x8030_6d02);
            assert_eq!(nix::request_code_read!(b'm', 3, 8), 0x8008_6d03);
        }
    }

    fn get(gstat: u64, dsreg: u64, fileno: i32, blkno: i32) -> MtGet {
        MtGet {
            mt_gstat: gstat as libc::c_long,
            mt_dsreg: dsreg as libc::c_long,
            mt_fileno: fileno,
            mt_blkno: blkno,
            ..MtGet::default()
        }
    }

    #[test]
    fn status_at_bot_after_rewind() {
        // Observed: pos=0 f=0 b=0 bs=4096 BOT|ONLINE.
        let st = decode_status(&get(gmt::BOT | gmt::ONLINE, 4096, 0, 0), Some(0), false);
        assert!(st.online && st.bot && !st.eod && !st.filemark && !st.door_open);
        assert_eq!(st.block_size, 4096);
        assert_eq!((st.file_number, st.block_number), (Some(0), Some(0)));
        assert_eq!(st.position, Some(0));
    }

    #[test]
    fn status_after_seek_to_zero_is_bot() {
        // st forgets file and block numbers after MTSEEK and does not set GMT_BOT.
        let st = decode_status(&get(gmt::ONLINE, 4096, -1, -1), Some(0), false);
        assert!(st.bot);
        assert_eq!((st.file_number, st.block_number), (None, None));
    }

    #[test]
    fn status_bot_follows_the_position() {
        // Observed after writing 2 blocks and MTWEOF 0: f=0 b=0 BOT|ONLINE at object 2.
        let st = decode_status(&get(gmt::BOT | gmt::ONLINE, 4096, 0, 0), Some(2), false);
        assert!(!st.bot);
        // Without a position, st's flag is all there is.
        let st = decode_status(&get(gmt::BOT | gmt::ONLINE, 4096, 0, 0), None, false);
        assert!(st.bot);
    }

    #[test]
    fn status_with_density_and_flags() {
        let dsreg = (0x5a << 24) | 262_144;
        let st = decode_status(
            &get(gmt::EOF | gmt::EOD | gmt::EOT | gmt::ONLINE, dsreg, 2, 0),
            Some(10),
            false,
        );
        assert_eq!((st.density, st.block_size), (0x5a, 262_144));
        assert!(st.filemark && st.eod && st.early_warning && !st.bot);
        assert_eq!(st.file_number, Some(2));
    }

    #[test]
    fn status_unloaded_forgets_positions() {
        // Observed after MTOFFL: f=1 b=0 EOF|DR_OPEN, MTIOCPOS fails.
        let st = decode_status(&get(gmt::EOF | gmt::DR_OPEN, 4096, 1, 0), None, false);
        assert!(!st.online && st.door_open && !st.filemark);
        assert_eq!(
            (st.file_number, st.block_number, st.position),
            (None, None, None)
        );
    }

    #[test]
    fn status_write_protect_from_st_or_read_only_open() {
        let online = get(gmt::ONLINE | gmt::WR_PROT, 0, 0, 0);
        assert!(decode_status(&online, Some(0), false).write_protected);
        let plain = get(gmt::ONLINE, 0, 0, 0);
        assert!(!decode_status(&plain, Some(0), false).write_protected);
        assert!(decode_status(&plain, Some(0), true).write_protected);
    }

    #[test]
    fn enospc_alternates_then_means_the_end() {
        // First refusal: early warning.
        assert_eq!(
            enospc_outcome(Eom::Normal, false),
            Some(WriteOutcome::EarlyWarning)
        );
        // A refusal after a written block in the zone: early warning again.
        assert_eq!(
            enospc_outcome(Eom::Zone, false),
            Some(WriteOutcome::EarlyWarning)
        );
        // st lets the write after a refusal through, so two in a row are the drive's.
        assert_eq!(enospc_outcome(Eom::Zone, true), None);
        // After a filemark in the zone, writes go on until the physical end.
        assert_eq!(enospc_outcome(Eom::AfterFilemark, false), None);
    }

    #[test]
    fn opening_a_missing_device_names_it_and_is_bad_input() {
        match StDrive::open("t", Path::new("/nonexistent/nst0")) {
            Err(e @ TapeError::Open { .. }) => {
                assert!(e.to_string().contains("/nonexistent/nst0"), "{e}");
                assert!(e.is_bad_input(), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn opening_something_that_is_not_a_tape_fails() {
        match StDrive::open("t", Path::new("/dev/null")) {
            Err(TapeError::Io { op: "MTIOCGET", .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
