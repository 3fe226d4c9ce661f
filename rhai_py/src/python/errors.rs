//! Turning a [`ScriptFailure`] into the Python exception classes of `rhai._errors`.

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use std::cell::RefCell;

use crate::errors::{ErrorKind, ScriptFailure};
use crate::python::convert::dynamic_to_py;

static PARSE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SCRIPT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static HOST_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static LIMIT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

thread_local! {
    /// The exception raised by the last failing host callback on this thread.
    static PENDING_HOST_ERROR: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// Remember a host callback's exception so the run's error can carry it as `__cause__`.
pub fn stash_host_error(err: PyErr) {
    PENDING_HOST_ERROR.with(|p| *p.borrow_mut() = Some(err));
}

/// Take the remembered host exception (if any).
pub fn take_host_error() -> Option<PyErr> {
    PENDING_HOST_ERROR.with(|p| p.borrow_mut().take())
}

/// The `rhai` exception for a failed run. For kind `host`, `cause` is the callback's
/// exception: it becomes `__cause__`, and a non-`Exception` (KeyboardInterrupt, SystemExit)
/// is re-raised as it is.
pub fn failure_to_pyerr(
    py: Python<'_>,
    failure: &ScriptFailure,
    cause: Option<PyErr>,
    max_depth: usize,
) -> PyErr {
    if let Some(cause) = &cause {
        if !cause.is_instance_of::<PyException>(py) {
            return cause.clone_ref(py);
        }
    }
    match build(py, failure, max_depth) {
        Ok(err) => {
            if failure.kind == ErrorKind::Host {
                err.set_cause(py, cause);
            }
            err
        }
        Err(e) => e,
    }
}

fn build(py: Python<'_>, f: &ScriptFailure, max_depth: usize) -> PyResult<PyErr> {
    let (cell, name) = match f.kind {
        ErrorKind::Parse => (&PARSE_ERROR, "ParseError"),
        ErrorKind::Runtime | ErrorKind::Throw => (&SCRIPT_ERROR, "ScriptError"),
        ErrorKind::Host => (&HOST_ERROR, "HostError"),
        _ => (&LIMIT_ERROR, "LimitError"),
    };
    let cls = cell.import(py, "rhai._errors", name)?;
    let value = match &f.thrown {
        Some(v) => match dynamic_to_py(py, v, max_depth) {
            Ok(obj) => obj,
            Err(_) => v.to_string().into_pyobject(py)?.into_any().unbind(),
        },
        None => py.None(),
    };
    let exc = cls.call1((f.kind.as_str(), f.message.as_str(), f.line, f.column, value))?;
    Ok(PyErr::from_value(exc))
}
