//! The tar format as tapedeck reads it: GNU and POSIX (ustar) header records, GNU long
//! names and links (`L`, `K`), pax records (`x`, `g`: path, linkpath, size, times, owner,
//! `SCHILY.xattr.*`), GNU sparse members (old `S` headers with their extension records,
//! and pax `GNU.sparse.*` keys), GNU multi-volume continuations (`M` with their offset)
//! and GNU volume headers (`V`).
//!
//! [`HeaderDecoder`] is the core, push-style: it is handed a member's header records one
//! at a time and says what it needs next ([`Step`]), ending with the decoded
//! [`MemberHeader`]. [`MemberReader`] drives it over any byte stream, pulling members one
//! after the other (restore, verify, catalogue rebuild's `--scan`, fuzzing); the dd
//! strategy's passthrough drives it on the bytes it copies.
//!
//! Nothing here trusts the bytes: every field is bounded and checked, damage is an
//! [`ArchiveError`], never a panic, and no buffer is sized from a size field: extension
//! data is read as it comes, at most [`MAX_EXTENSION`] bytes.

mod header;
mod reader;

pub use header::{
    checksum_ok, is_zero, numeric, padding, pax_records, pax_time, HeaderDecoder, MemberHeader,
    MemberKind, Sparse, Step, MAX_EXTENSION, RECORD,
};
pub use reader::{ArchiveEnd, MemberReader};

use std::io;

/// Why an archive cannot be read further.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a tar header at byte {at}: {detail}")]
    NotTar { at: u64, detail: String },
    #[error("the archive ends inside a member at byte {at} (truncated)")]
    Truncated { at: u64 },
    #[error("damaged member header at byte {at}: {detail}")]
    Damaged { at: u64, detail: String },
    #[error("reading the archive at byte {at}: {source}")]
    Io {
        at: u64,
        #[source]
        source: io::Error,
    },
}
