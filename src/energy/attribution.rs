//! Joins energy readings with request boundaries: joules per inference over a sliding window,
//! per route, with and without idle power, and the per-interval split behind the attributed
//! counter. Pure arithmetic on snapshots, so it is tested with made-up clocks.
//!
//! How energy is split across routes: by the request-seconds each route completed (the sum of
//! its request durations), so a request that took twice as long is charged twice as much. With
//! one route (the usual sidecar) this is exactly energy ÷ inferences.
//!
//! Joules per output token (OpenAI routes): the same route share of the energy divided by the
//! output tokens the protocol adapter counted on the route in the window, instead of by its
//! inferences. Routes that generate no tokens get no per-token figure (never one made up from
//! request counts).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// One route's cumulative figures at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RouteSnapshot {
    /// Completed, timed inferences so far.
    pub count: u64,
    /// Sum of their durations, in seconds.
    pub busy_secs: f64,
    /// Requests in flight at the instant.
    pub in_flight: i64,
    /// Output tokens the protocol adapter counted so far (0 on routes without tokens).
    pub output_tokens: u64,
}

/// Cumulative energy of one source and every route's figures, at one instant.
#[derive(Debug, Clone)]
pub struct Point {
    pub at: Instant,
    pub joules: f64,
    pub routes: Vec<RouteSnapshot>,
}

/// Joules per inference of one route over the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerInference {
    pub total: f64,
    /// `None` until an idle power is known (configured, or measured during a quiet interval).
    pub dynamic: Option<f64>,
}

/// What one new point changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// Joules to add to each route's attributed counter for the interval just closed.
    pub attributed: Vec<f64>,
    /// Each route's figures over the window; `None` where the route completed nothing in it.
    pub per_inference: Vec<Option<PerInference>>,
    /// Each route's joules per output token over the window; `None` where it generated none.
    pub per_output_token: Vec<Option<PerInference>>,
    /// Idle power in use (configured or measured), if known.
    pub idle_watts: Option<f64>,
    /// Mean power over the interval just closed.
    pub interval_watts: Option<f64>,
}

/// The sliding window of one source.
#[derive(Debug)]
pub struct Window {
    span: Duration,
    points: VecDeque<Point>,
    configured_idle: Option<f64>,
    measured_idle: Option<f64>,
    /// Energy of intervals in which requests were in flight but none completed: charged to the
    /// next completions, so long requests are not under-charged.
    pending: f64,
}

impl Window {
    pub fn new(span: Duration, configured_idle: Option<f64>) -> Self {
        Self {
            span,
            points: VecDeque::new(),
            configured_idle,
            measured_idle: None,
            pending: 0.0,
        }
    }

    /// Forget the history: the source went down, so the next reading starts a new baseline
    /// (energy spent while it was down is unknown and must not be charged to anything). The
    /// measured idle power is kept: it describes the hardware, not the gap.
    pub fn reset(&mut self) {
        self.points.clear();
        self.pending = 0.0;
    }

    pub fn idle_watts(&self) -> Option<f64> {
        self.configured_idle.or(self.measured_idle)
    }

