//! The backup pipeline: scan -> parallel readers -> tar encoder -> ring buffer -> one
//! writer thread per drive -> catalogue.

pub mod flow;
pub mod reader;
pub mod scan;
