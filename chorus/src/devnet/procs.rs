//! The devnet's child processes: each role is this same binary run as `chorus origin`,
//! `chorus tracker` or `chorus node`, its stderr kept in a log file, stopped with SIGTERM (and
//! killed if it does not stop) when the devnet ends, watched for crashes while it runs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// A running role.
#[derive(Debug)]
pub struct Role {
    /// What it is, for messages ("origin", "super-node 1").
    pub name: String,
    child: Child,
    /// Its stdout up to and including the `ready` line.
    lines: Vec<String>,
    log: PathBuf,
    /// Set when the devnet stopped or killed it on purpose.
    pub stopped: bool,
}

impl Role {
    /// Starts `chorus ARGS…` and waits (at most `timeout`) for its `ready` line.
    pub fn spawn(
        name: &str,
        args: &[String],
        envs: &[(&str, &str)],
        log: &Path,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the chorus binary")?;
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("creating the log {}", log.display()))?;
        let mut command = Command::new(exe);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .env("CHORUS_LOG", "warn");
        if let Some(ca) = transport::https::extra_ca() {
            command.env(transport::https::CA_CERT_ENV, ca);
        }
        for (key, value) in envs {
            command.env(key, value);
        }
        // Its own process group: a Ctrl-C at the terminal reaches the devnet alone, which
        // then stops every role in order (and reports any that had died on its own).
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("{name} stdout"))
            .spawn(move || {
                // Read to the end so the pipe never fills; only lines up to `ready` matter.
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if lines_tx.send(line).is_err() {
                        // Nobody listens any more: drain quietly.
                    }
                }
            })
            .context("starting a reader thread")?;
        let mut role = Self {
            name: name.to_string(),
            child,
            lines: Vec::new(),
            log: log.to_path_buf(),
            stopped: false,
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    let ready = line.starts_with("ready");
                    role.lines.push(line);
                    if ready {
                        return Ok(role);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = role.child.try_wait()? {
                        anyhow::bail!(
                            "the {name} exited with {status} before it was ready:\n{}",
                            role.log_tail(12)
                        );
                    }
                    if left.is_zero() {
                        anyhow::bail!(
                            "the {name} was not ready within {timeout:?}:\n{}",
                            role.log_tail(12)
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = role.child.wait()?;
                    anyhow::bail!(
                        "the {name} exited with {status} before it was ready:\n{}",
                        role.log_tail(12)
                    );
                }
            }
        }
    }

    /// The value of the `NAME value` line it printed at start.
    pub fn field(&self, name: &str) -> anyhow::Result<String> {
        self.lines
            .iter()
            .find_map(|line| {
                line.trim()
                    .strip_prefix(name)
                    .filter(|rest| rest.starts_with(' '))
                    .map(|rest| rest.trim().to_string())
            })
            .with_context(|| format!("the {} printed no {name} line", self.name))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        if tail.is_empty() {
            format!("(its log {} is empty)", self.log.display())
        } else {
            format!("{tail}\n(log: {})", self.log.display())
        }
    }

    /// Kills it at once (a crash, on purpose).
    pub fn kill(&mut self) {
        self.stopped = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks it to stop (SIGTERM), waits up to `grace`, then kills it.
    pub fn stop(&mut self, grace: Duration) {
        self.stopped = true;
        if self.exited().is_some() {
            return;
        }
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if self.exited().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill();
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
