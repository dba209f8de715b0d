//! Config loading: the example file, one fixture per error class (each paired with the EXACT list
//! of messages it must produce), environment overrides and single-rule cases.

use inferwatch::config::{load, load_str, Config, ConfigError, ConfigErrors};
use inferwatch::proxy::config::ProxyConfig;
use inferwatch::routes::config::{Protocol, RouteConfig};
use std::collections::HashMap;
use std::path::Path;

const EXAMPLE: &str = "config/inferwatch.toml";
const TESTDATA: &str = "config/testdata";

/// Reads a file relative to the crate root; messages name it by that relative path.
fn read(rel: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Every `path: message` line a fixture produces (no environment).
fn fixture_errors(name: &str) -> Vec<String> {
    let rel = format!("{TESTDATA}/{name}");
    match Config::load_with_env(Some(&read(&rel)), Some(Path::new(&rel)), &HashMap::new()) {
        Ok(_) => panic!("{rel} loaded without errors"),
        Err(errors) => errors.lines(),
    }
}

fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn errors_of(toml: &str) -> Vec<String> {
    match load_str(toml) {
        Ok(_) => panic!("loaded without errors:\n{toml}"),
        Err(errors) => errors.lines(),
    }
}

fn errors_with_env(toml: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match Config::load_with_env(Some(toml), None, &env(vars)) {
        Ok(_) => panic!("loaded without errors"),
        Err(errors) => errors.lines(),
    }
}

/// The fixtures and the exact messages each must produce, in report order.
fn expected(name: &str) -> Vec<&'static str> {
    match name {
        "unknown_keys.toml" => vec![
            "proxy.routes[1].protocl: unknown key, did you mean `protocol`?",
            "proxy.listenn: unknown key, did you mean `listen`?",
            "admin.Listen: unknown key, did you mean `listen`?",
            "latency.quantile: unknown key, did you mean `quantiles`?",
            "log.colour: unknown key",
            "proxxy: unknown key, did you mean `proxy`?",
            "verbose: unknown key",
        ],
        "type_errors.toml" => vec![
            "proxy.listen: invalid socket address \"not-an-addr\", expected ip:port such as \"0.0.0.0:8081\"",
            "proxy.upstream_protocol: unknown variant `http3`, expected `http1` or `h2c`",
            "proxy.routes[0].protocol: unknown variant `grpcx`, expected one of `kserve_v2`, `openai`, `tfserving`, `json`, `opaque`",
            "proxy.routes[1].name: invalid type: integer `7`, expected a string",
            "proxy.connect_timeout_secs: invalid type: string \"2s\", expected a number",
            "proxy.max_in_flight: invalid type: string \"lots\", expected a non-negative integer",
            "proxy.x_forwarded_for: invalid type: string \"yes\", expected a boolean",
            "admin.max_concurrent_scrapes: invalid value: integer `-1`, expected a non-negative integer",
            "latency.windows_secs: invalid type: integer `60`, expected an array",
            "latency.slot_secs: invalid type: floating point `2.5`, expected a non-negative integer",
            "latency.quantiles[1]: invalid type: string \"p99\", expected a number",
            "log.format: unknown variant `xml`, expected `text` or `json`",
        ],
        "invalid_proxy.toml" => vec![
            "proxy.upstream: unexpected path \"/v2\" in \"http://127.0.0.1:8080/v2\", expected http://host:port (routes match the client's path)",
            "proxy.connect_timeout_secs: must be > 0 and <= 31536000 seconds, got 0",
            "proxy.first_byte_timeout_secs: must be > 0 and <= 31536000 seconds, got NaN",
            "proxy.body_idle_timeout_secs: must be >= 0 (0 disables) and <= 31536000 seconds, got -1",
            "proxy.max_request_body_bytes: must be at least 1, got 0",
            "proxy.max_in_flight: must be at least 1, got 0",
            "proxy.shutdown_grace_secs: must be >= 0 and <= 31536000 seconds, got 1000000000",
            "proxy.pool_idle_timeout_secs: must be > 0 and <= 31536000 seconds, got inf",
        ],
        "invalid_routes.toml" => vec![
            "proxy.routes[1].name: duplicate route name \"infer\" (first used by proxy.routes[0])",
            "proxy.routes[2].name: invalid route name \"Chat-Completions\", expected [a-z0-9_]+",
            "proxy.routes[2].path_prefix: path_prefix \"v1/chat/\" must start with /",
            "proxy.routes[3].name: route name \"other\" is reserved for unmatched traffic",
            "proxy.routes[3].path_prefix: route never matches: proxy.routes[0] (path_prefix \"/v2/models/\") comes first and matches all its requests",
            "proxy.routes[4].name: missing route name, expected [a-z0-9_]+",
            "proxy.routes[4].path_prefix: missing path_prefix, expected a path starting with /",
            "proxy.routes[4].model: missing model, expected 1 to 64 characters of [A-Za-z0-9_.:-]",
            "proxy.routes[5].model: invalid model \"bge large\", expected 1 to 64 characters of [A-Za-z0-9_.:-]",
            "proxy.routes[6].model: invalid model \"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm\", expected 1 to 64 characters of [A-Za-z0-9_.:-]",
        ],
        "invalid_listeners.toml" => vec![
            "admin.listen: overlaps proxy.listen (0.0.0.0:9464) on port 9464, the two listeners must differ",
            "admin.max_concurrent_scrapes: must be at least 1, got 0",
        ],
        "invalid_latency.toml" => vec![
            "latency.buckets[1]: must be greater than latency.buckets[0] (0.005), buckets must be strictly increasing",
            "latency.buckets[2]: must be a finite number of seconds > 0, got -1",
            "latency.buckets[4]: must be greater than latency.buckets[3] (0.1), buckets must be strictly increasing",
            "latency.buckets[5]: must be a finite number of seconds > 0, got inf",
            "latency.bucket_max_secs: must be greater than bucket_min_secs (0.002), got 0.001",
            "latency.bucket_factor: must be a finite number > 1, got 1",
            "latency.windows_secs[1]: must be > 0 seconds, got 0",
            "latency.windows_secs[2]: must be a multiple of slot_secs (10), got 45",
            "latency.windows_secs[3]: duplicate window 60 (first at latency.windows_secs[0])",
            "latency.quantiles[1]: must be between 0 and 1 (exclusive), got 1",
            "latency.quantiles[2]: must be between 0 and 1 (exclusive), got 0",
            "latency.quantiles[3]: duplicate quantile 0.5 (first at latency.quantiles[0])",
            "latency.quantiles[4]: must be between 0 and 1 (exclusive), got -0.1",
            "latency.relative_accuracy: must be > 0 and <= 0.1, got 0.5",
            "latency.confidence: must be > 0.5 and < 1, got 0.5",
        ],
        "invalid_latency_limits.toml" => vec![
            "latency.bucket_factor: generates 2213 buckets from bucket_min_secs to bucket_max_secs, at most 500; raise bucket_factor or narrow the range",
            "latency.windows_secs: must not be empty, expected window lengths in seconds such as [60, 600]",
            "latency.slot_secs: must be at least 1 second, got 0",
        ],
        "invalid_log.toml" => vec![
            "log.level: invalid filter directive \"info,inferwatch=loud\": error parsing level filter: expected one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\", or a number 0-5",
        ],
        "invalid_prediction.toml" => vec![
            "proxy.routes[0].prediction.class_labels: class labels make no sense with kind = \"regression\"",
            "proxy.routes[0].prediction.class_labels[1]: must be 1 to 128 bytes, got 0",
            "proxy.routes[0].prediction.class_labels[2]: duplicate class label \"setosa\" (first at class_labels[0])",
            "proxy.routes[0].prediction.score_pointer: only used by protocol \"json\", this route's protocol is \"kserve_v2\"",
            "proxy.routes[0].prediction.feature_bounds[0]: min (5) must not be greater than max (1)",
            "proxy.routes[0].prediction.feature_bounds[1].feature: duplicate bounds for feature 0 (first at feature_bounds[0])",
            "proxy.routes[0].prediction.feature_bounds[2]: min and max must be numbers, got NaN",
            "proxy.routes[1].prediction: protocol \"json\" needs at least one of class_pointer, score_pointer, value_pointer",
            "proxy.routes[1].prediction.model_pointer: invalid JSON pointer \"/a~2b\": `~` must be followed by 0 or 1 (RFC 6901)",
            "proxy.routes[1].prediction.rows_pointer: invalid JSON pointer \"predictions\", expected \"\" (not set), \"#\" (the whole document) or an RFC 6901 pointer starting with /",
            "inspection.max_class_labels: must be between 1 and 10000, got 0",
            "inspection.max_model_labels: must be between 1 and 10000, got 20000",
            "inspection.max_features_tracked: must be at most 1000, got 5000",
        ],
        "syntax_error.toml" => vec![
            "config/testdata/syntax_error.toml:4:12: invalid toml: string values must be quoted, expected literal string",
        ],
        "many_errors.toml" => vec![
            "proxy.upstream: tls upstreams are not supported (got \"https://model:8443\"), expected http://host:port",
            "proxy.routes[0].protocol: unknown variant `grpcx`, expected one of `kserve_v2`, `openai`, `tfserving`, `json`, `opaque`",
            "proxy.routes[1].name: duplicate route name \"infer\" (first used by proxy.routes[0])",
            "proxy.routes[1].path_prefix: path_prefix \"v1/\" must start with /",
            "proxy.routes[1].modle: unknown key, did you mean `model`?",
            "proxy.max_in_flight: invalid type: string \"lots\", expected a non-negative integer",
            "proxy.timeout_secs: unknown key",
            "admin.listen: same address as proxy.listen (0.0.0.0:9464), the two listeners must differ",
            "admin.max_concurrent_scrapes: must be at least 1, got 0",
            "latency.slot_secs: invalid type: string \"10s\", expected a non-negative integer",
            "latency.quantiles[1]: must be between 0 and 1 (exclusive), got 1.5",
            "log.level: invalid filter directive \"info,inferwatch=loud\": error parsing level filter: expected one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\", or a number 0-5",
        ],
        "invalid_energy.toml" => vec![
            "energy.nvml_devices[2]: duplicate device \"0\" (first at energy.nvml_devices[0])",
            "energy.nvml_devices[3]: MIG instance \"MIG-1234\" cannot be named: it shares its GPU's energy counter, name the GPU instead",
            "energy.nvml_devices[4]: invalid device \"\", expected an index such as \"0\" or a UUID such as \"GPU-8f6b2c1e\"",
            "energy.nvml_devices[5]: invalid device \"gpu0\", expected an index such as \"0\" or a UUID such as \"GPU-8f6b2c1e\"",
            "energy.nvml_idle_watts: must be >= 0 and <= 100000 watts, got -5",
            "energy.rapl_root: must be an absolute path such as \"/sys/class/powercap\", got \"sys/class/powercap\"",
            "energy.rapl_idle_watts: must be >= 0 and <= 100000 watts, got 1000000000",
            "energy.estimate: \"on\" needs the model server process: set system.pid, system.pid_file or system.process_name",
            "energy.watts_per_core: must be > 0 and <= 1000 watts, got 0",
            "energy.tdp_watts: must be >= 0 and <= 100000 watts, got -1",
            "energy.estimate_idle_watts: must be >= 0 and <= 100000 watts, got NaN",
            "energy.interval_secs: must be >= 0.01 and <= 60 seconds, got 0.001",
            "energy.window_secs: must be > 0 and <= 86400 seconds, got 0",
        ],
        "invalid_energy_window.toml" => vec![
            "energy.window_secs: must be at least twice energy.interval_secs (5), got 8",
        ],
        "invalid_system.toml" => vec![
            "system.pid_file: only one of system.pid, system.pid_file and system.process_name may be set (system.pid is set)",
            "system.process_name: only one of system.pid, system.pid_file and system.process_name may be set (system.pid is set)",
            "system.process_name: has leading or trailing spaces (\" tritonserver\"), process names are matched exactly",
            "system.interval_secs: must be >= 0.01 and <= 60 seconds, got 120",
        ],
        "energy_type_errors.toml" => vec![
            "energy.nvml: invalid value: string \"maybe\", expected \"auto\", \"on\", \"off\" or a boolean",
            "energy.nvml_devices: invalid type: string \"0\", expected an array",
            "energy.rapl: invalid type: integer `1`, expected \"auto\", \"on\", \"off\" or a boolean",
            "energy.interval_secs: invalid type: string \"1s\", expected a number",
            "energy.watts_per_kore: unknown key, did you mean `watts_per_core`?",
            "system.pid: invalid value: integer `-1`, expected a non-negative integer",
            "system.include_children: invalid type: string \"yes\", expected a boolean",
        ],
        "invalid_quality.toml" => vec![
            "quality.queue_capacity: must be between 1 and 1000000, got 0",
            "quality.charts[0].name: invalid chart name \"Errors\", expected [a-z0-9_]+",
            "quality.charts[0].kind: request_error:infer is a failed-request fraction: kind must be \"p\", got \"ewma\"",
            "quality.charts[0].subgroup_interval_secs: must be > 0 and <= 31536000 seconds, got 0",
            "quality.charts[0].we_two_of_three: Western Electric rules apply to kind \"shewhart\" only, got kind \"ewma\"",
            "quality.charts[1].signal: unknown route \"chat\" in \"latency_p99:chat\", expected one of proxy.routes' names or \"other\"",
            "quality.charts[1].phase1_subgroups: must be at least 2 (sigma is estimated from the spread between subgroups), got 1",
            "quality.charts[1].sigma: missing: a fixed baseline needs both center and sigma (or neither, to learn them in Phase I)",
            "quality.charts[1].limit: must be > 2 with the Western Electric rules on (rule 2 uses 2 sigma), got 2",
            "quality.charts[2].name: duplicate chart name \"p99\" (first used by quality.charts[1])",
            "quality.charts[2].kind: latency_p99:infer is a continuous signal: kind \"p\" is for 0/1 signals",
            "quality.charts[2].center: a p chart's center is a fraction in (0, 1), got 1.5",
            "quality.charts[2].lambda: must be in (0, 1], got 0",
            "quality.charts[2].k: must be a finite number >= 0, got -1",
            "quality.charts[2].h: must be a finite number > 0, got inf",
            "quality.charts[2].clear_after_subgroups: must be at least 1, got 0",
            "quality.charts[3].signal: invalid signal \"Confidence!\", expected [a-z0-9_]+ or kind:route such as request_error:infer",
            "quality.charts[3].center: must be a finite number, got NaN",
            "quality.charts[3].sigma: must be a finite number > 0, got -2",
            "quality.charts[4].name: missing chart name, expected [a-z0-9_]+",
            "quality.charts[4].signal: missing signal, expected request_error:<route>, latency_p99:<route> or a pushed signal name",
            "quality.drift[0].signal: \"request_error:infer\" is a chart-only pull signal; drift tests read pushed signals",
            "quality.drift[0].reference_size: must be at least 10 (5 per bin, 10 at least), got 5",
            "quality.drift[0].bins: must be between 2 and 100, got 1",
            "quality.drift[0].alpha: must be in (0, 0.5), got 0.5",
            "quality.drift[1].window_size: must be at least 50 (5 per bin, 10 at least), got 20",
            "quality.drift[2].signal: duplicate drift test of \"confidence\" (first at quality.drift[1])",
        ],
        "invalid_answers.toml" => vec![
            "canary[0].name: invalid name \"Golden\", expected [a-z0-9_]+",
            "canary[0].route: unknown route \"nope\", expected one of [infer, raw]",
            "canary[0].path: must start with /, got \"v2/models/iris/infer\"",
            "canary[0].method: expected GET, POST or PUT, got \"PATCH\"",
            "canary[0].golden_file: missing golden set file (JSON Lines)",
            "canary[0].interval_secs: must be > 0 and <= 31536000 seconds, got 0",
            "canary[0].jitter_secs: must be >= 0 and <= 31536000 seconds, got -1",
            "canary[0].header_files.authorization: missing file name",
            "canary[0].success_ratio: must be between 0 and 1, got 1.5",
            "canary[1].route: route \"raw\" is opaque: its answers cannot be read, give it a protocol",
            "canary[1].upstream: tls upstreams are not supported (got \"https://example.com:443\"), expected http://host:port",
            "canary[1].rel_tolerance: must be a finite number >= 0, got -0.1",
            "shadow.queue_capacity: must be between 1 and 10000000, got 0",
            "shadow.targets[0].sample_ratio: must be between 0 and 1, got 2",
            "shadow.targets[0].max_in_flight: must be between 1 and 10000000, got 0",
            "shadow.targets[0].url: missing url, expected http://host:port for kind \"http\"",
            "shadow.targets[1].name: duplicate name \"cand\" (first used by shadow.targets[0])",
            "shadow.targets[1].model_path: missing model file for kind \"onnx\"",
            "shadow.targets[1].inputs[0].name: missing model input name",
            "shadow.targets[1].label_output: kind \"onnx\" needs label_output or score_output (the model outputs to compare)",
            "shadow.targets[1].threads: must be between 1 and 64, got 0",
            "feedback.request_id_header: invalid header name \"x request id\"",
            "feedback.token_file: missing bearer token file (required when feedback is enabled)",
            "feedback.ttl_secs: must be > 0 and <= 31536000 seconds, got 0",
            "accuracy.windows_secs[1]: must be a positive multiple of accuracy.slot_secs (60), got 90",
            "accuracy.windows_secs[2]: duplicate window 3600",
            "cold_start.idle_gap_secs: must be >= 0 (0 disables) and <= 31536000 seconds, got -5",
        ],
        other => panic!("fixture {other} has no expected messages: add them to `expected`"),
    }
}

