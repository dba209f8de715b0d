//! The dependency rules of `docs/architecture.md`, checked on the source: every `crate::…` path
//! in `src/**/*.rs` (in `use` lines and inline paths alike) must be allowed for the module it
//! is written in. A forbidden import fails with the file, the line, the import and the rule.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The live path: what every proxied request runs through. It imports nothing that runs off it.
const LIVE: &[&str] = &["proxy", "routes", "latency", "metrics", "tap"];

/// A module group and the rule that says what its modules may import.
struct Rule {
    modules: &'static [&'static str],
    /// Top-level modules these may import (besides themselves).
    may_import: &'static [&'static str],
    /// `module::submodule` paths these may import even though the module itself is not allowed
    /// (plain data: a component's config section).
    may_import_paths: &'static [&'static str],
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        modules: &["proxy"],
        may_import: &["config", "metrics", "routes", "latency", "tap"],
        may_import_paths: &[],
        why: "the live path (proxy, routes, latency, metrics, tap) imports no off-path module: \
              protocol adapters, quality, shadow, canary, feedback, energy, bench, demo run off it",
    },
    Rule {
        modules: &["routes", "tap"],
        may_import: &["config", "metrics", "latency", "routes"],
        may_import_paths: &[],
        why: "the live path (proxy, routes, latency, metrics, tap) imports no off-path module, \
              and only the proxy knows connections; the tap and the route table never import it",
    },
    Rule {
        modules: &["latency", "metrics"],
        may_import: &["config"],
        may_import_paths: &[],
        why: "sketches and the metric catalogue are the ground floor: they import only config",
    },
    Rule {
        modules: &["config"],
        may_import: &[],
        may_import_paths: &["*::config", "telemetry::config"],
        why: "config reads file + env and aggregates the components' own sections: it imports \
              their config submodules only",
    },
    Rule {
        modules: &["protocol"],
        may_import: &["config", "metrics", "tap"],
        may_import_paths: &["routes::config"],
        why: "protocol adapters turn bytes into predictions: they know no connections, no proxy, \
              no route table, no consumer of their results (those are reached through SignalSink \
              and CaptureHook)",
    },
    Rule {
        modules: &["quality"],
        // `cli` only for quality/cli.rs (`spc arl`, `spc calibrate`).
        may_import: &["config", "metrics", "cli"],
        may_import_paths: &[],
        why: "the quality engine reads route figures through quality::RouteFigures (implemented \
              in app.rs), never the route table or the proxy; charts and drift tests are pure",
    },
    Rule {
        modules: &["client"],
        may_import: &["config", "protocol"],
        may_import_paths: &["routes::config"],
        why: "the off-path model-server client reads answers with the protocol adapters and \
              knows nothing of the live path",
    },
    Rule {
        modules: &["canary", "shadow", "feedback"],
        may_import: &["config", "metrics", "protocol", "quality", "client", "tap"],
        // `[accuracy]` (the ratio windows all three export) lives in canary's config.
        may_import_paths: &["routes::config", "canary::config"],
        why: "canaries, shadows and feedback run off the live path: they read decoded captures \
              (CaptureHook) and talk to model servers through crate::client",
    },
    Rule {
        modules: &["energy"],
        may_import: &["config", "metrics", "system"],
        may_import_paths: &[],
        why: "the energy sampler reads route load through energy::RouteLoads (implemented in \
              app.rs), never the route table or the proxy",
    },
    Rule {
        modules: &["engine"],
        may_import: &["config", "metrics", "client"],
        may_import_paths: &[],
        why: "the engine scraper reads the model server's own /metrics off the live path, \
              through crate::client; it knows no route table and no proxy",
    },
    Rule {
        modules: &["system", "telemetry", "systemd", "cli"],
        may_import: &["config", "metrics"],
        may_import_paths: &[],
        why: "samplers and process plumbing import only config and the metric catalogue",
    },
    Rule {
        modules: &["bench"],
        // `engine` for its exposition parser and normalisation (the LLM bench's saturation).
        may_import: &[
            "config", "metrics", "latency", "protocol", "client", "cli", "engine",
        ],
        may_import_paths: &["routes::config"],
        why: "the load generator is a client of model servers and Prometheus; it never runs \
              inside the sidecar",
    },
    Rule {
        modules: &["admin"],
        may_import: &["config", "metrics", "routes", "feedback"],
        may_import_paths: &[],
        why: "the admin server serves the registry, the route table's quantile gauges and \
              /feedback; it never imports the proxy",
    },
    Rule {
        modules: &["demo"],
        may_import: &[
            "app",
            "admin",
            "bench",
            "config",
            "metrics",
            "client",
            "protocol",
            "shadow",
            "routes",
            "telemetry",
            "cli",
        ],
        may_import_paths: &["*::config"],
        why: "the demo is a program like main: it builds configs and runs a whole App, a model \
              server and traffic; it never reaches into the proxy",
    },
];

