//! Ctrl-C for long work (`train`, `prior`): the first press asks the loop to save a checkpoint
//! after the current step and stop; a second one exits at once (files are written atomically,
//! so nothing is left half-written either way). A closed standard output asks for the same
//! stop (`say.rs`). The switch itself is the command line's [`Control`].

use std::io::Write;

use vae::run::Control;

/// The command line's run: Ctrl-C stops it.
static COMMAND_LINE: Control = Control::new();

/// The control Ctrl-C acts on, for the command line's one run.
pub fn control() -> &'static Control {
    &COMMAND_LINE
}

/// Installs the handler (once per process; later calls change nothing).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if COMMAND_LINE.stop_requested() {
            std::process::exit(130);
        }
        COMMAND_LINE.stop();
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
    COMMAND_LINE.stop();
}