fn check_fixture(name: &str) {
    assert_eq!(fixture_errors(name), expected(name), "fixture {name}");
}

#[test]
fn every_fixture_is_paired_with_its_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(TESTDATA);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "fixtures: {names:?}");
    for name in &names {
        check_fixture(name);
    }
}

#[test]
fn canary_shadow_feedback_rules() {
    check_fixture("invalid_answers.toml");
}

#[test]
fn unknown_keys_at_every_level() {
    check_fixture("unknown_keys.toml");
}

#[test]
fn type_errors_in_several_sections() {
    check_fixture("type_errors.toml");
}

#[test]
fn proxy_rules() {
    check_fixture("invalid_proxy.toml");
}

#[test]
fn route_rules() {
    check_fixture("invalid_routes.toml");
}

#[test]
fn listener_and_admin_rules() {
    check_fixture("invalid_listeners.toml");
}

#[test]
fn latency_rules() {
    check_fixture("invalid_latency.toml");
}

#[test]
fn latency_limits() {
    check_fixture("invalid_latency_limits.toml");
}

#[test]
fn log_rules() {
    check_fixture("invalid_log.toml");
}

#[test]
fn energy_rules() {
    check_fixture("invalid_energy.toml");
    check_fixture("invalid_energy_window.toml");
    check_fixture("energy_type_errors.toml");
}

