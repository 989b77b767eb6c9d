//! SCSI generic (SG_IO) helpers (placeholder while being written).
