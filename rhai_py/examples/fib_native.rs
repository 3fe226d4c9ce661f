//! Native baseline for bench/rhai_engine.py: runs a script through the very same engine
//! builder, limits, per-run state and script cache as the Python module, without Python.
//!
//! Usage: cargo run --release --example fib_native -- ITERATIONS MAX_OPERATIONS TIMEOUT_MS [SCRIPT]
//! Prints one JSON line: {"median_ms": .., "min_ms": .., "value": "..", "operations": .., "times_ms": [..]}

use rhai_py::{build_engine, run_script, Limits, RunControl, ScriptCache};
use std::collections::HashMap;

const FIB: &str = "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } } fib(20)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let iterations: usize = args.first().map_or(20, |s| s.parse().expect("ITERATIONS"));
    let limits = Limits {
        max_operations: args.get(1).map_or(100_000_000, |s| s.parse().expect("MAX_OPERATIONS")),
        timeout_ms: args.get(2).map_or(60_000, |s| s.parse().expect("TIMEOUT_MS")),
        ..Limits::default()
    };
    let script = args.get(3).map_or(FIB, String::as_str);
    limits.validate().expect("valid limits");
    let engine = build_engine(&limits);
    let cache = ScriptCache::new(256);

    let mut times = Vec::with_capacity(iterations);
    let mut last = None;
    for _ in 0..iterations {
        let outcome = run_script(&engine, &cache, &limits, script, HashMap::new(), 64, RunControl::default());
        times.push(outcome.elapsed.as_secs_f64() * 1000.0);
        last = Some(outcome);
    }
    let last = last.expect("at least one iteration");
    let value = match &last.result {
        Ok(v) => v.to_string(),
        Err(e) => panic!("script failed: {e}"),
    };
    let listed: Vec<String> = times.iter().map(|t| format!("{t:.4}")).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{{\"median_ms\": {:.4}, \"min_ms\": {:.4}, \"value\": \"{}\", \"operations\": {}, \"times_ms\": [{}]}}",
        sorted[sorted.len() / 2],
        sorted[0],
        value,
        last.stats.operations,
        listed.join(", ")
    );
}
