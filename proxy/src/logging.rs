//! Log set-up: human-readable or JSON lines on stdout, written by a background thread so
//! that workers never wait on the terminal or a pipe. `RUST_LOG` overrides `--log-level`.
//! Access-log lines have the target `weft::access`.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Installs the global subscriber; keep the guard alive until exit so logs are flushed.
pub fn init(format: LogFormat, level: &str) -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stdout());
    // rustls warns about every client that sends an IP address as SNI (wrk, curl by IP);
    // only its errors are worth a line unless asked for (RUST_LOG wins).
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},rustls=error")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(false).init(),
    }
    guard
}
