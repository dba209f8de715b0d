//! Run-length analysis of a chart setting (`inferwatch spc arl|calibrate`): how many subgroups,
//! on average and at the median, until a chart signals, in control (ARL0: the false-alarm rate
//! an SRE signs up for) and after a step shift of δσ (ARL1: the detection delay).
//!
//! Two independent answers are given side by side:
//! - **simulation** of the very chart types the daemon runs ([`Shewhart`], [`Ewma`], [`Cusum`]),
//!   fed N(δ, 1) subgroup statistics, so a bug in a chart shows up as a disagreement;
//! - **exact** values where a numerical method exists: Shewhart's closed form; the Markov chain
//!   of Champ & Woodall (1987) for the Western Electric rules, whose states are read from the
//!   chart code itself; the Brook & Evans (1972) Markov chain for EWMA (as in Lucas & Saccucci
//!   1990, with the exact time-varying limits handled step by step) and for each side of the
//!   tabular CUSUM, combined as `1/ARL = 1/ARL⁺ + 1/ARL⁻` (Lucas & Crosier 1982).
//!
//! Published tables these reproduce (tests in `tests/spc_arl.rs`): Montgomery, *Introduction to
//! Statistical Quality Control*, Table 9.3 (CUSUM, from Lucas & Crosier / Hawkins) and
//! Table 9.11 (EWMA, from Lucas & Saccucci 1990); Champ & Woodall 1987, Table 1 (WE rules).

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use super::cusum::Cusum;
use super::ewma::Ewma;
use super::shewhart::{Shewhart, WeRules};
use super::{phi, Chart};

/// Markov-chain states per EWMA grid / CUSUM side: enough for agreement with the published
/// tables to well under 1% (the discretization error falls as 1/states²).
pub const MARKOV_STATES: usize = 301;

/// A chart setting to analyse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "chart", rename_all = "snake_case")]
pub enum Spec {
    /// Shewhart individuals / X-bar, rule 1 only, at ±limit·σ.
    Shewhart { limit: f64 },
    /// Shewhart with Western Electric rules 1–4 (rule 1 at ±limit·σ).
    We { limit: f64 },
    /// EWMA with weight λ and limits ±L·sd(z_t) (exact) or ±L·sd(z_∞) (asymptotic).
    Ewma {
        lambda: f64,
        limit: f64,
        exact: bool,
    },
    /// Two-sided tabular CUSUM with reference value k and decision interval h (σ units).
    Cusum { k: f64, h: f64 },
}

/// The charts `Spec` builds, dispatched statically so a simulated observation costs what a daemon
/// observation costs.
enum AnyChart {
    Shewhart(Shewhart),
    Ewma(Ewma),
    Cusum(Cusum),
}

impl Spec {
    fn chart(&self) -> AnyChart {
        match *self {
            Spec::Shewhart { limit } => AnyChart::Shewhart(Shewhart::new(limit, WeRules::NONE)),
            Spec::We { limit } => AnyChart::Shewhart(Shewhart::new(limit, WeRules::ALL)),
            Spec::Ewma {
                lambda,
                limit,
                exact,
            } => AnyChart::Ewma(Ewma::new(lambda, limit, exact)),
            Spec::Cusum { k, h } => AnyChart::Cusum(Cusum::new(k, h)),
        }
    }

