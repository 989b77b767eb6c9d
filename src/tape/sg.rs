//! A minimal SCSI generic (`SG_IO`) helper: just enough to ask a tape drive for its block
//! limits, and to make sense of the sense data a drive returns.
//!
//! The decoders ([`decode_block_limits`], [`decode_sense`]) are pure functions over byte
//! slices; the only I/O is [`execute`], which hands one command to the kernel. `SG_IO`
//! works on an `st` file descriptor as well as on the drive's `/dev/sgN` node
//! ([`sg_device_for`] finds the latter).

use super::{BlockLimits, ST_MAX_BLOCK_SIZE};
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// `SG_IO` from `<scsi/sg.h>` (not an `_IOC`-encoded number).
const SG_IO: libc::c_ulong = 0x2285;
/// `sg_io_hdr.interface_id` for the version 3 interface.
const SG_INTERFACE_ID_ORIG: libc::c_int = b'S' as libc::c_int;
/// No data transfer.
const SG_DXFER_NONE: libc::c_int = -1;
/// Data from the device into the buffer.
const SG_DXFER_FROM_DEV: libc::c_int = -3;
/// `sg_io_hdr.info` mask: something went wrong (status, host or driver).
const SG_INFO_OK_MASK: libc::c_uint = 0x1;

/// SCSI status byte: GOOD.
pub const STATUS_GOOD: u8 = 0x00;
/// SCSI status byte: CHECK CONDITION (sense data describes why).
pub const STATUS_CHECK_CONDITION: u8 = 0x02;
/// SCSI status byte: BUSY.
pub const STATUS_BUSY: u8 = 0x08;

/// READ BLOCK LIMITS (SSC), 6-byte CDB, 6 bytes of data.
pub const OP_READ_BLOCK_LIMITS: u8 = 0x05;
/// Length of the READ BLOCK LIMITS data.
pub const BLOCK_LIMITS_LEN: usize = 6;

/// Sense keys (SPC).
pub mod sense_key {
    pub const NO_SENSE: u8 = 0x0;
    pub const RECOVERED_ERROR: u8 = 0x1;
    pub const NOT_READY: u8 = 0x2;
    pub const MEDIUM_ERROR: u8 = 0x3;
    pub const HARDWARE_ERROR: u8 = 0x4;
    pub const ILLEGAL_REQUEST: u8 = 0x5;
    pub const UNIT_ATTENTION: u8 = 0x6;
    pub const DATA_PROTECT: u8 = 0x7;
    pub const BLANK_CHECK: u8 = 0x8;
    pub const VENDOR_SPECIFIC: u8 = 0x9;
    pub const COPY_ABORTED: u8 = 0xa;
    pub const ABORTED_COMMAND: u8 = 0xb;
    pub const VOLUME_OVERFLOW: u8 = 0xd;
    pub const MISCOMPARE: u8 = 0xe;

    /// The sense key's name as SPC spells it.
    pub fn name(key: u8) -> &'static str {
        match key {
            NO_SENSE => "NO SENSE",
            RECOVERED_ERROR => "RECOVERED ERROR",
            NOT_READY => "NOT READY",
            MEDIUM_ERROR => "MEDIUM ERROR",
            HARDWARE_ERROR => "HARDWARE ERROR",
            ILLEGAL_REQUEST => "ILLEGAL REQUEST",
            UNIT_ATTENTION => "UNIT ATTENTION",
            DATA_PROTECT => "DATA PROTECT",
            BLANK_CHECK => "BLANK CHECK",
            VENDOR_SPECIFIC => "VENDOR SPECIFIC",
            COPY_ABORTED => "COPY ABORTED",
            ABORTED_COMMAND => "ABORTED COMMAND",
            VOLUME_OVERFLOW => "VOLUME OVERFLOW",
            MISCOMPARE => "MISCOMPARE",
            _ => "RESERVED",
        }
    }
}

