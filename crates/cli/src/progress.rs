//! Progress on long work: a bar with a live message on a terminal, silence otherwise (logs
//! and pipes get the one summary line per epoch instead).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar that exists only when stderr is a terminal.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar of `len` steps labelled `prefix`.
    pub fn new(len: u64, prefix: String) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::new(len);
        let style =
            ProgressStyle::with_template("{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg} ({elapsed}, eta {eta})")
                .expect("a valid template")
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(prefix);
        Self { bar: Some(bar) }
    }

    /// One step done, with a new message.
    pub fn step(&self, msg: impl FnOnce() -> String) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(msg());
        }
    }

    /// Marks `n` steps as done without a message (a resumed epoch).
    pub fn skip(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Removes the bar from the screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