    /// Add a point (later than the previous one) and compute what changed.
    pub fn push(&mut self, point: Point) -> Update {
        let n = point.routes.len();
        let mut update = Update {
            attributed: vec![0.0; n],
            per_inference: vec![None; n],
            per_output_token: vec![None; n],
            idle_watts: None,
            interval_watts: None,
        };
        if let Some(prev) = self.points.back() {
            let dt = point.at.saturating_duration_since(prev.at).as_secs_f64();
            let de = (point.joules - prev.joules).max(0.0);
            if dt > 0.0 {
                update.interval_watts = Some(de / dt);
            }
            let (counts, busy) = deltas(prev, &point);
            let completed: u64 = counts.iter().sum();
            let in_flight = |p: &Point| p.routes.iter().map(|r| r.in_flight).sum::<i64>();
            let quiet = completed == 0 && in_flight(prev) == 0 && in_flight(&point) == 0;
            if quiet && dt > 0.0 {
                // Weight each quiet interval by its length against the window, so one short
                // interval cannot swing the figure and a long quiet spell dominates it.
                let watts = de / dt;
                let w = 1.0 - (-dt / self.span.as_secs_f64()).exp();
                self.measured_idle = Some(match self.measured_idle {
                    None => watts,
                    Some(old) => old + w * (watts - old),
                });
            }
            self.pending += de;
            if completed > 0 {
                for (i, share) in shares(&counts, &busy).into_iter().enumerate() {
                    update.attributed[i] = self.pending * share;
                }
                self.pending = 0.0;
            } else if in_flight(&point) == 0 {
                // Nothing ran to completion and nothing is running: idle energy, charged to no
                // route (it is still in inferwatch_energy_joules_total).
                self.pending = 0.0;
            }
        }
        self.points.push_back(point);
        // Keep one point at or before the window's start so the window spans its full length.
        let newest = self.points.back().map(|p| p.at).expect("just pushed");
        while self.points.len() > 2
            && newest.saturating_duration_since(self.points[1].at) >= self.span
        {
            self.points.pop_front();
        }
        update.idle_watts = self.idle_watts();
        let (Some(base), Some(last)) = (self.points.front(), self.points.back()) else {
            return update;
        };
        if self.points.len() < 2 {
            return update;
        }
        let span = last.at.saturating_duration_since(base.at).as_secs_f64();
        let energy = (last.joules - base.joules).max(0.0);
        let dynamic = update
            .idle_watts
            .map(|idle| (energy - idle * span).max(0.0));
        let (counts, busy) = deltas(base, last);
        if counts.iter().sum::<u64>() == 0 {
            return update;
        }
        for (i, share) in shares(&counts, &busy).into_iter().enumerate() {
            if counts[i] == 0 {
                continue;
            }
            let per = |e: f64| e * share / counts[i] as f64;
            update.per_inference[i] = Some(PerInference {
                total: per(energy),
                dynamic: dynamic.map(per),
            });
            let tokens = last.routes[i]
                .output_tokens
                .saturating_sub(base.routes.get(i).map_or(0, |r| r.output_tokens));
            if tokens > 0 {
                let per_token = |e: f64| e * share / tokens as f64;
                update.per_output_token[i] = Some(PerInference {
                    total: per_token(energy),
                    dynamic: dynamic.map(per_token),
                });
            }
        }
        update
    }
}

/// Per route: inferences completed and request-seconds between two points. A route that
/// appears only in `to` (cannot happen today: routes are fixed at start) counts from zero.
fn deltas(from: &Point, to: &Point) -> (Vec<u64>, Vec<f64>) {
    to.routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let f = from.routes.get(i).copied().unwrap_or_default();
            (
                r.count.saturating_sub(f.count),
                (r.busy_secs - f.busy_secs).max(0.0),
            )
        })
        .unzip()
}

