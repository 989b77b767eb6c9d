//! tapedeck: tape backup for people who run their own LTO drives and libraries.
//!
//! See `ARCHITECTURE.md` for the data flow and what each module owns.

pub mod backup;
pub mod catalog;
pub mod config;
pub mod conformance;
pub mod drives;
pub mod fault;
pub mod index_read;
pub mod interrupt;
pub mod job;
pub mod label;
pub mod logging;
pub mod migrate;
pub mod rebuild;
pub mod restore;
pub mod tape;
pub mod tarfmt;
pub mod units;
pub mod vlib;
