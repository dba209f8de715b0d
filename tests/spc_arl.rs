//! Run-length checks of every chart against the published average-run-length tables, both the
//! exact values (closed form / Markov chains) and a simulation of the daemon's own chart code,
//! plus Phase I estimates and the baseline state file.
//!
//! Tables: Montgomery, *Introduction to Statistical Quality Control* (6th ed.), Table 9.3
//! (two-sided CUSUM, k = 0.5; after Lucas & Crosier 1982 / Hawkins) and Table 9.11 (EWMA, after
//! Lucas & Saccucci 1990); Champ & Woodall 1987, Table 1 (Western Electric rules); the Shewhart
//! closed form 1/p.

use inferwatch::quality::arl::{calibrate, exact, simulate, Family, Spec};
use inferwatch::quality::phase::{
    estimate_continuous, Baseline, SavedBaseline, SavedReference, State,
};
use inferwatch::quality::subgroup::Subgrouper;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// (spec, shift, published ARL, relative tolerance for the exact value). Published values carry
/// three significant digits, so 1% covers their rounding and the Markov chain's discretization.
fn published() -> Vec<(Spec, f64, f64, f64)> {
    let ewma = |lambda, limit| Spec::Ewma {
        lambda,
        limit,
        exact: false,
    };
    let cusum = |h| Spec::Cusum { k: 0.5, h };
    vec![
        (Spec::Shewhart { limit: 3.0 }, 0.0, 370.4, 0.001),
        (Spec::Shewhart { limit: 3.0 }, 1.0, 43.9, 0.001),
        (Spec::Shewhart { limit: 3.0 }, 2.0, 6.3, 0.01),
        (Spec::We { limit: 3.0 }, 0.0, 91.75, 0.001),
        (cusum(4.0), 0.0, 168.0, 0.01),
        (cusum(4.0), 0.5, 26.6, 0.01),
        (cusum(4.0), 1.0, 8.38, 0.01),
        (cusum(4.0), 2.0, 3.34, 0.01),
        (cusum(5.0), 0.0, 465.0, 0.01),
        (cusum(5.0), 1.0, 10.4, 0.01),
        (cusum(5.0), 2.0, 4.01, 0.01),
        (ewma(0.10, 2.814), 0.0, 500.0, 0.01),
        (ewma(0.10, 2.814), 0.5, 31.3, 0.01),
        (ewma(0.10, 2.814), 1.0, 10.3, 0.01),
        (ewma(0.10, 2.814), 2.0, 4.4, 0.02),
        (ewma(0.20, 2.962), 0.0, 500.0, 0.01),
        (ewma(0.20, 2.962), 1.0, 10.5, 0.01),
        (ewma(0.40, 3.054), 0.0, 500.0, 0.01),
        (ewma(0.40, 3.054), 1.0, 14.3, 0.01),
    ]
}

#[test]
fn exact_values_reproduce_the_published_tables() {
    for (spec, shift, table, tol) in published() {
        let got = exact(&spec, shift).unwrap().arl;
        assert!(
            ((got - table) / table).abs() <= tol,
            "{spec} shift {shift}: exact {got:.3}, published {table}"
        );
    }
}

/// The simulation of the daemon's chart code agrees with the exact value within its 99.9%
/// confidence interval, in control and at a 1σ shift, for every chart family (including the EWMA
/// with the exact time-varying limits the daemon uses by default).
#[test]
fn simulated_chart_code_agrees_with_the_exact_values() {
    let settings = [
        (Spec::Shewhart { limit: 3.0 }, 2000),
        (Spec::We { limit: 3.0 }, 2000),
        (Spec::Cusum { k: 0.5, h: 4.0 }, 2000),
        (
            Spec::Ewma {
                lambda: 0.1,
                limit: 2.814,
                exact: false,
            },
            1000,
        ),
        (
            Spec::Ewma {
                lambda: 0.1,
                limit: 2.814,
                exact: true,
            },
            1000,
        ),
    ];
    for (spec, runs) in settings {
        for shift in [0.0, 1.0] {
            let want = exact(&spec, shift).unwrap().arl;
            let sim = simulate(&spec, shift, runs, 42, 10_000_000);
            // 99.9%: z = 3.29 instead of the reported 1.96.
            let half = (sim.ci_high - sim.arl) * 3.29 / 1.96;
            assert!(
                (sim.arl - want).abs() <= half,
                "{spec} shift {shift}: simulated {:.2} ± {half:.2}, exact {want:.2}",
                sim.arl
            );
            assert_eq!(sim.censored, 0);
        }
    }
}

