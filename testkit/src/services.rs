//! Real storage servers for tests, each a private process on loopback in a temporary
//! directory: a PostgreSQL cluster ([`Postgres`]), a Garage object store ([`Garage`]) with
//! nginx in front of it as `deploy/nginx/s3-front.conf` says, and nginx itself ([`Nginx`]).
//! `scripts/setup` installs them (PostgreSQL and nginx from Debian, Garage built from
//! crates.io into `$CHORUS_TOOLS/bin`); a test that needs one fails with what to run when it
//! is missing.
//!
//! Each test starts its own, so tests run in parallel, and one may stop and restart its
//! server (an outage, a database restart) without touching another's.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

/// A port on 127.0.0.1 free now for both TCP and UDP; the caller binds it soon after.
///
/// The port is chosen outside the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`): every socket bound to port 0 (a QUIC client,
/// an outgoing TCP connection) gets its port from that range, so a port chosen inside it can
/// be taken by any of them in the moment between this check and the caller's bind, and a
/// busy test run does exactly that. Outside it, only another explicit bind can collide, and
/// the port is drawn at random and never handed out twice by one process.
pub fn free_port() -> anyhow::Result<u16> {
    use std::collections::HashSet;
    use std::sync::Mutex;

    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let (low, high) = outside_ephemeral_range();
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..200 {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), low..=high);
        if handed_out.contains(&port) {
            continue;
        }
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            handed_out.insert(port);
            return Ok(port);
        }
    }
    bail!("no free port on 127.0.0.1 between {low} and {high}")
}

/// The widest run of ports outside the kernel's ephemeral range, above 1024.
fn outside_ephemeral_range() -> (u16, u16) {
    let (first, last) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut fields = text.split_whitespace().map(|field| field.parse::<u16>());
            Some((fields.next()?.ok()?, fields.next()?.ok()?))
        })
        .unwrap_or((32768, 60999));
    let below = (1025, first.saturating_sub(1));
    let above = (last.saturating_add(1), u16::MAX);
    let width = |(low, high): (u16, u16)| high.saturating_sub(low);
    if width(below) >= width(above) {
        below
    } else {
        above
    }
}

fn wait_for_port(port: u16, within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < within {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on 127.0.0.1:{port} after {within:?}")
}

fn run(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|user| user == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// A private PostgreSQL cluster (Debian's binaries; `initdb` runs as the `postgres` user
/// when the tests run as root, since PostgreSQL refuses root).
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The directory holding `initdb` and `pg_ctl`.
fn postgres_bin() -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
                .filter(|bin| bin.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().context(
        "PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin/initdb): \
         run scripts/setup",
    )
}

impl Postgres {
    /// Initialises and starts a cluster on a free loopback port, with a `chorus` superuser
    /// that needs no password.
    pub fn start() -> anyhow::Result<Self> {
        let bin = postgres_bin()?;
        let dir = tempfile::Builder::new().prefix("chorus-pg").tempdir()?;
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path()))?;
        }
        let cluster = Self {
            dir,
            bin,
            port: free_port()?,
            as_postgres,
        };
        cluster.pg(
            "initdb",
            &[
                "-D",
                &cluster.data().to_string_lossy(),
                "--auth=trust",
                "--username=chorus",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
        )?;
        cluster.start_server()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg(&self, tool: &str, args: &[&str]) -> anyhow::Result<String> {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.args(args).stdin(Stdio::null());
        run(&mut command)
    }

    fn start_server(&self) -> anyhow::Result<()> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200 -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data().to_string_lossy(),
                "-o",
                &options,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        wait_for_port(self.port, Duration::from_secs(30))
    }

    /// Stops the server at once (`immediate`: like a crash; the next start recovers).
    pub fn stop(&self) -> anyhow::Result<()> {
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data().to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
        .map(drop)
    }

    /// Starts the server again after [`Postgres::stop`], on the same port.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.start_server()
    }

    /// Creates a database and returns its URL.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        self.pg(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "chorus",
                name,
            ],
        )?;
        Ok(self.url(name))
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://chorus:unused@127.0.0.1:{}/{name}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The Garage binary: `$CHORUS_TOOLS/bin/garage` (default `~/.cache/chorus-tools`), else on
/// `PATH`.
pub fn garage_bin() -> anyhow::Result<PathBuf> {
    let tools = std::env::var_os("CHORUS_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/chorus-tools"))
        });
    if let Some(tools) = tools {
        let bin = tools.join("bin/garage");
        if bin.exists() {
            return Ok(bin);
        }
    }
    let on_path = Command::new("garage").arg("--version").output();
    if on_path.is_ok_and(|output| output.status.success()) {
        return Ok(PathBuf::from("garage"));
    }
    bail!("the Garage object store is not installed ($CHORUS_TOOLS/bin/garage): run scripts/setup")
}

