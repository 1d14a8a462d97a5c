//! A real kube-apiserver for the integration tests.
//!
//! [`KubeApiserver::start`] runs the test peer built from `tests/peers/kube-apiserver` (the real
//! kube-apiserver of Kubernetes 1.36, with etcd embedded in the same process) on a random
//! loopback port, from its own temporary directory: a throw-away CA and serving certificate, one
//! EC P-256 service-account key, a static admin token (group `system:masters`), an audit policy
//! and the audit log. RBAC is enforced and TokenRequest works. Nothing else of a cluster runs (no
//! controller-manager, scheduler or kubelet): Pods are created with `spec.nodeName` set, and
//! [`KubeApiserver::node`] registers a Node whose kubelet is a TLS stub in this process that
//! serves container logs, which the apiserver proxies `pods/log` to.
//!
//! The binary is `MEHO_KUBE_APISERVER`, or the build `scripts/test` caches for this checkout's
//! sources under `${MEHO_CACHE_DIR:-$HOME/.cache/meho}`. Without it a test prints `SKIPPED:` and
//! returns (it panics under `CI=true`, where `scripts/test` builds it).
//!
//! Dropping a [`KubeApiserver`] kills the process (etcd dies with it) and removes its directory.
//! A test process that dies without dropping it takes the apiserver along: the helper exits when
//! it is re-parented, and the next start sweeps directories whose owner is gone.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The environment variable naming the test peer binary (`scripts/test` exports it).
pub const APISERVER_ENV: &str = "MEHO_KUBE_APISERVER";
/// The environment variable naming the kubectl binary (`scripts/test` exports it).
pub const KUBECTL_ENV: &str = "MEHO_KUBECTL";
/// The service-account token issuer, also the only API audience.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The namespace of the minter ServiceAccount [`KubeApiserver::minter`] makes.
pub const MINTER_NAMESPACE: &str = "meho-system";
/// The name of the minter ServiceAccount [`KubeApiserver::minter`] makes.
pub const MINTER_NAME: &str = "meho-minter";
/// The field manager of [`KubeApiserver::apply`].
pub const FIELD_MANAGER: &str = "fixture";
/// The user name of [`KubeApiserver::admin_token`].
pub const ADMIN_USER: &str = "meho-admin";

/// The Role and RoleBinding the minter gets in each namespace (placeholders `<NAMESPACE>` and
/// `<SERVICE_ACCOUNTS>`); the docs show the same file.
pub const MINTER_RBAC_TEMPLATE: &str =
    include_str!("../../../tests/peers/kube-apiserver/minter-rbac.yaml");

/// The test peer's sources, hashed to find `scripts/test`'s cached build.
const PEER_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/kube-apiserver"
);
/// Temporary directories of harness apiservers start with this; the stale-directory sweep keys
/// on it.
const DIR_PREFIX: &str = "meho-kube-";
/// How long [`KubeApiserver::start`] waits for `/readyz` (several apiservers may start at once on
/// 2 cores).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How many random ports [`KubeApiserver::start`] tries before giving up.
const START_ATTEMPTS: usize = 5;
/// The cluster IP range (a Service needs one; nothing routes to it).
const SERVICE_CIDR: &str = "10.96.0.0/24";

/// Every TokenRequest, and every request of a user other than the apiserver itself, at Metadata
/// level; health probes are left out.
const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    resources:
      - group: ""
        resources: ["serviceaccounts/token"]
  - level: None
    users: ["system:apiserver"]
  - level: None
    nonResourceURLs: ["/readyz*", "/livez*", "/healthz*", "/version"]
  - level: Metadata
"#;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding a harness lock must not fail every later test.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// --- availability --------------------------------------------------------------------------------

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints `SKIPPED: <why>` on a line of its own straight to the process's stdout, past the test
/// harness's output capture, so `scripts/test` sees (and counts) it even when the test passes.
fn skipped(why: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nSKIPPED: {why}");
    let _ = out.flush();
}

fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MEHO_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".cache/meho"))
}