/// Only these wire components together.
const WIRING: &[&str] = &["app"];

fn rule_for(module: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.modules.contains(&module))
}

/// A broken rule, as the failure message names it.
#[derive(Debug, PartialEq)]
struct Violation {
    file: String,
    line: usize,
    import: String,
    rule: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: `{}` breaks a dependency rule: {}",
            self.file, self.line, self.import, self.rule
        )
    }
}

/// The top-level module a source file belongs to: `src/quality/engine.rs` → `quality`,
/// `src/app.rs` → `app`.
fn module_of(rel: &Path) -> String {
    let mut parts = rel.iter().map(|p| p.to_string_lossy().into_owned());
    let first = parts.next().unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// Source text without comments (line, doc and block comments) and string literals, so that a
/// path mentioned in prose is not taken for an import.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if i < b.len() && b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // A char literal such as '"' must not open a string.
            out.push_str("' '");
            i += 3;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Every `crate::…` path in `text` as `(line, path)`, with `crate::{a::b, c}` groups expanded
/// into one path per member (`a::b`, `c`).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let text = strip(text);
    let mut out = Vec::new();
    let mut rest = text.as_str();
    let mut offset = 0;
    while let Some(pos) = rest.find("crate::") {
        let start = offset + pos;
        let preceded = text[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
        let after = &text[start + "crate::".len()..];
        let line = text[..start].matches('\n').count() + 1;
        if !preceded {
            if let Some(group) = after.strip_prefix('{') {
                for member in top_level_members(group) {
                    out.push((line, member));
                }
            } else {
                out.push((line, path_prefix(after)));
            }
        }
        offset = start + "crate::".len();
        rest = &text[offset..];
    }
    out
}

/// The path up to the first character that cannot be part of it: `a::b::{c, d}` → `a::b`.
fn path_prefix(s: &str) -> String {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    s[..end].trim_end_matches(':').to_string()
}

/// The members of a `{…}` group, up to its closing brace, at its top level only.
fn top_level_members(group: &str) -> Vec<String> {
    let mut depth = 0;
    let mut members = Vec::new();
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' if depth == 0 => break,
            '}' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => {
                members.push(std::mem::take(&mut current));
            }
            _ => current.push(c),
        }
    }
    members.push(current);
    members
        .into_iter()
        .map(|m| path_prefix(m.trim()))
        .filter(|m| !m.is_empty() && m != "self")
        .collect()
}

