//! Helm chart (`helm/inferwatch`, and `helm/examples/model-with-sidecar` which adds inferwatch
//! to a workload of its own as a native sidecar): rendered and linted by Helm's own engine
//! (`helm_python`, PyPI helm-python-sdk) with every values file in `helm/inferwatch/ci/`;
//! every manifest validated by `kubernetes-validate --strict -k 1.33.0`; the restricted security
//! context, probes, drain timing and native-sidecar shape asserted on the output; the rendered
//! inferwatch.toml passes the real `inferwatch check-config`; the PrometheusRule passes
//! `promtool check rules`. Tools come from scripts/install-peers.sh.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const CASES: &[(&str, &str)] = &[
    (
        "standalone",
        "helm/inferwatch:helm/inferwatch/ci/standalone-values.yaml",
    ),
    (
        "full",
        "helm/inferwatch:helm/inferwatch/ci/full-values.yaml",
    ),
    (
        "sidecar",
        "helm/inferwatch:helm/inferwatch/ci/sidecar-values.yaml",
    ),
    ("example", "helm/examples/model-with-sidecar"),
    ("no_upstream", "helm/inferwatch"),
];

struct Rendered {
    _dir: tempfile::TempDir,
    report: Value,
}

fn render() -> Rendered {
    let python = support::peers_python(&["helm_python", "kubernetes_validate", "yaml"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&python)
        .arg(root.join("tests/peers/helm_render.py"))
        .arg(dir.path())
        .args(CASES.iter().map(|(c, s)| format!("{c}={s}")))
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm_render.py:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    Rendered { _dir: dir, report }
}

fn docs<'a>(r: &'a Rendered, case: &str) -> Vec<&'a Value> {
    let c = &r.report[case];
    assert!(
        c["error"].is_null(),
        "{case}: render failed: {}",
        c["error"]
    );
    c["docs"].as_array().unwrap().iter().collect()
}

fn find<'a>(r: &'a Rendered, case: &str, kind: &str) -> Vec<&'a Value> {
    docs(r, case)
        .into_iter()
        .map(|d| &d["doc"])
        .filter(|d| d["kind"] == kind)
        .collect()
}

fn venv_bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv-peers/bin")
        .join(name)
}

fn assert_restricted(what: &str, c: &Value) {
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{what}: runAsNonRoot");
    assert_eq!(
        sc["readOnlyRootFilesystem"], true,
        "{what}: readOnlyRootFilesystem"
    );
    assert_eq!(
        sc["allowPrivilegeEscalation"], false,
        "{what}: allowPrivilegeEscalation"
    );
    assert_eq!(
        sc["capabilities"]["drop"],
        serde_json::json!(["ALL"]),
        "{what}: drop ALL"
    );
    assert_eq!(
        sc["seccompProfile"]["type"], "RuntimeDefault",
        "{what}: seccomp"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{what}");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{what}");
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/healthz", "{what}");
    assert!(
        c["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap()
            > 0,
        "{what}: preStop"
    );
    assert!(c["resources"]["requests"].is_object(), "{what}: resources");
    let limits = c["resources"]["limits"].as_object().unwrap();
    assert!(
        !limits.contains_key("nvidia.com/gpu"),
        "{what}: the sidecar must not take a GPU"
    );
}

/// terminationGracePeriodSeconds covers the preStop sleep and the drain.
fn assert_grace(what: &str, pod: &Value, container: &Value, toml: &str) {
    let drain: f64 = toml
        .lines()
        .find_map(|l| l.trim().strip_prefix("shutdown_grace_secs = "))
        .map(|v| v.parse().unwrap())
        .unwrap_or(25.0);
    let pre = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_f64()
        .unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_f64().unwrap();
    assert!(
        grace > drain + pre,
        "{what}: grace {grace} <= drain {drain} + preStop {pre}"
    );
}

fn config_toml<'a>(r: &'a Rendered, case: &str) -> &'a str {
    let cms = find(r, case, "ConfigMap");
    cms.iter()
        .find_map(|c| c["data"]["inferwatch.toml"].as_str())
        .unwrap_or_else(|| panic!("{case}: no ConfigMap with inferwatch.toml"))
}

