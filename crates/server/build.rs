//! Release builds embed the web app (`dist/` at the repository root, built by Trunk), so they
//! must be rebuilt when it changes, including when it first appears after the server was built
//! without it. Debug builds read `dist/` from disk at run time and need nothing, but the path
//! they read it from must be absolute and free of `..` even when `dist/` does not exist yet
//! (the file lookup compares canonical paths): this script names it in `KOKUBAN_DIST_DIR`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rerun-if-changed=../../dist");
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .join("../..")
        .canonicalize()
        .expect("the repository root exists");
    println!(
        "cargo:rustc-env=KOKUBAN_DIST_DIR={}",
        root.join("dist").display()
    );
}