/// The rule `path` (a `crate::` path without the prefix) breaks when written in `module`.
fn check(module: &str, path: &str) -> Option<String> {
    let target = path.split("::").next().unwrap_or_default();
    if target == module || WIRING.contains(&module) || module == "lib" || module == "main" {
        return None;
    }
    if target == "app" && module != "demo" {
        return Some(
            "only app.rs and main.rs wire components together: nothing below imports app".into(),
        );
    }
    let rule = rule_for(module);
    let data_path = rule.is_some_and(|r| {
        r.may_import_paths
            .iter()
            .any(|p| match p.strip_prefix("*::") {
                // `*::config`: any component's config section (plain data).
                Some(sub) => path.split("::").nth(1) == Some(sub),
                None => path == *p || path.starts_with(&format!("{p}::")),
            })
    });
    if data_path {
        return None;
    }
    if target == "proxy" {
        return Some(format!(
            "no module below app.rs imports proxy ({module} must read what it needs through its \
             own narrow trait, implemented in app.rs)"
        ));
    }
    let Some(rule) = rule else {
        return Some(format!(
            "module {module} has no rule in tests/architecture.rs: add one (and to \
             docs/architecture.md)"
        ));
    };
    (!rule.may_import.contains(&target)).then(|| rule.why.to_string())
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn violations_in(rel: &Path, text: &str) -> Vec<Violation> {
    let module = module_of(rel);
    crate_paths(text)
        .into_iter()
        .filter_map(|(line, path)| {
            check(&module, &path).map(|rule| Violation {
                file: format!("src/{}", rel.display()),
                line,
                import: format!("crate::{path}"),
                rule,
            })
        })
        .collect()
}

/// Extra rules on the text of some files: tokens that must not appear there at all.
fn forbidden_tokens(rel: &Path, text: &str) -> Vec<Violation> {
    let name = rel.to_string_lossy().replace('\\', "/");
    let (tokens, why): (&[&str], &str) = if [
        "quality/shewhart.rs",
        "quality/ewma.rs",
        "quality/cusum.rs",
        "quality/pchart.rs",
        "quality/drift.rs",
        "quality/subgroup.rs",
    ]
    .contains(&name.as_str())
    {
        (
            &[
                "crate::",
                "tokio",
                "prometheus",
                "tracing",
                "std::fs",
                "std::net",
                "Instant::now",
                "SystemTime",
            ],
            "charts and drift tests are pure functions of their inputs: no I/O, no clock, no \
             metrics, no other module",
        )
    } else if name.starts_with("protocol/") {
        (
            &[
                "tokio::net",
                "hyper::",
                "std::net::Tcp",
                "TcpStream",
                "TcpListener",
            ],
            "protocol adapters parse bytes and know no connections",
        )
    } else {
        return Vec::new();
    };
    let code = strip(text);
    let mut out = Vec::new();
    for (i, line) in code.lines().enumerate() {
        for t in tokens {
            if line.contains(t) {
                out.push(Violation {
                    file: format!("src/{name}"),
                    line: i + 1,
                    import: t.to_string(),
                    rule: why.to_string(),
                });
            }
        }
    }
    out
}

#[test]
fn src_keeps_the_dependency_rules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut broken = Vec::new();
    let mut seen_modules = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let text = std::fs::read_to_string(f).unwrap();
        *seen_modules.entry(module_of(rel)).or_insert(0) += 1;
        broken.extend(violations_in(rel, &text));
        broken.extend(forbidden_tokens(rel, &text));
    }
    for live in LIVE {
        assert!(
            seen_modules.contains_key(*live),
            "live-path module {live} not found under src/"
        );
    }
    let report: Vec<String> = broken.iter().map(ToString::to_string).collect();
    assert!(
        broken.is_empty(),
        "{} import(s) break the dependency rules (docs/architecture.md):\n{}",
        broken.len(),
        report.join("\n")
    );
}

#[test]
fn a_forbidden_import_is_reported_with_file_import_and_rule() {
    let text = "//! x\nuse std::sync::Arc;\nuse crate::proxy::{RouteStats, Router};\n";
    let v = violations_in(Path::new("quality/engine.rs"), text);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].file, "src/quality/engine.rs");
    assert_eq!(v[0].line, 3);
    assert_eq!(v[0].import, "crate::proxy");
    assert!(v[0].rule.contains("no module below app.rs imports proxy"));

    // The live path reaching off it, in a group and inline.
    let text = "use crate::{config::Config, protocol::Inspector};\nfn f() { crate::quality::x(); }";
    let v = violations_in(Path::new("proxy/forward.rs"), text);
    let imports: Vec<&str> = v.iter().map(|v| v.import.as_str()).collect();
    assert_eq!(imports, ["crate::protocol::Inspector", "crate::quality::x"]);
    assert!(v[0].rule.starts_with("the live path"));

    // Paths in comments and strings are prose, not imports.
    let text = "// crate::proxy::Router\nconst S: &str = \"crate::proxy\";\n";
    assert!(violations_in(Path::new("energy/mod.rs"), text).is_empty());

    // Config may name a component's config section, not the component.
    assert!(check("config", "quality::config::QualityConfig").is_none());
    assert!(check("config", "quality::Engine").is_some());

    // Off-path modules read route entries' config, not the route table.
    assert!(check("protocol", "routes::config::PredictionConfig").is_none());
    assert!(check("protocol", "routes::Router").is_some());

    // A chart that reads the clock is not pure.
    let v = forbidden_tokens(
        Path::new("quality/ewma.rs"),
        "fn f() { let t = tokio::time::Instant::now(); }",
    );
    assert!(!v.is_empty() && v[0].rule.contains("pure"));
}
