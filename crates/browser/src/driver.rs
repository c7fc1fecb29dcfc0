//! chromedriver, spawned by roster on loopback, and headless chromium
//! sessions through it.
//!
//! The driver listens on 127.0.0.1 only (`--allowed-ips` empty means
//! local connections only) on a port roster picks; it is killed when the
//! [`Chromedriver`] is dropped. Each session gets a fresh, temporary
//! profile, so no cookie or sign-in outlives a run.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Map, Value, json};

use crate::BrowserError;

/// Where the programs are and how the browser starts.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// Default `/usr/bin/chromedriver` (Debian's chromium-driver).
    pub chromedriver: PathBuf,
    /// Default `/usr/bin/chromium`.
    pub chromium: PathBuf,
    /// Browser window size (screenshots are this size).
    pub window: (u32, u32),
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            chromedriver: PathBuf::from("/usr/bin/chromedriver"),
            chromium: PathBuf::from("/usr/bin/chromium"),
            window: (1280, 900),
        }
    }
}

/// A running chromedriver.
pub struct Chromedriver {
    child: Child,
    port: u16,
    opts: DriverOptions,
}

impl Chromedriver {
    /// Starts chromedriver on a free loopback port and waits until it
    /// says it is ready (at most 20 s).
    pub async fn start(opts: DriverOptions) -> Result<Chromedriver, BrowserError> {
        if !opts.chromedriver.exists() {
            return Err(BrowserError::Start(format!(
                "{} is missing; scripts/browser-tools.sh installs Debian's chromium-driver",
                opts.chromedriver.display()
            )));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| BrowserError::Start(format!("no free port: {e}")))?;
        let mut child = Command::new(&opts.chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=")
            .arg("--allowed-origins=")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| BrowserError::Start(format!("{}: {e}", opts.chromedriver.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BrowserError::Start("chromedriver has no stdout".into()))?;
        // A thread reads its output (and keeps draining it, so it never
        // blocks on a full pipe); the first "started successfully" line
        // says it is ready.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("started successfully")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        let ready = tokio::time::timeout(Duration::from_secs(20), rx).await;
        if !matches!(ready, Ok(Ok(()))) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BrowserError::Start(
                "chromedriver did not report ready within 20 s".into(),
            ));
        }
        Ok(Chromedriver { child, port, opts })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new headless chromium session with a fresh profile in `profile`.
    pub async fn session(&self, profile: &std::path::Path) -> Result<Client, BrowserError> {
        let (w, h) = self.opts.window;
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--force-device-scale-factor=1".into(),
            format!("--window-size={w},{h}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": self.opts.chromium.display().to_string(), "args": args }),
        );
        caps.insert("pageLoadStrategy".into(), Value::String("normal".into()));
        caps.insert(
            "timeouts".into(),
            json!({ "pageLoad": 30_000, "script": 10_000, "implicit": 0 }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url())
            .await
            .map_err(|e| BrowserError::Start(format!("new chromium session: {e}")))
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
