//! `rhai.Engine` and `rhai.RunResult`: the Python face of [`crate::runner::run_script`].

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use rhai::{Dynamic, Engine, EvalAltResult, FuncRegistration, Module, NativeCallContext};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::cache::ScriptCache;
use crate::errors::{ErrorKind, ScriptFailure, Termination};
use crate::limits::Limits;
use crate::python::convert::{dynamic_to_py, py_to_dynamic};
use crate::python::errors::{failure_to_pyerr, stash_host_error, take_host_error};
use crate::runner::{release_outcome, run_script, RunOutcome};
use crate::sandbox::build_engine;
use crate::state::{self, RunStats};
use crate::tap::{LogTap as Tap, RunControl};

/// Compiled scripts an engine keeps unless told otherwise (`cache_size`).
pub const DEFAULT_CACHE_SIZE: usize = 256;
/// Nesting of values converted in and out unless told otherwise (`max_value_depth`).
pub const DEFAULT_MAX_VALUE_DEPTH: usize = 64;

/// Most parameters a registered Python function can take.
pub const MAX_ARITY: usize = 12;

/// A Python callable registered as a Rhai function.
struct HostFn {
    /// `name` or `module::name`, for messages.
    qualified: String,
    callable: Py<PyAny>,
    max_depth: usize,
}

struct Registration {
    module: Option<String>,
    name: String,
    arity: usize,
    host: Arc<HostFn>,
}

/// Call a host function from a script: with the GIL (re-)acquired for the duration only.
/// Any Python exception becomes an uncatchable `ErrorTerminated(Host)` at the call site.
fn call_host(
    host: &HostFn,
    ctx: &NativeCallContext,
    args: Vec<Dynamic>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let pos = ctx.call_position();
    let outcome = Python::attach(|py| {
        let result = (|| -> PyResult<Dynamic> {
            let mut py_args = Vec::with_capacity(args.len());
            for (i, arg) in args.iter().enumerate() {
                let v = dynamic_to_py(py, arg, host.max_depth).map_err(|e| {
                    PyTypeError::new_err(format!("argument {} of {}(): {}", i + 1, host.qualified, e.0))
                })?;
                py_args.push(v);
            }
            let ret = host.callable.bind(py).call1(PyTuple::new(py, py_args)?)?;
            py_to_dynamic(&ret, host.max_depth)
                .map_err(|e| PyTypeError::new_err(format!("return value of {}(): {}", host.qualified, e.0)))
        })();
        result.map_err(|err| {
            let text = err.value(py).str().map(|s| s.to_string()).unwrap_or_default();
            let message = if text.is_empty() {
                err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "error".into())
            } else {
                text
            };
            stash_host_error(err);
            message
        })
    });
    match outcome {
        Ok(value) if state::deadline_passed() => {
            drop(value);
            Err(EvalAltResult::ErrorTerminated(Dynamic::from(Termination::Timeout), pos).into())
        }
        Ok(value) => Ok(value),
        Err(message) => Err(EvalAltResult::ErrorTerminated(
            Dynamic::from(Termination::Host { message, position: pos }),
            pos,
        )
        .into()),
    }
}

/// Expand `$body` with `$f` bound to a closure of the given arity (0..=MAX_ARITY) that
/// forwards its `Dynamic` arguments to `call_host`.
macro_rules! with_host_closure {
    ($n:expr, $host:expr, $f:ident => $body:expr) => {
        with_host_closure!(@arms $n, $host, $f, $body;
            0 => (), 1 => (a0), 2 => (a0, a1), 3 => (a0, a1, a2), 4 => (a0, a1, a2, a3),
            5 => (a0, a1, a2, a3, a4), 6 => (a0, a1, a2, a3, a4, a5),
            7 => (a0, a1, a2, a3, a4, a5, a6), 8 => (a0, a1, a2, a3, a4, a5, a6, a7),
            9 => (a0, a1, a2, a3, a4, a5, a6, a7, a8),
            10 => (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9),
            11 => (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10),
            12 => (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11))
    };
    (@arms $n:expr, $host:expr, $f:ident, $body:expr; $($k:literal => ($($a:ident),*)),*) => {
        match $n {
            $($k => {
                let h = Arc::clone(&$host);
                let $f = move |ctx: NativeCallContext, $($a: Dynamic),*| -> Result<Dynamic, Box<EvalAltResult>> {
                    call_host(&h, &ctx, vec![$($a),*])
                };
                $body;
            })*
            _ => unreachable!("arity checked at registration"),
        }
    };
}

