//! Prometheus rules (`dashboards/rules/`): `promtool check rules` passes on every rules file,
//! `promtool test rules` passes on every unit-test file, every alert has a unit test that fires
//! it, a summary, a description and a runbook_url whose section exists in docs/runbook.md.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn promtool() -> String {
    let p = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    match Command::new(&p).arg("--version").output() {
        Ok(o) if o.status.success() => p,
        _ => panic!("{p} not found: run scripts/install-peers.sh (Debian package prometheus)"),
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no .yaml files in {}", dir.display());
    v
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Each alert's name and the lines of its rule, from a rules file (a plain line scan: the
/// files keep one `- alert:` per rule, as promtool's own formatting does).
fn alerts(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(name) = t.strip_prefix("- alert: ") {
            out.push((name.trim().to_string(), String::new()));
        } else if t.starts_with("- record: ") || t.starts_with("- name: ") {
            out.push((String::new(), String::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    out.retain(|(n, _)| !n.is_empty());
    out
}

#[test]
fn promtool_checks_every_rules_file() {
    let p = promtool();
    for f in yaml_files(&root().join("dashboards/rules")) {
        let text = run(Command::new(&p).args(["check", "rules"]).arg(&f));
        assert!(text.contains("SUCCESS"), "{}: {text}", f.display());
    }
}

#[test]
fn promtool_unit_tests_pass() {
    let p = promtool();
    for f in yaml_files(&root().join("dashboards/rules/tests")) {
        let dir = f.parent().unwrap();
        let text = run(Command::new(&p)
            .args(["test", "rules"])
            .arg(f.file_name().unwrap())
            .current_dir(dir));
        assert!(text.contains("SUCCESS"), "{}: {text}", f.display());
    }
}

#[test]
fn every_alert_is_tested_annotated_and_has_a_runbook_section() {
    let runbook = std::fs::read_to_string(root().join("docs/runbook.md")).unwrap();
    let tests: String = yaml_files(&root().join("dashboards/rules/tests"))
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let mut seen = 0;
    for f in yaml_files(&root().join("dashboards/rules")) {
        let text = std::fs::read_to_string(&f).unwrap();
        for (name, body) in alerts(&text) {
            seen += 1;
            for key in ["summary:", "description:", "severity:"] {
                assert!(body.contains(key), "{name} has no {key}");
            }
            let anchor = format!("runbook_url: \"docs/runbook.md#{}\"", name.to_lowercase());
            assert!(body.contains(&anchor), "{name}: expected {anchor}");
            assert!(
                runbook.lines().any(|l| l == format!("## {name}")),
                "docs/runbook.md has no `## {name}` section"
            );
            // A test that expects it to fire: `alertname: X` followed by a non-empty exp_alerts.
            let fires = tests.split("alertname: ").skip(1).any(|chunk| {
                chunk.starts_with(&format!("{name}\n"))
                    && chunk
                        .lines()
                        .nth(1)
                        .is_some_and(|l| l.trim() == "exp_alerts:")
            });
            assert!(fires, "no unit test in dashboards/rules/tests fires {name}");
        }
    }
    assert!(seen >= 10, "only {seen} alerts found");
}