#[test]
fn system_rules() {
    check_fixture("invalid_system.toml");
}

#[test]
fn energy_and_system_from_env_and_booleans_for_modes() {
    use inferwatch::energy::config::SourceMode;
    let toml = "[energy]\nnvml = false\nrapl = true\nnvml_devices = [\"0\", \"GPU-8f6b\"]\nrapl_idle_watts = 12.5\n";
    let vars = env(&[
        ("INFERWATCH__ENERGY__ESTIMATE", "off"),
        ("INFERWATCH__ENERGY__RAPL_ROOT", "/host/sys/class/powercap"),
        ("INFERWATCH__ENERGY__INTERVAL_SECS", "0.5"),
        ("INFERWATCH__SYSTEM__PROCESS_NAME", "tritonserver"),
    ]);
    let config = Config::load_with_env(Some(toml), None, &vars).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.energy.nvml, SourceMode::Off);
    assert_eq!(config.energy.rapl, SourceMode::On);
    assert_eq!(config.energy.estimate, SourceMode::Off);
    assert_eq!(config.energy.nvml_devices, vec!["0", "GPU-8f6b"]);
    assert_eq!(config.energy.rapl_idle_watts, Some(12.5));
    assert_eq!(config.energy.nvml_idle_watts, None);
    assert_eq!(config.energy.rapl_root, "/host/sys/class/powercap");
    assert_eq!(config.energy.interval_secs, 0.5);
    assert_eq!(config.system.process_name, "tritonserver");
    // A misspelt optional key is still recognised as close to a known one.
    assert_eq!(
        errors_of("[energy]\nnvml_idle_wats = 50.0\n"),
        vec!["energy.nvml_idle_wats: unknown key, did you mean `nvml_idle_watts`?"]
    );
}

