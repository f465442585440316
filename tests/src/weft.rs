//! Starting and stopping a real weft process.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The weft binary, built (or found up to date) once per test process.
pub fn weft_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("WEFT_BIN") {
            return PathBuf::from(bin);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "weft", "--bin", "weft"])
            .current_dir(&root)
            .status()
            .expect("run cargo build for the weft binary");
        assert!(status.success(), "building the weft binary failed");
        let target =
            std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
        target.join("debug").join("weft")
    })
    .clone()
}

/// Runs `weft validate` on `config` (YAML, written to a temporary file), expects it to
/// refuse the config, and returns what it printed on stderr.
pub fn validate_errors(config: &str) -> String {
    let dir = TempDir::new();
    let file = dir.path().join("weft.yaml");
    std::fs::write(&file, config).unwrap();
    let out = Command::new(weft_bin())
        .arg("validate")
        .arg(&file)
        .output()
        .expect("run weft validate");
    assert!(!out.status.success(), "weft validate accepted:\n{config}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running weft process; killed when dropped.
pub struct Weft {
    child: Option<Child>,
    pub listeners: HashMap<String, SocketAddr>,
    pub admin: Option<SocketAddr>,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

impl Weft {
    /// Starts weft on `config` (YAML) with `workers` workers and waits until it is ready.
    pub fn start(config: &str, workers: usize) -> Weft {
        Self::start_with(config, &["--workers", &workers.to_string()])
    }

    pub fn start_with(config: &str, extra_args: &[&str]) -> Weft {
        let dir = TempDir::new();
        let path = dir.path().join("weft.yaml");
        std::fs::write(&path, config).unwrap();
        let mut args = vec![
            "run",
            "--log-format",
            "json",
            "--config",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra_args);
        let mut weft = Self::spawn(&args, dir);
        weft.wait_ready(expected_listeners(config).expect("the config has a listeners: section"));
        weft
    }

    /// Runs `weft` with exactly these arguments (plus JSON logs) and waits for `listeners`.
    pub fn start_args(args: &[&str], listeners: usize) -> Weft {
        let mut all = vec!["--log-format", "json"];
        all.extend_from_slice(args);
        let mut weft = Self::spawn(&all, TempDir::new());
        weft.wait_ready(listeners);
        weft
    }

    /// As [`Self::start_args`], with extra environment variables.
    pub fn start_args_env(args: &[&str], listeners: usize, env: &[(&str, &str)]) -> Weft {
        let mut all = vec!["--log-format", "json"];
        all.extend_from_slice(args);
        let mut weft = Self::spawn_env(&all, TempDir::new(), env);
        weft.wait_ready(listeners);
        weft
    }

    fn spawn(args: &[&str], dir: TempDir) -> Weft {
        Self::spawn_env(args, dir, &[])
    }

    fn spawn_env(args: &[&str], dir: TempDir, env: &[(&str, &str)]) -> Weft {
        let mut child = Command::new(weft_bin())
            .args(args)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start weft");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        Weft {
            child: Some(child),
            listeners: HashMap::new(),
            admin: None,
            logs,
            _dir: dir,
        }
    }

    fn wait_ready(&mut self, listeners: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for line in self.logs() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let fields = &v["fields"];
                let addr = fields["address"]
                    .as_str()
                    .and_then(|a| a.trim_matches('"').parse().ok());
                match (fields["message"].as_str(), addr) {
                    (Some("listening"), Some(addr)) => {
                        let name = fields["listener"].as_str().unwrap_or_default().to_string();
                        self.listeners.insert(name, addr);
                    }
                    (Some("admin listening"), Some(addr)) => self.admin = Some(addr),
                    _ => {}
                }
            }
            if self.listeners.len() >= listeners && self.admin.is_some() && self.ready() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "weft exited with {status} before it was ready:\n{}",
                    self.logs().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "weft not ready in 60 s:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ready(&self) -> bool {
        let Some(admin) = self.admin else {
            return false;
        };
        let Ok(mut stream) = std::net::TcpStream::connect(admin) else {
            return false;
        };
        use std::io::{Read, Write};
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream
            .write_all(b"GET /ready HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut out = String::new();
        let _ = stream.read_to_string(&mut out);
        out.starts_with("HTTP/1.1 200")
    }

    /// The address of the listener named `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.listeners[name]
    }

    pub fn admin(&self) -> SocketAddr {
        self.admin.expect("admin endpoint")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Every line weft has printed so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Sends a signal (`libc::SIGTERM`, ...).
    pub fn signal(&self, signal: i32) {
        // SAFETY-free: kill(2) through the libc crate; pid is our child's.
        let rc = unsafe_kill(self.pid() as i32, signal);
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits up to `timeout` for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Peak resident memory of the process so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/pid/status")
    }

    /// The config file `start`/`start_with` wrote (a reload reads it again).
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("weft.yaml")
    }

    /// `GET` on the admin endpoint, returning (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        self.admin_request("GET", path)
    }

    /// `POST` (no body) on the admin endpoint, returning (status, body).
    pub fn admin_post(&self, path: &str) -> (u16, String) {
        self.admin_request("POST", path)
    }

    fn admin_request(&self, method: &str, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.admin()).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// The value of one Prometheus series (exact label text), or 0 when absent.
    /// Waits up to 5 s for a log line containing `text` (weft's output reaches
    /// [`Self::logs`] through reader threads, a little after weft wrote it).
    pub async fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.logs().iter().any(|l| l.contains(text)) {
            assert!(
                Instant::now() < deadline,
                "{text:?} not logged:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.admin_get("/stats/prometheus");
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }
}

/// Counts `  - name: ...` entries under `listeners:` in a config.
fn expected_listeners(config: &str) -> Option<usize> {
    let start = config.find("listeners:")?;
    let rest = &config[start..];
    let end = rest.find("\nclusters:").unwrap_or(rest.len());
    Some(rest[..end].matches("\n  - name:").count())
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: i32, signal: i32) -> i32 {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) }
}

impl Drop for Weft {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weft-e2e-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
