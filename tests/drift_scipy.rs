//! Our PSI, KS and chi-square equal scipy/numpy's on identical data to 1e-9. scipy lives in the
//! project venv `.venv-peers`, created by `scripts/install-peers.sh` (which `make test` runs).

use std::path::Path;
use std::process::Command;

use inferwatch::quality::drift::{
    bin_counts, chi_square, ks_two_sample, psi, psi_edges, PSI_EPSILON,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-peers/bin/python");

/// The reference computation, in numpy/scipy terms.
const SCRIPT: &str = r#"
import json, sys
import numpy as np
from scipy import stats
cases = json.load(open(sys.argv[1]))
out = []
for c in cases:
    ref, cur, bins = np.array(c["ref"]), np.array(c["cur"]), c["bins"]
    edges = np.unique(np.quantile(ref, [i / bins for i in range(1, bins)]))
    e = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    a = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
    e = np.where(e == 0, c["eps"], e)
    a = np.where(a == 0, c["eps"], a)
    psi = float(np.sum((a - e) * np.log(a / e)))
    ks = stats.ks_2samp(ref, cur)
    en = len(ref) * len(cur) / (len(ref) + len(cur))
    p_asymp = float(stats.kstwobign.sf(np.sqrt(en) * ks.statistic))
    table = np.array([c["ref_classes"], c["cur_classes"]])
    table = table[:, table.sum(axis=0) > 0]
    chi = stats.chi2_contingency(table, correction=False)
    out.append({"edges": edges.tolist(), "psi": psi, "ks": float(ks.statistic),
                "ks_p": p_asymp, "ks_p_scipy_default": float(ks.pvalue),
                "chi": float(chi.statistic), "chi_p": float(chi.pvalue), "dof": int(chi.dof)})
print(json.dumps(out))
"#;

fn python() -> &'static str {
    if !Path::new(PYTHON).exists() {
        panic!(
            "{PYTHON} is missing: run scripts/install-peers.sh (creates .venv-peers with scipy)"
        );
    }
    PYTHON
}

fn normal(rng: &mut SmallRng, mean: f64, sd: f64) -> f64 {
    let u1: f64 = rng.gen::<f64>().max(1e-300);
    let u2: f64 = rng.gen();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

struct Case {
    reference: Vec<f64>,
    current: Vec<f64>,
    bins: usize,
    ref_classes: Vec<u64>,
    cur_classes: Vec<u64>,
}

fn cases() -> Vec<Case> {
    let mut rng = SmallRng::seed_from_u64(2024);
    let mut out = Vec::new();
    // (n, m, shift, scale, bins): no drift, a shift, a spread change, unequal sizes, coarse data
    // with ties (rounded values give repeated quantile edges and empty bins).
    for &(n, m, shift, scale, bins, round) in &[
        (1000, 1000, 0.0, 1.0, 10, false),
        (1000, 500, 0.3, 1.0, 10, false),
        (2000, 700, 0.0, 1.6, 20, false),
        (300, 1200, -0.2, 0.8, 5, false),
        (500, 500, 0.5, 1.0, 10, true),
    ] {
        let r = |rng: &mut SmallRng, mu: f64, sd: f64| {
            let x = normal(rng, mu, sd);
            if round {
                x.round()
            } else {
                x
            }
        };
        let reference: Vec<f64> = (0..n).map(|_| r(&mut rng, 0.0, 1.0)).collect();
        let current: Vec<f64> = (0..m).map(|_| r(&mut rng, shift, scale)).collect();
        let ref_classes: Vec<u64> = (0..6)
            .map(|i| rng.gen_range(0..50) * (i != 4) as u64 + 1)
            .collect();
        let mut cur_classes: Vec<u64> = (0..6).map(|_| rng.gen_range(1..60)).collect();
        cur_classes.push(0);
        let mut ref_classes = ref_classes;
        ref_classes.push(0); // a class empty in both windows is dropped by both
        out.push(Case {
            reference,
            current,
            bins,
            ref_classes,
            cur_classes,
        });
    }
    out
}

fn close(ours: f64, theirs: f64, what: &str) {
    assert!(
        (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1.0),
        "{what}: ours {ours:e}, scipy {theirs:e}"
    );
}

#[test]
fn psi_ks_and_chi_square_equal_scipy() {
    let cases = cases();
    let json: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            serde_json::json!({"ref": c.reference, "cur": c.current, "bins": c.bins,
                "eps": PSI_EPSILON, "ref_classes": c.ref_classes, "cur_classes": c.cur_classes})
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cases.json");
    // serde_json writes the shortest text that reads back to the same f64, so both sides see
    // identical data.
    std::fs::write(&input, serde_json::to_string(&json).unwrap()).unwrap();
    let out = Command::new(python())
        .arg("-c")
        .arg(SCRIPT)
        .arg(&input)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for (i, (c, r)) in cases.iter().zip(&results).enumerate() {
        let edges = psi_edges(&c.reference, c.bins);
        let theirs_edges: Vec<f64> = serde_json::from_value(r["edges"].clone()).unwrap();
        assert_eq!(edges.len(), theirs_edges.len(), "case {i}: edges");
        for (a, b) in edges.iter().zip(&theirs_edges) {
            close(*a, *b, &format!("case {i}: edge"));
        }
        let p = psi(
            &bin_counts(&edges, &c.reference),
            &bin_counts(&edges, &c.current),
        );
        close(p, r["psi"].as_f64().unwrap(), &format!("case {i}: psi"));
        let ks = ks_two_sample(&c.reference, &c.current);
        close(
            ks.statistic,
            r["ks"].as_f64().unwrap(),
            &format!("case {i}: ks D"),
        );
        close(
            ks.p_value,
            r["ks_p"].as_f64().unwrap(),
            &format!("case {i}: ks p"),
        );
        // scipy's default p-value (exact or finite-n) differs from the asymptotic one by
        // O(1/√n); at these sizes that is small, and it is reported here for the record.
        let default_p = r["ks_p_scipy_default"].as_f64().unwrap();
        assert!(
            (ks.p_value - default_p).abs() < 0.05,
            "case {i}: asymptotic p {} vs scipy default {default_p}",
            ks.p_value
        );
        let chi = chi_square(&c.ref_classes, &c.cur_classes);
        close(
            chi.statistic,
            r["chi"].as_f64().unwrap(),
            &format!("case {i}: chi2"),
        );
        close(
            chi.p_value,
            r["chi_p"].as_f64().unwrap(),
            &format!("case {i}: chi2 p"),
        );
        assert_eq!(chi.dof, r["dof"].as_u64().unwrap());
    }
}
