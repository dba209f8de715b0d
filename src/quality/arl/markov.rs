//! Exact (numerical) run lengths: Shewhart's closed form; the Markov chain of Champ & Woodall
//! (1987) for the Western Electric rules, its states read from the chart code itself; the Brook
//! & Evans (1972) chain for EWMA (exact time-varying limits step by step) and for each side of
//! the tabular CUSUM.

use std::collections::HashMap;

use serde::Serialize;

use super::Spec;
use crate::quality::ewma::Ewma;
use crate::quality::shewhart::{Shewhart, WeRules};
use crate::quality::{phi, Chart};

/// Markov-chain states per EWMA grid / CUSUM side: enough for agreement with the published
/// tables to well under 1% (the discretization error falls as 1/states²).
pub const MARKOV_STATES: usize = 301;

/// Exact (numerical) values.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Exact {
    pub arl: f64,
    /// `None` where the method gives the mean only (two-sided CUSUM).
    pub median: Option<u64>,
    pub method: &'static str,
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
}
