//! `[admin]`: the admin server's listener and its scrape limit, with the reasons for their
//! defaults. (That the admin listener must not overlap the proxy's is a rule across sections,
//! in `config`.)

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::config::validator::Validator;

/// `[admin]`: /metrics /healthz /readyz /status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AdminConfig {
    /// Where the admin server listens; must not overlap `proxy.listen` (port 0 never conflicts).
    pub listen: SocketAddr,
    /// Scrapes encoded at once; more get 503 so a scrape storm cannot eat the proxy's CPU.
    pub max_concurrent_scrapes: usize,
    /// exporter-toolkit web config file (TLS, basic auth); empty: plain HTTP, no auth.
    pub web_config_file: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9464".parse().expect("static address"),
            // Prometheus HA pairs plus a human with curl.
            max_concurrent_scrapes: 4,
            // Plain HTTP, as every exporter by default: in a pod the listener is reached over
            // the pod network only; secure it where that network is shared.
            web_config_file: String::new(),
        }
    }
}

/// At least one scrape at a time.
pub fn validate(v: &mut Validator<'_>, a: &AdminConfig) {
    if a.max_concurrent_scrapes < 1 {
        v.report(
            "admin.max_concurrent_scrapes",
            format!("must be at least 1, got {}", a.max_concurrent_scrapes),
        );
    }
}
