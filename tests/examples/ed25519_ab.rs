//! aws-lc-rs against ed25519-dalek on one Ed25519 signature check, interleaved: each round times
//! a block of checks with one library, then the same block with the other, so that the machine's
//! drift (this one is shared) falls on both alike. Prints each library's per-check time and the
//! per-round ratio (min / median / max). BENCHMARKS.md, "What would move each figure further".
//!
//! `cargo run --release -p keygate-tests --example ed25519_ab [rounds]`

use std::hint::black_box;
use std::time::Instant;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

const BLOCK: u32 = 500;

fn per_check_ns(check: impl Fn()) -> f64 {
    let started = Instant::now();
    for _ in 0..BLOCK {
        check();
    }
    started.elapsed().as_nanos() as f64 / f64::from(BLOCK)
}

fn min_median_max(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[0], values[values.len() / 2], values[values.len() - 1])
}

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(60, |n| n.parse().expect("rounds: a number"));
    let pair = Ed25519KeyPair::generate().expect("a key pair");
    let message = b"eyJhbGciOiJFZERTQSIsInR5cCI6ImFwaWtleStqd3QifQ.eyJzdWIiOiJrZXkifQ".to_vec();
    let signature = pair.sign(&message).as_ref().to_vec();
    let public = pair.public_key().as_ref().to_vec();

    let aws_lc = UnparsedPublicKey::new(&ED25519, &public);
    let dalek_key =
        ed25519_dalek::VerifyingKey::from_bytes(&public[..].try_into().expect("32 bytes")).expect("a point");
    let dalek_signature = ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes");

    let (mut a, mut d, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let aws = per_check_ns(|| aws_lc.verify(black_box(&message), &signature).expect("valid"));
        let dal = per_check_ns(|| {
            use ed25519_dalek::Verifier;
            dalek_key.verify(black_box(&message), &dalek_signature).expect("valid")
        });
        a.push(aws);
        d.push(dal);
        ratio.push(dal / aws);
    }
    let (a, d, r) = (min_median_max(a), min_median_max(d), min_median_max(ratio));
    println!("{rounds} rounds of {BLOCK} checks each, min / median / max:");
    println!("  aws-lc-rs                               {:.1} / {:.1} / {:.1} µs", a.0 / 1e3, a.1 / 1e3, a.2 / 1e3);
    println!("  ed25519-dalek (key decompressed once)   {:.1} / {:.1} / {:.1} µs", d.0 / 1e3, d.1 / 1e3, d.2 / 1e3);
    println!("  dalek ÷ aws-lc, per round               {:.3} / {:.3} / {:.3}", r.0, r.1, r.2);
}
