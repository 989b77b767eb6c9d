//! A request to stop, as the engine's threads see it: Ctrl-C, SIGTERM, an operator's abort
//! over a job's socket or at a tape-change prompt. The first asks to stop after the member
//! in flight and drain what is buffered; the second (or a hard abort) stops at once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Counts stop requests: one is soft, two or more are hard.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicU32>);

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Counts one more request.
    pub fn request(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// Asks to stop at once (a hard abort), whatever came before.
    pub fn request_hard(&self) {
        self.0.fetch_max(2, Ordering::SeqCst);
    }

    /// Stop reading, finish what is buffered.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= 1
    }

    /// Stop writing now.
    pub fn hard(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= 2
    }

    /// Counts SIGINT and SIGTERM into this interrupt until the process ends. SIGHUP (the
    /// terminal or the SSH link went away) is logged and otherwise ignored: a job never
    /// stops because its watcher left.
    pub fn from_signals() -> std::io::Result<Interrupt> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let interrupt = Interrupt::new();
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        let counter = interrupt.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if signal == SIGHUP {
                        tracing::warn!("the terminal went away (SIGHUP); the job goes on");
                    } else {
                        counter.request();
                    }
                }
            })?;
        Ok(interrupt)
    }
}
