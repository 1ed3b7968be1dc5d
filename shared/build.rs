//! Records the commit this crate is built from as `KEYGATE_COMMIT` (as ripgrep's build script
//! records its own): `--version` and every function's first log line name it. A build
//! without a git checkout (a source archive) takes `KEYGATE_COMMIT` from the environment, or
//! says `unknown`.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=KEYGATE_COMMIT");
    let commit = std::env::var("KEYGATE_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Built again when HEAD moves: HEAD itself, and the branch it points to (a missing file
    // would make cargo run this script at every build, so only those present are named).
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let branch = git(&["symbolic-ref", "-q", "HEAD"]);
        for file in ["HEAD", "packed-refs"].into_iter().map(String::from).chain(branch) {
            let path = std::path::Path::new(&dir).join(file);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    println!("cargo:rustc-env=KEYGATE_COMMIT={commit}");
}
