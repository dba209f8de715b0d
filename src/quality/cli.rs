//! `inferwatch spc arl|calibrate`: the flags that name a chart setting, and the run-length
//! analysis ([`super::arl`]) printed as a table or JSON. The only file of `quality` that prints.

use std::process::ExitCode;

use clap::Subcommand;

use super::arl;
use crate::cli::usage;

/// `inferwatch spc`'s subcommands.
#[derive(Subcommand)]
pub enum SpcCommand {
    /// Average and median run length of a chart setting: simulated with the daemon's own chart
    /// code, beside the exact value (closed form or Markov chain).
    Arl {
        #[command(flatten)]
        chart: ChartArgs,
        /// Step shift of the mean in sigma units, present from the first point (0 = in control).
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        shift: f64,
        /// Simulated run lengths.
        #[arg(long, default_value_t = 10_000)]
        runs: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Longest simulated run; longer ones are cut there and reported.
        #[arg(long, default_value_t = 10_000_000)]
        max_len: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Find the limit (L, or h for CUSUM) that gives a target in-control ARL.
    Calibrate {
        #[command(flatten)]
        chart: ChartArgs,
        /// The in-control average run length wanted (subgroups between false alarms).
        #[arg(long)]
        target: f64,
        /// Also simulate this many in-control runs at the limit found (0 = no simulation).
        #[arg(long, default_value_t = 0)]
        runs: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
}

/// The flags that name a chart setting, shared by `spc arl` and `spc calibrate`.
#[derive(clap::Args)]
pub struct ChartArgs {
    /// shewhart (rule 1), we (Western Electric rules 1-4), ewma, cusum.
    #[arg(long, value_parser = ["shewhart", "we", "ewma", "cusum"])]
    chart: String,
    /// Control limit in sigma units (Shewhart, WE rule 1, EWMA's L).
    #[arg(long, default_value_t = 3.0)]
    limit: f64,
    /// EWMA weight.
    #[arg(long, default_value_t = 0.1)]
    lambda: f64,
    /// EWMA limits: exact (time-varying, as the daemon's default) or asymptotic (as the
    /// published tables).
    #[arg(long, default_value = "exact", value_parser = ["exact", "asymptotic"])]
    ewma_limits: String,
    /// CUSUM reference value (sigma units).
    #[arg(long, default_value_t = 0.5)]
    k: f64,
    /// CUSUM decision interval (sigma units).
    #[arg(long, default_value_t = 5.0)]
    h: f64,
}

impl ChartArgs {
    /// The chart setting the flags name.
    pub fn spec(&self) -> arl::Spec {
        match self.chart.as_str() {
            "shewhart" => arl::Spec::Shewhart { limit: self.limit },
            "we" => arl::Spec::We { limit: self.limit },
            "ewma" => arl::Spec::Ewma {
                lambda: self.lambda,
                limit: self.limit,
                exact: self.ewma_limits == "exact",
            },
            _ => arl::Spec::Cusum {
                k: self.k,
                h: self.h,
            },
        }
    }

    /// The chart family and its shape parameter (EWMA's lambda, CUSUM's k), for calibration.
    pub fn family(&self) -> (arl::Family, f64) {
        match self.chart.as_str() {
            "shewhart" => (arl::Family::Shewhart, 0.0),
            "we" => (arl::Family::We, 0.0),
            "ewma" => (
                arl::Family::Ewma {
                    exact: self.ewma_limits == "exact",
                },
                self.lambda,
            ),
            _ => (arl::Family::Cusum, self.k),
        }
    }
}

/// Run one `spc` subcommand: exit 0 with the analysis printed, 2 on bad usage.
pub fn spc(command: SpcCommand) -> ExitCode {
    match command {
        SpcCommand::Arl {
            chart,
            shift,
            runs,
            seed,
            max_len,
            json,
        } => {
            let spec = chart.spec();
            if let Err(e) = spec.validate() {
                return usage(e);
            }
            if !shift.is_finite() || runs == 0 || max_len == 0 {
                return usage("--shift must be finite, --runs and --max-len at least 1");
            }
            let report = arl::arl_report(spec, shift, runs, seed, max_len);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                println!("{report}");
            }
            ExitCode::SUCCESS
        }
        SpcCommand::Calibrate {
            chart,
            target,
            runs,
            seed,
            json,
        } => {
            let (family, shape) = chart.family();
            let found = match arl::calibrate(family, shape, target) {
                Ok(c) => c,
                Err(e) => return usage(e),
            };
            let check = (runs > 0).then(|| arl::simulate(&found.spec, 0.0, runs, seed, 10_000_000));
            if json {
                let v =
                    serde_json::json!({"calibrated": found, "target": target, "simulated": check});
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                let name = if family == arl::Family::Cusum {
                    "h"
                } else {
                    "L"
                };
                println!(
                    "{}: {name} = {:.4} gives exact ARL0 {:.2} (target {target})",
                    found.spec, found.limit, found.exact_arl0
                );
                if let Some(s) = check {
                    println!(
                        "simulated ARL0 over {} runs: {:.2} (95% CI {:.2} .. {:.2}), median {}",
                        s.runs, s.arl, s.ci_low, s.ci_high, s.median
                    );
                }
            }
            ExitCode::SUCCESS
        }
    }
}
