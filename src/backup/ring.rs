//! The ring buffer between the tar encoder and the writer: a fixed set of tape blocks
//! allocated once, handed to the encoder empty and to the writer full, then recycled.
//! Each block is its own anonymous memory map, so the kernel gives it pages only when it
//! is first written (a heap allocation may be zeroed, and so committed, up front), and
//! blocks move as owned values (no copying, no `unsafe`). The free list is a stack: a
//! buffer that never fills touches only the memory it uses.

use memmap2::MmapMut;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// A full block on its way to the drive.
#[derive(Debug)]
pub struct Block {
    pub data: MmapMut,
}

struct State {
    free: Vec<MmapMut>,
    full: VecDeque<Block>,
    /// The encoder will put no more blocks.
    input_done: bool,
    /// The writer has stopped; the encoder must stop too.
    output_closed: bool,
}

pub struct Ring {
    state: Mutex<State>,
    changed: Condvar,
    block: usize,
    blocks: usize,
    produced: AtomicU64,
    /// No more input can come until the writer writes (see `set_input_stalled`).
    stalled: AtomicBool,
}

/// Why a block could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The writer stopped (error, full tape or abort).
    Output,
}

impl Ring {
    /// A ring of `capacity / block` blocks of `block` bytes. The blocks are mapped here;
    /// the kernel provides (zeroed) pages as they are first used.
    pub fn new(capacity: u64, block: usize) -> std::io::Result<Ring> {
        let blocks = (capacity / block as u64).max(2) as usize;
        let free = (0..blocks)
            .map(|_| MmapMut::map_anon(block))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Ring {
            state: Mutex::new(State {
                free,
                full: VecDeque::with_capacity(blocks),
                input_done: false,
                output_closed: false,
            }),
            changed: Condvar::new(),
            block,
            blocks,
            produced: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking thread cannot leave the queues half-changed: recover the data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn block_size(&self) -> usize {
        self.block
    }

    pub fn capacity(&self) -> u64 {
        (self.blocks * self.block) as u64
    }

    /// Bytes waiting for the writer.
    pub fn fill(&self) -> u64 {
        (self.lock().full.len() * self.block) as u64
    }

    /// Bytes ever put into the ring.
    pub fn produced(&self) -> u64 {
        self.produced.load(Ordering::Relaxed)
    }

    /// An empty block for the encoder, waiting while the ring is full.
    pub fn take_empty(&self) -> Result<MmapMut, Closed> {
        let mut st = self.lock();
        loop {
            if st.output_closed {
                return Err(Closed::Output);
            }
            if let Some(b) = st.free.pop() {
                return Ok(b);
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Hands a filled block to the writer.
    pub fn put_full(&self, data: MmapMut) -> Result<(), Closed> {
        let mut st = self.lock();
        if st.output_closed {
            st.free.push(data);
            return Err(Closed::Output);
        }
        st.full.push_back(Block { data });
        self.produced
            .fetch_add(self.block as u64, Ordering::Relaxed);
        drop(st);
        self.changed.notify_all();
        Ok(())
    }

    /// The encoder is done: no more blocks will come.
    pub fn finish_input(&self) {
        self.lock().input_done = true;
        self.changed.notify_all();
    }

    /// The writer stops taking blocks: the encoder's next call fails, and what is queued
    /// is dropped.
    pub fn close_output(&self) {
        let mut st = self.lock();
        st.output_closed = true;
        let queued: Vec<Block> = st.full.drain(..).collect();
        st.free.extend(queued.into_iter().map(|b| b.data));
        drop(st);
        self.changed.notify_all();
    }

    pub fn input_done(&self) -> bool {
        self.lock().input_done
    }

    /// Says whether the input is stalled on the output: whatever feeds the ring cannot go
    /// on until what is in it is written (the scan waits for members to be recorded, and
    /// they are recorded once on tape). A writer waiting for a watermark writes then.
    pub fn set_input_stalled(&self, stalled: bool) {
        if self.stalled.swap(stalled, Ordering::AcqRel) != stalled {
            self.changed.notify_all();
        }
    }

    pub fn input_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// Whether the writer has stopped taking blocks.
    pub fn output_closed(&self) -> bool {
        self.lock().output_closed
    }

    /// The next full block, if one is queued.
    pub fn pop_full(&self) -> Option<Block> {
        self.lock().full.pop_front()
    }

    /// Gives a written block back.
    pub fn recycle(&self, block: Block) {
        self.lock().free.push(block.data);
        self.changed.notify_all();
    }

    /// Waits until something changes (a block arrives, input ends) or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let st = self.lock();
        let before = (st.full.len(), st.input_done);
        let _ = self
            .changed
            .wait_timeout_while(st, timeout, |s| (s.full.len(), s.input_done) == before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn blocks_go_round_in_order_and_are_recycled() {
        let ring = Arc::new(Ring::new(4 * 1024, 1024).unwrap());
        let producer = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                for i in 0..100u8 {
                    let mut b = ring.take_empty().unwrap();
                    b[0] = i;
                    ring.put_full(b).unwrap();
                }
                ring.finish_input();
            })
        };
        let mut seen = Vec::new();
        loop {
            match ring.pop_full() {
                Some(b) => {
                    seen.push(b.data[0]);
                    assert!(ring.fill() <= ring.capacity());
                    ring.recycle(b);
                }
                None if ring.input_done() && ring.fill() == 0 => break,
                None => ring.wait(Duration::from_millis(50)),
            }
        }
        producer.join().unwrap();
        assert_eq!(seen, (0..100).collect::<Vec<u8>>());
        assert_eq!(ring.produced(), 100 * 1024);
    }

    #[test]
    fn closing_the_output_releases_a_waiting_producer() {
        let ring = Arc::new(Ring::new(2 * 1024, 1024).unwrap());
        for _ in 0..2 {
            let b = ring.take_empty().unwrap();
            ring.put_full(b).unwrap();
        }
        let waiter = {
            let ring = ring.clone();
            std::thread::spawn(move || ring.take_empty())
        };
        std::thread::sleep(Duration::from_millis(20));
        ring.close_output();
        assert!(matches!(waiter.join().unwrap(), Err(Closed::Output)));
        assert_eq!(ring.fill(), 0);
    }
}