/// A sandboxed Rhai engine with fixed limits. See the Python docstrings in `rhai/__init__.py`.
#[pyclass(frozen, subclass, module = "rhai._rhai", name = "Engine")]
pub struct PyEngine {
    limits: Limits,
    max_depth: usize,
    /// The current engine; registrations build a new one and swap it in, runs clone the Arc.
    engine: RwLock<Arc<Engine>>,
    registrations: Mutex<Vec<Registration>>,
    cache: ScriptCache,
}

impl PyEngine {
    fn current(&self) -> Arc<Engine> {
        Arc::clone(&self.engine.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn build(&self, regs: &[Registration]) -> Engine {
        let mut engine = build_engine(&self.limits);
        let mut modules: BTreeMap<&str, Module> = BTreeMap::new();
        for r in regs {
            let reg = FuncRegistration::new(r.name.as_str()).with_volatility(true);
            match &r.module {
                None => with_host_closure!(r.arity, r.host, f => {
                    reg.register_into_engine(&mut engine, f)
                }),
                Some(ns) => {
                    let module = modules.entry(ns.as_str()).or_default();
                    with_host_closure!(r.arity, r.host, f => {
                        reg.set_into_module(module, f)
                    })
                }
            }
        }
        for (ns, module) in modules {
            engine.register_static_module(ns, module.into());
        }
        engine
    }

    fn constants_from(&self, constants: Option<&Bound<'_, PyDict>>) -> PyResult<HashMap<String, Dynamic>> {
        let mut out = HashMap::new();
        if let Some(d) = constants {
            for (k, v) in d.iter() {
                let key = k
                    .cast::<PyString>()
                    .map_err(|_| PyTypeError::new_err("constant names must be str"))?
                    .to_str()?
                    .to_owned();
                let value = py_to_dynamic(&v, self.max_depth).map_err(|e| {
                    let mut e = e;
                    e.0 = format!("constant {key:?}: {}", e.0);
                    e.to_pyerr()
                })?;
                out.insert(key, value);
            }
        }
        Ok(out)
    }

    fn execute(
        &self,
        py: Python<'_>,
        script: &str,
        constants: Option<&Bound<'_, PyDict>>,
        timeout_ms: Option<u64>,
        cancel: Option<&CancelToken>,
        tap: Option<&LogTap>,
    ) -> PyResult<RunOutcome> {
        let constants = self.constants_from(constants)?;
        let engine = self.current();
        // A per-run timeout can only shorten the engine's: callers pass what is left of a deadline.
        let limits = match timeout_ms {
            Some(0) => return Err(PyValueError::new_err("timeout_ms must be at least 1")),
            Some(ms) if ms < self.limits.timeout_ms => Limits { timeout_ms: ms, ..self.limits.clone() },
            _ => self.limits.clone(),
        };
        let control = RunControl {
            cancel: cancel.map(|token| Arc::clone(&token.flag)),
            tap: tap.map(|t| t.tap.clone()),
        };
        let outcome = py
            .detach(|| run_script(&engine, &self.cache, &limits, script, constants, self.max_depth, control));
        Ok(outcome)
    }

    /// The run's value converted to Python with its printed form, or the run's error raised.
    /// Either way, what the run left behind is then released (see [`release_outcome`]).
    fn value_or_raise(
        &self,
        py: Python<'_>,
        result: Result<Dynamic, ScriptFailure>,
        stats: &RunStats,
    ) -> PyResult<(Py<PyAny>, String)> {
        let host_error = take_host_error();
        let answer = match &result {
            Ok(value) => match dynamic_to_py(py, value, self.max_depth) {
                Ok(obj) => Ok((obj, value.to_string())),
                Err(e) => {
                    let failure = ScriptFailure::new(
                        ErrorKind::Runtime,
                        format!("cannot return the script's value: {}", e.0),
                        rhai::Position::NONE,
                    );
                    Err(failure_to_pyerr(py, &failure, None, self.max_depth))
                }
            },
            Err(failure) => {
                let cause = if failure.kind == ErrorKind::Host { host_error } else { None };
                Err(failure_to_pyerr(py, failure, cause, self.max_depth))
            }
        };
        py.detach(|| release_outcome(result, stats));
        answer
    }
}

#[pymethods]
impl PyEngine {
    /// Keyword arguments only: any of the `Limits` fields, `cache_size` and `max_value_depth`;
    /// what is not given keeps its default (`Limits::default()`, the constants above).
    #[new]
    #[pyo3(signature = (**options))]
    fn new(options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut limits = Limits::default();
        let mut cache_size = DEFAULT_CACHE_SIZE;
        let mut max_value_depth = DEFAULT_MAX_VALUE_DEPTH;
        for (key, value) in options.map(|d| d.iter().collect::<Vec<_>>()).unwrap_or_default() {
            let name = key.cast::<PyString>()?.to_str()?.to_owned();
            let number: u64 = value.extract()?;
            match name.as_str() {
                "cache_size" => cache_size = number as usize,
                "max_value_depth" => max_value_depth = number as usize,
                other if limits.set(other, number) => {}
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "Engine() got an unexpected keyword argument '{other}'"
                    )))
                }
            }
        }
        limits.validate().map_err(PyValueError::new_err)?;
        if max_value_depth == 0 || max_value_depth > 256 {
            return Err(PyValueError::new_err("max_value_depth must be between 1 and 256"));
        }
        let engine = build_engine(&limits);
        Ok(PyEngine {
            limits,
            max_depth: max_value_depth,
            engine: RwLock::new(Arc::new(engine)),
            registrations: Mutex::new(Vec::new()),
            cache: ScriptCache::new(cache_size),
        })
    }

    /// Low-level registration used by `Engine.register_fn` (which computes the arities).
    #[pyo3(signature = (name, func, arities, module = None))]
    fn _register(
        &self,
        name: String,
        func: Bound<'_, PyAny>,
        arities: Vec<usize>,
        module: Option<String>,
    ) -> PyResult<()> {
        if !func.is_callable() {
            return Err(PyTypeError::new_err("func must be callable"));
        }
        if arities.is_empty() {
            return Err(PyValueError::new_err("at least one arity is needed"));
        }
        if let Some(&bad) = arities.iter().find(|&&a| a > MAX_ARITY) {
            return Err(PyValueError::new_err(format!("arity {bad} is more than the maximum ({MAX_ARITY})")));
        }
        let qualified = match &module {
            Some(ns) => format!("{ns}::{name}"),
            None => name.clone(),
        };
        let host = Arc::new(HostFn { qualified, callable: func.unbind(), max_depth: self.max_depth });
        let mut regs = self.registrations.lock().unwrap_or_else(|e| e.into_inner());
        for arity in arities {
            regs.retain(|r| !(r.module == module && r.name == name && r.arity == arity));
            regs.push(Registration {
                module: module.clone(),
                name: name.clone(),
                arity,
                host: Arc::clone(&host),
            });
        }
        let engine = Arc::new(self.build(&regs));
        *self.engine.write().unwrap_or_else(|e| e.into_inner()) = engine;
        self.cache.clear();
        Ok(())
    }

    /// GC support: registered callables may refer back to the engine (closures).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(regs) = self.registrations.try_lock() {
            let mut seen: Vec<*const HostFn> = Vec::new();
            for r in regs.iter() {
                let ptr = Arc::as_ptr(&r.host);
                if !seen.contains(&ptr) {
                    seen.push(ptr);
                    visit.call(&r.host.callable)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let mut regs = self.registrations.lock().unwrap_or_else(|e| e.into_inner());
        regs.clear();
        *self.engine.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(build_engine(&self.limits));
        self.cache.clear();
    }

    /// Evaluate `script` and return its value (see the Python docstring).
    #[pyo3(signature = (script, constants = None, *, timeout_ms = None, cancel = None, tap = None))]
    fn eval(
        &self,
        py: Python<'_>,
        script: &str,
        constants: Option<&Bound<'_, PyDict>>,
        timeout_ms: Option<u64>,
        cancel: Option<PyRef<'_, CancelToken>>,
        tap: Option<PyRef<'_, LogTap>>,
    ) -> PyResult<Py<PyAny>> {
        let outcome = self.execute(py, script, constants, timeout_ms, cancel.as_deref(), tap.as_deref())?;
        self.value_or_raise(py, outcome.result, &outcome.stats).map(|(obj, _)| obj)
    }

    /// Run `script` and return a `RunResult` (see the Python docstring).
    #[pyo3(signature = (script, constants = None, *, timeout_ms = None, cancel = None, tap = None))]
    fn run(
        &self,
        py: Python<'_>,
        script: &str,
        constants: Option<&Bound<'_, PyDict>>,
        timeout_ms: Option<u64>,
        cancel: Option<PyRef<'_, CancelToken>>,
        tap: Option<PyRef<'_, LogTap>>,
    ) -> PyResult<RunResult> {
        let outcome = self.execute(py, script, constants, timeout_ms, cancel.as_deref(), tap.as_deref())?;
        let (value, output) = self.value_or_raise(py, outcome.result, &outcome.stats)?;
        Ok(RunResult {
            value,
            output,
            logs: outcome.stats.logs,
            truncated: outcome.stats.truncated,
            operations: outcome.stats.operations,
            peak_memory_bytes: outcome.stats.peak_memory,
            elapsed_ms: outcome.elapsed.as_secs_f64() * 1000.0,
        })
    }

    /// Cache counters: `{"hits", "misses", "size", "capacity"}`; `misses` counts parses.
    fn cache_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.cache.stats();
        let d = PyDict::new(py);
        d.set_item("hits", s.hits)?;
        d.set_item("misses", s.misses)?;
        d.set_item("size", s.size)?;
        d.set_item("capacity", s.capacity)?;
        Ok(d)
    }

    /// Heap bytes that runs in this process left behind after everything they returned was
    /// released (reference cycles between closures, which nothing can free). A worker
    /// replaces itself once this passes its bound.
    #[staticmethod]
    fn left_behind_bytes() -> usize {
        crate::memory::left_behind_bytes()
    }

    /// Forget every cached compiled script.
    fn clear_cache(&self) {
        self.cache.clear();
    }

    /// The limits this engine enforces, as a dict.
    #[getter]
    fn limits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, value) in self.limits.fields() {
            d.set_item(name, value)?;
        }
        d.set_item("cache_size", self.cache.stats().capacity)?;
        d.set_item("max_value_depth", self.max_depth)?;
        Ok(d)
    }
}

