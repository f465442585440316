//! The `weft` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{self, duration::parse_duration};
use crate::logging::{self, LogFormat};
use crate::server::{self, ServerOptions};

#[derive(Debug, Parser)]
#[command(
    name = "weft",
    version,
    about = "A programmable HTTP proxy with a proxy-wasm filter chain"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stdout.
    #[arg(long, global = true, value_enum, default_value = "human")]
    log_format: LogFormat,
    /// Log level or filter (RUST_LOG wins when set).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (on the embedded default config when --config is not given).
    Run {
        /// YAML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Worker threads (default: number of CPU cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Time in-flight requests get to finish after SIGTERM/SIGINT.
        #[arg(long, default_value = "25s", value_parser = parse_duration)]
        drain_timeout: Duration,
    },
    /// Check config files as a start would; exits non-zero listing every error.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the embedded default config.
    DefaultConfig,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { files } => validate(&files),
        Command::DefaultConfig => {
            print!("{}", config::EMBEDDED_DEFAULT);
            ExitCode::SUCCESS
        }
        Command::Run {
            config,
            workers,
            drain_timeout,
        } => {
            let _guard = logging::init(cli.log_format, &cli.log_level);
            let config = match config {
                Some(path) => match config::load_file(&path) {
                    Ok(config) => config,
                    Err(errors) => {
                        for e in &errors.0 {
                            tracing::error!("{e}");
                            eprintln!("error: {e}");
                        }
                        return ExitCode::from(2);
                    }
                },
                None => {
                    tracing::info!(
                        "no --config given: using the embedded default config (see `weft default-config`)"
                    );
                    config::embedded_default()
                }
            };
            let workers = workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1);
            let options = ServerOptions {
                workers,
                drain_timeout,
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the main runtime can be built");
            match runtime.block_on(server::run(config, options, server::termination_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    let message = crate::error::chain(&error);
                    tracing::error!("cannot start: {message}");
                    eprintln!("error: cannot start: {message}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Loads every filter as a start would (compile, instantiate, `on_vm_start`, `on_configure`).
fn check_filters(config: config::Config) -> Result<config::Config, config::ConfigErrors> {
    if !crate::snapshot::Snapshot::needs_wasm(&config) {
        return Ok(config);
    }
    let runtime = std::sync::Arc::new(crate::wasm::host::WasmRuntime::new(
        config.wasm.cache_dir.clone(),
    ));
    let metrics = crate::metrics::Metrics::new();
    crate::snapshot::Snapshot::build(0, config, &metrics, 1, Some(&runtime)).map(|s| s.config)
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for file in files {
        match config::load_file(file).and_then(check_filters) {
            Ok(c) => {
                let routes: usize = c.listeners.iter().map(|l| l.routes.len()).sum();
                println!(
                    "{}: ok ({} listeners, {} routes, {} clusters)",
                    file.display(),
                    c.listeners.len(),
                    routes,
                    c.clusters.len()
                );
            }
            Err(errors) => {
                failed = true;
                for e in &errors.0 {
                    eprintln!("{e}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
