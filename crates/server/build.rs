//! Release builds embed the web app (`dist/` at the repository root, built by Trunk), so they
//! must be rebuilt when it changes, including when it first appears after the server was built
//! without it. Debug builds read `dist/` from disk at run time and need nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rerun-if-changed=../../dist");
    }
}