/// Additional sense codes (ASC, ASCQ) a tape driver branches on (SPC/SSC).
pub mod asc {
    /// FILEMARK DETECTED.
    pub const FILEMARK_DETECTED: (u8, u8) = (0x00, 0x01);
    /// END-OF-PARTITION/MEDIUM DETECTED (early warning or physical end).
    pub const END_OF_MEDIUM_DETECTED: (u8, u8) = (0x00, 0x02);
    /// BEGINNING-OF-PARTITION/MEDIUM DETECTED.
    pub const BEGINNING_OF_MEDIUM_DETECTED: (u8, u8) = (0x00, 0x04);
    /// END-OF-DATA DETECTED.
    pub const END_OF_DATA_DETECTED: (u8, u8) = (0x00, 0x05);
    /// WRITE PROTECTED.
    pub const WRITE_PROTECTED: (u8, u8) = (0x27, 0x00);
    /// MEDIUM NOT PRESENT.
    pub const MEDIUM_NOT_PRESENT: (u8, u8) = (0x3a, 0x00);
}

/// Fixed-format sense, current error.
pub const SENSE_FIXED_CURRENT: u8 = 0x70;
/// Fixed-format sense, deferred error.
pub const SENSE_FIXED_DEFERRED: u8 = 0x71;
/// Descriptor-format sense, current error.
pub const SENSE_DESC_CURRENT: u8 = 0x72;
/// Descriptor-format sense, deferred error.
pub const SENSE_DESC_DEFERRED: u8 = 0x73;
/// Byte 2 of fixed sense (and byte 3 of the stream commands descriptor): FILEMARK bit.
pub const SENSE_FILEMARK: u8 = 0x80;
/// Byte 2 of fixed sense: end-of-medium bit.
pub const SENSE_EOM: u8 = 0x40;
/// Byte 2 of fixed sense: incorrect length indicator.
pub const SENSE_ILI: u8 = 0x20;
/// Byte 0 of fixed sense: the INFORMATION field is valid.
pub const SENSE_VALID: u8 = 0x80;
/// Descriptor type of the stream commands sense descriptor (FILEMARK/EOM/ILI).
const DESC_STREAM_COMMANDS: u8 = 0x04;
/// Descriptor type of the information sense descriptor.
const DESC_INFORMATION: u8 = 0x00;

/// Decoded sense data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    /// The error is deferred (it belongs to an earlier command).
    pub deferred: bool,
    /// Sense key ([`sense_key`]).
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// A filemark was read or spaced over.
    pub filemark: bool,
    /// End of medium (early warning or physical end), or beginning of medium when spacing back.
    pub eom: bool,
    /// The block's length differed from the length asked for.
    pub ili: bool,
    /// The INFORMATION field, when valid (for tapes: the residue, in blocks or bytes).
    pub information: Option<u64>,
}

impl Sense {
    /// (ASC, ASCQ), to compare against the [`asc`] constants.
    pub fn code(&self) -> (u8, u8) {
        (self.asc, self.ascq)
    }
}

impl fmt::Display for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (sense key {:#x}), ASC/ASCQ {:02x}/{:02x}",
            sense_key::name(self.key),
            self.key,
            self.asc,
            self.ascq
        )?;
        for (set, name) in [
            (self.deferred, "deferred"),
            (self.filemark, "FM"),
            (self.eom, "EOM"),
            (self.ili, "ILI"),
        ] {
            if set {
                write!(f, " {name}")?;
            }
        }
        if let Some(info) = self.information {
            write!(f, " info {info}")?;
        }
        Ok(())
    }
}

