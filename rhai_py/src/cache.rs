//! LRU cache of compiled scripts, keyed by source text.

use lru::LruCache;
use rhai::{Engine, ParseError, AST};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Thread-safe LRU of compiled scripts. Compilation happens outside the lock.
pub struct ScriptCache {
    inner: Mutex<LruCache<String, Arc<AST>>>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters of a [`ScriptCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    /// Misses, i.e. how many times a script was parsed.
    pub misses: u64,
    pub size: usize,
    pub capacity: usize,
}

impl ScriptCache {
    /// A cache holding up to `capacity` scripts; 0 disables caching (every run parses).
    pub fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).expect("non-zero");
        ScriptCache {
            inner: Mutex::new(LruCache::new(cap)),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The compiled script for `source`, compiling (and caching) it on a miss.
    pub fn get_or_compile(&self, engine: &Engine, source: &str) -> Result<Arc<AST>, ParseError> {
        if self.capacity > 0 {
            if let Some(ast) = self.lock().get(source) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Arc::clone(ast));
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let ast = Arc::new(engine.compile(source)?);
        if self.capacity > 0 {
            self.lock().put(source.to_owned(), Arc::clone(&ast));
        }
        Ok(ast)
    }

    /// Drop every cached script (counters are kept).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            size: if self.capacity > 0 { self.lock().len() } else { 0 },
            capacity: self.capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<AST>>> {
        // A panic while holding the lock cannot leave the LRU inconsistent for our use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
