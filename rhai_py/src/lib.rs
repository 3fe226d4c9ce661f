//! A sandboxed [Rhai](https://rhai.rs) engine and its Python binding.
//!
//! The crate is split so that everything that decides *how scripts run* (limits, sandbox,
//! per-run state, script cache, error classification) is plain Rust with no PyO3 dependency.
//! The native benchmark (`examples/fib_native.rs`) uses exactly the same engine builder as
//! the Python module, so both run with identical limits and hooks.
//!
//! The Python binding lives in [`python`] and is compiled only with the `python` feature
//! (maturin enables it, see `pyproject.toml`).

pub mod cache;
pub mod errors;
pub mod limits;
pub mod memory;
pub mod priority;
pub mod reclaim;
pub mod runner;
pub mod sandbox;
pub mod state;
pub mod tap;

#[cfg(feature = "python")]
mod python;

pub use cache::ScriptCache;
pub use errors::{ErrorKind, ScriptFailure, Termination};
pub use limits::Limits;
pub use runner::{release_outcome, run_script, RunOutcome};
pub use sandbox::build_engine;
pub use tap::{LogTap, RunControl};

/// Every allocation of the library is counted against the budget of the run in progress.
#[global_allocator]
static ALLOCATOR: memory::CountingAllocator = memory::CountingAllocator;
