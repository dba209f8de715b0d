//! `inferwatch check-config --config FILE`: exit 0 and `config ok: FILE` on stdout for a valid
//! file; exit 2 and, on stderr, `error: N problem(s) in FILE` followed by one `  path: message` line
//! per problem, for an invalid one.

use inferwatch::config::Config;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `inferwatch check-config --config FILE` from the crate root, with no `INFERWATCH*`
/// variables from the test's own environment (they would change the result).
fn check_config(file: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inferwatch"));
    command
        .args(["check-config", "--config", file])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, _) in std::env::vars_os() {
        if key
            .to_string_lossy()
            .to_uppercase()
            .starts_with("INFERWATCH")
        {
            command.env_remove(key);
        }
    }
    command.output().expect("run the inferwatch binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the failure contract and that the listed problems are exactly `expected`, in order.
fn assert_reports(output: &Output, file: &str, expected: &[String]) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr:\n{stderr}");
    let header = format!("error: {} problem(s) in {file}", expected.len());
    let lines: Vec<&str> = stderr.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == header)
        .unwrap_or_else(|| panic!("no line {header:?} in stderr:\n{stderr}"));
    let listed: Vec<String> = lines[start + 1..]
        .iter()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.to_string())
        .collect();
    let wanted: Vec<String> = expected.iter().map(|e| format!("  {e}")).collect();
    assert_eq!(listed, wanted, "stderr:\n{stderr}");
}

#[test]
fn valid_example_config() {
    let file = "config/inferwatch.toml";
    let output = check_config(file);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr:\n{}",
        text(&output.stderr)
    );
    assert_eq!(
        text(&output.stdout).trim_end(),
        format!("config ok: {file}")
    );
}

#[test]
fn many_errors_are_all_listed() {
    let file = "config/testdata/many_errors.toml";
    // The exact messages are pinned in tests/config.rs; here the binary must list the same ones.
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .expect("read fixture");
    let expected = Config::load_with_env(Some(&source), Some(Path::new(file)), &HashMap::new())
        .expect_err("fixture must be invalid")
        .lines();
    assert!(expected.len() >= 10, "{expected:?}");
    let output = check_config(file);
    assert_reports(&output, file, &expected);
    assert!(
        text(&output.stdout).trim().is_empty(),
        "stdout: {}",
        text(&output.stdout)
    );
}

#[test]
fn missing_file_is_reported() {
    let file = "config/testdata/does-not-exist.toml";
    let output = check_config(file);
    assert_reports(&output, file, &[format!("{file}: config file not found")]);
}

/// Writes `toml` to a temporary file and runs check-config on it.
fn check_text(toml: &str) -> (Output, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, toml).unwrap();
    let file = path.display().to_string();
    (check_config(&file), file, dir)
}

/// Issue 15: check-config said "ok" for configs `run` then refused. Both now build the app,
/// files included, and report the same problem the same way.
#[test]
fn files_that_run_reads_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-golden.jsonl");
    let empty_token = dir.path().join("token");
    std::fs::write(&empty_token, "\n").unwrap();

    let golden = format!(
        "[[proxy.routes]]\nname = \"infer\"\npath_prefix = \"/v2/\"\nprotocol = \"kserve_v2\"\n\n\
         [[canary]]\nname = \"g\"\nroute = \"infer\"\npath = \"/v2/models/m/infer\"\ngolden_file = \"{}\"\n",
        missing.display()
    );
    let (out, file, _d) = check_text(&golden);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("error: 1 problem(s) in {file}")),
        "{stderr}"
    );
    assert!(stderr.contains("  canary[0].golden_file: "), "{stderr}");

    let token = format!(
        "[inspection]\nenabled = true\n\n[feedback]\nenabled = true\ntoken_file = \"{}\"\n",
        empty_token.display()
    );
    let (out, _file, _d) = check_text(&token);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "  feedback.token_file: {} is empty",
            empty_token.display()
        )),
        "{stderr}"
    );
}

/// Issue 13: check-config refuses a route's JSON Schema that `run` could not compile.
#[test]
fn an_invalid_json_schema_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, r#"{"type": "no-such-type"}"#).unwrap();
    let (out, file, _d) = check_text(&format!(
        "[[proxy.routes]]\nname = \"chat\"\npath_prefix = \"/v1/\"\nprotocol = \"openai\"\n\
         [proxy.routes.output]\njson_schema_file = \"{}\"\n",
        schema.display()
    ));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("error: 1 problem(s) in {file}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "  proxy.routes[0].output.json_schema_file: {}: invalid JSON Schema",
            schema.display()
        )),
        "{stderr}"
    );
}

#[test]
fn absurd_durations_are_rejected_with_a_short_message() {
    let (out, file, _d) = check_text(
        "[proxy]\nconnect_timeout_secs = 1e-300\nfirst_byte_timeout_secs = 1e300\nbody_idle_timeout_secs = 1e-9\n",
    );
    assert_reports(
        &out,
        &file,
        &[
            "proxy.connect_timeout_secs: must be at least 0.001 seconds (1 ms), got 1e-300".into(),
            "proxy.first_byte_timeout_secs: must be > 0 and <= 31536000 seconds, got 1e300".into(),
            "proxy.body_idle_timeout_secs: must be at least 0.001 seconds (1 ms), got 1e-9".into(),
        ],
    );
}
