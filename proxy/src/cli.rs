//! The `weft` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{self, duration::parse_duration};
use crate::control::auth::Token;
use crate::logging::{self, LogFormat};
use crate::quick::{self, Quick, QuickArgs};
use crate::reload::ConfigSource;
use crate::server::{self, ServerOptions};
use crate::snapshot::check_filters;

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

// Parsed once per process; boxing the big variant would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy: on a config file, on a config built from the quick-mode flags
    /// (--listen, --upstream, --filter, ...), or else on the embedded default config.
    Run {
        /// YAML config file.
        #[arg(
            long,
            short,
            conflicts_with_all = [
                "listen",
                "upstream",
                "filter",
                "filter_config",
                "cluster",
                "admin",
                "print_config",
            ]
        )]
        config: Option<PathBuf>,
        /// A filter bundle (directory or .tar.gz, see `weft bundle build`) to serve.
        #[arg(
            long,
            conflicts_with_all = [
                "config",
                "listen",
                "upstream",
                "filter",
                "filter_config",
                "cluster",
                "admin",
                "print_config",
            ]
        )]
        bundle: Option<PathBuf>,
        /// Worker threads (default: number of CPU cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Time in-flight requests get to finish after SIGTERM/SIGINT.
        #[arg(long, default_value = "25s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// Do not reload when the config file or a filter module changes (SIGHUP and
        /// POST /reload on the admin endpoint still reload).
        #[arg(long)]
        no_watch: bool,
        #[command(flatten)]
        quick: QuickArgs,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Run the control plane: keep bundles and their versions in DATA, serve them to
    /// subscribed proxies (see docs/control-plane.md).
    Control {
        /// Address of the control plane API.
        #[arg(long, default_value = "127.0.0.1:9902")]
        listen: String,
        /// Directory for bundles and the version history (created if missing).
        #[arg(long)]
        data: PathBuf,
        /// File with the operators' token (push, rollback); else $WEFT_CONTROL_TOKEN.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// File with the proxies' token (watch, download, report); else $WEFT_PROXY_TOKEN.
        #[arg(long)]
        proxy_token_file: Option<PathBuf>,
    },
    /// Push a bundle archive to the control plane as its new active version.
    Push {
        bundle: PathBuf,
        #[command(flatten)]
        target: OperatorArgs,
    },
    /// Make an earlier version active again (recorded as a new version).
    Rollback {
        version: u64,
        #[command(flatten)]
        target: OperatorArgs,
    },
    /// Check config files as a start would; exits non-zero listing every error.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the embedded default config.
    DefaultConfig,
    /// Build and inspect filter bundles (a config and its modules, as one archive).
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
}

/// `weft run` as a control plane subscriber.
#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Control plane (instead of --config)")]
struct ControlArgs {
    /// Take the config from this control plane (http://HOST:PORT) and follow its versions.
    #[arg(
        long,
        value_name = "URL",
        requires = "node_id",
        conflicts_with_all = ["config", "bundle", "listen", "print_config"]
    )]
    control_plane: Option<String>,
    /// This proxy's name at the control plane.
    #[arg(long, requires = "control_plane")]
    node_id: Option<String>,
    /// File with the proxies' token; else $WEFT_PROXY_TOKEN.
    #[arg(long, requires = "control_plane")]
    control_token_file: Option<PathBuf>,
    /// Where the last applied bundle is kept [default: $XDG_CACHE_HOME/weft/control/NODE].
    #[arg(long, requires = "control_plane")]
    bundle_cache: Option<PathBuf>,
}

