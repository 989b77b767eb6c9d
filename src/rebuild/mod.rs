//! Rebuilding the catalogue from tapes.
pub mod tar_scan;
