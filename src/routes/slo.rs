//! The live path's share of goodput: on routes with `[proxy.routes.slo]`, the requests no
//! capture brings to the inspector (no answer, an upstream break, a client that left before the
//! response headers) are classified here, each with one atomic add on a pre-resolved counter;
//! the inspector classifies the rest. How many of them were not good (`failed`, or a bound
//! already passed when the client left) is kept for the inspector, which offers them off the
//! path as `goodput:<route>` zeros.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus::IntCounter;

use crate::metrics::{slo_result, CodeClass, Outcome, ProxyMetrics};

use super::config::SloConfig;

/// One route's live-path SLO counters (under its configured model).
pub struct LiveSlo {
    failed: IntCounter,
    aborted: IntCounter,
    missed_ttft: IntCounter,
    missed_e2e: IntCounter,
    ttft_secs: f64,
    e2e_secs: f64,
    /// `failed` and `missed_*` counted here: requests that were not good.
    misses: AtomicU64,
}

impl LiveSlo {
    pub fn new(route: &str, model: &str, slo: &SloConfig, metrics: &ProxyMetrics) -> Self {
        let counter = |result| metrics.slo.with_label_values(&[route, model, result]);
        Self {
            failed: counter(slo_result::FAILED),
            aborted: counter(slo_result::ABORTED),
            missed_ttft: counter(slo_result::MISSED_TTFT),
            missed_e2e: counter(slo_result::MISSED_E2E),
            ttft_secs: slo.ttft_secs,
            e2e_secs: slo.e2e_secs,
            misses: AtomicU64::new(0),
        }
    }

    /// Classify one finished request that the inspector will not see, `elapsed` after its
    /// start: any outcome but `ok` and `client_aborted` failed; a client that left before the
    /// response headers waited that long for its first token, so it missed the TTFT (or
    /// end-to-end) bound it waited past, else it is `aborted` (neither good nor bad). A client
    /// that left after the headers, and every `ok` exchange, is the inspector's to classify.
    pub fn finished(&self, class: CodeClass, outcome: Outcome, elapsed: Duration) {
        let counter = match outcome {
            Outcome::Ok => return,
            Outcome::ClientAborted if class != CodeClass::None => return,
            Outcome::ClientAborted => {
                let over = |bound: f64| bound > 0.0 && elapsed.as_secs_f64() > bound;
                if over(self.ttft_secs) {
                    &self.missed_ttft
                } else if over(self.e2e_secs) {
                    &self.missed_e2e
                } else {
                    self.aborted.inc();
                    return;
                }
            }
            _ => &self.failed,
        };
        counter.inc();
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted here as not good so far.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_inspector_cannot_see_is_classified_here() {
        let registry = prometheus::Registry::new();
        let m = ProxyMetrics::register(&registry, vec![1.0]).unwrap();
        let slo = SloConfig {
            ttft_secs: 0.5,
            e2e_secs: 2.0,
            ..SloConfig::default()
        };
        let live = LiveSlo::new("chat", "m", &slo, &m);
        let secs = Duration::from_secs_f64;
        live.finished(CodeClass::C2xx, Outcome::Ok, secs(9.0));
        live.finished(CodeClass::C2xx, Outcome::ClientAborted, secs(9.0));
        live.finished(CodeClass::C5xx, Outcome::ConnectError, secs(0.0));
        live.finished(CodeClass::C2xx, Outcome::ResponseReset, secs(0.1));
        live.finished(CodeClass::None, Outcome::ClientAborted, secs(0.1));
        live.finished(CodeClass::None, Outcome::ClientAborted, secs(0.6));
        let e2e_only = LiveSlo::new(
            "other",
            "m",
            &SloConfig {
                e2e_secs: 2.0,
                ..SloConfig::default()
            },
            &m,
        );
        e2e_only.finished(CodeClass::None, Outcome::ClientAborted, secs(0.6));
        e2e_only.finished(CodeClass::None, Outcome::ClientAborted, secs(3.0));
        let got = |route: &str, r: &str| m.slo.with_label_values(&[route, "m", r]).get();
        assert_eq!(got("chat", slo_result::FAILED), 2);
        assert_eq!(got("chat", slo_result::ABORTED), 1);
        assert_eq!(got("chat", slo_result::MISSED_TTFT), 1);
        assert_eq!(live.misses(), 3);
        assert_eq!(got("other", slo_result::ABORTED), 1);
        assert_eq!(got("other", slo_result::MISSED_E2E), 1);
        assert_eq!(e2e_only.misses(), 1);
    }
}
