//! Instructions per decode of a KServe V2 image request, for callgrind (issue 14): a
//! 1×3×224×224 FP32 tensor as JSON (values as `bench/proxy.sh --request-shape` writes them:
//! 9 significant digits, ~1.8 MB) answered with 1000 FP32 scores, decoded `N` times by the
//! `kserve_v2` adapter with the rule an inspector builds for a route with the default
//! `[inspection]` (32 tracked features, no bounds, no hook that reads every input).
//!
//! ```text
//! cargo build --example decode_cost --config 'profile.dev.package.inferwatch.opt-level=3' \
//!     --config 'profile.dev.package.serde_json.opt-level=3'
//! for n in 1 3; do valgrind --tool=callgrind --callgrind-out-file=cg.$n \
//!     target/debug/examples/decode_cost $n; done   # (Ir(3) - Ir(1)) / 2 = one decode
//! ```
//!
//! A second argument `all` decodes with a rule that keeps every input column (what a route
//! with an ONNX shadow target, or a test's default rule, asks for).

use inferwatch::protocol::{decode, OwnedExchange, Rule};
use inferwatch::routes::config::{PredictionConfig, Protocol};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let all = args.next().as_deref() == Some("all");
    // A small LCG: the same body every run, without a rand dependency in the example.
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64 * 5.0 - 2.5
    };
    let values: Vec<String> = (0..3 * 224 * 224)
        .map(|_| {
            let x = next();
            if x.abs() >= 1.0 {
                format!("{x:.8}")
            } else {
                format!("{x:.9}")
            }
        })
        .collect();
    let request = format!(
        r#"{{"inputs":[{{"name":"x","shape":[1,3,224,224],"datatype":"FP32","data":[{}]}}]}}"#,
        values.join(",")
    );
    let scores: Vec<String> = (0..1000)
        .map(|i| format!("{:.6}", i as f64 / 1e6))
        .collect();
    let response = format!(
        r#"{{"model_name":"m","outputs":[{{"name":"probs","datatype":"FP32","shape":[1,1000],"data":[{}]}}]}}"#,
        scores.join(",")
    );
    let ex = OwnedExchange::simple(
        "/v2/models/m/infer",
        request.as_bytes(),
        response.as_bytes(),
    );
    let rule = Rule::new(&PredictionConfig::default());
    let rule = if all { rule } else { rule.reading_features(32) };
    let mut features = 0;
    for _ in 0..n {
        let inf = decode(Protocol::KserveV2, &ex.view(), &rule).expect("decodes");
        features += inf.and_then(|i| i.inputs).map_or(0, |i| i.features);
    }
    eprintln!(
        "{n} decodes of a {} byte request: {features} features in all",
        request.len()
    );
}
