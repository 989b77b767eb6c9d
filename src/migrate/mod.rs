//! Importing history from other tools.

pub mod pytp;