#[test]
fn quality_rules() {
    check_fixture("invalid_quality.toml");
}

#[test]
fn prediction_rules() {
    check_fixture("invalid_prediction.toml");
}

#[test]
fn prediction_keys_are_typed_and_known() {
    let toml = "[[proxy.routes]]\nname = \"a\"\npath_prefix = \"/v2/\"\nprotocol = \"kserve_v2\"\n[proxy.routes.prediction]\nscroes = \"logits\"\nkind = \"ranking\"\nfeature_bounds = [{ feature = 1, maximum = 3 }]\n";
    assert_eq!(
        errors_of(toml),
        vec![
            "proxy.routes[0].prediction.kind: unknown variant `ranking`, expected one of `auto`, `classification`, `regression`",
            "proxy.routes[0].prediction.feature_bounds[0].maximum: unknown key",
            "proxy.routes[0].prediction.scroes: unknown key, did you mean `scores`?",
        ]
    );
    let ok = load_str("[[proxy.routes]]\nname = \"c\"\npath_prefix = \"/p\"\nprotocol = \"json\"\n[proxy.routes.prediction]\nrows_pointer = \"/predictions\"\nvalue_pointer = \"#\"\nscores = \"logits\"\nfeature_bounds = [{ feature = 3, max = 1.5 }]\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let p = &ok.proxy.routes[0].prediction;
    assert_eq!(p.value_pointer, "#");
    assert_eq!(p.feature_bounds[0].min, f64::NEG_INFINITY);
    assert_eq!(p.feature_bounds[0].max, 1.5);
}

#[test]
fn syntax_error_stops_with_line_and_column() {
    check_fixture("syntax_error.toml");
}

#[test]
fn many_errors_of_every_kind_are_reported_together() {
    check_fixture("many_errors.toml");
}

#[test]
fn example_config_is_valid_and_equals_the_defaults_but_for_routes() {
    let config = Config::load_with_env(
        Some(&read(EXAMPLE)),
        Some(Path::new(EXAMPLE)),
        &HashMap::new(),
    )
    .unwrap_or_else(|e| panic!("{EXAMPLE} is invalid:\n{e}"));
    let route = |name: &str, path_prefix: &str, protocol| RouteConfig {
        name: name.into(),
        path_prefix: path_prefix.into(),
        protocol,
        ..RouteConfig::default()
    };
    let expected = Config {
        proxy: ProxyConfig {
            routes: vec![
                route("infer", "/v2/models/", Protocol::KserveV2),
                route("openai", "/v1/", Protocol::Openai),
            ],
            ..ProxyConfig::default()
        },
        ..Config::default()
    };
    assert_eq!(config, expected);
}

#[test]
fn example_config_documents_every_key() {
    // Every key of the defaults (with a route) appears in the example as `key =`.
    let text = read(EXAMPLE);
    let mut sample = Config::default();
    sample.proxy.routes.push(RouteConfig::default());
    let tree = serde_json::to_value(&sample).unwrap();
    fn keys(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    out.push(k.clone());
                    keys(v, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    keys(&tree, &mut all);
    for key in all {
        let present = text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with(&format!("{key} ="))
                || l.starts_with(&format!("[{key}]"))
                || l.contains(&format!(".{key}]"))
        });
        assert!(present, "{EXAMPLE} does not set `{key}`");
    }
}

#[test]
fn example_config_loads_through_the_file_loader() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE);
    let config = load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.proxy.routes.len(), 2);
}

