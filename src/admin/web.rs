//! The admin listener secured the way Prometheus exporters are: exporter-toolkit's web config
//! file (`--web.config.file`), so an operator reuses the file they already have. It holds
//! `tls_server_config` (certificate and key, optionally a client CA and `client_auth_type`) and
//! `basic_auth_users` (user → bcrypt hash). The file and the files it names are watched and
//! reloaded when they change (certificate rotation by cert-manager or a systemd timer needs no
//! restart); a reload that fails keeps what was serving and says why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::auth::BasicAuth;

/// How often the files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// Why a web config file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("admin.web_config_file: {0}")]
pub struct WebConfigError(String);

fn err(msg: impl Into<String>) -> WebConfigError {
    WebConfigError(msg.into())
}

/// The file, as exporter-toolkit defines it (the subset inferwatch supports; any other key is
/// refused by name rather than ignored, so a setting never silently does nothing).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    tls_server_config: Option<TlsFormat>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFormat {
    #[serde(default)]
    cert_file: String,
    #[serde(default)]
    key_file: String,
    /// Inline PEM, instead of `cert_file`.
    #[serde(default)]
    cert: String,
    /// Inline PEM, instead of `key_file`.
    #[serde(default)]
    key: String,
    #[serde(default)]
    client_ca_file: String,
    #[serde(default)]
    client_auth_type: String,
    #[serde(default)]
    min_version: String,
    #[serde(default)]
    max_version: String,
}

/// What a loaded file serves with.
pub struct Loaded {
    pub tls: Option<TlsAcceptor>,
    pub auth: BasicAuth,
    /// The files read, with their modification stamps, to notice changes.
    stamps: Vec<(PathBuf, Option<(SystemTime, u64)>)>,
}

/// The web config in force, reloaded when its files change.
pub struct Web {
    path: PathBuf,
    current: RwLock<Arc<Loaded>>,
}

impl Web {
    /// Read and check the file and everything it names (certificates, keys, CA, hashes).
    pub fn load(path: &Path) -> Result<Arc<Self>, WebConfigError> {
        let loaded = load(path)?;
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(loaded)),
        }))
    }

    pub fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether TLS is configured now.
    pub fn tls(&self) -> bool {
        self.current().tls.is_some()
    }

    /// Reload if any file changed; returns whether a new config is in force.
    pub fn reload_if_changed(&self) -> bool {
        let cur = self.current();
        let changed = cur.stamps.iter().any(|(p, s)| stamp(p) != *s) || stamp(&self.path).is_none();
        if !changed {
            return false;
        }
        match load(&self.path) {
            Ok(new) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
                tracing::info!(file = %self.path.display(), "admin web config reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin web config changed but cannot be loaded; keeping the one in force");
                false
            }
        }
    }

    /// Check for changes every [`RELOAD_CHECK`] until `stop` resolves.
    pub async fn watch(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RELOAD_CHECK) => {
                    let web = self.clone();
                    let _ = tokio::task::spawn_blocking(move || web.reload_if_changed()).await;
                }
                _ = &mut stop => return,
            }
        }
    }
}

fn stamp(p: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn load(path: &Path) -> Result<Loaded, WebConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
    let file: FileFormat = if text.trim().is_empty() {
        FileFormat::default()
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| err(format!("{}: {e}", path.display())))?
    };
    // Relative paths are relative to the web config file, as in exporter-toolkit.
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut stamps = vec![(path.to_path_buf(), stamp(path))];
    let tls = match &file.tls_server_config {
        None => None,
        Some(t) => Some(TlsAcceptor::from(Arc::new(server_config(
            t,
            dir,
            &mut stamps,
        )?))),
    };
    let auth = BasicAuth::new(file.basic_auth_users).map_err(err)?;
    Ok(Loaded { tls, auth, stamps })
}

fn read_pem(
    inline: &str,
    file: &str,
    what: &str,
    dir: &Path,
    stamps: &mut Vec<(PathBuf, Option<(SystemTime, u64)>)>,
) -> Result<Vec<u8>, WebConfigError> {
    match (inline.is_empty(), file.is_empty()) {
        (false, false) => Err(err(format!(
            "tls_server_config: set {what} or {what}_file, not both"
        ))),
        (false, true) => Ok(inline.as_bytes().to_vec()),
        (true, false) => {
            let p = dir.join(file);
            let bytes = std::fs::read(&p).map_err(|e| {
                err(format!(
                    "tls_server_config.{what}_file: {}: {e}",
                    p.display()
                ))
            })?;
            stamps.push((p.clone(), stamp(&p)));
            Ok(bytes)
        }
        (true, true) => Err(err(format!(
            "tls_server_config: {what}_file (or {what}) is required"
        ))),
    }
}

