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