#[test]
fn no_file_and_no_env_is_the_default() {
    assert_eq!(
        Config::load_with_env(None, None, &HashMap::new()).unwrap(),
        Config::default()
    );
    assert_eq!(load_str("").unwrap(), Config::default());
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let path = Path::new("config/testdata/does-not-exist.toml");
    let errors = load(Some(path)).unwrap_err();
    assert_eq!(
        errors.lines(),
        vec!["config/testdata/does-not-exist.toml: config file not found"]
    );
}

#[test]
fn errors_display_one_per_line() {
    let errors = ConfigErrors(vec![
        ConfigError::new("proxy.listen", "bad"),
        ConfigError::new("admin.listen", "worse"),
    ]);
    assert_eq!(errors.to_string(), "proxy.listen: bad\nadmin.listen: worse");
    let boxed: Box<dyn std::error::Error> = Box::new(errors);
    assert!(boxed.to_string().starts_with("proxy.listen: bad"));
}

#[test]
fn env_overrides_strings_numbers_bools_and_enums() {
    let toml =
        "[proxy]\nmax_in_flight = 5\nupstream = \"http://127.0.0.1:1\"\n[log]\nlevel = \"warn\"\n";
    let vars = env(&[
        ("INFERWATCH__PROXY__UPSTREAM", "http://10.0.0.1:9000"),
        ("INFERWATCH__PROXY__MAX_IN_FLIGHT", "10"),
        ("INFERWATCH__PROXY__CONNECT_TIMEOUT_SECS", "0.5"),
        ("INFERWATCH__PROXY__FIRST_BYTE_TIMEOUT_SECS", "30"),
        ("INFERWATCH__PROXY__X_FORWARDED_FOR", "true"),
        ("INFERWATCH__ADMIN__LISTEN", "127.0.0.1:9100"),
        // names are case-insensitive; keys become lowercase
        ("Inferwatch__Log__Format", "json"),
        // a number for a string key: the variable's text is used
        ("INFERWATCH__LOG__LEVEL", "5"),
        // not ours: wrong separator, other prefix
        ("INFERWATCH_PROXY__MAX_IN_FLIGHT", "1"),
        ("INFERWATCHER__PROXY__MAX_IN_FLIGHT", "1"),
        ("PATH", "/usr/bin"),
    ]);
    let config = Config::load_with_env(Some(toml), None, &vars).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.proxy.upstream, "http://10.0.0.1:9000");
    assert_eq!(config.proxy.max_in_flight, 10);
    assert_eq!(config.proxy.connect_timeout_secs, 0.5);
    assert_eq!(config.proxy.first_byte_timeout_secs, 30.0);
    assert!(config.proxy.x_forwarded_for);
    assert_eq!(config.admin.listen, "127.0.0.1:9100".parse().unwrap());
    assert_eq!(
        config.log.format,
        inferwatch::telemetry::config::LogFormat::Json
    );
    assert_eq!(config.log.level, "5");
}

