//! Shared by the gRPC tests: the client scripts' summary, running them, the gRPC route, and
//! MLServer serving the iris classifier on its REST and gRPC ports.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::Command;

use inferwatch::routes::config::{Protocol, RouteConfig};

use super::support::*;

pub const SETUP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mlserver_iris.py");
pub const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/grpc_iris.py");
pub const SERVICE: &str = "/inference.GRPCInferenceService/";

/// What a client script saw: calls that succeeded, failed calls by status code name, classes.
#[derive(Debug, serde::Deserialize)]
pub struct Tally {
    pub ok: u64,
    pub codes: BTreeMap<String, u64>,
    pub classes: BTreeMap<String, u64>,
    pub rows: u64,
    pub infer_ok: u64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub disagree: BTreeMap<String, u64>,
    #[serde(default)]
    pub live: BTreeMap<String, Vec<String>>,
}

pub async fn run_client(python: &std::path::Path, args: Vec<String>) -> Tally {
    let python = python.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(CLIENTS)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "gRPC client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

pub fn grpc_route(protocol: Protocol) -> RouteConfig {
    RouteConfig {
        name: "grpc".into(),
        path_prefix: SERVICE.into(),
        protocol,
        model: "iris".into(),
        ..RouteConfig::default()
    }
}

/// MLServer serving the iris classifier; returns the server and its (http, grpc) ports.
pub async fn start_mlserver(
    python: &std::path::Path,
    dir: &std::path::Path,
) -> (KillOnDrop, u16, u16) {
    let m = start_mlserver_iris(python, dir).await;
    (m.server, m.http_port, m.grpc_port)
}