fn server_config(
    t: &TlsFormat,
    dir: &Path,
    stamps: &mut Vec<(PathBuf, Option<(SystemTime, u64)>)>,
) -> Result<ServerConfig, WebConfigError> {
    let cert_pem = read_pem(&t.cert, &t.cert_file, "cert", dir, stamps)?;
    let key_pem = read_pem(&t.key, &t.key_file, "key", dir, stamps)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("tls_server_config: certificate: {e}")))?;
    if certs.is_empty() {
        return Err(err("tls_server_config: no certificate in the cert PEM"));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| err(format!("tls_server_config: private key: {e}")))?;
    let versions = versions(&t.min_version, &t.max_version)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| err(format!("tls_server_config: {e}")))?;
    let auth_type = if t.client_auth_type.is_empty() {
        "NoClientCert"
    } else {
        t.client_auth_type.as_str()
    };
    let builder = match auth_type {
        "NoClientCert" => builder.with_no_client_auth(),
        "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert" => {
            if t.client_ca_file.is_empty() {
                return Err(err(format!(
                    "tls_server_config.client_ca_file is required with client_auth_type {auth_type}"
                )));
            }
            let p = dir.join(&t.client_ca_file);
            let pem = std::fs::read(&p).map_err(|e| {
                err(format!("tls_server_config.client_ca_file: {}: {e}", p.display()))
            })?;
            stamps.push((p.clone(), stamp(&p)));
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| err(format!("tls_server_config.client_ca_file: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| err(format!("tls_server_config.client_ca_file: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth_type == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| err(format!("tls_server_config.client_ca_file: {e}")))?,
            )
        }
        other => {
            return Err(err(format!(
                "tls_server_config.client_auth_type {other:?} is not supported; use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            )))
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| err(format!("tls_server_config: certificate and key: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

fn versions(
    min: &str,
    max: &str,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, WebConfigError> {
    let rank = |v: &str, default: u8| match v {
        "" => Ok(default),
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        other => Err(err(format!(
            "tls_server_config: TLS version {other:?} is not supported; use TLS12 or TLS13"
        ))),
    };
    // exporter-toolkit's default minimum is TLS 1.2.
    let (lo, hi) = (rank(min, 12)?, rank(max, 13)?);
    let mut out = Vec::new();
    if lo <= 13 && hi >= 13 {
        out.push(&rustls::version::TLS13);
    }
    if lo <= 12 && hi >= 12 {
        out.push(&rustls::version::TLS12);
    }
    if out.is_empty() {
        return Err(err("tls_server_config: min_version is above max_version"));
    }
    Ok(out)
}

/// The admin accept loop with the web config: each connection goes through TLS when it is
/// configured (the acceptor in force when it connects), then HTTP/1.1 or HTTP/2 (ALPN). The
/// files are watched for changes meanwhile. On `shutdown` the listener closes and in-flight
/// responses get 2 s.
pub async fn serve<H, Fut>(
    web: Arc<Web>,
    listener: tokio::net::TcpListener,
    handler: H,
    shutdown: impl std::future::Future<Output = ()>,
) where
    H: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<
            Output = Result<
                http::Response<http_body_util::Full<bytes::Bytes>>,
                std::convert::Infallible,
            >,
        > + Send
        + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::server::graceful::GracefulShutdown;

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(web.clone().watch(async move {
        let _ = stop_rx.wait_for(|v| *v).await;
    }));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, remote)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let svc = hyper::service::service_fn(handler.clone());
                match web.current().tls.clone() {
                    None => {
                        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc).into_owned());
                        tokio::spawn(async move { let _ = conn.await; });
                    }
                    Some(acceptor) => {
                        let builder = builder.clone();
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            // A client that never finishes its handshake does not hold a task.
                            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => tls,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, %remote, "admin TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                            let conn = builder.serve_connection(TokioIo::new(tls), svc).into_owned();
                            let _ = watcher.watch(conn).await;
                        });
                    }
                }
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let _ = watcher.await;
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
}
