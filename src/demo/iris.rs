//! The demo's data: the iris measurements and the two committed ONNX models, embedded in the
//! binary so that `inferwatch demo` runs from any directory; realistic request rows drawn from
//! them, and the input shift the drift injects.

use rand::Rng;

/// The live model (`models/make_iris_onnx.py`): input `X` float32 [N, 4], outputs `label`
/// int64 [N] and `probabilities` float32 [N, 3].
pub const MODEL: &[u8] = include_bytes!("../../models/iris.onnx");
/// The same model with class 1's intercept raised: the "bad rollout" served after the drift.
pub const PERTURBED_MODEL: &[u8] = include_bytes!("../../models/iris_perturbed.onnx");
/// Fisher's 150 rows (`models/make_iris_csv.py`).
const CSV: &str = include_str!("../../models/iris.csv");

pub const MODEL_NAME: &str = "iris";
pub const CLASSES: [&str; 3] = ["setosa", "versicolor", "virginica"];
pub const FEATURES: usize = 4;
/// Petal length: the feature the drift shifts and the drift test watches.
pub const DRIFT_FEATURE: usize = 2;
/// How much the drift scales it: a new measuring device, a unit slip upstream, a new
/// population — a 30% change that moves a third of the class boundaries.
pub const DRIFT_SCALE: f32 = 1.3;

/// One measured flower and its true class.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub x: [f32; FEATURES],
    pub class: usize,
}

/// The embedded data set (a build-time constant, so a parse failure is a bug: tested below).
pub fn rows() -> Vec<Row> {
    CSV.lines()
        .skip(1)
        .filter_map(|line| {
            let mut it = line.split(',');
            let mut x = [0f32; FEATURES];
            for v in &mut x {
                *v = it.next()?.parse().ok()?;
            }
            let class = it.next()?.parse().ok()?;
            Some(Row { x, class })
        })
        .collect()
}

/// A request row as traffic would send it: a real flower with noise within the data's
/// measurement resolution (0.1 cm), so the inputs are not 150 values repeated; after the drift,
/// petal length scaled.
pub fn sample(rows: &[Row], drifted: bool, rng: &mut impl Rng) -> [f32; FEATURES] {
    let row = rows[rng.gen_range(0..rows.len())];
    let mut x = row.x;
    for v in &mut x {
        *v = (*v + rng.gen_range(-0.05..0.05)).max(0.1);
    }
    if drifted {
        x[DRIFT_FEATURE] *= DRIFT_SCALE;
    }
    x
}

/// Share of requests after the drift with a missing measurement (sent as `"NaN"`): the broken
/// sensor or failed join upstream that often comes with a drift, so the sidecar's input-anomaly
/// counter has something to count.
pub const MISSING_SHARE: f64 = 0.05;

/// After the drift, now and then a measurement goes missing (NaN, as clients encode a null).
pub fn maybe_missing(x: &mut [f32; FEATURES], drifted: bool, rng: &mut impl Rng) {
    if drifted && rng.gen_bool(MISSING_SHARE) {
        x[rng.gen_range(0..FEATURES)] = f32::NAN;
    }
}

/// The KServe V2 request body for a batch of rows; NaN is sent as the string `"NaN"` (JSON has
/// no NaN; the Open Inference Protocol's JSON clients write it so).
pub fn request_body(batch: &[[f32; FEATURES]]) -> serde_json::Value {
    let data: Vec<serde_json::Value> = batch
        .iter()
        .flatten()
        // Two decimals: what a client serialising centimetres would send.
        .map(|v| {
            if v.is_nan() {
                serde_json::json!("NaN")
            } else {
                serde_json::json!((f64::from(*v) * 100.0).round() / 100.0)
            }
        })
        .collect();
    serde_json::json!({
        "inputs": [{
            "name": "X",
            "shape": [batch.len(), FEATURES],
            "datatype": "FP32",
            "data": data,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn embedded_rows_are_the_150_flowers() {
        let rows = rows();
        assert_eq!(rows.len(), 150);
        for c in 0..3 {
            assert_eq!(rows.iter().filter(|r| r.class == c).count(), 50);
        }
        assert_eq!(rows[0].x, [5.1, 3.5, 1.4, 0.2]);
    }

    #[test]
    fn drift_scales_petal_length_only() {
        let rows = rows();
        let mut a = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = rand::rngs::StdRng::seed_from_u64(7);
        let plain = sample(&rows, false, &mut a);
        let drifted = sample(&rows, true, &mut b);
        assert_eq!(plain[0], drifted[0]);
        assert!((drifted[DRIFT_FEATURE] - plain[DRIFT_FEATURE] * DRIFT_SCALE).abs() < 1e-6);
    }

    #[test]
    fn request_body_is_a_kserve_v2_tensor() {
        let v = request_body(&[[5.1, 3.5, 1.4, 0.2]]);
        assert_eq!(v["inputs"][0]["shape"], serde_json::json!([1, 4]));
        assert_eq!(v["inputs"][0]["data"][2], serde_json::json!(1.4));
        let v = request_body(&[[5.1, f32::NAN, 1.4, 0.2]]);
        assert_eq!(v["inputs"][0]["data"][1], serde_json::json!("NaN"));
    }
}