#[test]
fn env_errors_carry_their_key_path_and_variable() {
    let got = errors_with_env(
        "",
        &[
            ("INFERWATCH__PROXY__MAX_IN_FLIGHT", "lots"),
            ("INFERWATCH__PROXY__UPSTREAM", "https://model:8443"),
            ("INFERWATCH__PROXY__X_FORWARDED_FOR", "1"),
            ("INFERWATCH__PROXY__LISTN", "0.0.0.0:1"),
            ("INFERWATCH__LATENCY__SLOT_SECS", "0"),
        ],
    );
    assert_eq!(
        got,
        vec![
            "proxy.upstream: tls upstreams are not supported (got \"https://model:8443\"), expected http://host:port (from INFERWATCH__PROXY__UPSTREAM)",
            "proxy.max_in_flight: invalid type: string \"lots\", expected a non-negative integer (from INFERWATCH__PROXY__MAX_IN_FLIGHT)",
            "proxy.x_forwarded_for: invalid type: integer `1`, expected a boolean (from INFERWATCH__PROXY__X_FORWARDED_FOR)",
            "proxy.listn: unknown key, did you mean `listen`? (from INFERWATCH__PROXY__LISTN)",
            "latency.slot_secs: must be at least 1 second, got 0 (from INFERWATCH__LATENCY__SLOT_SECS)",
        ]
    );
}

