//! Replays the fuzz corpus (`fuzz/corpus/<adapter>/`) on stable Rust, so CI covers the parsers
//! without nightly: no input may panic, seeds named `ok_*` must decode and `bad_*` must be
//! rejected as malformed. Each seed is also replayed truncated at every length and with single
//! bytes flipped: cheap, and it reaches the "stream ended mid-token" paths. The gRPC seeds
//! (`kserve_v2_grpc/`, written by `fuzz/make_grpc_seeds.py` with the protocol's generated
//! protobuf code) go through `fuzzing::run_grpc`.

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

type Run = Box<dyn Fn(&[u8]) -> RunResult>;
type RunResult = Result<Option<inferwatch::protocol::Inference>, inferwatch::protocol::DecodeError>;

/// Every corpus directory with the entry point its seeds go through.
fn adapters() -> Vec<(&'static str, Run)> {
    let mut out: Vec<(&'static str, Run)> = ADAPTERS
        .iter()
        .map(|&(dir, protocol)| {
            let run: Run = Box::new(move |d: &[u8]| fuzzing::run(protocol, d));
            (dir, run)
        })
        .collect();
    out.push(("kserve_v2_grpc", Box::new(fuzzing::run_grpc)));
    out
}

#[test]
fn every_seed_decodes_as_its_name_says() {
    for (dir, run) in adapters() {
        let seeds = seeds(dir);
        assert!(seeds.len() >= 4, "{dir}: too few seeds");
        for (name, data) in seeds {
            let got = run(&data);
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
    for (dir, run) in adapters() {
        for (_, data) in seeds(dir) {
            for len in 0..data.len() {
                let _ = run(&data[..len]);
            }
            for i in (0..data.len()).step_by(3) {
                for flip in [0x01, 0x20, 0x80, 0xff] {
                    let mut mutated = data.clone();
                    mutated[i] ^= flip;
                    let _ = run(&mutated);
                }
            }
        }
    }
}

/// The gRPC seeds hold known tensors: typed and raw contents read the same, a gzip answer
/// reads as the plain one, a two-pair stream yields both answers, Triton classification strings
/// give their classes and scores.
#[test]
fn grpc_seeds_read_their_known_tensors() {
    let all: std::collections::BTreeMap<String, Vec<u8>> =
        seeds("kserve_v2_grpc").into_iter().collect();
    let run = |name: &str| fuzzing::run_grpc(&all[name]).unwrap().unwrap();
    let typed = run("ok_typed_contents");
    assert_eq!(typed.batch, Some(2));
    let classes: Vec<_> = typed.predictions.iter().map(|p| p.class.clone()).collect();
    assert_eq!(classes, [Some("0".into()), Some("2".into())]);
    assert_eq!(typed.predictions[0].confidence, Some(0.97));
    assert_eq!(typed.inputs.as_ref().unwrap().values.len(), 8);
    assert_eq!(run("ok_raw_contents"), typed, "raw contents read as typed");
    assert_eq!(run("ok_gzip_response"), typed, "gzip read as plain");
    let stream = run("ok_stream_triton_wrapped");
    assert_eq!(stream.predictions.len(), 2);
    assert_eq!(stream.batch, Some(2));
    assert_eq!(stream.inputs.unwrap().rows, 2);
    let cls = run("ok_triton_classification");
    assert_eq!(cls.predictions[0].class.as_deref(), Some("setosa"));
    assert_eq!(cls.predictions[1].class.as_deref(), Some("virginica"));
    assert_eq!(cls.predictions[1].confidence, Some(0.9));
    let bytes = run("ok_raw_bytes_input");
    assert_eq!(
        bytes.model.as_deref(),
        Some("iris"),
        "the response names the model"
    );
}
