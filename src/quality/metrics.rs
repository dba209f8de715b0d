//! The quality engine's metric families (names in [`crate::metrics::names`]), registered on the
//! registry handed down from `App::build`. Labels: `chart` and `signal` from config, `rule` from
//! [`super::Rule`]: closed sets.

use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::metrics::{names, registered};

#[derive(Clone)]
pub struct QualityMetrics {
    pub statistic: GaugeVec,
    pub center: GaugeVec,
    pub upper: GaugeVec,
    pub lower: GaugeVec,
    pub alarm: IntGaugeVec,
    pub alarms: IntCounterVec,
    pub phase1: IntGaugeVec,
    pub psi: GaugeVec,
    pub psi_threshold: GaugeVec,
    pub ks_statistic: GaugeVec,
    pub ks_p_value: GaugeVec,
    pub chi_square_p_value: GaugeVec,
    pub drift_alarm: IntGaugeVec,
    pub dropped: IntCounterVec,
    pub unknown: IntCounter,
}

impl QualityMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let chart = &["chart", "signal"];
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            GaugeVec::new(Opts::new(name, help), labels).and_then(|g| registered(registry, g))
        };
        let m = Self {
            statistic: gauge(
                names::SPC_STATISTIC,
                "Last plotted point: the subgroup mean (shewhart) or fraction (p) in the signal's units; the EWMA or signed CUSUM sum in standard errors (ewma, cusum).",
                chart,
            )?,
            center: gauge(names::SPC_CENTER_LINE, "Centre line the last point was judged against.", chart)?,
            upper: gauge(names::SPC_UPPER_CONTROL_LIMIT, "Upper control limit for the last point.", chart)?,
            lower: gauge(names::SPC_LOWER_CONTROL_LIMIT, "Lower control limit for the last point.", chart)?,
            alarm: registered(
                registry,
                IntGaugeVec::new(
                    Opts::new(names::SPC_ALARM, "1 while the chart has signalled within its last clear_after_subgroups subgroups."),
                    chart,
                )?,
            )?,
            alarms: registered(
                registry,
                IntCounterVec::new(
                    Opts::new(names::SPC_ALARMS_TOTAL, "Signals by rule; the chart restarts after each, so in control the rate is 1/ARL0 per subgroup."),
                    &["chart", "signal", "rule"],
                )?,
            )?,
            phase1: registered(
                registry,
                IntGaugeVec::new(
                    Opts::new(names::SPC_PHASE1, "1 while the chart is still learning its baseline (Phase I), 0 when monitoring."),
                    chart,
                )?,
            )?,
            psi: gauge(names::DRIFT_PSI, "Population stability index of the last full window against the reference.", &["signal"])?,
            psi_threshold: gauge(names::DRIFT_PSI_THRESHOLD, "PSI that a window without drift exceeds with probability alpha: (1/N+1/M)·χ²(bins−1) quantile.", &["signal"])?,
            ks_statistic: gauge(names::DRIFT_KS_STATISTIC, "Two-sample Kolmogorov-Smirnov D of the last full window against the reference.", &["signal"])?,
            ks_p_value: gauge(names::DRIFT_KS_P_VALUE, "Asymptotic p-value of the KS statistic.", &["signal"])?,
            chi_square_p_value: gauge(names::DRIFT_CHI_SQUARE_P_VALUE, "Chi-square homogeneity p-value of the last window's class counts against the reference (categorical signals).", &["signal"])?,
            drift_alarm: registered(
                registry,
                IntGaugeVec::new(
                    Opts::new(names::DRIFT_ALARM, "1 when the last full window drifted: PSI above its threshold or a p-value below alpha."),
                    &["signal"],
                )?,
            )?,
            dropped: registered(
                registry,
                IntCounterVec::new(
                    Opts::new(names::QUALITY_SIGNAL_DROPPED_TOTAL, "Pushed observations dropped because the quality queue was full."),
                    &["signal"],
                )?,
            )?,
            unknown: registered(
                registry,
                IntCounter::new(
                    names::QUALITY_SIGNAL_UNKNOWN_TOTAL,
                    "Pushed observations of a signal no chart or drift test uses (dropped).",
                )?,
            )?,
        };
        Ok(m)
    }
}
