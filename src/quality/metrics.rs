//! The quality engine's metric families (names in [`crate::metrics::names`]), registered on the
//! registry handed down from `App::build`. Labels: `chart` and `signal` from config, `rule` from
//! [`super::Rule`]: closed sets.

use prometheus::{
    core::Collector, GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::metrics::names;

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
        let gauge =
            |name: &str, help: &str, labels: &[&str]| GaugeVec::new(Opts::new(name, help), labels);
        let m = Self {
            statistic: gauge(
                names::SPC_STATISTIC,
                "Last plotted point: the subgroup mean (shewhart) or fraction (p) in the signal's units; the EWMA or signed CUSUM sum in standard errors (ewma, cusum).",
                chart,
            )?,
            center: gauge(names::SPC_CENTER_LINE, "Centre line the last point was judged against.", chart)?,
            upper: gauge(names::SPC_UPPER_CONTROL_LIMIT, "Upper control limit for the last point.", chart)?,
            lower: gauge(names::SPC_LOWER_CONTROL_LIMIT, "Lower control limit for the last point.", chart)?,
            alarm: IntGaugeVec::new(
                Opts::new(names::SPC_ALARM, "1 while the chart has signalled within its last clear_after_subgroups subgroups."),
                chart,
            )?,
            alarms: IntCounterVec::new(
                Opts::new(names::SPC_ALARMS_TOTAL, "Signals by rule; the chart restarts after each, so in control the rate is 1/ARL0 per subgroup."),
                &["chart", "signal", "rule"],
            )?,
            phase1: IntGaugeVec::new(
                Opts::new(names::SPC_PHASE1, "1 while the chart is still learning its baseline (Phase I), 0 when monitoring."),
                chart,
            )?,
            psi: gauge(names::DRIFT_PSI, "Population stability index of the last full window against the reference.", &["signal"])?,
            psi_threshold: gauge(names::DRIFT_PSI_THRESHOLD, "PSI that a window without drift exceeds with probability alpha: (1/N+1/M)·χ²(bins−1) quantile.", &["signal"])?,
            ks_statistic: gauge(names::DRIFT_KS_STATISTIC, "Two-sample Kolmogorov-Smirnov D of the last full window against the reference.", &["signal"])?,
            ks_p_value: gauge(names::DRIFT_KS_P_VALUE, "Asymptotic p-value of the KS statistic.", &["signal"])?,
            chi_square_p_value: gauge(names::DRIFT_CHI_SQUARE_P_VALUE, "Chi-square homogeneity p-value of the last window's class counts against the reference (categorical signals).", &["signal"])?,
            drift_alarm: IntGaugeVec::new(
                Opts::new(names::DRIFT_ALARM, "1 when the last full window drifted: PSI above its threshold or a p-value below alpha."),
                &["signal"],
            )?,
            dropped: IntCounterVec::new(
                Opts::new(names::QUALITY_SIGNAL_DROPPED_TOTAL, "Pushed observations dropped because the quality queue was full."),
                &["signal"],
            )?,
            unknown: IntCounter::new(
                names::QUALITY_SIGNAL_UNKNOWN_TOTAL,
                "Pushed observations of a signal no chart or drift test uses (dropped).",
            )?,
        };
        let all: [Box<dyn Collector>; 15] = [
            Box::new(m.statistic.clone()),
            Box::new(m.center.clone()),
            Box::new(m.upper.clone()),
            Box::new(m.lower.clone()),
            Box::new(m.alarm.clone()),
            Box::new(m.alarms.clone()),
            Box::new(m.phase1.clone()),
            Box::new(m.psi.clone()),
            Box::new(m.psi_threshold.clone()),
            Box::new(m.ks_statistic.clone()),
            Box::new(m.ks_p_value.clone()),
            Box::new(m.chi_square_p_value.clone()),
            Box::new(m.drift_alarm.clone()),
            Box::new(m.dropped.clone()),
            Box::new(m.unknown.clone()),
        ];
        for c in all {
            registry.register(c)?;
        }
        Ok(m)
    }
}
