//! Passes the version of the `rhai` crate this library is built with (from Cargo.lock) to the
//! code as `RHAI_VERSION`, so `rhai.RHAI_VERSION` can never disagree with the build.

use std::fs;

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = fs::read_to_string("Cargo.lock").expect("Cargo.lock is committed beside Cargo.toml");
    let version = lock
        .split("[[package]]")
        .find(|package| package.contains("\nname = \"rhai\"\n"))
        .and_then(|package| package.lines().find_map(|line| line.strip_prefix("version = \"")))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("Cargo.lock pins the rhai crate");
    println!("cargo:rustc-env=RHAI_VERSION={version}");
}
