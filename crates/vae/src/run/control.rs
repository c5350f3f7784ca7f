//! The switches of one training run and where it stands: stop (save a checkpoint after the
//! current step), pause and resume (between two steps), pause after every epoch, and the
//! run's position for whoever watches it. The command line's run has one, which Ctrl-C stops;
//! each run the playground starts has its own.
//!
//! The epoch loop ([`crate::run::epochs`]) reports to it after every step and asks it between steps
//! whether to go on; nothing here touches the model, so pausing and stopping change no number
//! of the run.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Where a run stands, as its watchers see it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Position {
    /// Epochs finished.
    pub epochs_done: u64,
    /// Epochs planned.
    pub epochs: u64,
    /// Steps taken in the current epoch, of `steps`.
    pub step: usize,
    /// Steps per epoch.
    pub steps: usize,
    /// Whether the loop is waiting in a pause.
    pub paused: bool,
}

/// The switches and the position of one run.
#[derive(Debug)]
pub struct Control {
    /// Asks the loop to save a checkpoint after the current step and stop.
    stop: AtomicBool,
    /// The pause switches and the position, behind one lock so that a waiting loop and a
    /// watcher always agree.
    inner: Mutex<Switches>,
    /// Wakes a paused loop.
    wake: Condvar,
}

#[derive(Debug)]
struct Switches {
    /// Pause at the next step boundary.
    pause: bool,
    /// Pause, and say so on standard output, once this many steps of the run are taken (the
    /// hook that lets a test signal a run at a known step instead of after a delay).
    pause_at_step: Option<u64>,
    /// Pause after every epoch.
    hold_each_epoch: bool,
    position: Position,
}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

impl Control {
    /// A control with every switch off.
    pub const fn new() -> Self {
        Control {
            stop: AtomicBool::new(false),
            inner: Mutex::new(Switches {
                pause: false,
                pause_at_step: None,
                hold_each_epoch: false,
                position: Position { epochs_done: 0, epochs: 0, step: 0, steps: 0, paused: false },
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Switches> {
        // The lock guards plain values: a panic elsewhere cannot leave them half-changed.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks the run to stop after the current step, saving a checkpoint; wakes it if paused.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _guard = self.lock();
        self.wake.notify_all();
    }

    /// Whether a stop was asked for.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Asks the run to pause at the next step boundary.
    pub fn pause(&self) {
        self.lock().pause = true;
    }

    /// Lets a paused run go on (and cancels a pause not yet reached).
    pub fn resume(&self) {
        self.lock().pause = false;
        self.wake.notify_all();
    }

    /// Pause once the run has taken `steps` steps in all (epochs before the current one
    /// included), and print `paused after step N` on standard output, flushed: a test reads
    /// that line, then signals the process at a known step (`--pause-at-step`).
    pub fn pause_at_step(&self, steps: u64) {
        self.lock().pause_at_step = Some(steps);
    }

    /// Pause after every epoch (`on`), or not.
    pub fn hold_each_epoch(&self, on: bool) {
        self.lock().hold_each_epoch = on;
    }

    /// Where the run stands now.
    pub fn position(&self) -> Position {
        self.lock().position.clone()
    }

    /// The loop's report after a step: `step` steps of `steps` taken in the epoch after
    /// `epochs_done` finished ones, of `epochs`.
    pub fn report(&self, epochs_done: u64, epochs: u64, step: usize, steps: usize) {
        let mut s = self.lock();
        s.position = Position { epochs_done, epochs, step, steps, paused: false };
        let taken = epochs_done * steps as u64 + step as u64;
        if s.pause_at_step == Some(taken) {
            s.pause = true;
            // The test that asked for it reads this line.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "paused after step {taken} (--pause-at-step)").and_then(|()| out.flush());
        }
    }

    /// The loop's report after an epoch; with `hold_each_epoch` set, this pauses the run.
    pub fn epoch_finished(&self, epochs_done: u64) {
        let mut s = self.lock();
        s.position.epochs_done = epochs_done;
        s.position.step = 0;
        if s.hold_each_epoch && epochs_done < s.position.epochs {
            s.pause = true;
        }
    }

    /// Called by the loop between two steps: blocks while the run is paused, and returns
    /// whether it should stop.
    pub fn wait_if_paused(&self) -> bool {
        let mut s = self.lock();
        while s.pause && !self.stop_requested() {
            s.position.paused = true;
            s = self.wake.wait(s).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        s.position.paused = false;
        self.stop_requested()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A paused loop waits until resumed or stopped; the watcher sees it waiting.
    #[test]
    fn a_paused_loop_waits_for_resume_or_stop() {
        let control = Arc::new(Control::new());
        control.report(0, 3, 5, 10);
        assert!(!control.wait_if_paused(), "nothing asked, the loop goes on");
        // A loop that pauses, once the watcher sees it waiting (polled until it does).
        let paused_loop = || {
            control.pause();
            let control_of_loop = control.clone();
            let waiting = std::thread::spawn(move || control_of_loop.wait_if_paused());
            while !control.position().paused {
                std::thread::yield_now();
            }
            waiting
        };
        let waiting = paused_loop();
        assert_eq!(control.position().step, 5, "the watcher sees the step where it waits");
        control.resume();
        assert!(!waiting.join().unwrap(), "resumed, not stopped");

        let waiting = paused_loop();
        control.stop();
        assert!(waiting.join().unwrap(), "a stop wakes a paused loop and says stop");
    }

    /// The test hook pauses exactly when the run's steps, earlier epochs included, reach N.
    #[test]
    fn pause_at_step_counts_the_steps_of_earlier_epochs() {
        let control = Control::new();
        control.pause_at_step(12);
        control.report(1, 3, 1, 10); // 11 steps taken
        assert!(!control.lock().pause);
        control.report(1, 3, 2, 10); // 12
        assert!(control.lock().pause, "paused after step 12");
    }

    /// Holding after each epoch pauses at every epoch's end but the last.
    #[test]
    fn holding_pauses_after_every_epoch_but_the_last() {
        let control = Control::new();
        control.hold_each_epoch(true);
        control.report(0, 2, 7, 7);
        control.epoch_finished(1);
        assert!(control.lock().pause, "paused after epoch 1 of 2");
        control.resume();
        control.epoch_finished(2);
        assert!(!control.lock().pause, "the last epoch ends the run, not in a pause");
    }
}