#[test]
fn exact_ewma_limits_alarm_earlier_than_asymptotic_ones() {
    // The narrow early limits catch a process that starts shifted (fast initial response).
    let asym = Spec::Ewma {
        lambda: 0.1,
        limit: 2.814,
        exact: false,
    };
    let exact_limits = Spec::Ewma {
        lambda: 0.1,
        limit: 2.814,
        exact: true,
    };
    let a = exact(&asym, 1.0).unwrap().arl;
    let e = exact(&exact_limits, 1.0).unwrap().arl;
    assert!(e < a, "exact {e} vs asymptotic {a}");
}

#[test]
fn calibration_finds_the_published_limits() {
    let c = calibrate(Family::Cusum, 0.5, 465.0).unwrap();
    assert!((c.limit - 5.0).abs() < 0.02, "h = {}", c.limit);
    let s = calibrate(Family::Shewhart, 0.0, 500.0).unwrap();
    assert!((s.limit - 3.0902).abs() < 1e-3, "L = {}", s.limit);
    let we = calibrate(Family::We, 0.0, 91.75).unwrap();
    assert!((we.limit - 3.0).abs() < 0.01, "L = {}", we.limit);
    assert!(
        calibrate(Family::We, 0.0, 1000.0).is_err(),
        "rules 2-4 cap ARL0"
    );
}

fn normal(rng: &mut SmallRng, mean: f64, sd: f64) -> f64 {
    // Box-Muller: enough for a test, no extra crate.
    let u1: f64 = rng.gen::<f64>().max(1e-300);
    let u2: f64 = rng.gen();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[test]
fn phase_one_estimates_centre_and_sigma() {
    let mut rng = SmallRng::seed_from_u64(9);
    // X-bar: 200 subgroups of 5 from N(10, 2): s̄/c4 is unbiased, sd of the estimate ~ 1.6%.
    let mut sub = Subgrouper::new(5);
    let groups: Vec<_> = (0..1000)
        .filter_map(|_| sub.push(normal(&mut rng, 10.0, 2.0)))
        .collect();
    assert_eq!(groups.len(), 200);
    let b = estimate_continuous(&groups).unwrap();
    assert!((b.center - 10.0).abs() < 0.1, "{b:?}");
    assert!((b.sigma - 2.0).abs() < 0.1, "{b:?}");
    // Individuals: MR̄/d2 over 2000 points.
    let mut one = Subgrouper::new(1);
    let groups: Vec<_> = (0..2000)
        .filter_map(|_| one.push(normal(&mut rng, -3.0, 0.5)))
        .collect();
    let b = estimate_continuous(&groups).unwrap();
    assert!((b.center + 3.0).abs() < 0.05, "{b:?}");
    assert!((b.sigma - 0.5).abs() < 0.03, "{b:?}");
    // Unequal subgroups (time intervals): pooled within-subgroup sigma.
    let mut by_time = Subgrouper::new(0);
    let mut groups = Vec::new();
    for i in 0..300 {
        for _ in 0..(2 + i % 7) {
            by_time.push(normal(&mut rng, 100.0, 5.0));
        }
        groups.push(by_time.flush().unwrap());
    }
    let b = estimate_continuous(&groups).unwrap();
    assert!((b.sigma - 5.0).abs() < 0.25, "{b:?}");
}

#[test]
fn state_file_round_trip_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quality.json");
    assert_eq!(State::load(&path).unwrap(), State::default());
    let mut state = State::default();
    state.charts.insert(
        "infer_errors".into(),
        SavedBaseline {
            signal: "request_error:infer".into(),
            kind: "p".into(),
            baseline: Baseline {
                center: 0.00125,
                sigma: (0.00125f64 * 0.99875).sqrt(),
                subgroups: 20,
                observations: 400,
            },
            learned_at_unix: 1_700_000_000,
        },
    );
    state.references.insert(
        "confidence".into(),
        SavedReference {
            signal: "confidence".into(),
            values: vec![0.1, 0.2, 0.30000000000000004, 1e-300],
            learned_at_unix: 1_700_000_001,
        },
    );
    state.save(&path).unwrap();
    let back = State::load(&path).unwrap();
    assert_eq!(back.charts, state.charts, "floats round-trip exactly");
    assert_eq!(back.references, state.references);
    assert_eq!(back.version, 1);
    std::fs::write(&path, "{not json").unwrap();
    let err = State::load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("state file {}:", path.display())),
        "{err}"
    );
}
