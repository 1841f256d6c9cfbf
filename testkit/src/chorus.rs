//! `chorus` roles as child processes: an origin with its own test CA, and the `chorus`
//! command with the environment tests give it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::blocking::Client;

use crate::http::PASSWORD;
use crate::process::{self, Process};

/// How long a role may take to print `ready`.
pub const READY_WAIT: Duration = Duration::from_secs(60);

/// The `chorus` binary at `chorus` with quiet logs and [`PASSWORD`] as `CHORUS_PASSWORD`.
pub fn command(chorus: &Path) -> Command {
    let mut command = Command::new(chorus);
    command
        .env("CHORUS_LOG", "error")
        .env("CHORUS_PASSWORD", PASSWORD);
    command
}

/// `chorus tls init` for 127.0.0.1 and localhost into `dir`, once; the CA certificate's path
/// (what clients pass as `--ca-cert`). The server's certificate and key are `cert.pem` and
/// `key.pem` beside it.
pub fn test_ca(chorus: &Path, dir: &Path) -> PathBuf {
    let ca = dir.join("ca.pem");
    if !ca.exists() {
        let output = command(chorus)
            .args(["tls", "init", "--host", "127.0.0.1", "--host", "localhost"])
            .arg("--dir")
            .arg(dir)
            .output()
            .expect("run chorus tls init");
        assert!(output.status.success(), "chorus tls init: {output:?}");
    }
    ca
}

/// A reqwest client trusting the certificate `ca` and nothing else.
pub fn client_trusting(ca: &Path) -> Client {
    let pem = std::fs::read(ca).unwrap_or_else(|error| panic!("{}: {error}", ca.display()));
    Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
        .build()
        .expect("an HTTP client")
}

/// How to start `chorus origin` (HTTP and QUIC on loopback ports the system picks).
#[derive(Debug, Clone)]
pub struct OriginProcess {
    chorus: PathBuf,
    data: PathBuf,
    config: String,
    tls: bool,
    admin: Option<String>,
    log: String,
    env: Vec<(String, String)>,
}

/// A running `chorus origin`, killed on drop.
#[derive(Debug)]
pub struct RunningOrigin {
    /// The process.
    pub process: Process,
    /// Its API's base URL (`https://127.0.0.1:port` with TLS).
    pub base: String,
    /// Its data directory.
    pub data: PathBuf,
    /// The test CA's certificate, when it serves HTTPS.
    pub ca: Option<PathBuf>,
}

impl OriginProcess {
    /// `chorus origin` (the binary at `chorus`) on the data directory `data`: plain HTTP, no
    /// config, logging errors only.
    pub fn new(chorus: impl Into<PathBuf>, data: &Path) -> Self {
        Self {
            chorus: chorus.into(),
            data: data.to_path_buf(),
            config: String::new(),
            tls: false,
            admin: None,
            log: "error".into(),
            env: Vec::new(),
        }
    }

    /// An environment variable for the origin and its `chorus admin` step (`CHORUS_DATABASE`,
    /// the `AWS_*` settings of an object store, ...).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The origin's TOML config (written beside the data directory).
    pub fn config(mut self, toml: &str) -> Self {
        self.config = toml.to_string();
        self
    }

    /// Serve HTTPS with a certificate from a test CA (`chorus tls init`) kept beside the data
    /// directory.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// An admin account `username` (password [`PASSWORD`]) made with `chorus admin
    /// create-admin` before the origin starts.
    pub fn admin(mut self, username: &str) -> Self {
        self.admin = Some(username.to_string());
        self
    }

    /// `CHORUS_LOG` for the origin.
    pub fn log(mut self, filter: &str) -> Self {
        self.log = filter.to_string();
        self
    }

    /// Starts it and waits until it is ready; `Err` holds what it printed when it refused.
    pub fn start(self) -> Result<RunningOrigin, String> {
        if let Some(username) = &self.admin {
            let output = command(&self.chorus)
                .args(["admin", "create-admin", "--username", username, "--data"])
                .arg(&self.data)
                .envs(self.env.iter().map(|(key, value)| (key, value)))
                .output()
                .map_err(|error| error.to_string())?;
            if !output.status.success() {
                return Err(format!("chorus admin create-admin: {output:?}"));
            }
        }
        let config = self.data.with_extension("toml");
        std::fs::write(&config, &self.config).map_err(|error| error.to_string())?;
        let mut origin = command(&self.chorus);
        origin
            .arg("origin")
            .arg("--config")
            .arg(&config)
            .args(["--http", "127.0.0.1:0", "--quic", "127.0.0.1:0", "--data"])
            .arg(&self.data)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .env("CHORUS_LOG", &self.log);
        let ca = self.tls.then(|| {
            let tls = self.data.with_extension("tls");
            let ca = test_ca(&self.chorus, &tls);
            origin
                .arg("--tls-cert")
                .arg(tls.join("cert.pem"))
                .arg("--tls-key")
                .arg(tls.join("key.pem"));
            ca
        });
        let process = process::start(origin, READY_WAIT)?;
        let base = process
            .field("http")
            .ok_or_else(|| format!("no http line in {:?}", process.lines()))?;
        Ok(RunningOrigin {
            process,
            base,
            data: self.data,
            ca,
        })
    }
}

impl RunningOrigin {
    /// A client for its API: trusting the test CA and nothing else when it serves HTTPS.
    pub fn client(&self) -> Client {
        match &self.ca {
            Some(ca) => client_trusting(ca),
            None => Client::new(),
        }
    }

    /// The test CA's certificate (panics when the origin serves plain HTTP).
    pub fn ca_path(&self) -> &Path {
        self.ca
            .as_deref()
            .expect("the origin serves HTTPS with a test CA")
    }

    /// The URL of `path` (`/v1/...`) on it.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
