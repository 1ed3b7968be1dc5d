//! Linked as the authorizer is (functions/authorizer/build.rs), so that the two are compared
//! with the same settings.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
