//! The Python module `rhai._rhai` (re-exported by the `rhai` package, python/rhai/).

mod convert;
mod engine;
mod errors;

use pyo3::prelude::*;

#[pymodule]
fn _rhai(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<engine::RunResult>()?;
    m.add_class::<engine::CancelToken>()?;
    m.add_class::<engine::LogTap>()?;
    m.add("RHAI_VERSION", env!("RHAI_VERSION"))?; // read from Cargo.lock by build.rs
    m.add("MAX_ARITY", engine::MAX_ARITY)?;
    Ok(())
}
