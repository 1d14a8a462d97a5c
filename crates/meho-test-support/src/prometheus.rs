//! A real Prometheus for the integration tests.
//!
//! [`Prometheus::start`] runs Debian's `/usr/bin/prometheus` (or `MEHO_PROMETHEUS`) on a random
//! loopback port from its own temporary directory: a config that scrapes Prometheus itself every
//! second, TSDB storage in that directory, and the admin API (`/api/v1/admin/tsdb/...`) and
//! lifecycle endpoints (`/-/reload`, `/-/quit`) enabled, so a test has mutating endpoints to
//! govern. Prometheus keeps no request log: [`Prometheus::log_path`] is its stdout and stderr.
//!
//! Without the binary a test prints `SKIPPED:` and returns (it panics under `CI=true`, where
//! `scripts/test` installs the `prometheus` package). Dropping a [`Prometheus`] kills it.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::openbao::{
    START_ATTEMPTS, free_port, http_client, kill_group, missing, spawn_watched, tail, wait_ready,
};

/// The environment variable naming the Prometheus binary (`scripts/test` exports it).
pub const PROMETHEUS_ENV: &str = "MEHO_PROMETHEUS";
/// Debian's binary, used when `MEHO_PROMETHEUS` is unset.
pub const DEFAULT_PROMETHEUS: &str = "/usr/bin/prometheus";

/// The Prometheus binary: `MEHO_PROMETHEUS` when set, else [`DEFAULT_PROMETHEUS`]; `None` when
/// that is not a file.
pub fn prometheus_binary() -> Option<PathBuf> {
    let path = std::env::var_os(PROMETHEUS_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_PROMETHEUS), PathBuf::from);
    path.is_file().then_some(path)
}

/// A running Prometheus; dropping it kills the process and removes its directory.
#[derive(Debug)]
pub struct Prometheus {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    http: reqwest::Client,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus on a random loopback port and waits for `/-/ready`. `None` when the
    /// binary is missing (after printing `SKIPPED: ...`); panics when it is missing under
    /// `CI=true`, or when it cannot start.
    pub async fn start() -> Option<Prometheus> {
        let Some(binary) = prometheus_binary() else {
            let why = format!(
                "{PROMETHEUS_ENV} (or {DEFAULT_PROMETHEUS}) is not a file; run scripts/test, which \
                 installs the prometheus package"
            );
            return missing("Prometheus", &why);
        };
        Some(Self::start_binary(&binary).await)
    }

    /// [`Prometheus::start`] with an explicit binary; panics when it cannot start.
    pub async fn start_binary(binary: &Path) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("meho-prometheus-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create the Prometheus tempdir: {e}"));
        let d = dir.path().to_path_buf();
        let log = d.join("prometheus.log");
        let http = http_client();
        for attempt in 0..START_ATTEMPTS {
            let port = free_port();
            let config = format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
                 - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            );
            fs::write(d.join("prometheus.yml"), config).unwrap();
            let args = vec![
                format!("--config.file={}", d.join("prometheus.yml").display()),
                format!(
                    "--storage.tsdb.path={}",
                    d.join(format!("data-{attempt}")).display()
                ),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--web.enable-admin-api".to_owned(),
                "--web.enable-lifecycle".to_owned(),
                "--log.level=info".to_owned(),
            ];
            let mut child = spawn_watched(binary, &args, &d, &log);
            let ready = format!("http://127.0.0.1:{port}/-/ready");
            if wait_ready("prometheus", &mut child, &http, &ready, &log, attempt).await {
                return Prometheus {
                    dir,
                    child: Some(child),
                    port,
                    http,
                    log,
                };
            }
        }
        panic!(
            "prometheus could not bind a free port in {START_ATTEMPTS} attempts:\n{}",
            tail(&fs::read_to_string(&log).unwrap_or_default(), 40)
        );
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's own directory (config and storage).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Prometheus's stdout and stderr (it keeps no request log).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Kills Prometheus now (an outage); dropping it later does nothing more.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    /// The result of instant query `promql` (`data.result`), panicking unless it succeeds.
    pub async fn query(&self, promql: &str) -> Value {
        let answer: Value = self
            .http
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", promql)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("prometheus query failed: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("prometheus answered a query with no JSON: {e}"));
        assert_eq!(answer["status"], "success", "query {promql}: {answer}");
        answer["data"]["result"].clone()
    }

    /// Waits (up to 30 s) until Prometheus has scraped itself once, so `up` and its own metrics
    /// have samples.
    pub async fn wait_for_scrape(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self
                .query("up")
                .await
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not scrape itself within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_scrapes_itself_and_serves_the_admin_api() {
        let Some(mut prometheus) = Prometheus::start().await else {
            return;
        };
        prometheus.wait_for_scrape().await;
        let up = prometheus.query("up").await;
        assert_eq!(up[0]["value"][1], "1", "{up}");
        // The admin API is on: a snapshot is a mutating POST.
        let http = http_client();
        let snapshot = http
            .post(format!("{}/api/v1/admin/tsdb/snapshot", prometheus.url()))
            .send()
            .await
            .unwrap();
        assert!(snapshot.status().is_success(), "{snapshot:?}");
        assert!(prometheus.log_path().is_file());
        let url = prometheus.url();
        prometheus.stop();
        assert!(http.get(format!("{url}/-/ready")).send().await.is_err());
    }
}