/// Decodes sense data in fixed (0x70/0x71) or descriptor (0x72/0x73) format. Returns
/// `None` when the buffer holds no recognisable sense data.
pub fn decode_sense(data: &[u8]) -> Option<Sense> {
    let code = data.first()? & 0x7f;
    match code {
        SENSE_FIXED_CURRENT | SENSE_FIXED_DEFERRED => {
            let flags = *data.get(2)?;
            let information = if data[0] & SENSE_VALID != 0 {
                data.get(3..7)
                    .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            } else {
                None
            };
            // ASC/ASCQ sit at 12/13 when the additional length (byte 7) covers them.
            let additional = data.get(7).copied().unwrap_or(0) as usize;
            let covered = |i: usize| i < 8 + additional;
            let byte = |i: usize| {
                if covered(i) {
                    data.get(i).copied()
                } else {
                    None
                }
            };
            Some(Sense {
                deferred: code == SENSE_FIXED_DEFERRED,
                key: flags & 0x0f,
                asc: byte(12).unwrap_or(0),
                ascq: byte(13).unwrap_or(0),
                filemark: flags & SENSE_FILEMARK != 0,
                eom: flags & SENSE_EOM != 0,
                ili: flags & SENSE_ILI != 0,
                information,
            })
        }
        SENSE_DESC_CURRENT | SENSE_DESC_DEFERRED => {
            let mut sense = Sense {
                deferred: code == SENSE_DESC_DEFERRED,
                key: data.get(1)? & 0x0f,
                asc: data.get(2).copied().unwrap_or(0),
                ascq: data.get(3).copied().unwrap_or(0),
                filemark: false,
                eom: false,
                ili: false,
                information: None,
            };
            let end = (8 + data.get(7).copied().unwrap_or(0) as usize).min(data.len());
            let mut at = 8;
            while at + 2 <= end {
                let kind = data[at];
                let len = data[at + 1] as usize;
                let desc = &data[at..(at + 2 + len).min(end)];
                match kind {
                    DESC_STREAM_COMMANDS if desc.len() >= 4 => {
                        sense.filemark = desc[3] & SENSE_FILEMARK != 0;
                        sense.eom = desc[3] & SENSE_EOM != 0;
                        sense.ili = desc[3] & SENSE_ILI != 0;
                    }
                    DESC_INFORMATION if desc.len() >= 12 && desc[2] & SENSE_VALID != 0 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&desc[4..12]);
                        sense.information = Some(u64::from_be_bytes(b));
                    }
                    _ => {}
                }
                at += 2 + len;
            }
            Some(sense)
        }
        _ => None,
    }
}

/// Decoded READ BLOCK LIMITS data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBlockLimits {
    /// Block lengths must be multiples of `2^granularity` bytes.
    pub granularity: u8,
    /// MAXIMUM BLOCK LENGTH LIMIT; 0 means the drive names no maximum.
    pub max: u32,
    /// MINIMUM BLOCK LENGTH LIMIT.
    pub min: u16,
}

/// Decodes the six bytes of READ BLOCK LIMITS data as they come from the drive.
pub fn decode_read_block_limits(data: &[u8; BLOCK_LIMITS_LEN]) -> ReadBlockLimits {
    ReadBlockLimits {
        granularity: data[0] & 0x1f,
        max: u32::from_be_bytes([0, data[1], data[2], data[3]]),
        min: u16::from_be_bytes([data[4], data[5]]),
    }
}

/// The block sizes the drive accepts, from READ BLOCK LIMITS data: a maximum of 0 ("not
/// specified") becomes [`ST_MAX_BLOCK_SIZE`], a minimum of 0 becomes 1, and the maximum is
/// capped at what `st` can express.
pub fn decode_block_limits(data: &[u8; BLOCK_LIMITS_LEN]) -> BlockLimits {
    let raw = decode_read_block_limits(data);
    let max = match raw.max {
        0 => ST_MAX_BLOCK_SIZE,
        m => m.min(ST_MAX_BLOCK_SIZE),
    };
    let min = u32::from(raw.min).max(1);
    BlockLimits {
        min: min.min(max),
        max,
    }
}