/// The nginx server block that faces the network for Garage (see the file for why).
const S3_FRONT: &str = include_str!("../../deploy/nginx/s3-front.conf");

/// A single-node Garage object store (an S3-compatible server that checks every request's
/// signature), with one access key allowed on the buckets it creates. Garage listens on a
/// Unix socket and nginx on a loopback port in front of it, as `deploy/nginx/s3-front.conf`
/// advises; [`Garage::stop`] kills Garage only, so an outage looks like one behind a proxy.
#[derive(Debug)]
pub struct Garage {
    dir: tempfile::TempDir,
    bin: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    s3_port: u16,
    child: std::sync::Mutex<Option<Child>>,
    /// nginx in front; kept for as long as Garage (dropping it stops it).
    _front: Option<Nginx>,
    /// The access key id.
    pub key_id: String,
    /// The secret key.
    pub secret: String,
}

/// The region Garage answers to.
pub const GARAGE_REGION: &str = "garage";

impl Garage {
    /// Starts Garage on free loopback ports, lays out its one node and imports an access key.
    pub fn start() -> anyhow::Result<Self> {
        let bin = garage_bin()?;
        let dir = tempfile::Builder::new().prefix("chorus-garage").tempdir()?;
        let (s3_port, rpc_port, admin_port) = (free_port()?, free_port()?, free_port()?);
        let socket = dir.path().join("s3.sock");
        let rpc_secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "lmdb"
metadata_fsync = true
data_fsync = true
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{GARAGE_REGION}"
api_bind_addr = "{socket}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
                socket = socket.display(),
            ),
        )?;
        let key_id = format!(
            "GK{}",
            (0..12)
                .map(|_| format!("{:02x}", rand::random::<u8>()))
                .collect::<String>()
        );
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let garage = Self {
            dir,
            bin,
            config,
            socket,
            s3_port,
            child: std::sync::Mutex::new(None),
            _front: None,
            key_id,
            secret,
        };
        let mut garage = garage;
        garage.start_server()?;
        let front = S3_FRONT
            .replace("@LISTEN@", &format!("127.0.0.1:{s3_port}"))
            .replace("@GARAGE_SOCKET@", &garage.socket.to_string_lossy());
        garage._front = Some(Nginx::start(&front)?);
        let status = garage.cli(&["status"])?;
        let node = status
            .lines()
            .find_map(|line| {
                let word = line.split_whitespace().next()?;
                (word.len() == 16 && word.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| word.to_string())
            })
            .with_context(|| format!("no node id in `garage status`:\n{status}"))?;
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])?;
        garage.cli(&["layout", "apply", "--version", "1"])?;
        let (key_id, secret) = (garage.key_id.clone(), garage.secret.clone());
        garage.cli(&["key", "import", "--yes", "-n", "chorus", &key_id, &secret])?;
        Ok(garage)
    }

    fn start_server(&self) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.path().join("server.log"))?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting garage")?;
        *self
            .child
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(child);
        let started = Instant::now();
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            ensure!(
                started.elapsed() < Duration::from_secs(30),
                "garage does not listen on {}",
                self.socket.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The RPC layer comes up with the API; `status` answers once the node knows itself.
        let started = Instant::now();
        while self.cli(&["status"]).is_err() {
            ensure!(
                started.elapsed() < Duration::from_secs(30),
                "garage does not answer `status`"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null()))
    }

    /// Creates `bucket` and allows the key on it.
    pub fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        self.cli(&["bucket", "create", bucket])?;
        self.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            &self.key_id,
        ])?;
        Ok(())
    }

    /// The S3 endpoint URL (nginx in front of Garage).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The standard variables that point an S3 client (a `chorus origin`) here.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", GARAGE_REGION.to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
    }

    /// Access for an in-process store.
    pub fn access(&self) -> origin::store::s3::S3Access {
        origin::store::s3::S3Access {
            endpoint: Some(self.endpoint()),
            access_key_id: Some(self.key_id.clone()),
            secret_access_key: Some(self.secret.clone()),
            region: Some(GARAGE_REGION.to_string()),
            allow_http: true,
        }
    }

    /// Kills the server (an outage).
    pub fn stop(&self) {
        let child = self
            .child
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again after [`Garage::stop`], on the same ports and data.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.stop();
        self.start_server()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PostgreSQL cluster and a Garage store together: what an origin on the scale-out
/// backends needs.
#[derive(Debug)]
pub struct Services {
    /// The database server.
    pub postgres: Postgres,
    /// The object store.
    pub garage: Garage,
}

impl Services {
    /// Starts both (blocking: a second or two).
    pub fn start() -> anyhow::Result<Self> {
        Ok(Self {
            postgres: Postgres::start()?,
            garage: Garage::start()?,
        })
    }

    /// Creates database `name` and bucket `name` and points `config` at them.
    pub fn configure(
        &self,
        config: &mut origin::config::OriginConfig,
        name: &str,
    ) -> anyhow::Result<()> {
        config.database = self.postgres.create_database(name)?;
        self.garage.create_bucket(name)?;
        config.blobs = format!("s3://{name}/origin");
        config.s3 = origin::config::S3Settings {
            endpoint: Some(self.garage.endpoint()),
            region: Some(GARAGE_REGION.to_string()),
            access_key_id: Some(self.garage.key_id.clone()),
            secret_access_key: Some(self.garage.secret.clone()),
            allow_http: Some(true),
        };
        Ok(())
    }
}

/// Where Debian's nginx is, or the one on `PATH`.
pub fn nginx_bin() -> anyhow::Result<PathBuf> {
    for candidate in [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ] {
        if Path::new(candidate).exists() {
            return Ok(PathBuf::from(candidate));
        }
    }
    let on_path = Command::new("nginx").arg("-v").output();
    if on_path.is_ok_and(|output| output.status.success()) {
        return Ok(PathBuf::from("nginx"));
    }
    bail!("nginx is not installed: run scripts/setup")
}

/// A private nginx: one process (no master, no user switch) in a temporary directory, serving
/// the `server {}` and `upstream {}` blocks it is given. Every listen address in them must be
/// free; [`Nginx::start`] returns once the first one accepts connections.
#[derive(Debug)]
pub struct Nginx {
    dir: tempfile::TempDir,
    child: Child,
}

impl Nginx {
    /// Writes a whole configuration around `blocks` and starts nginx on it.
    pub fn start(blocks: &str) -> anyhow::Result<Self> {
        let bin = nginx_bin()?;
        let dir = tempfile::Builder::new().prefix("chorus-nginx").tempdir()?;
        let path = |name: &str| dir.path().join(name).display().to_string();
        let config = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {pid};
error_log {error_log} warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    client_body_temp_path {body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};
{blocks}
}}
"#,
            pid = path("nginx.pid"),
            error_log = path("error.log"),
            body = path("client_body"),
            proxy = path("proxy"),
            fastcgi = path("fastcgi"),
            uwsgi = path("uwsgi"),
            scgi = path("scgi"),
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let nginx_on = |config_path: &Path| {
            let mut command = Command::new(&bin);
            command
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(path("error.log"))
                .arg("-c")
                .arg(config_path)
                .stdin(Stdio::null());
            command
        };
        run(nginx_on(&config_path).args(["-t", "-q"]))
            .context("nginx refuses its configuration")?;
        let child = nginx_on(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let mut nginx = Self { dir, child };
        let port = blocks
            .lines()
            .find_map(|line| {
                let address = line.trim().strip_prefix("listen ")?;
                let address = address.trim_end_matches(';').split_whitespace().next()?;
                address.rsplit(':').next()?.parse::<u16>().ok()
            })
            .context("no `listen ADDRESS:PORT;` in the nginx blocks")?;
        wait_for_port(port, Duration::from_secs(10))
            .with_context(|| format!("nginx did not come up: {}", nginx.error_log()))?;
        // Something else may hold the port (taken after free_port chose it): then nginx
        // has exited and the port is not ours.
        std::thread::sleep(Duration::from_millis(50));
        if let Ok(Some(status)) = nginx.child.try_wait() {
            bail!("nginx exited ({status}): {}", nginx.error_log());
        }
        Ok(nginx)
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CDN edge configuration the repository ships.
const CDN_CONF: &str = include_str!("../../deploy/nginx/cdn.conf");

/// nginx as the CDN edge in front of several origins, configured by `deploy/nginx/cdn.conf`
/// on a loopback port, its chunk cache in a private directory.
#[derive(Debug)]
pub struct Cdn {
    nginx: Nginx,
    cache: tempfile::TempDir,
    /// The access log read so far, and what it said.
    tally: std::sync::Mutex<(u64, CdnCounts)>,
    /// Where clients reach it: `http://127.0.0.1:PORT` (`https://` with TLS).
    pub base: String,
    /// Its address.
    pub addr: std::net::SocketAddr,
}

/// What the edge did, from its access log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdnCounts {
    /// Chunk requests served from the cache.
    pub hits: u64,
    /// Chunk requests fetched from an origin (and kept).
    pub misses: u64,
    /// Chunk requests served from the cache while the origins failed.
    pub stale: u64,
    /// Chunk requests refused (a URL that did not check out, or no origin answered).
    pub refused: u64,
    /// Chunk requests the client gave up on before the answer (nginx's 499).
    pub abandoned: u64,
    /// Chunk bytes sent to clients (hits and misses alike).
    pub chunk_bytes: u64,
    /// Requests each origin answered (`ADDRESS:PORT`; the last one tried, when a request
    /// failed over), chunk misses and API requests alike; the chunk URL checks (`auth_request`
    /// subrequests) are not in the log's upstream field and not counted.
    pub by_origin: std::collections::BTreeMap<String, u64>,
}

impl CdnCounts {
    /// Hits (fresh or stale) over the chunk requests the cache answered.
    pub fn hit_ratio(&self) -> f64 {
        let served = self.hits + self.stale + self.misses;
        if served == 0 {
            0.0
        } else {
            (self.hits + self.stale) as f64 / served as f64
        }
    }

    /// Counts one access-log line (format `chorus_edge`: the request in quotes, then status,
    /// bytes, `cache=`, `upstream=` and `time=` in that order; nginx escapes quotes inside the
    /// request, so what follows the closing quote is nginx's own).
    fn add(&mut self, line: &str) {
        let mut quoted = line.splitn(3, '"');
        let request = quoted.nth(1).unwrap_or("");
        let fields = quoted.next().unwrap_or("");
        let mut words = fields.split_whitespace();
        let status: u16 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let bytes: u64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let cache = words
            .next()
            .and_then(|word| word.strip_prefix("cache="))
            .unwrap_or("-");
        // `upstream=A, B` when a request failed over (`A : B` across an internal redirect):
        // the answer came from the last. Requests no origin answered (a 5xx, or the group's
        // name when none was up) count for none.
        let upstream = fields
            .split(" upstream=")
            .nth(1)
            .and_then(|rest| rest.rsplit(" time=").nth(1))
            .and_then(|list| {
                list.rsplit([',', ' '])
                    .find(|part| !part.is_empty() && *part != ":")
            })
            .unwrap_or("-");
        if status < 500 && upstream.parse::<std::net::SocketAddr>().is_ok() {
            *self.by_origin.entry(upstream.to_string()).or_default() += 1;
        }
        if !request.starts_with("GET /v1/chunks/") {
            return;
        }
        if status == 499 {
            // The client hung up first (a cancelled or superseded fetch).
            self.abandoned += 1;
            return;
        }
        if !(200..300).contains(&status) && status != 304 {
            self.refused += 1;
            return;
        }
        self.chunk_bytes += bytes;
        match cache {
            "HIT" => self.hits += 1,
            "STALE" | "UPDATING" => self.stale += 1,
            _ => self.misses += 1,
        }
    }
}

/// TLS for the edge: a certificate chain and its key (PEM files).
#[derive(Debug, Clone, Copy)]
pub struct EdgeTls<'a> {
    /// The certificate chain.
    pub cert: &'a Path,
    /// Its private key.
    pub key: &'a Path,
}