#[test]
fn env_variable_set_twice_in_different_case_is_an_error() {
    let got = errors_with_env(
        "",
        &[
            ("INFERWATCH__PROXY__MAX_IN_FLIGHT", "10"),
            ("inferwatch__proxy__max_in_flight", "20"),
        ],
    );
    assert_eq!(
        got,
        vec!["proxy.max_in_flight: set by more than one environment variable (INFERWATCH__PROXY__MAX_IN_FLIGHT, inferwatch__proxy__max_in_flight), keep one"]
    );
}

#[test]
fn upstream_forms() {
    let upstream = |u: &str| load_str(&format!("[proxy]\nupstream = {u:?}\n"));
    for ok in [
        "http://127.0.0.1:8080",
        "http://model:8080/",
        "http://[::1]:8080",
    ] {
        assert_eq!(upstream(ok).unwrap().proxy.upstream, ok);
    }
    let cases = [
        ("https://model:8443", "tls upstreams are not supported (got \"https://model:8443\"), expected http://host:port"),
        ("ftp://model:21", "unsupported scheme \"ftp\", expected http://host:port"),
        ("127.0.0.1:8080", "missing scheme in \"127.0.0.1:8080\", expected http://host:port"),
        ("http://model", "missing port in \"http://model\", expected http://host:port"),
        ("http://:8080", "missing host in \"http://:8080\", expected http://host:port"),
        ("http://model:0", "port 0 is not a valid upstream port, expected http://host:port"),
        ("http://user:pw@model:8080", "credentials in the upstream url are not supported, expected http://host:port"),
        ("http://model:8080/?a=1", "unexpected query in \"http://model:8080/?a=1\", expected http://host:port"),
        ("http://model:8080#x", "unexpected fragment in \"http://model:8080#x\", expected http://host:port"),
        ("http://model:8080/v1", "unexpected path \"/v1\" in \"http://model:8080/v1\", expected http://host:port (routes match the client's path)"),
        ("not a url", "invalid url \"not a url\", expected http://host:port"),
        ("", "invalid url \"\", expected http://host:port"),
    ];
    for (bad, message) in cases {
        let got = upstream(bad).unwrap_err().lines();
        assert_eq!(
            got,
            vec![format!("proxy.upstream: {message}")],
            "upstream {bad:?}"
        );
    }
}

#[test]
fn single_rule_cases() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[latency]\nbucket_min_secs = 0\nbucket_max_secs = inf\nbucket_factor = nan\n",
            &[
                "latency.bucket_min_secs: must be a finite number of seconds > 0, got 0",
                "latency.bucket_max_secs: must be a finite number of seconds, got inf",
                "latency.bucket_factor: must be a finite number > 1, got NaN",
            ],
        ),
        (
            "[log]\nlevel = \"\"\n",
            &["log.level: must not be empty, expected a level such as \"info\" or directives such as \"inferwatch=debug,hyper=warn\""],
        ),
        (
            "[proxy]\nlisten = \"127.0.0.1:7000\"\n[admin]\nlisten = \"127.0.0.1:7000\"\n",
            &["admin.listen: same address as proxy.listen (127.0.0.1:7000), the two listeners must differ"],
        ),
        (
            "[[proxy.routes]]\nname = \"a\"\npath_prefix = \"/v1\"\n[[proxy.routes]]\nname = \"b\"\npath_prefix = \"/v1/chat\"\n",
            &["proxy.routes[1].path_prefix: route never matches: proxy.routes[0] (path_prefix \"/v1\") comes first and matches all its requests"],
        ),
        (
            "[latency]\nquantiles = [0.5, \"p90\", 0.99, true]\n",
            &[
                "latency.quantiles[1]: invalid type: string \"p90\", expected a number",
                "latency.quantiles[3]: invalid type: boolean `true`, expected a number",
            ],
        ),
        // A whole section of the wrong type: one error, and no rule judges its stand-in defaults.
        (
            "proxy = 5\n[admin]\nlisten = \"0.0.0.0:8081\"\n",
            &["proxy: invalid type: integer `5`, expected a table"],
        ),
        (
            "[proxy]\nroutes = \"infer\"\n",
            &["proxy.routes: invalid type: string \"infer\", expected an array"],
        ),
        (
            "[proxy]\nmax_in_flight = 1\nmax_in_flight = 2\n",
            &["<toml>:3:1: invalid toml: duplicate key"],
        ),
    ];
    for (toml, want) in cases {
        assert_eq!(errors_of(toml), *want, "for:\n{toml}");
    }
}