/// Why an `SG_IO` command failed.
#[derive(Debug, thiserror::Error)]
pub enum SgError {
    /// The ioctl itself failed (not a SCSI device, no permission, ...).
    #[error("SG_IO: {0}")]
    Io(#[from] std::io::Error),
    /// The drive answered CHECK CONDITION.
    #[error("CHECK CONDITION: {0}")]
    Check(Sense),
    /// Some other failure: SCSI status, host (adapter) or driver status.
    #[error("SCSI status {status:#04x}, host status {host:#x}, driver status {driver:#x}")]
    Transport { status: u8, host: u16, driver: u16 },
}

/// Data direction and buffer of one command.
pub enum DataDir<'a> {
    None,
    FromDevice(&'a mut [u8]),
}

/// What a successful command returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Bytes asked for but not transferred.
    pub resid: i32,
}

/// `struct sg_io_hdr` from `<scsi/sg.h>` (the version 3 interface).
#[repr(C)]
struct SgIoHdr {
    interface_id: libc::c_int,
    dxfer_direction: libc::c_int,
    cmd_len: libc::c_uchar,
    mx_sb_len: libc::c_uchar,
    iovec_count: libc::c_ushort,
    dxfer_len: libc::c_uint,
    dxferp: *mut libc::c_void,
    cmdp: *const libc::c_uchar,
    sbp: *mut libc::c_uchar,
    timeout: libc::c_uint,
    flags: libc::c_uint,
    pack_id: libc::c_int,
    usr_ptr: *mut libc::c_void,
    status: libc::c_uchar,
    masked_status: libc::c_uchar,
    msg_status: libc::c_uchar,
    sb_len_wr: libc::c_uchar,
    host_status: libc::c_ushort,
    driver_status: libc::c_ushort,
    resid: libc::c_int,
    duration: libc::c_uint,
    info: libc::c_uint,
}

nix::ioctl_readwrite_bad!(sg_io_ioctl, SG_IO, SgIoHdr);

/// Sends one command to the device behind `fd` and waits for it.
pub fn execute(
    fd: BorrowedFd<'_>,
    cdb: &[u8],
    data: DataDir<'_>,
    timeout_ms: u32,
) -> Result<Completion, SgError> {
    let cmd_len = u8::try_from(cdb.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "CDB too long"))?;
    let mut sense = [0u8; 64];
    let (direction, dxferp, dxfer_len) = match data {
        DataDir::None => (SG_DXFER_NONE, std::ptr::null_mut(), 0),
        DataDir::FromDevice(buf) => {
            let len = u32::try_from(buf.len()).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "buffer too long")
            })?;
            (SG_DXFER_FROM_DEV, buf.as_mut_ptr().cast(), len)
        }
    };
    let mut hdr = SgIoHdr {
        interface_id: SG_INTERFACE_ID_ORIG,
        dxfer_direction: direction,
        cmd_len,
        mx_sb_len: sense.len() as u8,
        iovec_count: 0,
        dxfer_len,
        dxferp,
        cmdp: cdb.as_ptr(),
        sbp: sense.as_mut_ptr(),
        timeout: timeout_ms,
        flags: 0,
        pack_id: 0,
        usr_ptr: std::ptr::null_mut(),
        status: 0,
        masked_status: 0,
        msg_status: 0,
        sb_len_wr: 0,
        host_status: 0,
        driver_status: 0,
        resid: 0,
        duration: 0,
        info: 0,
    };
    // SAFETY: `hdr` is a correctly laid out `sg_io_hdr`; the CDB, the sense buffer and the
    // data buffer it points to are live borrows for the whole (synchronous) call, and their
    // lengths are the ones given in `cmd_len`, `mx_sb_len` and `dxfer_len`.
    unsafe { sg_io_ioctl(fd.as_raw_fd(), &mut hdr) }.map_err(std::io::Error::from)?;
    if hdr.info & SG_INFO_OK_MASK == 0 {
        return Ok(Completion { resid: hdr.resid });
    }
    let written = (hdr.sb_len_wr as usize).min(sense.len());
    if hdr.status == STATUS_CHECK_CONDITION || written > 0 {
        if let Some(s) = decode_sense(&sense[..written]) {
            return Err(SgError::Check(s));
        }
    }
    Err(SgError::Transport {
        status: hdr.status,
        host: hdr.host_status,
        driver: hdr.driver_status,
    })
}

