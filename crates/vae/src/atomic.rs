//! Files written whole or not at all: into a temporary file beside the target, synced, then
//! renamed over it, so that a crash or a full disk never leaves half a checkpoint, metrics file
//! or picture where a whole one was.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::error::Error;

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        if pauses_here(path) {
            // Half the file written, flushed, the target untouched: a kill now is a crash in
            // the middle of the write.
            f.write_all(&bytes[..bytes.len() / 2])?;
            f.sync_all()?;
            pause_forever(path);
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("write", path, e)
    })
}

/// The file name whose n-th write pauses halfway, and n ([`pause_in_write`]).
static PAUSE_IN_WRITE: OnceLock<(String, usize)> = OnceLock::new();
/// Writes of that name so far.
static WRITES_OF_NAME: AtomicUsize = AtomicUsize::new(0);

/// A hook for tests (`vae-cli train --pause-in-write NAME:N`): the n-th write of a file named
/// `name` stops halfway through its temporary file, says so on standard output and never
/// returns, so that a test kills the process in the middle of a write at a known moment
/// instead of after a guessed delay.
pub fn pause_in_write(name: &str, n: usize) {
    let _ = PAUSE_IN_WRITE.set((name.to_string(), n));
}

fn pauses_here(path: &Path) -> bool {
    let Some((name, n)) = PAUSE_IN_WRITE.get() else { return false };
    path.file_name().is_some_and(|f| f == name.as_str()) && WRITES_OF_NAME.fetch_add(1, Ordering::SeqCst) + 1 == *n
}

fn pause_forever(path: &Path) -> ! {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "paused halfway through writing {} (--pause-in-write)", path.display())
        .and_then(|()| out.flush());
    loop {
        std::thread::park();
    }
}