#[test]
fn chart_lints_renders_validates_and_has_the_right_shape() {
    let r = render();

    // Lint (strict: warnings fail) for every case that should render.
    for (case, _) in CASES.iter().filter(|(c, _)| *c != "no_upstream") {
        let lint = &r.report[*case]["lint"];
        let bad: Vec<_> = lint["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["severity"].as_u64().unwrap() >= 2)
            .collect();
        assert!(
            bad.is_empty() && lint["errors"].as_array().unwrap().is_empty(),
            "{case}: lint {lint}"
        );
    }
    // Standalone without an upstream is refused with a message saying what to set.
    let err = r.report["no_upstream"]["error"]
        .as_str()
        .expect("no_upstream must fail");
    assert!(err.contains("upstream: the model Service's URL"), "{err}");

    // kubernetes-validate --strict on every manifest; CRDs (monitoring.coreos.com) have no
    // schema there, and only they may be skipped.
    let files: Vec<String> = CASES
        .iter()
        .filter(|(c, _)| *c != "no_upstream")
        .flat_map(|(c, _)| docs(&r, c))
        .map(|d| d["file"].as_str().unwrap().to_string())
        .collect();
    let kv = venv_bin("kubernetes-validate");
    let out = Command::new(&kv)
        .args(["--strict", "-k", "1.33.0"])
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/install-peers.sh", kv.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "kubernetes-validate:\n{text}");
    for f in &files {
        let line = text
            .lines()
            .find(|l| l.contains(f.as_str()))
            .unwrap_or_else(|| panic!("{f} not validated:\n{text}"));
        let crd = f.contains("-podmonitor-")
            || f.contains("-servicemonitor-")
            || f.contains("-prometheusrule-");
        if crd {
            assert!(
                line.starts_with("WARN") && line.contains("monitoring.coreos.com/v1"),
                "{line}"
            );
        } else {
            assert!(
                line.starts_with("INFO") && line.contains("passed"),
                "{line}"
            );
        }
    }

    // Standalone: a Deployment whose container is restricted and probed, a Service in front.
    for case in ["standalone", "full"] {
        let dep = find(&r, case, "Deployment");
        assert_eq!(dep.len(), 1, "{case}");
        let pod = &dep[0]["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{case}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{case}"
        );
        assert_eq!(pod["automountServiceAccountToken"], false, "{case}");
        let c = &pod["containers"][0];
        assert_restricted(case, c);
        assert_grace(case, pod, c, config_toml(&r, case));
        assert_eq!(find(&r, case, "Service").len(), 1, "{case}");
    }
    // Full: every optional object, the GPU notes applied, the rules and dashboards shipped.
    for kind in [
        "PodDisruptionBudget",
        "NetworkPolicy",
        "PodMonitor",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert_eq!(find(&r, "full", kind).len(), 1, "full: {kind}");
    }
    let full_pod = &find(&r, "full", "Deployment")[0]["spec"]["template"]["spec"];
    assert_eq!(full_pod["runtimeClassName"], "nvidia");
    let env = full_pod["containers"][0]["env"].as_array().unwrap();
    assert!(
        env.iter().any(|e| e["name"] == "NVIDIA_VISIBLE_DEVICES"),
        "{env:?}"
    );
    let dashboards: Vec<_> = find(&r, "full", "ConfigMap")
        .into_iter()
        .filter(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    assert_eq!(dashboards.len(), 4, "one ConfigMap per dashboard");
    for d in dashboards {
        for (k, v) in d["data"].as_object().unwrap() {
            let j: Value =
                serde_json::from_str(v.as_str().unwrap()).unwrap_or_else(|e| panic!("{k}: {e}"));
            assert!(j["uid"].is_string(), "{k}");
        }
    }
    let rule = &find(&r, "full", "PrometheusRule")[0];
    let text = rule["spec"].to_string();
    assert!(
        text.contains("https://example.org/inferwatch/docs/runbook.md#inferwatchspcalarm"),
        "runbookBaseUrl applied"
    );

    // Sidecar mode: no Deployment/Service of its own; monitors select the workload's label.
    assert!(find(&r, "sidecar", "Deployment").is_empty());
    assert!(find(&r, "sidecar", "Service").is_empty());
    let pm = &find(&r, "sidecar", "PodMonitor")[0];
    assert_eq!(
        pm["spec"]["selector"]["matchLabels"]["inferwatch.dev/sidecar"],
        "iw-inferwatch"
    );
    assert!(config_toml(&r, "sidecar").contains("upstream = \"http://127.0.0.1:8080\""));

    // The example workload: inferwatch is a native sidecar (an init container that restarts
    // Always), restricted, with its config volume; the model stays a regular container.
    let dep = &find(&r, "example", "Deployment")[0];
    let tpl = &dep["spec"]["template"];
    assert_eq!(
        tpl["metadata"]["labels"]["inferwatch.dev/sidecar"],
        "iw-inferwatch"
    );
    let pod = &tpl["spec"];
    let init = pod["initContainers"].as_array().unwrap();
    assert_eq!(init.len(), 1);
    assert_eq!(init[0]["name"], "inferwatch");
    assert_eq!(init[0]["restartPolicy"], "Always", "native sidecar");
    assert_restricted("example sidecar", &init[0]);
    assert_grace("example", pod, &init[0], config_toml(&r, "example"));
    assert!(pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["name"] != "inferwatch"));
    let vols: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(vols.contains(&"inferwatch-config"), "{vols:?}");
    let cm_name = pod["volumes"][0]["configMap"]["name"].as_str().unwrap();
    assert!(find(&r, "example", "ConfigMap")
        .iter()
        .any(|c| c["metadata"]["name"] == cm_name));

    // The rendered configs pass the real binary's check-config.
    let dir = tempfile::tempdir().unwrap();
    // `full` secures the admin port with a web config file from a Secret mounted at
    // /etc/inferwatch-web: check-config reads it, so a real one stands in for the Secret here.
    let secret_file = "/etc/inferwatch-web/web-config.yml";
    assert!(config_toml(&r, "full").contains(&format!("web_config_file = \"{secret_file}\"")));
    let web = dir.path().join("web-config.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  prometheus: {}\n",
            bcrypt::hash("x", 4).unwrap()
        ),
    )
    .unwrap();
    let full = find(&r, "full", "Deployment")[0];
    let c = &full["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert!(c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["mountPath"] == "/etc/inferwatch-web" && m["readOnly"] == true));
    assert_eq!(
        find(&r, "full", "PodMonitor")[0]["spec"]["podMetricsEndpoints"][0]["scheme"],
        "https"
    );
    for case in ["standalone", "full", "sidecar", "example"] {
        let path = dir.path().join(format!("{case}.toml"));
        let toml = config_toml(&r, case).replace(secret_file, &web.display().to_string());
        std::fs::write(&path, toml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{case}: check-config rejects the chart's inferwatch.toml:\n{}\n{}{}",
            config_toml(&r, case),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The PrometheusRule's groups are a valid rules file (JSON is YAML) for promtool.
    let rules_path = dir.path().join("rules.yaml");
    std::fs::write(&rules_path, rule["spec"].to_string()).unwrap();
    let p = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let out = Command::new(&p)
        .args(["check", "rules"])
        .arg(&rules_path)
        .output()
        .unwrap_or_else(|e| panic!("{p}: {e}: run scripts/install-peers.sh"));
    assert!(
        out.status.success(),
        "promtool on the PrometheusRule:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let n_rules: usize = rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert!(
        n_rules >= 25,
        "every rule of dashboards/rules shipped: {n_rules}"
    );
}