/// Asks the drive for its block limits (READ BLOCK LIMITS): the six bytes of data.
pub fn read_block_limits_raw(fd: BorrowedFd<'_>) -> Result<[u8; BLOCK_LIMITS_LEN], SgError> {
    let cdb = [OP_READ_BLOCK_LIMITS, 0, 0, 0, 0, 0];
    let mut data = [0u8; BLOCK_LIMITS_LEN];
    let done = execute(fd, &cdb, DataDir::FromDevice(&mut data), 30_000)?;
    if done.resid != 0 {
        return Err(SgError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("READ BLOCK LIMITS returned {} bytes short", done.resid),
        )));
    }
    Ok(data)
}

/// Asks the drive for its block limits, decoded with [`decode_block_limits`].
pub fn read_block_limits(fd: BorrowedFd<'_>) -> Result<BlockLimits, SgError> {
    read_block_limits_raw(fd).map(|data| decode_block_limits(&data))
}

/// The SCSI generic node (`/dev/sgN`) of the drive behind an `st` device node, found through
/// sysfs (`/sys/class/scsi_tape/<name>/device/scsi_generic`).
pub fn sg_device_for(st_path: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(st_path).ok()?;
    let name = real.file_name()?.to_str()?;
    let dir = Path::new("/sys/class/scsi_tape")
        .join(name)
        .join("device/scsi_generic");
    let entry = std::fs::read_dir(dir).ok()?.flatten().next()?;
    Some(Path::new("/dev").join(entry.file_name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sg_io_hdr_has_the_kernel_layout() {
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<SgIoHdr>(), 88);
        #[cfg(target_pointer_width = "32")]
        assert_eq!(std::mem::size_of::<SgIoHdr>(), 64);
    }

    #[test]
    fn block_limits_of_scsi_debug() {
        // What scsi_debug's tape answers: granularity 4, max 1 MiB, min 512.
        let data = [0x04, 0x10, 0x00, 0x00, 0x02, 0x00];
        assert_eq!(
            decode_read_block_limits(&data),
            ReadBlockLimits {
                granularity: 4,
                max: 1 << 20,
                min: 512
            }
        );
        assert_eq!(
            decode_block_limits(&data),
            BlockLimits {
                min: 512,
                max: 1 << 20
            }
        );
    }

    #[test]
    fn block_limits_without_a_maximum_or_minimum() {
        let data = [0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
        assert_eq!(
            decode_block_limits(&data),
            BlockLimits {
                min: 1,
                max: ST_MAX_BLOCK_SIZE
            }
        );
    }

    #[test]
    fn block_limits_above_what_st_expresses_are_capped() {
        // An LTO drive: max 8 MiB (0x800000) fits, 0xffffff is the cap.
        let lto = [0x00, 0x80, 0x00, 0x00, 0x00, 0x01];
        assert_eq!(decode_block_limits(&lto).max, 0x80_0000);
        let huge = [0x00, 0xff, 0xff, 0xff, 0x00, 0x01];
        assert_eq!(decode_block_limits(&huge).max, ST_MAX_BLOCK_SIZE);
        assert_eq!(decode_block_limits(&huge).min, 1);
    }

    /// Fixed-format sense: response code, key + flags, information, additional length,
    /// ASC, ASCQ.
    fn fixed(valid_info: Option<u32>, flags_key: u8, asc: u8, ascq: u8) -> Vec<u8> {
        let mut s = vec![0u8; 18];
        s[0] = SENSE_FIXED_CURRENT;
        if let Some(info) = valid_info {
            s[0] |= SENSE_VALID;
            s[3..7].copy_from_slice(&info.to_be_bytes());
        }
        s[2] = flags_key;
        s[7] = 10;
        s[12] = asc;
        s[13] = ascq;
        s
    }

    #[test]
    fn sense_blank_check_at_end_of_data() {
        let s = decode_sense(&fixed(
            Some(1),
            sense_key::BLANK_CHECK | SENSE_EOM,
            0x00,
            0x05,
        ))
        .unwrap();
        assert_eq!(s.key, sense_key::BLANK_CHECK);
        assert_eq!(s.code(), asc::END_OF_DATA_DETECTED);
        assert!(s.eom && !s.filemark && !s.ili && !s.deferred);
        assert_eq!(s.information, Some(1));
    }

    #[test]
    fn sense_filemark_read() {
        let s = decode_sense(&fixed(Some(1), sense_key::NO_SENSE | SENSE_FILEMARK, 0, 1)).unwrap();
        assert_eq!(s.key, sense_key::NO_SENSE);
        assert_eq!(s.code(), asc::FILEMARK_DETECTED);
        assert!(s.filemark && !s.eom);
    }

    #[test]
    fn sense_incorrect_length_with_residue() {
        // A 2048-byte read of a 4096-byte block: ILI, residue -2048 (two's complement).
        let s = decode_sense(&fixed(
            Some((-2048i32) as u32),
            sense_key::NO_SENSE | SENSE_ILI,
            0,
            0,
        ))
        .unwrap();
        assert!(s.ili);
        assert_eq!(s.information, Some(0xffff_f800));
    }

    #[test]
    fn sense_early_warning_and_volume_overflow() {
        let ew = decode_sense(&fixed(None, sense_key::NO_SENSE | SENSE_EOM, 0, 2)).unwrap();
        assert!(ew.eom);
        assert_eq!(ew.code(), asc::END_OF_MEDIUM_DETECTED);
        assert_eq!(ew.information, None);
        let full =
            decode_sense(&fixed(None, sense_key::VOLUME_OVERFLOW | SENSE_EOM, 0, 2)).unwrap();
        assert_eq!(full.key, sense_key::VOLUME_OVERFLOW);
        assert_eq!(sense_key::name(full.key), "VOLUME OVERFLOW");
    }

    #[test]
    fn sense_deferred_and_not_ready() {
        let mut raw = fixed(None, sense_key::NOT_READY, 0x3a, 0x00);
        raw[0] = SENSE_FIXED_DEFERRED;
        let s = decode_sense(&raw).unwrap();
        assert!(s.deferred);
        assert_eq!(s.code(), asc::MEDIUM_NOT_PRESENT);
        assert_eq!(
            s.to_string(),
            "NOT READY (sense key 0x2), ASC/ASCQ 3a/00 deferred"
        );
    }

    #[test]
    fn sense_short_fixed_format_has_no_asc() {
        // Only 8 bytes and an additional length of 0: key and flags, no ASC/ASCQ.
        let raw = [0x70, 0, sense_key::DATA_PROTECT, 0, 0, 0, 0, 0];
        let s = decode_sense(&raw).unwrap();
        assert_eq!(s.key, sense_key::DATA_PROTECT);
        assert_eq!(s.code(), (0, 0));
    }

    #[test]
    fn sense_descriptor_format() {
        // 0x72, key BLANK CHECK, ASC/ASCQ 00/05, then an information descriptor and a
        // stream commands descriptor with EOM.
        let mut raw = vec![0x72, sense_key::BLANK_CHECK, 0x00, 0x05, 0, 0, 0, 0];
        raw.extend_from_slice(&[0x00, 0x0a, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
        raw.extend_from_slice(&[0x04, 0x02, 0x00, SENSE_EOM]);
        raw[7] = (raw.len() - 8) as u8;
        let s = decode_sense(&raw).unwrap();
        assert_eq!(s.key, sense_key::BLANK_CHECK);
        assert_eq!(s.code(), asc::END_OF_DATA_DETECTED);
        assert!(s.eom && !s.filemark && !s.ili);
        assert_eq!(s.information, Some(3));
    }

    #[test]
    fn no_sense_data_is_none() {
        assert_eq!(decode_sense(&[]), None);
        assert_eq!(decode_sense(&[0x00; 18]), None);
        assert_eq!(decode_sense(&[0x70]), None);
    }
}
