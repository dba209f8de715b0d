//! Goodput: whether one finished request met its route's SLO (`[proxy.routes.slo]`), and if
//! not, the first bound it missed in the order a request lives them: time to first token, time
//! per output token, end to end. A pure function of the request's timings, so it is tested
//! without a proxy and the inspector only counts its answer. A client that left mid-answer is
//! judged on what it lived: a bound already passed is missed, else it is `aborted`.

use std::time::Duration;

use crate::metrics::slo_result;
use crate::routes::config::SloConfig;

use super::Tokens;

/// The `result` for a request answered with a 2xx: `met` or the first bound missed. A plain
/// (non-streamed) answer's first token arrives with its whole body, so its TTFT is `total`; a
/// time per output token exists only for streams of two tokens or more, and a bound on it is
/// met when there is none.
pub fn classify(slo: &SloConfig, total: Duration, tokens: Option<&Tokens>) -> &'static str {
    first_missed(slo, total, tokens).unwrap_or(slo_result::MET)
}

/// The `result` for a 2xx answer whose client left after `total`, having received `tokens`:
/// the first bound already passed by then (no first token yet after the TTFT bound is a TTFT
/// miss: the client waited at least that long), else `aborted`, which says nothing of the
/// server and stays out of the goodput ratio.
pub fn classify_aborted(slo: &SloConfig, total: Duration, tokens: Option<&Tokens>) -> &'static str {
    first_missed(slo, total, tokens).unwrap_or(slo_result::ABORTED)
}

fn first_missed(slo: &SloConfig, total: Duration, tokens: Option<&Tokens>) -> Option<&'static str> {
    let over = |d: Duration, bound: f64| bound > 0.0 && d.as_secs_f64() > bound;
    let ttft = tokens.and_then(|t| t.time_to_first_token).unwrap_or(total);
    if over(ttft, slo.ttft_secs) {
        return Some(slo_result::MISSED_TTFT);
    }
    let tpot = tokens.and_then(|t| t.time_per_output_token);
    if tpot.is_some_and(|d| over(d, slo.tpot_secs)) {
        return Some(slo_result::MISSED_TPOT);
    }
    over(total, slo.e2e_secs).then_some(slo_result::MISSED_E2E)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn stream(ttft: u64, tpot: u64) -> Tokens {
        Tokens {
            time_to_first_token: Some(ms(ttft)),
            time_per_output_token: Some(ms(tpot)),
            ..Tokens::default()
        }
    }

    #[test]
    fn the_first_bound_missed_in_a_requests_life_is_the_result() {
        let slo = SloConfig {
            e2e_secs: 2.0,
            ttft_secs: 0.5,
            tpot_secs: 0.05,
        };
        let c = |total, t: Tokens| classify(&slo, ms(total), Some(&t));
        assert_eq!(c(1000, stream(100, 20)), slo_result::MET);
        // Missing every bound: TTFT comes first.
        assert_eq!(c(3000, stream(600, 80)), slo_result::MISSED_TTFT);
        assert_eq!(c(3000, stream(100, 80)), slo_result::MISSED_TPOT);
        assert_eq!(c(3000, stream(100, 20)), slo_result::MISSED_E2E);
        // On the bound is meeting it.
        assert_eq!(c(2000, stream(500, 50)), slo_result::MET);
    }

    #[test]
    fn a_client_that_left_missed_the_bounds_it_waited_past() {
        let slo = SloConfig {
            e2e_secs: 2.0,
            ttft_secs: 0.5,
            tpot_secs: 0.05,
        };
        let c = |total, t: Option<Tokens>| classify_aborted(&slo, ms(total), t.as_ref());
        // Left early and everything so far was in time.
        assert_eq!(c(300, Some(stream(100, 20))), slo_result::ABORTED);
        assert_eq!(c(300, None), slo_result::ABORTED);
        // Waited past the TTFT bound with no first token.
        assert_eq!(c(700, None), slo_result::MISSED_TTFT);
        assert_eq!(c(700, Some(Tokens::default())), slo_result::MISSED_TTFT);
        assert_eq!(c(700, Some(stream(600, 20))), slo_result::MISSED_TTFT);
        // Tokens too slow so far, or past the end-to-end bound.
        assert_eq!(c(1000, Some(stream(100, 80))), slo_result::MISSED_TPOT);
        assert_eq!(c(2500, Some(stream(100, 20))), slo_result::MISSED_E2E);
    }

    #[test]
    fn plain_answers_and_unset_bounds() {
        let ttft_only = SloConfig {
            ttft_secs: 0.5,
            ..SloConfig::default()
        };
        // A plain answer's first token is its whole body; no TPOT to miss.
        assert_eq!(
            classify(&ttft_only, ms(700), Some(&Tokens::default())),
            slo_result::MISSED_TTFT
        );
        assert_eq!(classify(&ttft_only, ms(300), None), slo_result::MET);
        let e2e_only = SloConfig {
            e2e_secs: 1.0,
            ..SloConfig::default()
        };
        assert_eq!(
            classify(&e2e_only, ms(900), Some(&stream(800, 500))),
            slo_result::MET
        );
        assert_eq!(classify(&e2e_only, ms(1001), None), slo_result::MISSED_E2E);
    }
}
