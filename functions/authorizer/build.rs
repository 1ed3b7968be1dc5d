//! Links the authorizer as a position-dependent executable (`-no-pie`), as Go links its
//! binaries by default. A position-independent one makes the dynamic loader apply about
//! 16,000 relocations at every start, each a write to a page copied on write: about a sixth of
//! the forged-key path's cold start (BENCHMARKS.md, "Limits across instances").
//! The shared libraries, the heap and the stack are still placed at random (SECURITY.md).
//! The flag reaches this package's binary alone, not its dependencies' build scripts.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