/// The cache key of the test peer's build: the first 16 hex digits of the SHA-256 of `go.mod`,
/// `go.sum`, `main.go` and `build.sh` concatenated (what `scripts/test` computes).
pub fn source_hash() -> Option<String> {
    let mut hasher = Sha256::new();
    for name in ["go.mod", "go.sum", "main.go", "build.sh"] {
        hasher.update(fs::read(Path::new(PEER_DIR).join(name)).ok()?);
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(16);
    for byte in digest.iter().take(8) {
        let _ = write!(hex, "{byte:02x}");
    }
    Some(hex)
}

/// The test peer binary: `MEHO_KUBE_APISERVER` when set, else `scripts/test`'s cached build for
/// this checkout's sources; `None` when that file does not exist.
pub fn apiserver_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(APISERVER_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = cache_dir()?
        .join(format!("kube-apiserver-{}", source_hash()?))
        .join("kube-apiserver");
    path.is_file().then_some(path)
}

/// The kubectl binary: `MEHO_KUBECTL` when set, else `kubectl` on `PATH`; `None` when missing.
pub fn kubectl() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(KUBECTL_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|p| p.is_file())
}

// --- processes -----------------------------------------------------------------------------------

fn pid_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Removes harness directories left by test processes that died without dropping their
/// apiserver (which exited with them). Runs once per process, before the first start.
fn sweep_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let owner = fs::read_to_string(dir.join("owner.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if owner.is_some_and(|pid| !pid_alive(pid)) {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to pick a port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// --- certificates --------------------------------------------------------------------------------

/// The throw-away PKI of one apiserver, as PEM.
struct Pki {
    ca: String,
    serving: (String, String),
    kubelet: (String, String),
    kubelet_der: (CertificateDer<'static>, Vec<u8>),
    service_account_key: String,
    service_account_public_key: String,
}

impl Pki {
    fn generate() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "meho kube test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |cn: &str, sans: &[&str]| {
            let key = KeyPair::generate().unwrap();
            let mut params =
                CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                    .unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert, key)
        };
        let (serving, serving_key) = leaf("kube-apiserver", &["127.0.0.1", "localhost"]);
        let (kubelet, kubelet_key) = leaf("meho-stub-kubelet", &["127.0.0.1", "localhost"]);
        let service_account_key = KeyPair::generate().unwrap();
        Pki {
            ca: ca_cert.pem(),
            serving: (serving.pem(), serving_key.serialize_pem()),
            kubelet: (kubelet.pem(), kubelet_key.serialize_pem()),
            kubelet_der: (kubelet.der().clone(), kubelet_key.serialize_der()),
            service_account_key: service_account_key.serialize_pem(),
            service_account_public_key: service_account_key.public_key_pem(),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn http_client(ca_pem: &str) -> reqwest::Client {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn write_private(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

// --- the apiserver -------------------------------------------------------------------------------

/// One resource of the discovery documents: `(kind, plural, namespaced)`.
type Resource = (String, String, bool);

/// A running kube-apiserver (with its embedded etcd); dropping it kills the process and removes
/// its directory.
#[derive(Debug)]
pub struct KubeApiserver {
    dir: tempfile::TempDir,
    binary: PathBuf,
    child: Option<Child>,
    pid: u32,
    port: u16,
    ca_pem: String,
    ca_path: PathBuf,
    admin_token: String,
    http: reqwest::Client,
    cold_start: Duration,
    kubelet_tls: (CertificateDer<'static>, Vec<u8>),
    kubelet: Mutex<Option<StubKubelet>>,
    logs: Arc<Mutex<Logs>>,
    discovery: Mutex<HashMap<String, Vec<Resource>>>,
    kubeconfigs: AtomicUsize,
}

enum Attempt {
    Ready(Child),
    PortTaken,
}

impl KubeApiserver {
    /// Starts the test peer on a random loopback port and waits until `/readyz` answers `ok`
    /// and the `default` namespace exists. `None` when the binary is missing (after printing
    /// `SKIPPED: ...`); panics when it is missing under `CI=true`, or when it cannot start.
    pub async fn start() -> Option<KubeApiserver> {
        let Some(binary) = apiserver_binary() else {
            let why = match std::env::var_os(APISERVER_ENV).filter(|p| !p.is_empty()) {
                Some(path) => format!(
                    "{APISERVER_ENV}={} is not a file; run scripts/test, which builds the \
                     kube-apiserver test peer (tests/peers/kube-apiserver)",
                    path.to_string_lossy()
                ),
                None => format!(
                    "{APISERVER_ENV} is not set and no cached build of tests/peers/kube-apiserver \
                     exists; run scripts/test, which builds it"
                ),
            };
            if ci() {
                panic!("the kube-apiserver test peer is missing under CI: {why}");
            }
            skipped(&why);
            return None;
        };
        Some(Self::start_binary(binary).await)
    }

    /// [`KubeApiserver::start`] with an explicit binary; panics when it cannot start.
    pub async fn start_binary(binary: PathBuf) -> KubeApiserver {
        let began = Instant::now();
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale_dirs);

        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create the kube-apiserver tempdir: {e}"));
        let d = dir.path().to_path_buf();
        fs::write(d.join("owner.pid"), std::process::id().to_string())
            .unwrap_or_else(|e| panic!("cannot write owner.pid: {e}"));

        let pki = Pki::generate();
        fs::write(d.join("ca.pem"), &pki.ca).unwrap();
        fs::write(d.join("serving.pem"), &pki.serving.0).unwrap();
        write_private(&d.join("serving-key.pem"), &pki.serving.1);
        fs::write(d.join("kubelet.pem"), &pki.kubelet.0).unwrap();
        write_private(&d.join("kubelet-key.pem"), &pki.kubelet.1);
        write_private(&d.join("service-account-key.pem"), &pki.service_account_key);
        fs::write(
            d.join("service-account.pub"),
            &pki.service_account_public_key,
        )
        .unwrap();
        // Unique per instance, so a token of one apiserver never works on another.
        let digest = Sha256::digest(pki.ca.as_bytes());
        let mut admin_token = String::from("meho-admin-");
        for byte in digest.iter().take(16) {
            let _ = write!(admin_token, "{byte:02x}");
        }
        write_private(
            &d.join("tokens.csv"),
            &format!("{admin_token},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n"),
        );
        fs::write(d.join("audit-policy.yaml"), AUDIT_POLICY).unwrap();
        let http = http_client(&pki.ca);
        let log = d.join("apiserver.log");

        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let p = |name: &str| d.join(name).display().to_string();
            let args = vec![
                format!("--etcd-data-dir={}", p(&format!("etcd-{attempt}"))),
                "--bind-address=127.0.0.1".to_owned(),
                "--advertise-address=127.0.0.1".to_owned(),
                format!("--secure-port={port}"),
                format!("--tls-cert-file={}", p("serving.pem")),
                format!("--tls-private-key-file={}", p("serving-key.pem")),
                "--authorization-mode=RBAC".to_owned(),
                format!("--token-auth-file={}", p("tokens.csv")),
                format!("--service-account-issuer={ISSUER}"),
                format!("--service-account-key-file={}", p("service-account.pub")),
                format!(
                    "--service-account-signing-key-file={}",
                    p("service-account-key.pem")
                ),
                format!("--api-audiences={ISSUER}"),
                // The admission plugin would wait for a `default` ServiceAccount that only the
                // controller-manager makes.
                "--disable-admission-plugins=ServiceAccount".to_owned(),
                format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                // The `kubernetes` Service's endpoints would be 127.0.0.1, which validation
                // refuses.
                "--endpoint-reconciler-type=none".to_owned(),
                format!("--audit-policy-file={}", p("audit-policy.yaml")),
                format!("--audit-log-path={}", p("audit.log")),
                // Written before the response goes out, so a test reads what it just caused.
                "--audit-log-mode=blocking".to_owned(),
                "--audit-log-format=json".to_owned(),
                // The stub kubelet's certificate is checked against the harness CA.
                format!("--kubelet-certificate-authority={}", p("ca.pem")),
                "--kubelet-preferred-address-types=InternalIP".to_owned(),
                "--profiling=false".to_owned(),
            ];
            let out = fs::File::create(&log)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
            let err = out.try_clone().unwrap();
            let child = Command::new(&binary)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", binary.display()));
            match Self::await_ready(child, &http, port, &admin_token, &log).await {
                Attempt::Ready(child) => {
                    let pid = child.id();
                    return KubeApiserver {
                        dir,
                        binary,
                        child: Some(child),
                        pid,
                        port,
                        ca_pem: pki.ca,
                        ca_path: d.join("ca.pem"),
                        admin_token,
                        http,
                        cold_start: began.elapsed(),
                        kubelet_tls: pki.kubelet_der,
                        kubelet: Mutex::new(None),
                        logs: Arc::new(Mutex::new(Logs::default())),
                        discovery: Mutex::new(HashMap::new()),
                        kubeconfigs: AtomicUsize::new(0),
                    };
                }
                Attempt::PortTaken if attempt < START_ATTEMPTS => continue,
                Attempt::PortTaken => break,
            }
        }
        panic!(
            "kube-apiserver could not bind a free port in {START_ATTEMPTS} attempts; last log:\n{}",
            tail(&fs::read_to_string(&log).unwrap_or_default(), 40)
        );
    }

    async fn await_ready(
        mut child: Child,
        http: &reqwest::Client,
        port: u16,
        token: &str,
        log: &Path,
    ) -> Attempt {
        let deadline = Instant::now() + START_TIMEOUT;
        let base = format!("https://127.0.0.1:{port}");
        let mut ready = false;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = fs::read_to_string(log).unwrap_or_default();
                if text.contains("address already in use") {
                    return Attempt::PortTaken;
                }
                panic!(
                    "kube-apiserver exited during start ({status}):\n{}",
                    tail(&text, 60)
                );
            }
            if !ready {
                ready = http
                    .get(format!("{base}/readyz"))
                    .bearer_auth(token)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
            }
            // The system namespaces controller makes `default` shortly after /readyz.
            if ready
                && http
                    .get(format!("{base}/api/v1/namespaces/default"))
                    .bearer_auth(token)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            {
                return Attempt::Ready(child);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kube-apiserver did not get ready on 127.0.0.1:{port} within \
                     {START_TIMEOUT:?}:\n{}",
                    tail(&fs::read_to_string(log).unwrap_or_default(), 60)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The port the apiserver listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA (PEM) that signed the serving certificate (SAN 127.0.0.1 and localhost) and the
    /// stub kubelet's.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_path
    }

    /// The CA certificate as PEM.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The static admin token (user `meho-admin`, group `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The instance's directory: certificates, keys, tokens, audit policy and log, etcd data,
    /// the apiserver's own log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the apiserver (and etcd) logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("apiserver.log")).unwrap_or_default()
    }

    /// The apiserver's pid (etcd runs in the same process).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resident set size of the process (apiserver and etcd) in KiB, from `/proc/PID/status`.
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid))
            .unwrap_or_else(|e| panic!("cannot read /proc/{}/status: {e}", self.pid));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{}/status", self.pid))
    }

    /// How long [`KubeApiserver::start`] took until `/readyz` answered `ok` (and the `default`
    /// namespace existed).
    pub fn cold_start(&self) -> Duration {
        self.cold_start
    }

    // --- REST --------------------------------------------------------------------------------

    /// A request with bearer `token`: `path` is everything after the host (with any query),
    /// `body` is sent as JSON (`application/merge-patch+json` for PATCH). Returns the status and
    /// the body as JSON, or `{"raw": text}` when it is not JSON.
    pub async fn request(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let content_type = if method.eq_ignore_ascii_case("PATCH") {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let body = body.map(|b| b.to_string());
        self.request_raw(token, method, path, body, Some(content_type))
            .await
    }

    /// A request with bearer `token` and a body of any content type.
    pub async fn request_raw(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<String>,
        content_type: Option<&str>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .unwrap_or_else(|e| panic!("bad method {method:?}: {e}"));
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url()))
            .bearer_auth(token)
            .header("accept", "application/json, */*");
        if let Some(body) = body {
            req = req
                .header(
                    "content-type",
                    content_type.unwrap_or("application/json").to_owned(),
                )
                .body(body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        let value = if text.trim_start().starts_with(['{', '[']) {
            serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }))
        } else {
            json!({ "raw": text })
        };
        (status, value)
    }

    /// [`KubeApiserver::request`] as the admin.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.request(&self.admin_token, method, path, body).await
    }

    /// [`KubeApiserver::request_raw`] as the admin.
    pub async fn admin_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        content_type: Option<&str>,
    ) -> (u16, Value) {
        self.request_raw(&self.admin_token, method, path, body, content_type)
            .await
    }

    /// Like [`KubeApiserver::admin`], panicking with the apiserver's answer unless the status
    /// is 2xx.
    pub async fn admin_ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.admin(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {value}"
        );
        value
    }

    // --- manifests ---------------------------------------------------------------------------

    /// Every document of a multi-document YAML (or a JSON object or list) as JSON, parsed by the
    /// test peer's `yaml2json` (Kubernetes' own YAML library); `kind: ...List` documents are
    /// flattened into their items.
    pub fn manifest_objects(&self, manifest: &str) -> Vec<Value> {
        let mut child = Command::new(&self.binary)
            .arg("yaml2json")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} yaml2json: {e}", self.binary.display()));
        {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(manifest.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the manifest is not valid YAML: {}\n{manifest}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let docs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let mut objects = Vec::new();
        for doc in docs {
            flatten(doc, &mut objects);
        }
        objects
    }

    /// Creates or updates each object of a multi-document YAML or a JSON object or list as the
    /// admin, by server-side apply (field manager `fixture`, `force=true`), in order. Panics with
    /// the apiserver's message when one fails.
    pub async fn apply(&self, manifest: &str) {
        for object in self.manifest_objects(manifest) {
            self.apply_object(&object).await;
        }
    }

    /// Server-side applies one object as the admin; returns the object as stored.
    pub async fn apply_object(&self, object: &Value) -> Value {
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_else(|| panic!("an object without apiVersion: {object}"));
        let kind = object["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("an object without kind: {object}"));
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("an object without metadata.name: {object}"));
        let (plural, namespaced) = self.resource_of(api_version, kind).await;
        let mut path = if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        };
        if namespaced {
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            let _ = write!(path, "/namespaces/{ns}");
        }
        let _ = write!(
            path,
            "/{plural}/{name}?fieldManager={FIELD_MANAGER}&force=true"
        );
        let (status, body) = self
            .admin_raw(
                "PATCH",
                &path,
                Some(object.to_string()),
                Some("application/apply-patch+yaml"),
            )
            .await;
        assert!(
            (200..300).contains(&status),
            "applying {kind} {name} failed ({status}): {}",
            body["message"]
                .as_str()
                .map_or_else(|| body.to_string(), str::to_owned)
        );
        body
    }

    /// The plural resource name and scope of `kind` in `api_version`, from discovery (retried
    /// for a while: a CRD's kinds appear a moment after it is created).
    async fn resource_of(&self, api_version: &str, kind: &str) -> (String, bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let cached = lock(&self.discovery).get(api_version).and_then(|list| {
                list.iter()
                    .find(|(k, _, _)| k == kind)
                    .map(|(_, plural, namespaced)| (plural.clone(), *namespaced))
            });
            if let Some(found) = cached {
                return found;
            }
            let path = if api_version.contains('/') {
                format!("/apis/{api_version}")
            } else {
                format!("/api/{api_version}")
            };
            let (status, body) = self.admin("GET", &path, None).await;
            if status == 200 {
                let list: Vec<Resource> = body["resources"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|r| {
                                let name = r["name"].as_str()?;
                                (!name.contains('/')).then(|| {
                                    (
                                        r["kind"].as_str().unwrap_or_default().to_owned(),
                                        name.to_owned(),
                                        r["namespaced"].as_bool().unwrap_or(false),
                                    )
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let found = list.iter().any(|(k, _, _)| k == kind);
                lock(&self.discovery).insert(api_version.to_owned(), list);
                if found {
                    continue;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the apiserver serves no kind {kind} in {api_version} ({status}: {body})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // --- tokens ------------------------------------------------------------------------------

    /// Makes the minter: the namespaces and ServiceAccounts of `accounts` (`(namespace, name)`),
    /// the ServiceAccount `meho-minter` in `meho-system` whose only grant is `create` on
    /// `serviceaccounts/token` for exactly those accounts (one Role and RoleBinding per
    /// namespace, rendered from [`MINTER_RBAC_TEMPLATE`]), and a 1 h token for it (a
    /// TokenRequest, which [`KubeApiserver::token_requests`] counts under
    /// `meho-system/meho-minter`) written to a file (mode 0600). Returns the file's path.
    pub async fn minter(&self, accounts: &[(&str, &str)]) -> PathBuf {
        let mut by_namespace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (ns, name) in accounts {
            let names = by_namespace.entry(ns).or_default();
            if !names.contains(name) {
                names.push(name);
            }
        }
        let mut namespaces: Vec<&str> = vec![MINTER_NAMESPACE];
        namespaces.extend(by_namespace.keys().filter(|ns| **ns != MINTER_NAMESPACE));
        for ns in &namespaces {
            self.apply_object(&json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns }
            }))
            .await;
        }
        let mut service_accounts = vec![(MINTER_NAMESPACE, MINTER_NAME)];
        service_accounts.extend(accounts.iter().copied());
        for (ns, name) in service_accounts {
            self.apply_object(&json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": { "name": name, "namespace": ns }
            }))
            .await;
        }
        for (ns, names) in &by_namespace {
            self.apply(&render_minter_rbac(ns, names)).await;
        }
        let token = self.token(MINTER_NAMESPACE, MINTER_NAME, 3600).await;
        let path = self.dir.path().join("minter.token");
        write_private(&path, &token);
        path
    }

    /// A token for the ServiceAccount `namespace/name`, minted as the admin by a TokenRequest
    /// valid for `seconds`.
    pub async fn token(&self, namespace: &str, name: &str, seconds: u64) -> String {
        let body = self
            .admin_ok(
                "POST",
                &format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"),
                Some(token_request(seconds)),
            )
            .await;
        body["status"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("a TokenRequest answer without a token: {body}"))
            .to_owned()
    }

    /// Every audit event the apiserver has logged so far (one JSON object per line), oldest
    /// first. The policy logs, at Metadata level, every TokenRequest and every request of a user
    /// other than the apiserver itself, health probes excepted.
    pub fn audit_events(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// How many TokenRequests (`create` on `serviceaccounts/token`) the apiserver has served
    /// successfully (status 2xx), all of them or only those for `account` (`"namespace/name"`),
    /// read from its own audit log. Refused requests are not counted (see
    /// [`KubeApiserver::token_requests_refused`]).
    pub fn token_requests(&self, account: Option<&str>) -> usize {
        self.count_token_requests(account, true)
    }

    /// How many TokenRequests the apiserver refused (status not 2xx), all or for `account`.
    pub fn token_requests_refused(&self, account: Option<&str>) -> usize {
        self.count_token_requests(account, false)
    }

    fn count_token_requests(&self, account: Option<&str>, served: bool) -> usize {
        self.audit_events()
            .iter()
            .filter(|e| {
                let obj = &e["objectRef"];
                let code = e["responseStatus"]["code"].as_u64().unwrap_or(0);
                e["stage"] == "ResponseComplete"
                    && e["verb"] == "create"
                    && obj["resource"] == "serviceaccounts"
                    && obj["subresource"] == "token"
                    && (200..300).contains(&code) == served
                    && account.is_none_or(|a| {
                        format!(
                            "{}/{}",
                            obj["namespace"].as_str().unwrap_or_default(),
                            obj["name"].as_str().unwrap_or_default()
                        ) == a
                    })
            })
            .count()
    }

    /// Writes a kubeconfig for this apiserver with bearer `token` (and the CA) and returns its
    /// path: what kubectl needs (`--kubeconfig PATH`).
    pub fn kubeconfig(&self, token: &str) -> PathBuf {
        let n = self.kubeconfigs.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("kubeconfig-{n}.json"));
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "meho-test", "cluster": {
                "server": self.url(),
                "certificate-authority": self.ca_pem_path(),
            }}],
            "users": [{ "name": "user", "user": { "token": token } }],
            "contexts": [{ "name": "meho-test", "context": {
                "cluster": "meho-test", "user": "user", "namespace": "default"
            }}],
            "current-context": "meho-test",
        });
        write_private(&path, &config.to_string());
        path
    }

    // --- nodes and logs ----------------------------------------------------------------------

    /// Registers a Node `name` whose kubelet is this harness's stub: `status.addresses` is
    /// InternalIP 127.0.0.1 and `daemonEndpoints.kubeletEndpoint.Port` the stub's port (one stub
    /// serves every node of the instance). It is `Ready`; nothing else ever updates it.
    pub async fn node(&self, name: &str) {
        let port = self.kubelet_port();
        let (status, body) = self
            .admin(
                "POST",
                "/api/v1/nodes",
                Some(json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": { "name": name, "labels": {
                        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"
                    }}
                })),
            )
            .await;
        assert!(
            status == 201 || status == 409,
            "creating node {name} failed ({status}): {body}"
        );
        let version = self.admin_ok("GET", "/version", None).await;
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap()
            .format(&Rfc3339)
            .unwrap();
        self.admin_ok(
            "PATCH",
            &format!("/api/v1/nodes/{name}/status"),
            Some(json!({ "status": {
                "addresses": [
                    { "type": "InternalIP", "address": "127.0.0.1" },
                    { "type": "Hostname", "address": name },
                ],
                "daemonEndpoints": { "kubeletEndpoint": { "Port": port } },
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "the meho test harness's stub kubelet",
                    "lastHeartbeatTime": now, "lastTransitionTime": now,
                }],
                "nodeInfo": {
                    "kubeletVersion": version["gitVersion"],
                    "operatingSystem": "linux", "architecture": "amd64",
                    "containerRuntimeVersion": "meho-stub://1",
                    "machineID": "", "systemUUID": "", "bootID": "",
                    "kernelVersion": "", "osImage": "meho stub kubelet",
                    "kubeProxyVersion": "",
                },
            }})),
        )
        .await;
    }

    /// Marks Pod `namespace/name` Running with every container running and ready, as a kubelet
    /// would report it (on `hostIP` 127.0.0.1).
    pub async fn pod_running(&self, namespace: &str, name: &str) {
        let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
        let pod = self.admin_ok("GET", &path, None).await;
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap()
            .format(&Rfc3339)
            .unwrap();
        let statuses: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        json!({
                            "name": c["name"], "image": c["image"], "imageID": "",
                            "containerID": format!("meho-stub://{}", c["name"].as_str().unwrap_or_default()),
                            "ready": true, "started": true, "restartCount": 0,
                            "state": { "running": { "startedAt": now } },
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let condition = |t: &str| json!({ "type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now });
        self.admin_ok(
            "PATCH",
            &format!("{path}/status"),
            Some(json!({ "status": {
                "phase": "Running",
                "hostIP": "127.0.0.1",
                "hostIPs": [{ "ip": "127.0.0.1" }],
                "startTime": now,
                "conditions": [
                    condition("PodScheduled"), condition("Initialized"),
                    condition("ContainersReady"), condition("Ready"),
                ],
                "containerStatuses": statuses,
            }})),
        )
        .await;
    }

    /// Sets the log lines container `namespace/pod/container` has written (now), replacing any
    /// set before; the stub kubelet serves them.
    pub fn set_logs(&self, namespace: &str, pod: &str, container: &str, lines: &[&str]) {
        let now = OffsetDateTime::now_utc();
        self.set_logs_at(
            namespace,
            pod,
            container,
            &lines.iter().map(|l| (now, *l)).collect::<Vec<_>>(),
        );
    }

    /// [`KubeApiserver::set_logs`] with a time per line (for `sinceSeconds`, `sinceTime` and
    /// `timestamps`).
    pub fn set_logs_at(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        lines: &[(OffsetDateTime, &str)],
    ) {
        lock(&self.logs)
            .current
            .insert(log_key(namespace, pod, container), log_lines(lines));
    }

    /// Sets the log lines of the previous (terminated) instance of the container, served for
    /// `previous=true`; without them the stub answers as a kubelet does for a container that
    /// never restarted.
    pub fn set_previous_logs(&self, namespace: &str, pod: &str, container: &str, lines: &[&str]) {
        let now = OffsetDateTime::now_utc();
        lock(&self.logs).previous.insert(
            log_key(namespace, pod, container),
            log_lines(&lines.iter().map(|l| (now, *l)).collect::<Vec<_>>()),
        );
    }

    /// Every request the stub kubelet has received (path and query), oldest first.
    pub fn kubelet_requests(&self) -> Vec<String> {
        lock(&self.logs).requests.clone()
    }

    fn kubelet_port(&self) -> u16 {
        let mut kubelet = lock(&self.kubelet);
        if let Some(k) = kubelet.as_ref() {
            return k.port;
        }
        let stub = StubKubelet::start(self.kubelet_tls.clone(), self.logs.clone());
        let port = stub.port;
        *kubelet = Some(stub);
        port
    }

    /// Kills the apiserver (and its etcd) and the stub kubelet. Idempotent; `Drop` calls it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut stub) = lock(&self.kubelet).take() {
            stub.stop();
        }
    }
}

impl Drop for KubeApiserver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn token_request(seconds: u64) -> Value {
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": { "expirationSeconds": seconds },
    })
}

