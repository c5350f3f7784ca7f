//! Lines on standard output that may have nobody reading them: `vae-cli eval --json | head -c
//! 100` closes the pipe before the report is done, and `println!` would panic there. `say!`
//! drops the line instead and asks long work (`train`, `prior`) to stop as on Ctrl-C: save a
//! checkpoint after this step and end cleanly, since its report has nowhere to go. The same
//! holds for any failed write (a full disk behind a redirection). `say_err!` is the same for
//! standard error (`eprintln!` would panic there too), where a failed line is only dropped:
//! the report on standard output may still have a reader.

use std::fmt;
use std::io::Write;

/// `println!` that never panics: see the module's documentation.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say::line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// `eprintln!` that never panics: see the module's documentation.
macro_rules! say_err {
    ($($arg:tt)*) => {
        $crate::say::err_line(format_args!($($arg)*))
    };
}
pub(crate) use say_err;

/// Writes one line to standard output; if that fails, drops it and requests a stop.
pub fn line(text: fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        crate::interrupt::request();
    }
}

/// Writes one line to standard error; if that fails, drops it.
pub fn err_line(text: fmt::Arguments) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