#[test]
fn listeners_on_port_zero_never_conflict() {
    let config = load_str("[proxy]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.admin.listen.port(), 0);
}

#[test]
fn too_many_explicit_buckets() {
    let buckets: Vec<String> = (1..=501).map(|i| format!("{}.0", i)).collect();
    let got = errors_of(&format!("[latency]\nbuckets = [{}]\n", buckets.join(", ")));
    assert_eq!(
        got,
        vec!["latency.buckets: too many buckets (501), at most 500"]
    );
}

#[test]
fn prefixes_that_share_text_but_not_a_segment_do_not_shadow() {
    load_str("[[proxy.routes]]\nname = \"a\"\npath_prefix = \"/embed\"\n[[proxy.routes]]\nname = \"b\"\npath_prefix = \"/embeddings\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn slo_bounds_need_an_inspected_route_and_token_bounds_an_openai_one() {
    let errors = errors_of(
        r#"
[[proxy.routes]]
name = "chat"
path_prefix = "/v1/"
protocol = "openai"
[proxy.routes.slo]
e2e_secs = -1.0
ttft_secs = 0.5
tpot_secs = 0.05

[[proxy.routes]]
name = "infer"
path_prefix = "/v2/"
protocol = "kserve_v2"
[proxy.routes.slo]
e2e_secs = 1.0
ttft_secs = 0.5

[[proxy.routes]]
name = "raw"
path_prefix = "/raw"
[proxy.routes.slo]
e2e_secs = 1.0
"#,
    );
    assert_eq!(
        errors,
        [
            "proxy.routes[0].slo.e2e_secs: invalid bound -1, expected seconds >= 0 (0 = not set)",
            "proxy.routes[1].slo.ttft_secs: ttft_secs needs token timings, which only protocol = \"openai\" routes have (this route is \"kserve_v2\")",
            "proxy.routes[2].slo.e2e_secs: an SLO needs an inspected route: set protocol (opaque routes are not read)",
        ]
    );
    let errors = errors_of(
        r#"
[inspection]
enabled = false
[[proxy.routes]]
name = "chat"
path_prefix = "/v1/"
protocol = "openai"
[proxy.routes.slo]
e2e_secs = 1.0
"#,
    );
    assert_eq!(
        errors,
        ["proxy.routes[0].slo: classifying requests against an SLO reads decoded live traffic: needs inspection.enabled = true"]
    );
}

/// Issue 13: a route's JSON Schema is read and compiled at load; an unreadable file, a file that
/// is not JSON and a schema that is not one are errors naming the key.
#[test]
fn json_schema_files_are_read_and_compiled_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let not_json = dir.path().join("not.json");
    std::fs::write(&not_json, "{type: object}").unwrap();
    let not_schema = dir.path().join("bad.json");
    std::fs::write(&not_schema, r#"{"type": "no-such-type"}"#).unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(&good, r#"{"type": "object"}"#).unwrap();
    let route = |i: usize, file: &Path| {
        format!(
            "[[proxy.routes]]\nname = \"r{i}\"\npath_prefix = \"/r{i}/\"\nprotocol = \"openai\"\n\
             [proxy.routes.output]\njson_schema_file = \"{}\"\n",
            file.display()
        )
    };
    let toml: String = [&missing, &not_json, &not_schema, &good]
        .iter()
        .enumerate()
        .map(|(i, f)| route(i, f))
        .collect();
    let errors = errors_of(&toml);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let want = [
        format!(
            "proxy.routes[0].output.json_schema_file: cannot read {}: ",
            missing.display()
        ),
        format!(
            "proxy.routes[1].output.json_schema_file: {} is not JSON: ",
            not_json.display()
        ),
        format!(
            "proxy.routes[2].output.json_schema_file: {}: invalid JSON Schema",
            not_schema.display()
        ),
    ];
    for (got, want) in errors.iter().zip(&want) {
        assert!(got.starts_with(want), "{got}\nwanted {want}…");
    }
    // Only OpenAI-compatible routes read answers.
    let errors = errors_of(&format!(
        "[[proxy.routes]]\nname = \"infer\"\npath_prefix = \"/v2/\"\nprotocol = \"kserve_v2\"\n\
         [proxy.routes.output]\njson_schema_file = \"{}\"\n",
        good.display()
    ));
    assert_eq!(
        errors,
        ["proxy.routes[0].output: output checks read LLM answers: protocol must be \"openai\", got \"kserve_v2\""]
    );
}