impl Cdn {
    /// Starts the edge on loopback `port` (from [`free_port`], so the origins can be told their
    /// public URL first) in front of the origins' HTTP addresses.
    pub fn start(port: u16, origins: &[std::net::SocketAddr]) -> anyhow::Result<Self> {
        Self::start_with(port, origins, None)
    }

    /// [`Cdn::start`], answering over TLS when `tls` is given (the origins behind it are
    /// still spoken to in plain HTTP, as on a private network).
    pub fn start_with(
        port: u16,
        origins: &[std::net::SocketAddr],
        tls: Option<EdgeTls<'_>>,
    ) -> anyhow::Result<Self> {
        ensure!(!origins.is_empty(), "a CDN needs at least one origin");
        let cache = tempfile::Builder::new().prefix("chorus-cdn").tempdir()?;
        let servers: Vec<String> = origins
            .iter()
            .map(|origin| format!("server {origin} max_fails=1 fail_timeout=10s;"))
            .collect();
        let listen = match tls {
            Some(tls) => format!(
                "127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    ssl_protocols TLSv1.2 TLSv1.3;\n    keepalive_requests 100000",
                tls.cert.display(),
                tls.key.display()
            ),
            None => format!("127.0.0.1:{port}"),
        };
        // Placeholders are filled in directives only (the comments name them too).
        let blocks: Vec<String> = CDN_CONF
            .lines()
            .map(|line| {
                if line.trim_start().starts_with('#') {
                    return line.to_string();
                }
                line.replace("@LISTEN@", &listen)
                    .replace("@ORIGINS@", &servers.join("\n    "))
                    .replace("@CACHE_DIR@", &cache.path().display().to_string())
                    .replace("@CACHE_MAX@", "1g")
            })
            .collect();
        let blocks = blocks.join("\n");
        let nginx = Nginx::start(&blocks)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(Self {
            nginx,
            cache,
            tally: std::sync::Mutex::new((0, CdnCounts::default())),
            base: format!("{scheme}://127.0.0.1:{port}"),
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    /// What the edge did so far (the access log is read on from where the last call
    /// stopped).
    pub fn counts(&self) -> CdnCounts {
        use std::io::{BufRead, Seek};
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let (offset, counts) = &mut *tally;
        if let Ok(mut file) = std::fs::File::open(self.cache.path().join("access.log"))
            && file.seek(std::io::SeekFrom::Start(*offset)).is_ok()
        {
            let mut reader = std::io::BufReader::new(file);
            let mut line = String::new();
            // Whole lines only: one nginx is still writing is read next time.
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
                counts.add(&line);
                *offset += line.len() as u64;
                line.clear();
            }
        }
        counts.clone()
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        self.nginx.error_log()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let (low, high) = outside_ephemeral_range();
        assert!(1024 < low && low < high, "{low}..{high}");
        let ports: Vec<u16> = (0..64).map(|_| free_port().unwrap()).collect();
        let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        // Ports the kernel hands to sockets bound to port 0 never land in the chosen run.
        let ephemeral: Vec<u16> = (0..64)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .map(|socket| socket.local_addr().unwrap().port())
            .collect();
        for port in &ports {
            assert!((low..=high).contains(port), "{port} outside {low}..{high}");
            assert!(!ephemeral.contains(port));
            TcpListener::bind(("127.0.0.1", *port)).unwrap();
            std::net::UdpSocket::bind(("127.0.0.1", *port)).unwrap();
        }
        for port in ephemeral {
            assert!(!(low..=high).contains(&port), "the kernel chose {port}");
        }
    }

    #[test]
    fn edge_log_lines_are_counted_by_cache_result_and_origin() {
        let id = "ab".repeat(32);
        let lines = [
            format!(
                "127.0.0.1 \"GET /v1/chunks/{id}?sig=x HTTP/1.1\" 200 32784 cache=MISS upstream=127.0.0.1:7001 time=0.004"
            ),
            format!(
                "127.0.0.1 \"GET /v1/chunks/{id}?sig=y HTTP/1.1\" 200 32784 cache=HIT upstream=- time=0.000"
            ),
            format!(
                "127.0.0.1 \"GET /v1/chunks/{id}?sig=z HTTP/1.1\" 403 30 cache=- upstream=- time=0.001"
            ),
            format!(
                "127.0.0.1 \"GET /v1/chunks/{id}?sig=y HTTP/1.1\" 200 32784 cache=STALE upstream=127.0.0.1:7002 time=0.002"
            ),
            "127.0.0.1 \"POST /v1/sessions HTTP/1.1\" 200 512 cache=- upstream=127.0.0.1:7001, 127.0.0.1:7002 time=0.010".to_string(),
            "127.0.0.1 \"GET /v1/tracks HTTP/1.1\" 200 512 cache=- upstream=127.0.0.1:7002 time=0.010".to_string(),
            format!(
                "127.0.0.1 \"GET /v1/chunks/{id}?sig=w HTTP/1.1\" 499 0 cache=- upstream=127.0.0.1:7001 time=0.003"
            ),
            // The request line is the client's: words in it count for nothing.
            "127.0.0.1 \"GET /x?a= upstream=127.0.0.1:9 cache=HIT HTTP/1.1\" 404 9 cache=- upstream=- time=0.001".to_string(),
            "127.0.0.1 \"GET /v1/me HTTP/1.1\" 502 150 cache=- upstream=chorus_origins time=0.000".to_string(),
        ];
        let mut counts = CdnCounts::default();
        for line in &lines {
            counts.add(line);
        }
        assert_eq!(
            (counts.hits, counts.misses, counts.stale, counts.refused),
            (1, 1, 1, 1)
        );
        assert_eq!(counts.chunk_bytes, 3 * 32784);
        assert!((counts.hit_ratio() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(counts.abandoned, 1);
        assert_eq!(counts.by_origin.get("127.0.0.1:7001"), Some(&2));
        assert_eq!(counts.by_origin.len(), 2, "{counts:?}");
        // The failed-over request counts for the origin that answered it.
        assert_eq!(counts.by_origin.get("127.0.0.1:7002"), Some(&3));
    }
}
