//! Classification of Rhai errors into the stable kinds the Python API exposes.

use rhai::{Dynamic, EvalAltResult, ParseError, ParseErrorType, Position};
use std::fmt;

/// The error kinds (`RhaiError.kind` on the Python side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Syntax error in the script.
    Parse,
    /// Any other runtime error raised by Rhai (type mismatch, unknown function, sandbox...).
    Runtime,
    /// The script executed `throw`.
    Throw,
    /// A registered Python function raised.
    Host,
    /// `max_operations` exceeded.
    Operations,
    /// `timeout_ms` exceeded.
    Timeout,
    /// Call depth, expression depth or stack space exhausted.
    Stack,
    /// A string/array/map grew past its limit.
    DataSize,
    /// `max_variables` exceeded.
    Variables,
    /// `max_functions` exceeded.
    Functions,
    /// `max_source_size` exceeded.
    SourceSize,
    /// `max_memory_bytes` exceeded.
    Memory,
    /// The run's cancel token was set.
    Cancelled,
}

impl ErrorKind {
    /// The string used in the Python API.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Parse => "parse",
            ErrorKind::Runtime => "runtime",
            ErrorKind::Throw => "throw",
            ErrorKind::Host => "host",
            ErrorKind::Operations => "operations",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Stack => "stack",
            ErrorKind::DataSize => "data_size",
            ErrorKind::Variables => "variables",
            ErrorKind::Functions => "functions",
            ErrorKind::SourceSize => "source_size",
            ErrorKind::Memory => "memory",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

/// Why our own hooks stopped a run. Carried inside `EvalAltResult::ErrorTerminated`,
/// which scripts cannot catch with `try`/`catch`.
#[derive(Clone, Debug)]
pub enum Termination {
    /// The per-run deadline passed.
    Timeout,
    /// Less than the guard's worth of stack was left.
    StackExhausted,
    /// The run's values held more than `max_memory_bytes`.
    MemoryExhausted,
    /// The run's cancel token was set.
    Cancelled,
    /// A sandboxed function (e.g. `sleep`) was called.
    Denied(String),
    /// A host (Python) function failed; `position` is where the script called it.
    Host { message: String, position: Position },
}

/// A failed run, classified.
#[derive(Clone, Debug)]
pub struct ScriptFailure {
    pub kind: ErrorKind,
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The value given to `throw` (kind `throw` only).
    pub thrown: Option<Dynamic>,
}

impl fmt::Display for ScriptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.kind.as_str(), self.message)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, " (line {l}, column {c})")?;
        }
        Ok(())
    }
}

impl ScriptFailure {
    /// A failure with a kind and message and the given position.
    pub fn new(kind: ErrorKind, message: impl Into<String>, pos: Position) -> Self {
        ScriptFailure {
            kind,
            message: message.into(),
            line: pos.line(),
            column: pos.position(),
            thrown: None,
        }
    }

    /// Classify a compile error.
    pub fn from_parse_error(err: &ParseError) -> Self {
        Self::from_parse_type(&err.0, err.1)
    }

    fn from_parse_type(err: &ParseErrorType, pos: Position) -> Self {
        let kind = match err {
            ParseErrorType::ExprTooDeep => ErrorKind::Stack,
            ParseErrorType::TooManyFunctions => ErrorKind::Functions,
            ParseErrorType::LiteralTooLarge(..) => ErrorKind::DataSize,
            _ => ErrorKind::Parse,
        };
        Self::new(kind, err.to_string(), pos)
    }

    /// Classify a runtime error, reporting the innermost cause of
    /// `ErrorInFunctionCall`/`ErrorInModule` wrappers and its position.
    pub fn from_eval_error(err: Box<EvalAltResult>) -> Self {
        let mut err = err;
        let mut outer = Position::NONE;
        while let EvalAltResult::ErrorInFunctionCall(_, _, inner, pos)
        | EvalAltResult::ErrorInModule(_, inner, pos) = *err
        {
            if !pos.is_none() {
                outer = pos;
            }
            err = inner;
        }
        let pos = if err.position().is_none() { outer } else { err.position() };
        let kind = match &*err {
            EvalAltResult::ErrorParsing(t, p) => {
                let p = if p.is_none() { pos } else { *p };
                return Self::from_parse_type(t, p);
            }
            EvalAltResult::ErrorRuntime(value, _) => {
                let mut f = Self::new(ErrorKind::Throw, value.to_string(), pos);
                f.thrown = Some(value.clone());
                return f;
            }
            EvalAltResult::ErrorTerminated(value, _) => {
                return match value.read_lock::<Termination>().map(|t| t.clone()) {
                    Some(Termination::Timeout) => {
                        Self::new(ErrorKind::Timeout, "script timed out (timeout_ms exceeded)", pos)
                    }
                    Some(Termination::StackExhausted) => {
                        Self::new(ErrorKind::Stack, "script ran out of stack space", pos)
                    }
                    Some(Termination::MemoryExhausted) => Self::new(
                        ErrorKind::Memory,
                        "script used more memory than max_memory_bytes allows",
                        pos,
                    ),
                    Some(Termination::Cancelled) => {
                        Self::new(ErrorKind::Cancelled, "script run cancelled", pos)
                    }
                    Some(Termination::Denied(msg)) => Self::new(ErrorKind::Runtime, msg, pos),
                    Some(Termination::Host { message, position }) => {
                        let p = if position.is_none() { pos } else { position };
                        Self::new(ErrorKind::Host, message, p)
                    }
                    None => Self::new(ErrorKind::Runtime, format!("script terminated: {value}"), pos),
                };
            }
            EvalAltResult::ErrorTooManyOperations(_) => ErrorKind::Operations,
            EvalAltResult::ErrorTooManyVariables(_) => ErrorKind::Variables,
            EvalAltResult::ErrorStackOverflow(_) => ErrorKind::Stack,
            EvalAltResult::ErrorDataTooLarge(..) => ErrorKind::DataSize,
            _ => ErrorKind::Runtime,
        };
        err.clear_position();
        Self::new(kind, err.to_string(), pos)
    }
}
