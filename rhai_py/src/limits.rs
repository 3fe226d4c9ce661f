//! Engine limits: one explicit value for every knob, identical in debug and release builds.
//!
//! Rhai's own defaults differ between debug and release builds (e.g. call depth 8 vs 64), so
//! [`crate::sandbox::build_engine`] sets every limit from this struct and never relies on them.

/// Declares [`Limits`] once: its fields, their defaults, and the by-name access
/// ([`Limits::fields`], [`Limits::set`]) the Python binding and the validation use, so the
/// list and the defaults are written nowhere else (the Python stub only names them).
macro_rules! limits {
    ($( $(#[$doc:meta])* $name:ident: $ty:ty = $default:expr, )*) => {
        /// Every resource limit a script runs under. All values must be at least 1 (there is
        /// no "unlimited"); see [`Limits::validate`].
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Limits {
            $( $(#[$doc])* pub $name: $ty, )*
        }

        impl Default for Limits {
            /// Safe defaults for untrusted scripts (documented in docs/SCRIPTING.md).
            fn default() -> Self {
                Self { $( $name: $default, )* }
            }
        }

        impl Limits {
            /// Every limit by name, in declaration order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($name), self.$name as u64), )*]
            }

            /// Set the limit called `name`; false when there is no such limit.
            pub fn set(&mut self, name: &str, value: u64) -> bool {
                match name {
                    $( stringify!($name) => { self.$name = value as $ty; true } )*
                    _ => false,
                }
            }
        }
    };
}

limits! {
    /// Maximum number of Rhai operations (expression/statement evaluations) per run.
    max_operations: u64 = 1_000_000,
    /// Wall-clock budget per run, in milliseconds (checked while the script runs).
    timeout_ms: u64 = 1_000,
    /// Maximum nesting of function calls (script and host functions).
    max_call_levels: usize = 64,
    /// Maximum nesting of expressions/statements, at global level and inside functions.
    max_expr_depth: usize = 64,
    /// Maximum length of a string, in bytes.
    max_string_size: usize = 256 * 1024,
    /// Maximum number of elements of an array (nested arrays count their elements too).
    max_array_size: usize = 10_000,
    /// Maximum number of properties of an object map.
    max_map_size: usize = 10_000,
    /// Maximum number of variables in scope at any instant.
    max_variables: usize = 256,
    /// Maximum number of functions a script may define.
    max_functions: usize = 64,
    /// Maximum size of the script source, in bytes.
    max_source_size: usize = 64 * 1024,
    /// Maximum bytes of `print`/`debug` output captured per run.
    max_output_size: usize = 64 * 1024,
    /// Maximum bytes of heap the run's values may hold at once (see [`crate::memory`]).
    max_memory_bytes: usize = 256 * 1024 * 1024,
}

/// Upper bound for `max_expr_depth`: the parser recurses once per level, and this keeps the
/// parser inside the stack space every run is guaranteed (see `runner`).
pub const MAX_EXPR_DEPTH_CEILING: usize = 512;

/// Upper bound for `max_memory_bytes` (16 GiB): the run's stack is sized from the budget
/// (see `runner::run_stack_bytes`) and must stay a reasonable reservation of address space.
pub const MAX_MEMORY_CEILING: usize = 16 * 1024 * 1024 * 1024;

impl Limits {
    /// Check that every limit is usable: all at least 1 (Rhai treats 0 as "unlimited" for
    /// some limits and "forbidden" for others, so 0 is refused altogether), and
    /// `max_expr_depth` at most [`MAX_EXPR_DEPTH_CEILING`].
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in self.fields() {
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
