//! Ctrl-C for long work (`train`, `prior`): the first press asks the loop to save a checkpoint
//! after the current step and stop; a second one exits at once (files are written atomically,
//! so nothing is left half-written either way). A closed standard output asks for the same
//! stop (`say.rs`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first Ctrl-C.
static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process; later calls change nothing).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        // Written here rather than through `say_err!` (which would make the two modules import
        // each other); like it, a failed write is dropped.
        let _ = writeln!(
            std::io::stderr().lock(),
            "\ninterrupt: saving a checkpoint after this step (Ctrl-C again to quit at once)"
        );
    });
}

/// Asks for the same stop as a first Ctrl-C, silently (standard output was closed: `say`).
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether Ctrl-C was pressed (or a stop was requested).
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
