//! The signing key as operators handle it: what `keygate-local keygen` writes, OpenSSL reads
//! (`openssl pkey`, Debian's OpenSSL 3.0), with the same public key keygate prints; and what
//! `openssl genpkey -algorithm ed25519` writes, keygate reads.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use base64::Engine;
use keygate_tests::local_binary;

fn run(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} cannot start ({e}); the test command needs OpenSSL's command-line tool"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// The raw 32-byte public key of an Ed25519 PEM, as OpenSSL sees it.
fn openssl_public_key(private_pem: &[u8]) -> Vec<u8> {
    let out = run("openssl", &["pkey", "-pubout", "-outform", "DER"], private_pem);
    assert!(out.status.success(), "openssl refused the key: {}", String::from_utf8_lossy(&out.stderr));
    // SubjectPublicKeyInfo of Ed25519: 12 bytes of header, then the key.
    assert_eq!(out.stdout.len(), 44);
    out.stdout[12..].to_vec()
}

fn jwk_x(jwk: &str) -> Vec<u8> {
    let jwk: serde_json::Value = serde_json::from_str(jwk.trim()).unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap()
}

#[test]
fn openssl_reads_what_keygen_writes_and_keygate_reads_what_openssl_writes() {
    let dir = std::env::temp_dir().join(format!("keygate-keygen-{}", std::process::id()));
    let data = dir.to_string_lossy().into_owned();
    let keygen = Command::new(local_binary()).args(["--data-dir", &data, "keygen"]).output().unwrap();
    assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
    let stderr = String::from_utf8_lossy(&keygen.stderr);
    let printed = stderr.split_once("public key (SigningPublicKey): ").map(|(_, jwk)| jwk).expect("the public key");
    assert_eq!(openssl_public_key(&keygen.stdout), jwk_x(printed), "OpenSSL and keygate see the same key");

    let generated = run("openssl", &["genpkey", "-algorithm", "ed25519"], b"");
    assert!(generated.status.success());
    let public = run(local_binary().to_str().unwrap(), &["--data-dir", &data, "public-key"], &generated.stdout);
    assert!(public.status.success(), "{}", String::from_utf8_lossy(&public.stderr));
    assert_eq!(jwk_x(&String::from_utf8_lossy(&public.stdout)), openssl_public_key(&generated.stdout));
    let _ = std::fs::remove_dir_all(dir);
}