/// A flag another thread sets to stop a run at its next operation (kind `cancelled`).
#[pyclass(frozen, module = "rhai._rhai", name = "CancelToken")]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
}

#[pymethods]
impl CancelToken {
    #[new]
    fn new() -> Self {
        CancelToken { flag: Arc::new(AtomicBool::new(false)) }
    }

    /// Stop the run (or runs) given this token, at its next check (every 256 operations).
    fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether `cancel()` was called.
    #[getter]
    fn cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

/// The printed lines of the runs given this tap, for another thread to take while they run.
#[pyclass(frozen, module = "rhai._rhai", name = "LogTap")]
pub struct LogTap {
    tap: Tap,
}

#[pymethods]
impl LogTap {
    #[new]
    fn new() -> Self {
        LogTap { tap: Tap::new() }
    }

    /// The lines printed since the last `take()` (oldest first; empty when none came).
    fn take(&self, py: Python<'_>) -> Vec<String> {
        // The run holds the tap's lock only to append a line, never while waiting for the GIL.
        py.detach(|| self.tap.take())
    }

    /// Lines waiting to be taken.
    #[getter]
    fn pending(&self) -> usize {
        self.tap.pending()
    }
}

/// The outcome of `Engine.run`.
#[pyclass(frozen, module = "rhai._rhai", name = "RunResult")]
pub struct RunResult {
    /// The script's value as a Python object.
    #[pyo3(get)]
    value: Py<PyAny>,
    /// The value as Rhai prints it (`to_string`), e.g. `"20"` for `10 * 2`.
    #[pyo3(get)]
    output: String,
    /// Lines produced by `print`/`debug`, capped at `max_output_size` bytes.
    #[pyo3(get)]
    logs: Vec<String>,
    /// Whether the logs were cut (the last line is then the truncation marker).
    #[pyo3(get)]
    truncated: bool,
    /// Rhai operations the run counted.
    #[pyo3(get)]
    operations: u64,
    /// Most heap bytes the run's values held at once (counted against `max_memory_bytes`).
    #[pyo3(get)]
    peak_memory_bytes: usize,
    /// Wall time of the run (parse included), in milliseconds.
    #[pyo3(get)]
    elapsed_ms: f64,
}

#[pymethods]
impl RunResult {
    fn __repr__(&self) -> String {
        format!(
            "RunResult(output={:?}, logs={}, operations={}, elapsed_ms={:.3})",
            self.output,
            self.logs.len(),
            self.operations,
            self.elapsed_ms
        )
    }
}
