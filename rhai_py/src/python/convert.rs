//! Conversions between Python values and Rhai `Dynamic`s (table in docs/SCRIPTING.md).
//!
//! Python -> Rhai: None, bool, int (i64 range), float, str, bytes/bytearray, list/tuple, dict
//! with str keys. Rhai -> Python: (), bool, INT, FLOAT, char/string, Blob, Array, Map.
//! Anything else is refused with a [`ConvError`]; nesting deeper than `max_depth` is refused
//! in both directions (this also stops cyclic Python containers).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use rhai::{Array, Blob, Dynamic, ImmutableString, Map};

/// Why a value could not be converted; the caller decides which exception it becomes.
#[derive(Debug, Clone)]
pub struct ConvError(pub String, pub ConvErrorKind);

/// What kind of Python exception a [`ConvError`] maps to when the caller is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvErrorKind {
    /// Unsupported type or key (TypeError).
    Type,
    /// Integer outside the 64-bit range (OverflowError).
    Overflow,
    /// Too deep, bad text (ValueError).
    Value,
}

impl ConvError {
    fn ty(msg: impl Into<String>) -> Self {
        ConvError(msg.into(), ConvErrorKind::Type)
    }
    fn value(msg: impl Into<String>) -> Self {
        ConvError(msg.into(), ConvErrorKind::Value)
    }
    fn at(self, path: &str) -> Self {
        if path.is_empty() {
            self
        } else {
            ConvError(format!("{} (at {path})", self.0), self.1)
        }
    }
    /// The matching Python exception.
    pub fn to_pyerr(&self) -> PyErr {
        use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
        match self.1 {
            ConvErrorKind::Type => PyTypeError::new_err(self.0.clone()),
            ConvErrorKind::Overflow => PyOverflowError::new_err(self.0.clone()),
            ConvErrorKind::Value => PyValueError::new_err(self.0.clone()),
        }
    }
}

type ConvResult<T> = Result<T, ConvError>;

/// Convert a Python value to a Rhai value.
pub fn py_to_dynamic(obj: &Bound<'_, PyAny>, max_depth: usize) -> ConvResult<Dynamic> {
    let mut path = String::new();
    to_dyn(obj, max_depth, 0, &mut path).map_err(|e| e.at(&path))
}

fn to_dyn(obj: &Bound<'_, PyAny>, max_depth: usize, depth: usize, path: &mut String) -> ConvResult<Dynamic> {
    if obj.is_none() {
        return Ok(Dynamic::UNIT);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Dynamic::from_bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i64>().map(Dynamic::from_int).map_err(|_| {
            ConvError(
                format!("int {} is outside the range of a Rhai integer (64-bit signed)", short_repr(obj)),
                ConvErrorKind::Overflow,
            )
        });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Dynamic::from_float(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_str().map_err(|_| ConvError::value("str is not valid UTF-8 (lone surrogates)"))?;
        return Ok(Dynamic::from(ImmutableString::from(s)));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Dynamic::from_blob(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Dynamic::from_blob(b.to_vec()));
    }
    let is_list = obj.is_instance_of::<PyList>();
    if is_list || obj.is_instance_of::<PyTuple>() {
        check_depth(depth, max_depth)?;
        let len = obj.len().map_err(|e| ConvError::ty(e.to_string()))?;
        let mut arr = Array::with_capacity(len);
        for (i, item) in obj.try_iter().map_err(|e| ConvError::ty(e.to_string()))?.enumerate() {
            let item = item.map_err(|e| ConvError::ty(e.to_string()))?;
            let mark = path.len();
            path.push_str(&format!("[{i}]"));
            arr.push(to_dyn(&item, max_depth, depth + 1, path)?);
            path.truncate(mark);
        }
        return Ok(Dynamic::from_array(arr));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        check_depth(depth, max_depth)?;
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let key = k
                .cast::<PyString>()
                .map_err(|_| ConvError::ty(format!("dict keys must be str, got {}", type_name(&k))))?;
            let key = key.to_str().map_err(|_| ConvError::value("dict key is not valid UTF-8"))?;
            let mark = path.len();
            path.push_str(&format!("[{key:?}]"));
            let value = to_dyn(&v, max_depth, depth + 1, path)?;
            path.truncate(mark);
            map.insert(key.into(), value);
        }
        return Ok(Dynamic::from_map(map));
    }
    Err(ConvError::ty(format!("cannot convert Python {} to a Rhai value", type_name(obj))))
}

