//! Releasing a run's values without recursion.
//!
//! Dropping a Rhai value recurses once per level of nesting: an array in an array, a closure
//! whose captured variable holds the previous closure (`loop { let g = f; f = || g; }`), a map
//! holding a closure over the previous map. A script can build such chains hundreds of
//! thousands of links long, and their recursive drop overflows any thread stack (SIGSEGV). So
//! whatever a run leaves behind (its scope, its value, a thrown value) is taken apart here
//! with an explicit work list: each container is emptied into the list before it is dropped,
//! so every drop that happens is of a value with nothing left inside. Emptying shared cells
//! (captured variables) in place also breaks the reference cycles closures can form, which
//! would otherwise leak.

use rhai::{Array, Dynamic, FnPtr, Map, Scope};

/// Drop `value` and everything inside it, iteratively.
pub fn release(value: Dynamic) {
    release_all(vec![value]);
}

/// Drop every value of `scope`, iteratively.
pub fn release_scope(scope: Scope<'_>) {
    release_all(scope.into_iter().map(|(_, value, _)| value).collect());
}

/// Drop every value in `pending` and everything inside them, iteratively.
pub fn release_all(mut pending: Vec<Dynamic>) {
    while let Some(mut value) = pending.pop() {
        take_children(&mut value, &mut pending);
        // `value` now holds nothing nested: its drop is shallow.
    }
}

/// Move what `value` holds into `out`, leaving `value` empty (or a leaf).
fn take_children(value: &mut Dynamic, out: &mut Vec<Dynamic>) {
    if value.is_shared() {
        // A captured variable: empty the cell itself, so every other holder sees `()` too.
        if let Some(mut inner) = value.write_lock::<Dynamic>() {
            out.push(inner.take());
        }
        return;
    }
    if let Some(mut array) = value.write_lock::<Array>() {
        out.append(&mut array);
        return;
    }
    if let Some(mut map) = value.write_lock::<Map>() {
        out.extend(std::mem::take(&mut *map).into_values());
        return;
    }
    if let Some(mut fn_ptr) = value.write_lock::<FnPtr>() {
        out.extend(fn_ptr.iter_curry_mut().map(Dynamic::take));
        fn_ptr.set_curry(std::iter::empty());
    }
}