    /// Checks the parameters (the CLI reports this instead of running nonsense).
    pub fn validate(&self) -> Result<(), String> {
        let finite = |name: &str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("--{name} must be a finite number, got {v}"))
            }
        };
        match *self {
            Spec::Shewhart { limit } => {
                finite("limit", limit)?;
                (limit > 0.0)
                    .then_some(())
                    .ok_or_else(|| format!("--limit must be > 0, got {limit}"))
            }
            Spec::We { limit } => {
                finite("limit", limit)?;
                (limit > 2.0).then_some(()).ok_or_else(|| {
                    format!("--limit must be > 2 with the Western Electric rules (rule 2 uses 2σ), got {limit}")
                })
            }
            Spec::Ewma { lambda, limit, .. } => {
                finite("lambda", lambda)?;
                finite("limit", limit)?;
                if !(lambda > 0.0 && lambda <= 1.0) {
                    return Err(format!("--lambda must be in (0, 1], got {lambda}"));
                }
                (limit > 0.0)
                    .then_some(())
                    .ok_or_else(|| format!("--limit must be > 0, got {limit}"))
            }
            Spec::Cusum { k, h } => {
                finite("k", k)?;
                finite("h", h)?;
                if k < 0.0 {
                    return Err(format!("--k must be >= 0, got {k}"));
                }
                (h > 0.0)
                    .then_some(())
                    .ok_or_else(|| format!("--h must be > 0, got {h}"))
            }
        }
    }
}

impl AnyChart {
    #[inline]
    fn signals(&mut self, z: f64) -> bool {
        match self {
            AnyChart::Shewhart(c) => c.observe(z).fired.any(),
            AnyChart::Ewma(c) => c.observe(z).fired.any(),
            AnyChart::Cusum(c) => c.observe(z).fired.any(),
        }
    }

    fn reset(&mut self) {
        match self {
            AnyChart::Shewhart(c) => c.reset(),
            AnyChart::Ewma(c) => c.reset(),
            AnyChart::Cusum(c) => c.reset(),
        }
    }
}

/// The simulated run-length distribution.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Simulated {
    pub runs: u64,
    pub arl: f64,
    /// 95% confidence interval of the ARL (normal approximation: mean ± 1.96·sd/√runs).
    pub ci_low: f64,
    pub ci_high: f64,
    pub sd: f64,
    pub median: u64,
    /// Runs stopped at `max_len` without a signal (counted at `max_len`, so the ARL is a lower
    /// bound when this is not 0).
    pub censored: u64,
}

/// Exact (numerical) values.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Exact {
    pub arl: f64,
    /// `None` where the method gives the mean only (two-sided CUSUM).
    pub median: Option<u64>,
    pub method: &'static str,
}

/// Simulate `runs` run lengths of `spec` under a step shift of `shift`σ (present from the first
/// point), each capped at `max_len` points.
pub fn simulate(spec: &Spec, shift: f64, runs: u64, seed: u64, max_len: u64) -> Simulated {
    let mut rng = SmallRng::seed_from_u64(seed);
    let normal = Normal::new(shift, 1.0).expect("finite shift");
    let mut chart = spec.chart();
    let mut lengths = Vec::with_capacity(runs as usize);
    let mut censored = 0;
    for _ in 0..runs {
        chart.reset();
        let mut t = 0;
        loop {
            t += 1;
            if chart.signals(rng.sample(normal)) {
                break;
            }
            if t >= max_len {
                censored += 1;
                break;
            }
        }
        lengths.push(t);
    }
    summarize(lengths, censored)
}