/// [`MINTER_RBAC_TEMPLATE`] for the ServiceAccounts `names` of namespace `ns`.
pub fn render_minter_rbac(ns: &str, names: &[&str]) -> String {
    let quoted = names
        .iter()
        .map(|n| Value::from(*n).to_string())
        .collect::<Vec<_>>()
        .join(", ");
    MINTER_RBAC_TEMPLATE
        .replace("<NAMESPACE>", ns)
        .replace("<SERVICE_ACCOUNTS>", &quoted)
}

fn flatten(doc: Value, into: &mut Vec<Value>) {
    match doc {
        Value::Array(items) => items.into_iter().for_each(|d| flatten(d, into)),
        Value::Object(ref map)
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array) =>
        {
            if let Some(Value::Array(items)) = map.get("items") {
                items.iter().cloned().for_each(|d| flatten(d, into));
            }
        }
        Value::Null => {}
        other => into.push(other),
    }
}

// --- the stub kubelet ----------------------------------------------------------------------------

type LogKey = (String, String, String);

fn log_key(namespace: &str, pod: &str, container: &str) -> LogKey {
    (namespace.to_owned(), pod.to_owned(), container.to_owned())
}

fn log_lines(lines: &[(OffsetDateTime, &str)]) -> Vec<(OffsetDateTime, String)> {
    lines.iter().map(|(at, l)| (*at, (*l).to_owned())).collect()
}

