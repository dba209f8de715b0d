//! Replays the fuzz corpus (`fuzz/corpus/<adapter>/`) on stable Rust, so CI covers the parsers
//! without nightly: no input may panic, seeds named `ok_*` must decode and `bad_*` must be
//! rejected as malformed. Each seed is also replayed truncated at every length and with single
//! bytes flipped: cheap, and it reaches the "stream ended mid-token" paths.

use std::path::Path;

use inferwatch::protocol::fuzzing;
use inferwatch::routes::config::Protocol;

const ADAPTERS: [(&str, Protocol); 4] = [
    ("kserve_v2", Protocol::KserveV2),
    ("openai", Protocol::Openai),
    ("tfserving", Protocol::Tfserving),
    ("json", Protocol::Json),
];

fn seeds(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(dir);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_seed_decodes_as_its_name_says() {
    for (dir, protocol) in ADAPTERS {
        let seeds = seeds(dir);
        assert!(seeds.len() >= 4, "{dir}: too few seeds");
        for (name, data) in seeds {
            let got = fuzzing::run(protocol, &data);
            if name.starts_with("ok_") {
                let inference = got
                    .unwrap_or_else(|e| panic!("{dir}/{name}: {e}"))
                    .unwrap_or_else(|| panic!("{dir}/{name}: not an inference"));
                assert!(
                    !inference.predictions.is_empty() || inference.tokens.is_some(),
                    "{dir}/{name}: nothing understood: {inference:?}"
                );
            } else if name.starts_with("bad_") {
                assert!(got.is_err(), "{dir}/{name}: accepted: {got:?}");
            }
        }
    }
}

#[test]
fn truncated_and_flipped_seeds_never_panic() {
    for (dir, protocol) in ADAPTERS {
        for (_, data) in seeds(dir) {
            for len in 0..data.len() {
                let _ = fuzzing::run(protocol, &data[..len]);
            }
            for i in (0..data.len()).step_by(3) {
                for flip in [0x01, 0x20, 0x80, 0xff] {
                    let mut mutated = data.clone();
                    mutated[i] ^= flip;
                    let _ = fuzzing::run(protocol, &mutated);
                }
            }
        }
    }
}