fn check_depth(depth: usize, max_depth: usize) -> ConvResult<()> {
    if depth >= max_depth {
        Err(ConvError::value(format!("value is nested deeper than max_value_depth ({max_depth})")))
    } else {
        Ok(())
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| format!("'{n}'")).unwrap_or_else(|_| "object".into())
}

fn short_repr(obj: &Bound<'_, PyAny>) -> String {
    let s = obj.str().map(|s| s.to_string()).unwrap_or_default();
    if s.len() > 40 {
        format!("{}...", &s[..40])
    } else {
        s
    }
}

/// Convert a Rhai value to Python (NaN, infinities and blobs as they are: turning a value into
/// JSON is the server's job, by its own rules).
pub fn dynamic_to_py(py: Python<'_>, value: &Dynamic, max_depth: usize) -> ConvResult<Py<PyAny>> {
    let mut path = String::new();
    to_py(py, value, max_depth, 0, &mut path).map_err(|e| e.at(&path))
}

fn to_py(
    py: Python<'_>,
    value: &Dynamic,
    max_depth: usize,
    depth: usize,
    path: &mut String,
) -> ConvResult<Py<PyAny>> {
    let fail = |e: PyErr| ConvError::ty(e.to_string());
    if value.is_shared() {
        return to_py(py, &value.flatten_clone(), max_depth, depth, path);
    }
    if value.is_unit() {
        return Ok(py.None());
    }
    if let Ok(b) = value.as_bool() {
        return Ok(PyBool::new(py, b).to_owned().into_any().unbind());
    }
    if let Ok(i) = value.as_int() {
        return Ok(PyInt::new(py, i).into_any().unbind());
    }
    if let Ok(f) = value.as_float() {
        return Ok(PyFloat::new(py, f).into_any().unbind());
    }
    if let Ok(c) = value.as_char() {
        return Ok(PyString::new(py, c.encode_utf8(&mut [0; 4])).into_any().unbind());
    }
    if let Ok(s) = value.as_immutable_string_ref() {
        return Ok(PyString::new(py, s.as_str()).into_any().unbind());
    }
    if let Ok(b) = value.as_blob_ref() {
        let bytes: &Blob = &b;
        return Ok(PyBytes::new(py, bytes).into_any().unbind());
    }
    if let Ok(arr) = value.as_array_ref() {
        check_depth(depth, max_depth)?;
        let list = PyList::empty(py);
        for (i, item) in arr.iter().enumerate() {
            let mark = path.len();
            path.push_str(&format!("[{i}]"));
            list.append(to_py(py, item, max_depth, depth + 1, path)?).map_err(fail)?;
            path.truncate(mark);
        }
        return Ok(list.into_any().unbind());
    }
    if let Ok(map) = value.as_map_ref() {
        check_depth(depth, max_depth)?;
        let dict = PyDict::new(py);
        for (k, v) in map.iter() {
            let mark = path.len();
            path.push_str(&format!("[{:?}]", k.as_str()));
            dict.set_item(k.as_str(), to_py(py, v, max_depth, depth + 1, path)?).map_err(fail)?;
            path.truncate(mark);
        }
        return Ok(dict.into_any().unbind());
    }
    Err(ConvError::ty(format!("cannot convert a Rhai '{}' value to Python", value.type_name())))
}
