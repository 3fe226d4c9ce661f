//! Engine limits: one explicit value for every knob, identical in debug and release builds.
//!
//! Rhai's own defaults differ between debug and release builds (e.g. call depth 8 vs 64), so
//! [`crate::sandbox::build_engine`] sets every limit from this struct and never relies on them.

/// Every resource limit a script runs under. All values must be at least 1 (there is no
/// "unlimited"); see [`Limits::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of Rhai operations (expression/statement evaluations) per run.
    pub max_operations: u64,
    /// Wall-clock budget per run, in milliseconds (checked while the script runs).
    pub timeout_ms: u64,
    /// Maximum nesting of function calls (script and host functions).
    pub max_call_levels: usize,
    /// Maximum nesting of expressions/statements, at global level and inside functions.
    pub max_expr_depth: usize,
    /// Maximum length of a string, in bytes.
    pub max_string_size: usize,
    /// Maximum number of elements of an array (nested arrays count their elements too).
    pub max_array_size: usize,
    /// Maximum number of properties of an object map.
    pub max_map_size: usize,
    /// Maximum number of variables in scope at any instant.
    pub max_variables: usize,
    /// Maximum number of functions a script may define.
    pub max_functions: usize,
    /// Maximum size of the script source, in bytes.
    pub max_source_size: usize,
    /// Maximum bytes of `print`/`debug` output captured per run.
    pub max_output_size: usize,
    /// Maximum bytes of heap the run's values may hold at once (see [`crate::memory`]).
    pub max_memory_bytes: usize,
}

/// Upper bound for `max_expr_depth`: the parser recurses once per level, and this keeps the
/// parser inside the stack space every run is guaranteed (see `runner`).
pub const MAX_EXPR_DEPTH_CEILING: usize = 512;

/// Upper bound for `max_memory_bytes` (16 GiB): the run's stack is sized from the budget
/// (see `runner::run_stack_bytes`) and must stay a reasonable reservation of address space.
pub const MAX_MEMORY_CEILING: usize = 16 * 1024 * 1024 * 1024;

impl Default for Limits {
    /// Safe defaults for untrusted scripts (documented in docs/SCRIPTING.md).
    fn default() -> Self {
        Self {
            max_operations: 1_000_000,
            timeout_ms: 1_000,
            max_call_levels: 64,
            max_expr_depth: 64,
            max_string_size: 256 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_variables: 256,
            max_functions: 64,
            max_source_size: 64 * 1024,
            max_output_size: 64 * 1024,
            max_memory_bytes: 256 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Check that every limit is usable: all at least 1 (Rhai treats 0 as "unlimited" for
    /// some limits and "forbidden" for others, so 0 is refused altogether), and
    /// `max_expr_depth` at most [`MAX_EXPR_DEPTH_CEILING`].
    pub fn validate(&self) -> Result<(), String> {
        let fields: [(&str, u64); 12] = [
            ("max_operations", self.max_operations),
            ("timeout_ms", self.timeout_ms),
            ("max_call_levels", self.max_call_levels as u64),
            ("max_expr_depth", self.max_expr_depth as u64),
            ("max_string_size", self.max_string_size as u64),
            ("max_array_size", self.max_array_size as u64),
            ("max_map_size", self.max_map_size as u64),
            ("max_variables", self.max_variables as u64),
            ("max_functions", self.max_functions as u64),
            ("max_source_size", self.max_source_size as u64),
            ("max_output_size", self.max_output_size as u64),
            ("max_memory_bytes", self.max_memory_bytes as u64),
        ];
        for (name, value) in fields {
            if value == 0 {
                return Err(format!("{name} must be at least 1 (there is no unlimited setting)"));
            }
        }
        if self.max_expr_depth > MAX_EXPR_DEPTH_CEILING {
            return Err(format!("max_expr_depth must be at most {MAX_EXPR_DEPTH_CEILING}"));
        }
        if self.max_memory_bytes > MAX_MEMORY_CEILING {
            return Err(format!("max_memory_bytes must be at most {MAX_MEMORY_CEILING}"));
        }
        Ok(())
    }
}