/// Each route's share of the energy: by request-seconds, or by count where no time was
/// recorded (durations of 0 s).
fn shares(counts: &[u64], busy: &[f64]) -> Vec<f64> {
    let total_busy: f64 = busy.iter().sum();
    if total_busy > 0.0 {
        return busy.iter().map(|b| b / total_busy).collect();
    }
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, secs: f64) -> Instant {
        base + Duration::from_secs_f64(secs)
    }

    fn route(count: u64, busy_secs: f64, in_flight: i64) -> RouteSnapshot {
        RouteSnapshot {
            count,
            busy_secs,
            in_flight,
            output_tokens: 0,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn one_route_is_energy_over_inferences() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(60), None);
        let u = w.push(Point {
            at: t0,
            joules: 0.0,
            routes: vec![route(0, 0.0, 0)],
        });
        assert_eq!(u.per_inference, vec![None]);
        let u = w.push(Point {
            at: at(t0, 1.0),
            joules: 50.0,
            routes: vec![route(10, 2.0, 0)],
        });
        let p = u.per_inference[0].unwrap();
        assert!(close(p.total, 5.0), "{p:?}");
        assert_eq!(p.dynamic, None, "no idle power known yet");
        assert!(close(u.attributed[0], 50.0));
        assert_eq!(u.interval_watts, Some(50.0));
    }

    #[test]
    fn per_output_token_divides_the_route_share_by_its_tokens() {
        let base = Instant::now();
        let mut w = Window::new(Duration::from_secs(60), Some(0.0));
        let snap = |count, tokens| RouteSnapshot {
            count,
            busy_secs: count as f64 * 0.1,
            in_flight: 0,
            output_tokens: tokens,
        };
        w.push(Point {
            at: at(base, 0.0),
            joules: 0.0,
            routes: vec![snap(0, 0), snap(0, 0)],
        });
        let u = w.push(Point {
            at: at(base, 1.0),
            joules: 20.0,
            routes: vec![snap(10, 500), snap(10, 0)],
        });
        // Equal request-seconds: 10 J each; route 0 made 500 tokens, route 1 none.
        let t = u.per_output_token[0].expect("tokens were generated");
        assert!(close(t.total, 10.0 / 500.0), "{t:?}");
        assert_eq!(t.dynamic.map(|d| close(d, 10.0 / 500.0)), Some(true));
        assert_eq!(u.per_output_token[1], None);
        assert!(close(u.per_inference[1].unwrap().total, 1.0));
    }

    #[test]
    fn routes_share_by_request_seconds() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(60), Some(0.0));
        w.push(Point {
            at: t0,
            joules: 0.0,
            routes: vec![route(0, 0.0, 0), route(0, 0.0, 0)],
        });
        // Route a: 10 requests, 1 s busy; route b: 2 requests, 3 s busy. 100 J.
        let u = w.push(Point {
            at: at(t0, 2.0),
            joules: 100.0,
            routes: vec![route(10, 1.0, 0), route(2, 3.0, 0)],
        });
        assert!(close(u.attributed[0], 25.0));
        assert!(close(u.attributed[1], 75.0));
        assert!(close(u.per_inference[0].unwrap().total, 2.5));
        assert!(close(u.per_inference[1].unwrap().total, 37.5));
        assert!(close(u.per_inference[1].unwrap().dynamic.unwrap(), 37.5));
    }

    #[test]
    fn idle_power_is_measured_in_quiet_intervals_and_subtracted() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(10), None);
        let quiet = vec![route(0, 0.0, 0)];
        w.push(Point {
            at: t0,
            joules: 0.0,
            routes: quiet.clone(),
        });
        // 20 W while nothing happens.
        let u = w.push(Point {
            at: at(t0, 1.0),
            joules: 20.0,
            routes: quiet.clone(),
        });
        assert_eq!(u.idle_watts, Some(20.0));
        assert_eq!(u.attributed, vec![0.0], "idle energy is charged to nobody");
        // Then 4 inferences in 1 s at 100 W.
        let u = w.push(Point {
            at: at(t0, 2.0),
            joules: 120.0,
            routes: vec![route(4, 1.0, 0)],
        });
        // Window: 2 s, 120 J, 4 inferences; dynamic: 120 - 20 W × 2 s = 80 J.
        let p = u.per_inference[0].unwrap();
        assert!(close(p.total, 30.0), "{p:?}");
        assert!(close(p.dynamic.unwrap(), 20.0), "{p:?}");
        assert!(close(u.attributed[0], 100.0));
    }

    #[test]
    fn configured_idle_wins_over_measured() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(10), Some(5.0));
        let quiet = vec![route(0, 0.0, 0)];
        w.push(Point {
            at: t0,
            joules: 0.0,
            routes: quiet.clone(),
        });
        let u = w.push(Point {
            at: at(t0, 1.0),
            joules: 20.0,
            routes: quiet,
        });
        assert_eq!(u.idle_watts, Some(5.0));
    }

    #[test]
    fn long_requests_carry_their_energy_to_completion() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(60), None);
        w.push(Point {
            at: t0,
            joules: 0.0,
            routes: vec![route(0, 0.0, 1)],
        });
        let u = w.push(Point {
            at: at(t0, 1.0),
            joules: 30.0,
            routes: vec![route(0, 0.0, 1)],
        });
        assert_eq!(u.attributed, vec![0.0]);
        assert_eq!(u.per_inference, vec![None]);
        let u = w.push(Point {
            at: at(t0, 2.0),
            joules: 60.0,
            routes: vec![route(1, 2.0, 0)],
        });
        assert!(close(u.attributed[0], 60.0));
        assert!(close(u.per_inference[0].unwrap().total, 60.0));
    }

    #[test]
    fn the_window_slides() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(10), None);
        // 1 s points: 10 J and 1 inference per second for 30 s, then 10 J and 2 per second.
        let mut joules = 0.0;
        let mut count = 0;
        for s in 0..=40 {
            if s > 0 {
                joules += 10.0;
                count += if s > 30 { 2 } else { 1 };
            }
            let u = w.push(Point {
                at: at(t0, s as f64),
                joules,
                routes: vec![route(count, count as f64 * 0.1, 0)],
            });
            if s == 30 {
                assert!(close(u.per_inference[0].unwrap().total, 10.0));
            }
            if s == 40 {
                assert!(close(u.per_inference[0].unwrap().total, 5.0));
            }
        }
        assert!(w.points.len() <= 12, "{} points kept", w.points.len());
    }

    #[test]
    fn reset_forgets_the_gap() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(60), None);
        w.push(Point {
            at: t0,
            joules: 0.0,
            routes: vec![route(0, 0.0, 0)],
        });
        w.reset();
        let u = w.push(Point {
            at: at(t0, 5.0),
            joules: 500.0,
            routes: vec![route(5, 1.0, 0)],
        });
        assert_eq!(u.per_inference, vec![None]);
        assert_eq!(u.attributed, vec![0.0]);
    }
}