fn summarize(mut lengths: Vec<u64>, censored: u64) -> Simulated {
    let n = lengths.len() as f64;
    if lengths.is_empty() {
        return Simulated {
            runs: 0,
            arl: f64::NAN,
            ci_low: f64::NAN,
            ci_high: f64::NAN,
            sd: f64::NAN,
            median: 0,
            censored,
        };
    }
    let mean = lengths.iter().map(|&l| l as f64).sum::<f64>() / n;
    let var = lengths
        .iter()
        .map(|&l| (l as f64 - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0).max(1.0);
    let sd = var.sqrt();
    let half = 1.959_963_984_540_054 * sd / n.sqrt();
    lengths.sort_unstable();
    // The median run length: the smallest t with P(RL <= t) >= 1/2.
    let median = lengths[(lengths.len() - 1) / 2];
    Simulated {
        runs: lengths.len() as u64,
        arl: mean,
        ci_low: mean - half,
        ci_high: mean + half,
        sd,
        median,
        censored,
    }
}

/// The exact (numerical) ARL and median where a method exists.
pub fn exact(spec: &Spec, shift: f64) -> Option<Exact> {
    match *spec {
        Spec::Shewhart { limit } => {
            let p = phi(-limit - shift) + phi(-limit + shift);
            let median = if p >= 1.0 {
                1
            } else {
                (0.5f64.ln() / (1.0 - p).ln()).ceil().max(1.0) as u64
            };
            Some(Exact {
                arl: 1.0 / p,
                median: Some(median),
                method: "closed form 1/p",
            })
        }
        Spec::We { limit } => {
            let (arl, median) = we_markov(limit, shift);
            Some(Exact {
                arl,
                median: Some(median),
                method: "Markov chain (Champ & Woodall 1987)",
            })
        }
        Spec::Ewma {
            lambda,
            limit,
            exact,
        } => {
            let (arl, median) = ewma_markov(lambda, limit, exact, shift, MARKOV_STATES);
            Some(Exact {
                arl,
                median: Some(median),
                method: "Markov chain (Brook & Evans 1972; Lucas & Saccucci 1990)",
            })
        }
        Spec::Cusum { k, h } => {
            let up = cusum_one_sided(k, h, shift, MARKOV_STATES);
            let down = cusum_one_sided(k, h, -shift, MARKOV_STATES);
            Some(Exact {
                arl: 1.0 / (1.0 / up + 1.0 / down),
                median: None,
                method: "Markov chain per side (Brook & Evans 1972), 1/ARL = 1/ARL+ + 1/ARL- (Lucas & Crosier 1982)",
            })
        }
    }
}

/// Run-length distribution by forward propagation: `step` maps the surviving (not yet signalled)
/// probability mass at t−1 to t and returns the mass that survives. Once the survival ratio
/// `S_t/S_{t−1}` has settled (the chain has reached its quasi-stationary shape and, for EWMA, its
/// limits have converged) the tail is geometric and summed in closed form.
fn propagate(mut step: impl FnMut(u64) -> (f64, bool)) -> (f64, u64) {
    let mut arl = 1.0; // S_0 = 1
    let mut previous = 1.0;
    let mut ratio_before = f64::NAN;
    let mut median = None;
    for t in 1..10_000_000u64 {
        let (survive, settled_limits) = step(t);
        if median.is_none() && survive <= 0.5 {
            median = Some(t);
        }
        if survive <= 1e-15 {
            return (arl + survive, median.unwrap_or(t));
        }
        arl += survive;
        let ratio = survive / previous;
        if settled_limits && t > 20 && (ratio - ratio_before).abs() < 1e-14 * ratio.max(1e-300) {
            let tail = survive * ratio / (1.0 - ratio);
            let median = median.unwrap_or_else(|| {
                // S_{t+j} = S_t r^j <= 1/2.
                t + ((0.5 / survive).ln() / ratio.ln()).ceil().max(1.0) as u64
            });
            return (arl + tail, median);
        }
        ratio_before = ratio;
        previous = survive;
    }
    (arl, median.unwrap_or(u64::MAX))
}

/// Champ & Woodall's Markov chain for the Western Electric rules, with the states and the
/// transitions taken from [`Shewhart`] itself: each non-signalling zone is fed as one
/// representative value to a chart set to the state, and the chart says where it goes.
fn we_markov(limit: f64, shift: f64) -> (f64, u64) {
    let upper = limit.max(2.0);
    // Zones between which no rule can tell two values apart: (lo, hi, representative).
    let zones = [
        (2.0, upper, (2.0 + upper) / 2.0),
        (1.0, 2.0, 1.5),
        (0.0, 1.0, 0.5),
        (-1.0, 0.0, -0.5),
        (-2.0, -1.0, -1.5),
        (-upper, -2.0, -(2.0 + upper) / 2.0),
    ];
    let probs: Vec<f64> = zones
        .iter()
        .map(|&(lo, hi, _)| phi(hi - shift) - phi(lo - shift))
        .collect();
    let rules = WeRules::ALL;
    let start = Shewhart::new(limit, rules).state_key();
    let mut index: HashMap<(u8, u8, u8, u8, i8), usize> = HashMap::new();
    let mut keys = vec![start];
    index.insert(start, 0);
    // next[i]: for each zone, the next state (None = the chart signalled).
    let mut next: Vec<[Option<usize>; 6]> = Vec::new();
    let mut i = 0;
    while i < keys.len() {
        let mut row = [None; 6];
        for (z, &(_, _, value)) in zones.iter().enumerate() {
            let mut chart = Shewhart::from_key(limit, rules, keys[i]);
            if chart.observe(value).fired.any() {
                continue;
            }
            let key = chart.state_key();
            let id = *index.entry(key).or_insert_with(|| {
                keys.push(key);
                keys.len() - 1
            });
            row[z] = Some(id);
        }
        next.push(row);
        i += 1;
    }
    let mut p = vec![0.0; keys.len()];
    p[0] = 1.0;
    let mut q = vec![0.0; keys.len()];
    propagate(|_| {
        q.iter_mut().for_each(|v| *v = 0.0);
        for (s, row) in next.iter().enumerate() {
            if p[s] == 0.0 {
                continue;
            }
            for (z, target) in row.iter().enumerate() {
                if let Some(t) = target {
                    q[*t] += p[s] * probs[z];
                }
            }
        }
        std::mem::swap(&mut p, &mut q);
        (p.iter().sum(), true)
    })
}

/// Brook & Evans' chain for the EWMA: `states` cells over the widest in-control interval; at step
/// t the cells whose centre lies beyond that step's limit absorb (exact limits), or the asymptotic
/// limit throughout.
pub fn ewma_markov(lambda: f64, limit: f64, exact: bool, shift: f64, states: usize) -> (f64, u64) {
    let m = states | 1; // odd: one cell is centred on the start value 0
    let h_max = Ewma::half_width(lambda, limit, false, 1);
    let w = 2.0 * h_max / m as f64;
    let centre = |j: usize| -h_max + (j as f64 + 0.5) * w;
    let q = 1.0 - lambda;
    // Transition matrix, row-major: P[i][j] = P(z' in cell j | z = centre(i)).
    let mut trans = vec![0.0; m * m];
    for i in 0..m {
        let from = q * centre(i);
        for j in 0..m {
            let lo = (centre(j) - w / 2.0 - from) / lambda - shift;
            let hi = (centre(j) + w / 2.0 - from) / lambda - shift;
            trans[i * m + j] = phi(hi) - phi(lo);
        }
    }
    let mut p = vec![0.0; m];
    p[m / 2] = 1.0;
    let mut next = vec![0.0; m];
    propagate(|t| {
        let h = Ewma::half_width(lambda, limit, exact, t.min(u32::MAX as u64) as u32);
        next.iter_mut().for_each(|v| *v = 0.0);
        for i in 0..m {
            let pi = p[i];
            if pi == 0.0 {
                continue;
            }
            let row = &trans[i * m..(i + 1) * m];
            for (n, r) in next.iter_mut().zip(row) {
                *n += pi * r;
            }
        }
        for (j, v) in next.iter_mut().enumerate() {
            if centre(j).abs() > h {
                *v = 0.0;
            }
        }
        std::mem::swap(&mut p, &mut next);
        (p.iter().sum(), !exact || (h_max - h) <= 1e-12 * h_max)
    })
}

/// ARL of the upper one-sided CUSUM `C = max(0, C + x − k)`, x ~ N(shift, 1), signal at C > h,
/// by Brook & Evans' chain: cell 0 = [0, w/2] (holding the atom at 0), cell j = ((j−½)w, (j+½)w],
/// the last cell ending at h; `(I − Q)·ARL = 1` solved directly.
pub fn cusum_one_sided(k: f64, h: f64, shift: f64, states: usize) -> f64 {
    let m = states.max(2);
    let w = 2.0 * h / (2 * m - 1) as f64;
    // A = I − Q, row-major.
    let mut a = vec![0.0; m * m];
    for i in 0..m {
        let c = i as f64 * w;
        for j in 0..m {
            let hi = phi((j as f64 + 0.5) * w - c + k - shift);
            let lo = if j == 0 {
                0.0
            } else {
                phi((j as f64 - 0.5) * w - c + k - shift)
            };
            a[i * m + j] = -(hi - lo);
        }
        a[i * m + i] += 1.0;
    }
    let arl = solve(&mut a, vec![1.0; m], m);
    arl[0]
}

/// Gaussian elimination with partial pivoting (dense, small systems only).
fn solve(a: &mut [f64], mut b: Vec<f64>, m: usize) -> Vec<f64> {
    for col in 0..m {
        let pivot = (col..m)
            .max_by(|&x, &y| a[x * m + col].abs().total_cmp(&a[y * m + col].abs()))
            .unwrap_or(col);
        if pivot != col {
            for j in 0..m {
                a.swap(col * m + j, pivot * m + j);
            }
            b.swap(col, pivot);
        }
        let d = a[col * m + col];
        for r in col + 1..m {
            let f = a[r * m + col] / d;
            if f == 0.0 {
                continue;
            }
            for j in col..m {
                a[r * m + j] -= f * a[col * m + j];
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = vec![0.0; m];
    for r in (0..m).rev() {
        let s: f64 = (r + 1..m).map(|j| a[r * m + j] * x[j]).sum();
        x[r] = (b[r] - s) / a[r * m + r];
    }
    x
}

/// Which limit `calibrate` searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Shewhart,
    We,
    Ewma { exact: bool },
    Cusum,
}

/// The setting `calibrate` found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Calibrated {
    pub spec: Spec,
    /// The limit found: L (Shewhart, WE, EWMA) or h (CUSUM).
    pub limit: f64,
    pub exact_arl0: f64,
}

/// Find the limit that gives an in-control ARL of `target` for `family` with shape `shape`
/// (λ for EWMA, k for CUSUM; ignored otherwise), by bisection on the exact ARL0 (which rises
/// monotonically with the limit).
pub fn calibrate(family: Family, shape: f64, target: f64) -> Result<Calibrated, String> {
    if !(target.is_finite() && target > 1.0) {
        return Err(format!(
            "--target must be a finite number > 1, got {target}"
        ));
    }
    let make = |limit: f64| match family {
        Family::Shewhart => Spec::Shewhart { limit },
        Family::We => Spec::We { limit },
        Family::Ewma { exact } => Spec::Ewma {
            lambda: shape,
            limit,
            exact,
        },
        Family::Cusum => Spec::Cusum { k: shape, h: limit },
    };
    make(3.0).validate()?;
    let arl0 = |limit: f64| exact(&make(limit), 0.0).map_or(f64::NAN, |e| e.arl);
    if family == Family::Shewhart {
        // Closed form: 2Φ(−L) = 1/ARL0.
        let limit = -Normal::new(0.0, 1.0)
            .expect("standard normal")
            .inverse_cdf(0.5 / target);
        return Ok(Calibrated {
            spec: make(limit),
            limit,
            exact_arl0: arl0(limit),
        });
    }
    let (mut lo, mut hi) = match family {
        Family::We => (2.0 + 1e-9, 8.0),
        _ => (0.05, 8.0),
    };
    if arl0(lo) > target {
        return Err(format!(
            "no limit gives ARL0 {target}: even the smallest ({lo:.3}) gives {:.1}",
            arl0(lo)
        ));
    }
    while arl0(hi) < target {
        hi *= 1.5;
        if hi > 100.0 {
            return Err(format!("no limit up to 100 gives ARL0 {target}"));
        }
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if arl0(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-7 {
            break;
        }
    }
    let limit = 0.5 * (lo + hi);
    Ok(Calibrated {
        spec: make(limit),
        limit,
        exact_arl0: arl0(limit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shewhart_closed_form() {
        let e = exact(&Spec::Shewhart { limit: 3.0 }, 0.0).unwrap();
        assert!((e.arl - 370.398).abs() < 0.01, "{}", e.arl);
        assert_eq!(e.median, Some(257));
        let e = exact(&Spec::Shewhart { limit: 3.0 }, 1.0).unwrap();
        assert!((e.arl - 43.89).abs() < 0.01, "{}", e.arl);
    }

    #[test]
    fn we_chain_reproduces_champ_and_woodall() {
        // Champ & Woodall 1987, Table 1, rules 1-4: 91.75 in control.
        let (arl, _) = we_markov(3.0, 0.0);
        assert!((arl - 91.75).abs() < 0.01, "{arl}");
    }

    #[test]
    fn simulation_summary() {
        let s = summarize(vec![1, 2, 3, 10], 0);
        assert_eq!(s.arl, 4.0);
        assert_eq!(s.median, 2);
    }

    #[test]
    fn shewhart_calibration_is_the_normal_quantile() {
        let c = calibrate(Family::Shewhart, 0.0, 370.398).unwrap();
        assert!((c.limit - 3.0).abs() < 1e-4, "{}", c.limit);
    }
}

/// What `inferwatch spc arl` prints: the setting, the simulation, and the exact values.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArlReport {
    pub spec: Spec,
    pub shift: f64,
    pub seed: u64,
    pub simulated: Simulated,
    pub exact: Option<Exact>,
}

/// Run `spc arl`: simulate and compute the exact values beside it.
pub fn arl_report(spec: Spec, shift: f64, runs: u64, seed: u64, max_len: u64) -> ArlReport {
    ArlReport {
        spec,
        shift,
        seed,
        simulated: simulate(&spec, shift, runs, seed, max_len),
        exact: exact(&spec, shift),
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Spec::Shewhart { limit } => write!(f, "shewhart L={limit}"),
            Spec::We { limit } => write!(f, "shewhart + Western Electric rules 1-4, L={limit}"),
            Spec::Ewma {
                lambda,
                limit,
                exact,
            } => write!(
                f,
                "ewma lambda={lambda} L={limit} ({} limits)",
                if exact { "exact" } else { "asymptotic" }
            ),
            Spec::Cusum { k, h } => write!(f, "cusum k={k} h={h} (two-sided)"),
        }
    }
}

impl std::fmt::Display for ArlReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.simulated;
        writeln!(
            f,
            "{}, shift {}σ, {} runs, seed {}",
            self.spec, self.shift, s.runs, self.seed
        )?;
        let sim_arl = format!("{:.2} (95% CI {:.2} .. {:.2})", s.arl, s.ci_low, s.ci_high);
        let (ex_arl, ex_med, method) = match &self.exact {
            Some(e) => (
                format!("{:.2}", e.arl),
                e.median.map_or("-".to_string(), |m| m.to_string()),
                e.method,
            ),
            None => ("-".into(), "-".into(), "none"),
        };
        writeln!(f, "{:<20}{:<44}exact", "", "simulated")?;
        writeln!(f, "{:<20}{:<44}{}", "ARL", sim_arl, ex_arl)?;
        writeln!(f, "{:<20}{:<44}{}", "median run length", s.median, ex_med)?;
        if s.censored > 0 {
            writeln!(
                f,
                "warning: {} runs reached --max-len without a signal; the simulated ARL is a lower bound",
                s.censored
            )?;
        }
        write!(f, "exact method: {method}")
    }
}
