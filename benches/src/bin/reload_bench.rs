//! Reload benchmark: the time from a module file change to weft answering with the new
//! module, median over N reloads, with the compiled code warm (a module version weft has
//! compiled before) and cold (a module version it has never seen: compiled on the spot).
//!
//!   reload_bench --weft target/release/weft [--runs 20] [--workers 2] MODULE[=CONFIG_JSON]...
//!
//! For each module it starts one weft whose listener runs that module as its only filter
//! in front of a direct-response route (no upstream needed: the filter's request and
//! response phases run anyway), then replaces the module file (write + rename, as a build
//! script does) with a variant of it and waits until `GET /filters` lists the variant's
//! sha256 and a request through the listener answers 200. Variants are the module plus a
//! custom section holding a counter: the same code, a different content hash. Warm runs
//! alternate between two variants loaded once before; each cold run uses a new variant
//! (and weft runs with an empty compiled-module cache directory).
//!
//! Prints one line per module; `--markdown` prints a table instead.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    weft: PathBuf,
    runs: usize,
    workers: usize,
    markdown: bool,
    modules: Vec<(PathBuf, Option<String>)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        weft: PathBuf::from("target/release/weft"),
        runs: 20,
        workers: 2,
        markdown: false,
        modules: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--weft" => args.weft = PathBuf::from(value("--weft")?),
            "--runs" => {
                args.runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--workers" => {
                args.workers = value("--workers")?
                    .parse()
                    .map_err(|e| format!("--workers: {e}"))?
            }
            "--markdown" => args.markdown = true,
            "-h" | "--help" => return Err(String::new()),
            _ => match arg.split_once('=') {
                Some((path, config)) => args
                    .modules
                    .push((PathBuf::from(path), Some(config.to_string()))),
                None => args.modules.push((PathBuf::from(arg), None)),
            },
        }
    }
    if args.modules.is_empty() || args.runs < 2 {
        return Err("give at least one module and --runs >= 2".to_string());
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            if !error.is_empty() {
                eprintln!("error: {error}");
            }
            eprintln!(
                "usage: reload_bench [--weft BIN] [--runs N] [--workers N] [--markdown] MODULE[=CONFIG_JSON]..."
            );
            std::process::exit(2);
        }
    };
    if args.markdown {
        println!("| module | size | warm median | warm max | cold median | cold max |");
        println!("|---|---|---|---|---|---|");
    }
    for (module, config) in &args.modules {
        let bytes = std::fs::read(module)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", module.display()));
        let name = module.file_name().unwrap().to_string_lossy().to_string();
        let warm = measure(&args, &bytes, config.as_deref(), Mode::Warm);
        let cold = measure(&args, &bytes, config.as_deref(), Mode::Cold);
        let kib = bytes.len() as f64 / 1024.0;
        if args.markdown {
            println!(
                "| {name} | {kib:.0} KiB | {} | {} | {} | {} |",
                ms(median(&warm)),
                ms(max(&warm)),
                ms(median(&cold)),
                ms(max(&cold))
            );
        } else {
            println!(
                "{name} ({kib:.0} KiB, {} reloads each): warm median {} (max {}), cold median {} (max {})",
                args.runs,
                ms(median(&warm)),
                ms(max(&warm)),
                ms(median(&cold)),
                ms(max(&cold))
            );
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Warm,
    Cold,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn max(v: &[Duration]) -> Duration {
    v.iter().copied().max().unwrap_or_default()
}

/// The module with a custom section `weft-bench` holding `n`: same code, new sha256.
fn variant(wasm: &[u8], n: u64) -> Vec<u8> {
    let name = b"weft-bench";
    let payload = n.to_le_bytes();
    let mut section = Vec::new();
    leb128(&mut section, name.len() as u64);
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, section.len() as u64);
    out.extend_from_slice(&section);
    out
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Proxy {
    child: Child,
    listener: SocketAddr,
    admin: SocketAddr,
    dir: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(args: &Args, dir: &Path, module: &Path, config: Option<&str>) -> Proxy {
    let (port, admin_port) = (free_port(), free_port());
    let config_line = config
        .map(|c| format!("        config: {c}\n"))
        .unwrap_or_default();
    let yaml = format!(
        "admin: {{ address: 127.0.0.1:{admin_port} }}\nwasm: {{ cache_dir: {cache} }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:{port}\n    access_log: false\n    filters:\n      - name: bench\n        module: {module}\n{config_line}    routes:\n      - direct_response: {{ status: 200, body: ok }}\n",
        cache = dir.join("cache").display(),
        module = module.display(),
    );
    let config_path = dir.join("weft.yaml");
    std::fs::write(&config_path, yaml).unwrap();
    let child = Command::new(&args.weft)
        .args(["run", "--log-level", "warn", "--workers"])
        .arg(args.workers.to_string())
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", args.weft.display()));
    let proxy = Proxy {
        child,
        listener: SocketAddr::from(([127, 0, 0, 1], port)),
        admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
        dir: dir.to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(proxy.admin, "GET", "/ready").0 != 200 {
        assert!(Instant::now() < deadline, "weft did not get ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy
}

/// One HTTP/1.1 request on a new connection: (status, body); status 0 when it failed.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("{method} {path} HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

/// Replaces the module file with `bytes` and times until weft serves it.
fn reload_once(proxy: &Proxy, module: &Path, bytes: &[u8]) -> Duration {
    let sha = sha256_hex(bytes);
    let tmp = module.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    let start = Instant::now();
    std::fs::rename(&tmp, module).unwrap();
    loop {
        let (_, filters) = http(proxy.admin, "GET", "/filters");
        if filters.contains(&sha) {
            let (status, _) = http(proxy.listener, "GET", "/");
            assert_eq!(status, 200, "the request after the reload failed");
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "module not reloaded in 30 s; last /filters: {filters}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn measure(args: &Args, wasm: &[u8], config: Option<&str>, mode: Mode) -> Vec<Duration> {
    let dir = std::env::temp_dir().join(format!(
        "weft-reload-bench-{}-{}",
        std::process::id(),
        if mode == Mode::Warm { "warm" } else { "cold" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("filter.wasm");
    std::fs::write(&module, variant(wasm, 0)).unwrap();
    let proxy = start(args, &dir, &module, config);
    let mut took = Vec::with_capacity(args.runs);
    match mode {
        Mode::Warm => {
            // Load variant 1 once, so both 0 and 1 are compiled, then alternate.
            reload_once(&proxy, &module, &variant(wasm, 1));
            for i in 0..args.runs {
                took.push(reload_once(&proxy, &module, &variant(wasm, (i % 2) as u64)));
            }
        }
        Mode::Cold => {
            for i in 0..args.runs {
                took.push(reload_once(
                    &proxy,
                    &module,
                    &variant(wasm, 1000 + i as u64),
                ));
            }
        }
    }
    // Each reload must have been one reload: a failed one would not have shown the hash.
    let (_, stats) = http(proxy.admin, "GET", "/stats/prometheus");
    assert!(
        !stats.contains("weft_reload_total{result=\"error\"}"),
        "a reload failed: {stats}"
    );
    took
}