/// Where operators' commands send to.
#[derive(Clone, Debug, clap::Args)]
struct OperatorArgs {
    /// The control plane (http://HOST:PORT).
    #[arg(long, value_name = "URL")]
    control_plane: String,
    /// File with the operators' token; else $WEFT_CONTROL_TOKEN.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Pack DIR (weft.yaml, the modules it names, optional NAME.schema.json next to
    /// NAME.wasm) into a bundle archive, after checking it as `weft validate` does.
    Build {
        dir: PathBuf,
        /// The archive to write (.tar.gz).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Verify a bundle (archive or directory) and show what it holds.
    Inspect { bundle: PathBuf },
}

pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Validate { files } => validate(&files),
        Command::DefaultConfig => {
            print!("{}", config::embedded_default_text());
            ExitCode::SUCCESS
        }
        Command::Bundle { command } => bundle_command(command),
        Command::Control {
            listen,
            data,
            token_file,
            proxy_token_file,
        } => {
            let _guard = logging::init(cli.log_format, &cli.log_level);
            control_command(listen, data, token_file, proxy_token_file)
        }
        Command::Push { bundle, target } => operator_command(&target, |api| async move {
            crate::control::ops::push(&api, &bundle).await
        }),
        Command::Rollback { version, target } => operator_command(&target, |api| async move {
            crate::control::ops::rollback(&api, version).await
        }),
        Command::Run {
            config,
            bundle,
            workers,
            drain_timeout,
            no_watch,
            quick,
            control,
        } => {
            // The `run` matches give the order of --filter and --filter-config.
            let run_matches = matches
                .subcommand_matches("run")
                .expect("the run subcommand was parsed");
            let quick = match Quick::from_args(quick, run_matches) {
                Ok(quick) => quick,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            if let Some(quick) = quick.as_ref().filter(|q| q.print_config) {
                return print_quick_config(quick);
            }
            let _guard = logging::init(cli.log_format, &cli.log_level);
            let runtime = main_runtime();
            let subscriber = match control_subscriber(&control) {
                Ok(subscriber) => subscriber,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            if let Some(subscriber) = &subscriber {
                if !subscriber.has_cached() {
                    runtime.block_on(subscriber.bootstrap());
                }
            }
            let is_quick = quick.is_some();
            let source = match (config, quick) {
                _ if subscriber.is_some() => subscriber
                    .as_ref()
                    .map(|s| s.source())
                    .unwrap_or(ConfigSource::Embedded),
                (Some(path), _) => ConfigSource::File(path),
                (None, _) if bundle.is_some() => ConfigSource::Bundle {
                    path: bundle.unwrap_or_default(),
                    unpack_dir: crate::bundle::default_unpack_dir(),
                },
                (None, Some(quick)) => match current_dir() {
                    Ok(cwd) => ConfigSource::Quick { quick, cwd },
                    Err(error) => {
                        eprintln!("error: {error}");
                        return ExitCode::from(2);
                    }
                },
                (None, None) => {
                    tracing::info!(
                        "no --config given: using the embedded default config (see `weft default-config`)"
                    );
                    if !crate::wasm::builtin::complete() {
                        tracing::warn!(
                            missing = ?crate::wasm::builtin::missing(),
                            "this weft was built without the built-in filters, so the default config runs only builtin:hello; run scripts/build-filters.sh, then build weft again"
                        );
                    }
                    ConfigSource::Embedded
                }
            };
            let config = match source.load() {
                Ok(config) => config,
                Err(errors) => {
                    for e in &errors.0 {
                        tracing::error!("{e}");
                        eprintln!("error: {e}");
                    }
                    if is_quick {
                        eprintln!(
                            "(quick mode: the field paths are those of the YAML that `--print-config` prints)"
                        );
                    }
                    return ExitCode::from(2);
                }
            };
            if is_quick {
                tracing::info!(
                    "quick mode: listener {} -> cluster {} (`--print-config` prints the equivalent YAML)",
                    quick::LISTENER,
                    quick::UPSTREAM_CLUSTER,
                );
            }
            let workers = workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1);
            let options = ServerOptions {
                workers,
                // A control plane's bundles arrive through the subscription, not files.
                watch: !no_watch && subscriber.is_none(),
                drain_timeout,
                control: subscriber.map(std::sync::Arc::new),
            };
            match runtime.block_on(server::run(
                config,
                source,
                options,
                server::termination_signal(),
            )) {
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

/// The control plane subscription `weft run --control-plane` asks for, if any.
fn control_subscriber(
    args: &ControlArgs,
) -> Result<Option<crate::control::client::Subscriber>, String> {
    let (Some(url), Some(node)) = (&args.control_plane, &args.node_id) else {
        return Ok(None);
    };
    let token = Token::load(
        args.control_token_file.as_deref(),
        "WEFT_PROXY_TOKEN",
        "proxy",
    )?;
    let api = crate::control::api::Api::new(url, token, Some(node.clone()))?;
    let cache = args
        .bundle_cache
        .clone()
        .unwrap_or_else(|| crate::control::client::Subscriber::default_cache(node));
    crate::control::client::Subscriber::new(api, node.clone(), cache).map(Some)
}

/// `weft control`.
fn control_command(
    listen: String,
    data: PathBuf,
    token_file: Option<PathBuf>,
    proxy_token_file: Option<PathBuf>,
) -> ExitCode {
    let tokens =
        Token::load(token_file.as_deref(), "WEFT_CONTROL_TOKEN", "operators'").and_then(|token| {
            let proxy_token =
                Token::load(proxy_token_file.as_deref(), "WEFT_PROXY_TOKEN", "proxies'")?;
            Ok((token, proxy_token))
        });
    let (token, proxy_token) = match tokens {
        Ok(tokens) => tokens,
        Err(error) => {
            eprintln!("error: {error} (the control plane is never open without tokens)");
            return ExitCode::from(2);
        }
    };
    let runtime = main_runtime();
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("--listen {listen}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(address = %bound, "control plane listening");
        let options = crate::control::server::ControlOptions {
            data,
            token,
            proxy_token,
        };
        tokio::select! {
            served = crate::control::server::serve(listener, options) => served,
            () = server::termination_signal() => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}

/// `weft push` / `weft rollback`: one call to the control plane, its outcome printed.
fn operator_command<F, Fut>(target: &OperatorArgs, call: F) -> ExitCode
where
    F: FnOnce(crate::control::api::Api) -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let api = Token::load(
        target.token_file.as_deref(),
        "WEFT_CONTROL_TOKEN",
        "operators'",
    )
    .and_then(|token| crate::control::api::Api::new(&target.control_plane, token, None));
    let api = match api {
        Ok(api) => api,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = main_runtime();
    match runtime.block_on(call(api)) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime of the main thread (signals, admin, control plane; the workers have
/// their own).
fn main_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the main runtime can be built")
}

/// The working directory, against which quick mode resolves relative filter paths.
fn current_dir() -> Result<PathBuf, String> {
    std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))
}

/// `weft run <quick-mode flags> --print-config`: the equivalent YAML on stdout.
fn print_quick_config(quick: &Quick) -> ExitCode {
    let raw = current_dir().and_then(|cwd| quick.raw_config(&cwd).map_err(|e| e.to_string()));
    match raw.and_then(|raw| serde_norway::to_string(&raw).map_err(|e| e.to_string())) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn bundle_command(command: BundleCommand) -> ExitCode {
    match command {
        BundleCommand::Build { dir, output } => {
            match crate::bundle::build(&dir, &output, check_filters) {
                Ok(built) => {
                    println!(
                        "{}: {} modules, {} bytes, sha256 {}",
                        output.display(),
                        built.manifest.modules.len(),
                        built.bytes,
                        built.archive_sha256
                    );
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{e}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
        BundleCommand::Inspect { bundle } => {
            let unpack_dir =
                std::env::temp_dir().join(format!("weft-inspect-{}", std::process::id()));
            let opened = crate::bundle::open(&bundle, &unpack_dir).and_then(|opened| {
                let config = crate::bundle::load_config(&opened, &bundle.display().to_string())?;
                Ok((opened, config))
            });
            let code = match opened {
                Ok((opened, config)) => {
                    if let Some(sha) = &opened.archive_sha256 {
                        println!("bundle {} (sha256 {sha})", bundle.display());
                    } else {
                        println!("bundle {} (directory)", bundle.display());
                    }
                    println!("modules:");
                    for (name, entry) in &opened.manifest.modules {
                        let schema = entry
                            .schema
                            .as_deref()
                            .map(|s| format!(", schema {s}"))
                            .unwrap_or_default();
                        println!("  {name}  sha256 {}{schema}", entry.sha256);
                    }
                    println!("listeners:");
                    for l in &config.listeners {
                        let filters: Vec<_> = l.filters.iter().map(|f| f.name.as_str()).collect();
                        println!(
                            "  {} on {}: {} routes, filters [{}]",
                            l.name,
                            l.address,
                            l.routes.len(),
                            filters.join(", ")
                        );
                    }
                    let clusters: Vec<_> =
                        config.clusters.iter().map(|c| c.name.as_str()).collect();
                    println!("clusters: [{}]", clusters.join(", "));
                    println!("ok: every module matches the manifest and the config is valid");
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{e}");
                    }
                    ExitCode::FAILURE
                }
            };
            let _ = std::fs::remove_dir_all(&unpack_dir);
            code
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(args: &[&str]) -> String {
        match Cli::try_parse_from(std::iter::once("weft").chain(args.iter().copied())) {
            Ok(cli) => panic!("{args:?} was accepted: {cli:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn quick_flags_conflict_with_config() {
        for flag in [
            ["--listen", "127.0.0.1:0"],
            ["--upstream", "127.0.0.1:1"],
            ["--filter", "a.wasm"],
            ["--cluster", "a=127.0.0.1:1"],
            ["--admin", "127.0.0.1:0"],
        ] {
            let err = parse_error(&["run", "--config", "weft.yaml", flag[0], flag[1]]);
            assert!(err.contains("cannot be used with"), "{flag:?}: {err}");
            assert!(err.contains("--config"), "{flag:?}: {err}");
            assert!(err.contains(flag[0]), "{flag:?}: {err}");
        }
        let err = parse_error(&["run", "--config", "weft.yaml", "--print-config"]);
        assert!(err.contains("cannot be used with"), "{err}");
    }

    #[test]
    fn quick_listen_without_upstream_is_refused() {
        let err = parse_error(&["run", "--listen", "127.0.0.1:0"]);
        assert!(err.contains("--upstream"), "{err}");
        let err = parse_error(&["run", "--upstream", "127.0.0.1:1"]);
        assert!(err.contains("--listen"), "{err}");
    }

    #[test]
    fn quick_flags_parse_with_run_options() {
        let cli = Cli::try_parse_from([
            "weft",
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
            "--workers",
            "1",
        ])
        .unwrap();
        let Command::Run { quick, workers, .. } = cli.command else {
            panic!("not run");
        };
        assert_eq!(workers, Some(1));
        assert_eq!(quick.listen.as_deref(), Some("127.0.0.1:0"));
    }
}
