//! Shared integration-test harness: start a real upstream HTTP server and a real sidecar on
//! `127.0.0.1:0`, send traffic with a real hyper client, scrape `/metrics` and match samples.
#![allow(dead_code)]

pub mod llamacpp;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use inferwatch::app::App;
use inferwatch::config::Config;
use inferwatch::routes::config::RouteConfig;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Retry an async condition until it holds or the timeout passes (default 5 s).
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr) => {
        $crate::assert_eventually!($cond, std::time::Duration::from_secs(5))
    };
    ($cond:expr, $timeout:expr) => {{
        let deadline = tokio::time::Instant::now() + $timeout;
        loop {
            if $cond {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("condition never held: {}", stringify!($cond));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }};
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// A real upstream HTTP server (HTTP/1.1 and h2c) on 127.0.0.1:0 running `handler`.
pub struct Upstream {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Upstream {
    pub async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, handler)
    }

    pub fn serve<F, Fut>(listener: TcpListener, handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let addr = listener.local_addr().unwrap();
        let handler = Arc::new(handler);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let h = handler.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let h = h.clone();
                        async move { Ok::<_, Infallible>(h(req).await) }
                    });
                    let mut b = auto::Builder::new(TokioExecutor::new());
                    b.http1().timer(TokioTimer::new());
                    let _ = b.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Self { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sidecar under test, in-process, on 127.0.0.1:0 for both listeners.
pub struct Sidecar {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A config pointing at `upstream`, both listeners on 127.0.0.1:0, one `infer` route.
pub fn test_config(upstream: &str) -> Config {
    let mut cfg = Config::default();
    cfg.proxy.listen = "127.0.0.1:0".parse().unwrap();
    cfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    cfg.proxy.upstream = upstream.to_string();
    cfg.proxy.routes = vec![RouteConfig {
        name: "infer".into(),
        path_prefix: "/v2/models/".into(),
        model: "m".into(),
        ..RouteConfig::default()
    }];
    cfg
}

impl Sidecar {
    pub async fn start(cfg: Config) -> Self {
        Self::start_app(App::build(cfg).expect("build sidecar")).await
    }

    /// Serve an app the test has built (and perhaps adjusted) itself.
    pub async fn start_app(app: App) -> Self {
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.serve(proxy, admin, async move {
            let _ = rx.await;
        }));
        Self {
            proxy_addr,
            admin_addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy_addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin_addr, path)
    }

    /// GET /metrics, parsed.
    pub async fn scrape(&self) -> Scrape {
        let (status, body) = get(&self.admin_url("/metrics")).await;
        assert_eq!(status, 200, "scrape failed: {body}");
        Scrape::parse(&body)
    }

    pub async fn scrape_text(&self) -> String {
        get(&self.admin_url("/metrics")).await.1
    }

    /// Ask for shutdown and wait until the sidecar has drained.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("sidecar drained in time")
                .unwrap();
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

pub fn client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// GET a URL, returning status and body text.
pub async fn get(url: &str) -> (u16, String) {
    let resp = client()
        .request(Request::get(url).body(full("")).unwrap())
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// One sample of a scrape.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed Prometheus text exposition.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (head, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().expect("sample value"),
            };
            let (name, labels) = match head.split_once('{') {
                None => (head.to_string(), BTreeMap::new()),
                Some((n, rest)) => {
                    let rest = rest.trim_end_matches('}');
                    let mut labels = BTreeMap::new();
                    // Label values in our output never contain `",` so a simple split is enough.
                    for kv in rest.split("\",") {
                        if kv.is_empty() {
                            continue;
                        }
                        let (k, v) = kv.split_once("=\"").expect("label");
                        labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                    }
                    (n.to_string(), labels)
                }
            };
            samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        Self { samples }
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The one sample with this name whose labels include `labels`; panics if several match.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<_> = self.matching(name, labels).collect();
        assert!(
            found.len() <= 1,
            "{name}{labels:?} matches {} samples",
            found.len()
        );
        found.first().map(|s| s.value)
    }

    /// Sum over every sample with this name whose labels include `labels` (0 if none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

/// A misbehaving upstream at the TCP level: `handler` gets each accepted connection.
pub struct RawUpstream {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RawUpstream {
    pub async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(handler(s));
            }
        });
        Self { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Send a GET through a fresh client and return the response (body unread).
pub async fn send_get(url: &str) -> Response<Incoming> {
    client()
        .request(Request::get(url).body(full("")).unwrap())
        .await
        .expect("request")
}

/// `promtool check metrics` on a scrape: `Err(report)` when it complains.
pub fn promtool_check(text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let p = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = Command::new(&p)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{p}: {e} (run scripts/install-peers.sh, which installs Debian's prometheus package)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && report.trim().is_empty() {
        Ok(())
    } else {
        Err(report)
    }
}

/// The Python of the peers' venv (`.venv-peers`, made by `scripts/install-peers.sh`), after
/// checking that it can import `modules`; panics naming the script when it cannot.
pub fn peers_python(modules: &[&str]) -> std::path::PathBuf {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-peers/bin/python");
    let import = format!("import {}", modules.join(", "));
    let ok = std::process::Command::new(&python)
        .args(["-c", &import])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} cannot `{import}`: run scripts/install-peers.sh first (`make test` does)",
        python.display()
    );
    python
}

/// A free port on 127.0.0.1 (bound, then released: fine for tests on loopback).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when dropped, so a failing test leaves no server behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until a slow-starting peer (MLServer imports a lot of Python before it listens; on a
/// busy 2-core machine that can take tens of seconds) answers 200 at `url`; fail with its log
/// if it exits or is not ready within 180 s.
pub async fn wait_mlserver_ready(url: &str, server: &mut KillOnDrop, log: &std::path::Path) {
    let timeout = Duration::from_secs(180);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let req = Request::get(url).body(full("")).unwrap();
        if let Ok(Ok(resp)) =
            tokio::time::timeout(Duration::from_secs(2), client().request(req)).await
        {
            if resp.status() == 200 {
                return;
            }
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!(
                "mlserver exited ({status}) before it was ready:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "mlserver not ready within {timeout:?}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The iris model server script every MLServer test sets up (`tests/peers/mlserver_iris.py`).
pub const MLSERVER_IRIS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mlserver_iris.py");

/// MLServer serving the iris classifier from its own folder, ready to answer.
pub struct MlServerIris {
    pub server: KillOnDrop,
    pub http_port: u16,
    pub grpc_port: u16,
    pub metrics_port: u16,
}

impl MlServerIris {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}

/// Set up the iris model in `dir` (free ports for HTTP, gRPC and metrics), start MLServer there
/// and wait until the model is ready; fail with its log otherwise.
pub async fn start_mlserver_iris(python: &std::path::Path, dir: &std::path::Path) -> MlServerIris {
    use std::process::{Command, Stdio};
    let (http_port, grpc_port, metrics_port) = (free_port(), free_port(), free_port());
    let setup = Command::new(python)
        .arg(MLSERVER_IRIS)
        .arg("setup")
        .arg(dir)
        .args([http_port, grpc_port, metrics_port].map(|p| p.to_string()))
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "model set-up failed:\n{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let log_path = dir.join("mlserver.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mlserver = python.with_file_name("mlserver");
    let mut server = KillOnDrop(
        Command::new(&mlserver)
            .args(["start", "."])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", mlserver.display())),
    );
    wait_mlserver_ready(
        &format!("http://127.0.0.1:{http_port}/v2/models/iris/ready"),
        &mut server,
        &log_path,
    )
    .await;
    MlServerIris {
        server,
        http_port,
        grpc_port,
        metrics_port,
    }
}
