//! The admin listener secured with an exporter-toolkit web config file: a real Prometheus
//! scrapes it over TLS with basic auth (`up == 1`), `curl` with wrong or no credentials gets 401
//! (the probes' `/healthz` needs none), and a rotated certificate is served without a restart.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// A CA and a server certificate for 127.0.0.1 it signed, made with the openssl CLI in `dir`
/// under `name`-ca.pem, `name`.pem, `name`-key.pem.
fn make_certs(dir: &Path, name: &str) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (ca, ca_key) = (format!("{name}-ca.pem"), format!("{name}-ca-key.pem"));
    let (cert, key, csr) = (
        format!("{name}.pem"),
        format!("{name}-key.pem"),
        format!("{name}.csr"),
    );
    let ext = format!("{name}.ext");
    std::fs::write(dir.join(&ext), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &cert,
        "-days",
        "2",
        "-extfile",
        &ext,
    ]);
}

/// `curl` status code for `url` trusting `ca`, with `user:pass` when given.
fn curl(url: &str, ca: &Path, creds: Option<&str>) -> String {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "--cacert",
    ])
    .arg(ca)
    .arg(url);
    if let Some(u) = creds {
        c.args(["-u", u]);
    }
    String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_over_tls_with_basic_auth_and_wrong_credentials_get_401() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path(), "one");
    make_certs(dir.path(), "two");
    std::fs::copy(dir.path().join("one.pem"), dir.path().join("server.pem")).unwrap();
    std::fs::copy(
        dir.path().join("one-key.pem"),
        dir.path().join("server-key.pem"),
    )
    .unwrap();
    let hash = bcrypt::hash("scrape-s3cret", 6).unwrap();
    let web = dir.path().join("web.yml");
    // exporter-toolkit's format; relative paths are relative to this file.
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .unwrap();

    let up = Upstream::start(|_req| async move { http::Response::new(full("ok")) }).await;
    let mut cfg = test_config(&up.url());
    cfg.admin.web_config_file = web.display().to_string();
    let sidecar = Sidecar::start(cfg).await;
    let admin = sidecar.admin_addr;
    let url = |p: &str| format!("https://{admin}{p}");
    let ca1 = dir.path().join("one-ca.pem");

    let (ok, wrong, none, health) = tokio::task::spawn_blocking({
        let (m, h, ca1) = (url("/metrics"), url("/healthz"), ca1.clone());
        move || {
            (
                curl(&m, &ca1, Some("prometheus:scrape-s3cret")),
                curl(&m, &ca1, Some("prometheus:wrong")),
                curl(&m, &ca1, None),
                curl(&h, &ca1, None),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(ok, "200");
    assert_eq!(wrong, "401");
    assert_eq!(none, "401");
    assert_eq!(health, "200", "probes need no credentials");
    // Plain HTTP on the TLS listener gets nothing useful.
    let plain = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        out
    };
    assert!(
        !plain.starts_with(b"HTTP/1.1 200"),
        "plain HTTP served on the TLS listener"
    );

    // A real Prometheus, scraping with TLS and basic auth.
    let prom_bin = std::env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    let prom_port = free_port();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: inferwatch\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: prometheus\n      password: scrape-s3cret\n    static_configs:\n      - targets: [\"{admin}\"]\n",
            ca = ca1.display()
        ),
    )
    .unwrap();
    let prom_log = dir.path().join("prometheus.log");
    let _prom = KillOnDrop(
        Command::new(&prom_bin)
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&prom_log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{prom_bin}: {e} (scripts/install-peers.sh installs it)")),
    );
    let query =
        format!("http://127.0.0.1:{prom_port}/api/v1/query?query=up%7Bjob%3D%22inferwatch%22%7D");
    let up_value = || async {
        // Prometheus may not listen yet: a refused connection is "not yet".
        let req = http::Request::get(&query).body(full("")).unwrap();
        let body = match tokio::time::timeout(Duration::from_secs(3), client().request(req)).await {
            Ok(Ok(resp)) => {
                use http_body_util::BodyExt;
                let b = resp.into_body().collect().await.map(|c| c.to_bytes());
                String::from_utf8_lossy(&b.unwrap_or_default()).into_owned()
            }
            _ => String::new(),
        };
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .map(String::from)
            })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if up_value().await.as_deref() == Some("1") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus never scraped successfully:\n{}",
            std::fs::read_to_string(&prom_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Rotation: the files are replaced by a certificate from another CA; it is served without
    // a restart.
    std::fs::copy(dir.path().join("two.pem"), dir.path().join("server.pem")).unwrap();
    std::fs::copy(
        dir.path().join("two-key.pem"),
        dir.path().join("server-key.pem"),
    )
    .unwrap();
    let ca2 = dir.path().join("two-ca.pem");
    assert_eventually!(
        {
            let (m, ca2) = (url("/metrics"), ca2.clone());
            tokio::task::spawn_blocking(move || curl(&m, &ca2, Some("prometheus:scrape-s3cret")))
                .await
                .unwrap()
                == "200"
        },
        Duration::from_secs(20)
    );
    sidecar.shutdown().await;
}
