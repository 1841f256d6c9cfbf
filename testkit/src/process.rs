//! Child processes that announce readiness: every `chorus` role prints its addresses, one per
//! line, and then a line starting with `ready`. [`start`] waits for it; the [`Process`] keeps
//! draining stdout afterwards (a role that prints later never blocks on a full pipe) and is
//! killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A started child process, killed on drop (its stderr is shown then if it panicked).
#[derive(Debug)]
pub struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts `command` and waits until it prints a line starting with `ready` (at most `wait`).
/// Its stdout is read here; its stderr goes to a file. `Err` holds what it printed when it
/// ended, or did not get ready, first.
pub fn start(mut command: Command, wait: Duration) -> Result<Process, String> {
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let stderr = dir.path().join("stderr");
    let file = std::fs::File::create(&stderr).map_err(|error| error.to_string())?;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(file)
        .spawn()
        .map_err(|error| format!("starting {command:?}: {error}"))?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout is piped");
    let seen = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let ready = line.starts_with("ready");
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            if ready {
                let _ = ready_tx.send(());
            }
        }
    });
    let mut process = Process {
        child,
        lines,
        stderr,
        _dir: dir,
    };
    let deadline = Instant::now() + wait;
    loop {
        if ready_rx.recv_timeout(Duration::from_millis(50)).is_ok() {
            return Ok(process);
        }
        let ended = process.child.try_wait().ok().flatten();
        if ended.is_some() || Instant::now() >= deadline {
            let _ = process.child.kill();
            let _ = process.child.wait();
            let why = match ended {
                Some(status) => format!("ended ({status})"),
                None => format!("not ready after {wait:?}"),
            };
            return Err(format!(
                "{why}; stdout: {:?}; stderr: {}",
                process.lines(),
                process.stderr()
            ));
        }
    }
}

impl Process {
    /// What it printed on stdout so far, line by line.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The value of the first stdout line `name value` (`  http     https://…` with `http`
    /// → `https://…`).
    pub fn field(&self, name: &str) -> Option<String> {
        self.lines().iter().find_map(|line| {
            line.trim()
                .strip_prefix(name)
                .filter(|rest| rest.starts_with(char::is_whitespace))
                .map(|rest| rest.trim().to_string())
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (at most `wait`) for it to exit; `None` if it did not.
    pub fn terminate(&mut self, wait: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`, ...) with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// Kills it now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        let stderr = self.stderr();
        if stderr.contains("panicked") {
            eprintln!("--- stderr of a process that panicked ---\n{stderr}");
        }
    }
}
