//! The worker threads: rayon's one global pool, sized by `--threads`, and the long commands run
//! on one of its threads.

use crate::options::Result;

/// Sizes rayon's global pool and runs `work(args)` on one of its threads.
///
/// Why on a worker: a parallel loop started from outside the pool hands its work to a worker
/// and puts the calling thread to sleep until it is done, a wake-up and a sleep per loop; a
/// training step of Burda et al.'s model (batch 20) starts a dozen such loops, most of them
/// tiny. Started from a worker, a loop runs in place and the other workers steal what they
/// can: the step took 1.14–1.34 ms instead of 1.52–2.04 (`examples/step_timer.rs burda`, with
/// and without `INSIDE_POOL`, docs/PERFORMANCE.md). The numbers are the same either way.
pub fn on_pool<A: Send>(threads: Option<u64>, args: A, work: fn(A) -> Result<()>) -> Result<()> {
    init_threads(threads)?;
    in_pool(|| work(args))
}

/// Runs `work` on a worker of the (already sized) pool and waits for it: how the playground
/// runs each training (`serve/playground.rs`).
pub fn in_pool(work: impl FnOnce() -> Result<()> + Send) -> Result<()> {
    let mut outcome = Ok(());
    // A boxed error need not be Send: it crosses back to this thread as its message.
    rayon::scope(|_| outcome = work().map_err(|e| e.to_string()));
    outcome.map_err(Into::into)
}

/// Sizes rayon's one global pool (once per process); every parallel loop of the engine runs
/// on it.
pub fn init_threads(threads: Option<u64>) -> Result<()> {
    let n = match threads {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| format!("cannot start {n} worker threads: {e}"))?;
    Ok(())
}
