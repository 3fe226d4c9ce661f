//! Measures how much heap and stack a chain of nested values costs, for the stack sizing in
//! `runner::RUN_STACK_PER_BUDGET_BYTE` (docs/SCRIPTING.md, "Memory").
//!
//! Usage: cargo run --release --example drop_depth -- SHAPE LINKS BUDGET_BYTES
//! Builds LINKS links of SHAPE inside a block and leaves the block (a drop in the middle of the
//! run, which Rhai does recursively), on the stack the budget gives a run. Prints one JSON
//! line with the run's peak heap and the stack it was given; crashes if the stack was too small.

use rhai_py::{build_engine, run_script, Limits, RunControl, ScriptCache};
use std::collections::HashMap;

fn script(shape: &str, links: usize) -> String {
    let body = match shape {
        "closure" => "let g = f; f = |x| g.call(x) + 1;",
        "capture" => "let g = f; f = || g;",
        "array" => "let b = f; f = [|| b];",
        "map" => "let b = f; f = #{f: || b};",
        "curry" => "f = Fn(\"x\").curry(f);",
        "nested" => "f = [f];",
        "deep" => "let b = f; f = [[|| b]];",
        "mapped" => "let b = f; f = [#{f: b}]; let c = || f;",
        other => panic!("unknown shape {other}"),
    };
    let init = if shape == "nested" || shape == "curry" { "[]" } else { "|x| x" };
    if std::env::var_os("RETURN_CHAIN").is_some() {
        return format!("fn x(a) {{ a }} let f = {init}; for i in 0..{links} {{ {body} }} f");
    }
    format!("fn x(a) {{ a }} {{ let f = {init}; for i in 0..{links} {{ {body} }} }} 1")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shape = args.first().map_or("closure", String::as_str);
    let links: usize = args.get(1).map_or(10_000, |s| s.parse().expect("LINKS"));
    let budget: usize = args.get(2).map_or(256 << 20, |s| s.parse().expect("BUDGET_BYTES"));
    let limits = Limits {
        max_operations: 1 << 40,
        timeout_ms: 600_000,
        max_array_size: 1 << 30,
        max_memory_bytes: budget,
        ..Limits::default()
    };
    let engine = build_engine(&limits);
    let cache = ScriptCache::new(0);
    if let Some(stack) = args.get(3) {
        // The same script straight on the engine, on a thread with exactly this much stack:
        // crashes when leaving the block needs more.
        let stack: usize = stack.parse().expect("DROP_STACK");
        let source = script(shape, links);
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(move || engine.eval::<rhai::Dynamic>(&source).map(|_| ()).expect("run"))
            .unwrap()
            .join()
            .unwrap();
        println!("{{\"survived_on\": {stack}}}");
        return;
    }
    let outcome = run_script(
        &engine,
        &cache,
        &limits,
        &script(shape, links),
        HashMap::new(),
        64,
        RunControl::default(),
    );
    let status = match &outcome.result {
        Ok(_) => "ok".to_string(),
        Err(f) => f.kind.as_str().to_string(),
    };
    println!(
        "{{\"shape\": \"{shape}\", \"links\": {links}, \"status\": \"{status}\", \"peak_heap\": {}, \"stack\": {}}}",
        outcome.stats.peak_memory,
        rhai_py::runner::run_stack_bytes(&limits)
    );
}