/// What the stub kubelet serves and has seen.
#[derive(Debug, Default)]
struct Logs {
    current: HashMap<LogKey, Vec<(OffsetDateTime, String)>>,
    previous: HashMap<LogKey, Vec<(OffsetDateTime, String)>>,
    requests: Vec<String>,
}

/// A TLS server on a loopback port, on a thread of its own (so a test that blocks its runtime,
/// say on a kubectl child process, does not stall the apiserver's calls to it).
#[derive(Debug)]
struct StubKubelet {
    port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StubKubelet {
    fn start(tls: (CertificateDer<'static>, Vec<u8>), logs: Arc<Mutex<Logs>>) -> StubKubelet {
        let (cert, key) = tls;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind the stub kubelet: {e}"));
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("stub-kubelet".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(serve_kubelet(listener, acceptor, logs, rx));
            })
            .unwrap();
        StubKubelet {
            port,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for StubKubelet {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve_kubelet(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    logs: Arc<Mutex<Logs>>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let acceptor = acceptor.clone();
        let logs = logs.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let logs = logs.clone();
                async move {
                    let target = req
                        .uri()
                        .path_and_query()
                        .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
                    let (status, body) = kubelet_answer(req.method(), &target, &logs);
                    let resp = hyper::Response::builder()
                        .status(status)
                        .header("content-type", "text/plain; charset=utf-8")
                        .body(Full::new(Bytes::from(body)))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (b, escaped) {
            (_, Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a kubelet answers to `GET /containerLogs/{ns}/{pod}/{container}?...`: the lines since
/// `sinceSeconds`/`sinceTime`, the last `tailLines` of them, with `timestamps`, cut to
/// `limitBytes`; `previous=true` serves the previous instance's lines. Lines count as stdout
/// (`stream=Stderr` gets none). `follow` returns what there is and ends.
fn kubelet_answer(method: &hyper::Method, target: &str, logs: &Mutex<Logs>) -> (u16, Vec<u8>) {
    let mut logs = lock(logs);
    logs.requests.push(target.to_owned());
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params: HashMap<String, String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let parts: Vec<&str> = path.split('/').collect();
    let ["", "containerLogs", ns, pod, container] = parts.as_slice() else {
        return (404, b"404 page not found\n".to_vec());
    };
    if method != hyper::Method::GET {
        return (405, b"method not allowed\n".to_vec());
    }
    let (ns, pod, container) = (
        percent_decode(ns),
        percent_decode(pod),
        percent_decode(container),
    );
    let flag = |name: &str| params.get(name).is_some_and(|v| v == "true" || v == "1");
    let number = |name: &str| params.get(name).and_then(|v| v.parse::<i64>().ok());
    let key = log_key(&ns, &pod, &container);
    let lines = if flag("previous") {
        match logs.previous.get(&key) {
            Some(lines) => lines.clone(),
            None => {
                return (
                    400,
                    format!(
                        "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                    )
                    .into_bytes(),
                );
            }
        }
    } else {
        logs.current.get(&key).cloned().unwrap_or_default()
    };
    drop(logs);
    if params.get("stream").is_some_and(|s| s == "Stderr") {
        return (200, Vec::new());
    }
    let since = number("sinceSeconds")
        .map(|s| OffsetDateTime::now_utc() - time::Duration::seconds(s))
        .or_else(|| {
            params
                .get("sinceTime")
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        });
    let mut selected: Vec<&(OffsetDateTime, String)> = lines
        .iter()
        .filter(|(at, _)| since.is_none_or(|since| *at >= since))
        .collect();
    if let Some(n) = number("tailLines").filter(|n| *n >= 0) {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        selected = selected.split_off(selected.len().saturating_sub(n));
    }
    let timestamps = flag("timestamps");
    let mut body = Vec::new();
    for (at, line) in selected {
        if timestamps {
            body.extend_from_slice(at.format(&Rfc3339).unwrap_or_default().as_bytes());
            body.push(b' ');
        }
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
    if let Some(limit) = number("limitBytes").filter(|n| *n > 0) {
        body.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    (200, body)
}
