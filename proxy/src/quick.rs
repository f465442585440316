//! Quick mode: `weft run --listen ADDR --upstream ADDR --filter FILE.wasm ...` builds the
//! config in memory instead of reading a file.
//!
//! The flags become one YAML-shaped document (one listener `main`, one cluster `upstream`
//! with a catch-all route to it, the filters in the order given, the extra `--cluster`s and
//! the admin address), which serde turns into the same [`RawConfig`] a file would give,
//! defaults included. The CLI then validates it with [`crate::config::load_raw`] and serves
//! it with `server::run`, so quick mode behaves exactly as the YAML printed by
//! `--print-config` does.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use clap::{ArgMatches, Args};
use serde_json::{Value, json};

use crate::config::RawConfig;

/// The config source quick mode reports (errors, `/config_dump`).
pub const SOURCE: &str = "<command line>";
/// The name of quick mode's one listener.
pub const LISTENER: &str = "main";
/// The name of the cluster `--upstream` becomes.
pub const UPSTREAM_CLUSTER: &str = "upstream";

/// The quick-mode flags of `weft run` (all of them conflict with `--config`).
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Quick mode (instead of --config)")]
pub struct QuickArgs {
    /// Address of the one listener ("main"); port 0 picks a free port.
    #[arg(long, value_name = "ADDR", requires = "upstream")]
    pub listen: Option<String>,
    /// Where the listener's catch-all route forwards (cluster "upstream").
    #[arg(long, value_name = "ADDR", requires = "listen")]
    pub upstream: Option<String>,
    /// A proxy-wasm filter module (relative to the current directory); repeat for a chain,
    /// request phases run in the order given.
    #[arg(long, value_name = "FILE.wasm", requires = "listen")]
    pub filter: Vec<PathBuf>,
    /// Plugin configuration of the --filter right before it: JSON if it parses as JSON,
    /// else passed as a plain string.
    #[arg(long, value_name = "JSON", requires = "filter")]
    pub filter_config: Vec<String>,
    /// An extra cluster for http/gRPC calls made by filters; repeatable.
    #[arg(long, value_name = "NAME=ADDR", value_parser = parse_cluster, requires = "listen")]
    pub cluster: Vec<ClusterArg>,
    /// Address of the admin endpoint [default: 127.0.0.1:9901].
    #[arg(long, value_name = "ADDR", requires = "listen")]
    pub admin: Option<String>,
    /// Print the equivalent YAML config (for `--config`) and exit.
    #[arg(long, requires = "listen")]
    pub print_config: bool,
}

/// One `--cluster NAME=ADDR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterArg {
    pub name: String,
    pub address: String,
}

/// Parses `--cluster NAME=ADDR`; the error names the value.
pub fn parse_cluster(text: &str) -> Result<ClusterArg, String> {
    let Some((name, address)) = text.split_once('=') else {
        return Err(format!(
            "{text:?} is not NAME=ADDR (for example auth=127.0.0.1:9000)"
        ));
    };
    let (name, address) = (name.trim(), address.trim());
    if name.is_empty() {
        return Err(format!("{text:?} has no cluster name before '='"));
    }
    let has_port = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !has_port {
        return Err(format!(
            "{text:?}: the address {address:?} is not host:port (for example 127.0.0.1:9000)"
        ));
    }
    Ok(ClusterArg {
        name: name.to_string(),
        address: address.to_string(),
    })
}

/// One filter of the chain with its `--filter-config`, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuickFilter {
    pub module: PathBuf,
    pub config: Option<String>,
}

/// Everything quick mode was given, checked and in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quick {
    pub listen: String,
    pub upstream: String,
    pub filters: Vec<QuickFilter>,
    pub clusters: Vec<ClusterArg>,
    /// `None`: the default admin address, as in a file without `admin:`.
    pub admin: Option<String>,
    pub print_config: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuickError {
    #[error("--listen needs --upstream (and --upstream needs --listen)")]
    Incomplete,
    #[error(
        "--filter-config {config:?} comes before any --filter: each --filter-config applies to the --filter right before it"
    )]
    ConfigBeforeFilter { config: String },
    #[error("--filter {}: has two --filter-config values ({first:?}, {second:?}); give one", module.display())]
    TwoConfigs {
        module: PathBuf,
        first: String,
        second: String,
    },
    #[error("--cluster {name}={address}: the name {name:?} is taken by --upstream")]
    ReservedCluster { name: String, address: String },
    #[error("--cluster {name}={address}: a cluster named {name:?} is given twice")]
    DuplicateCluster { name: String, address: String },
    #[error("--filter {}: the path is not valid UTF-8", .0.display())]
    NotUtf8(PathBuf),
}

impl Quick {
    /// Quick mode from the parsed flags; `matches` (those of `weft run`) gives their order,
    /// which pairs each `--filter-config` with its `--filter`. `None` when no quick-mode
    /// flag was given.
    pub fn from_args(args: QuickArgs, matches: &ArgMatches) -> Result<Option<Quick>, QuickError> {
        let QuickArgs {
            listen,
            upstream,
            filter,
            filter_config,
            cluster,
            admin,
            print_config,
        } = args;
        let (listen, upstream) = match (listen, upstream) {
            (Some(listen), Some(upstream)) => (listen, upstream),
            (None, None) => {
                let any = !filter.is_empty()
                    || !filter_config.is_empty()
                    || !cluster.is_empty()
                    || admin.is_some()
                    || print_config;
                return if any {
                    Err(QuickError::Incomplete)
                } else {
                    Ok(None)
                };
            }
            _ => return Err(QuickError::Incomplete),
        };
        let indices = |id: &str| -> Vec<usize> {
            matches
                .indices_of(id)
                .map(|i| i.collect())
                .unwrap_or_default()
        };
        let filters = pair_filters(
            indices("filter").into_iter().zip(filter).collect(),
            indices("filter_config")
                .into_iter()
                .zip(filter_config)
                .collect(),
        )?;
        let mut names = HashSet::new();
        for c in &cluster {
            if c.name == UPSTREAM_CLUSTER {
                return Err(QuickError::ReservedCluster {
                    name: c.name.clone(),
                    address: c.address.clone(),
                });
            }
            if !names.insert(c.name.as_str()) {
                return Err(QuickError::DuplicateCluster {
                    name: c.name.clone(),
                    address: c.address.clone(),
                });
            }
        }
        Ok(Some(Quick {
            listen,
            upstream,
            filters,
            clusters: cluster,
            admin,
            print_config,
        }))
    }

    /// The config these flags stand for, as a file would give it: the document is built
    /// with the schema's field names and serde fills in every default. Relative module
    /// paths are made absolute against `cwd`, so the printed YAML works from anywhere.
    pub fn raw_config(&self, cwd: &Path) -> Result<RawConfig, QuickError> {
        let names = filter_names(self.filters.iter().map(|f| f.module.as_path()));
        let filters = self
            .filters
            .iter()
            .zip(names)
            .map(|(f, name)| {
                // `components()` drops the `.` of `./x.wasm`.
                let module: PathBuf = cwd.join(&f.module).components().collect();
                let module = module
                    .into_os_string()
                    .into_string()
                    .map_err(|_| QuickError::NotUtf8(f.module.clone()))?;
                let mut filter = json!({ "name": name, "module": module });
                if let Some(config) = &f.config {
                    filter["config"] = filter_config_value(config);
                }
                Ok(filter)
            })
            .collect::<Result<Vec<Value>, QuickError>>()?;
        let mut clusters = vec![json!({ "name": UPSTREAM_CLUSTER, "endpoints": [self.upstream] })];
        clusters.extend(
            self.clusters
                .iter()
                .map(|c| json!({ "name": c.name, "endpoints": [c.address] })),
        );
        let mut document = json!({
            "listeners": [{
                "name": LISTENER,
                "address": self.listen,
                "filters": filters,
                "routes": [{ "cluster": UPSTREAM_CLUSTER }],
            }],
            "clusters": clusters,
        });
        if let Some(admin) = &self.admin {
            document["admin"] = json!({ "address": admin });
        }
        Ok(serde_json::from_value(document)
            .expect("quick mode writes a document of the config schema"))
    }
}

/// Pairs `(index, value)` lists of `--filter` and `--filter-config` by command-line
/// position: a config belongs to the closest `--filter` before it.
pub fn pair_filters(
    filters: Vec<(usize, PathBuf)>,
    configs: Vec<(usize, String)>,
) -> Result<Vec<QuickFilter>, QuickError> {
    let positions: Vec<usize> = filters.iter().map(|(i, _)| *i).collect();
    let mut out: Vec<QuickFilter> = filters
        .into_iter()
        .map(|(_, module)| QuickFilter {
            module,
            config: None,
        })
        .collect();
    for (at, config) in configs {
        // Number of filters given before this config; the last of them owns it.
        let before = positions.partition_point(|&p| p < at);
        let Some(owner) = before.checked_sub(1).map(|k| &mut out[k]) else {
            return Err(QuickError::ConfigBeforeFilter { config });
        };
        if let Some(first) = &owner.config {
            return Err(QuickError::TwoConfigs {
                module: owner.module.clone(),
                first: first.clone(),
                second: config,
            });
        }
        owner.config = Some(config);
    }
    Ok(out)
}

/// Filter names from the modules' file stems, made unique with `-2`, `-3`, ... when
/// repeated (`headers`, `headers-2`).
pub fn filter_names<'a>(modules: impl IntoIterator<Item = &'a Path>) -> Vec<String> {
    let mut used = HashSet::new();
    modules
        .into_iter()
        .map(|module| {
            let stem = module
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "filter".to_string());
            let mut name = stem.clone();
            let mut n = 2;
            while !used.insert(name.clone()) {
                name = format!("{stem}-{n}");
                n += 1;
            }
            name
        })
        .collect()
}

/// `--filter-config` text as the `config:` field: JSON when it parses, else the string
/// itself. A JSON `null` stays the string `null` (YAML's `config: null` would mean no
/// config at all), so the filter gets the bytes it was given either way.
pub fn filter_config_value(text: &str) -> Value {
    match serde_json::from_str(text) {
        Ok(Value::Null) | Err(_) => Value::String(text.to_string()),
        Ok(value) => value,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        quick: QuickArgs,
    }

    fn quick(args: &[&str]) -> Result<Option<Quick>, String> {
        let matches = TestCli::command()
            .try_get_matches_from(std::iter::once("weft").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let parsed = TestCli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        Quick::from_args(parsed.quick, &matches).map_err(|e| e.to_string())
    }

    const BASE: [&str; 4] = ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9000"];

    fn with_base(rest: &[&'static str]) -> Vec<&'static str> {
        BASE.iter().chain(rest).copied().collect()
    }

    fn filter(module: &str, config: Option<&str>) -> QuickFilter {
        QuickFilter {
            module: module.into(),
            config: config.map(str::to_string),
        }
    }

    #[test]
    fn quick_mode_is_off_without_its_flags() {
        assert_eq!(quick(&[]), Ok(None));
    }

    #[test]
    fn quick_filter_configs_pair_with_the_filter_before_them() {
        let q = quick(&with_base(&[
            "--filter",
            "a.wasm",
            "--filter-config",
            r#"{"tag":"x"}"#,
            "--filter",
            "b.wasm",
            "--filter",
            "c.wasm",
            "--filter-config=plain",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            q.filters,
            vec![
                filter("a.wasm", Some(r#"{"tag":"x"}"#)),
                filter("b.wasm", None),
                filter("c.wasm", Some("plain")),
            ]
        );
    }

    #[test]
    fn quick_flag_order_among_other_flags_does_not_matter() {
        // Other flags between a filter and its config do not change the pairing.
        let q = quick(&[
            "--filter",
            "a.wasm",
            "--listen",
            "127.0.0.1:0",
            "--filter-config",
            "one",
            "--upstream",
            "127.0.0.1:1",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(q.filters, vec![filter("a.wasm", Some("one"))]);
    }

    #[test]
    fn quick_filter_config_before_any_filter_is_an_error() {
        let err = quick(&with_base(&[
            "--filter-config",
            "early",
            "--filter",
            "a.wasm",
        ]))
        .unwrap_err();
        assert!(
            err.contains("--filter-config \"early\" comes before any --filter"),
            "{err}"
        );
    }

    #[test]
    fn quick_two_configs_for_one_filter_is_an_error() {
        let err = quick(&with_base(&[
            "--filter",
            "a.wasm",
            "--filter-config",
            "1",
            "--filter-config",
            "2",
        ]))
        .unwrap_err();
        assert!(
            err.contains("--filter a.wasm: has two --filter-config"),
            "{err}"
        );
    }

    #[test]
    fn quick_filter_config_without_filter_is_refused_by_clap() {
        let err = quick(&with_base(&["--filter-config", "x"])).unwrap_err();
        assert!(err.contains("--filter"), "{err}");
    }

    #[test]
    fn quick_listen_and_upstream_need_each_other() {
        let err = quick(&["--listen", "127.0.0.1:0"]).unwrap_err();
        assert!(err.contains("--upstream"), "{err}");
        let err = quick(&["--upstream", "127.0.0.1:1"]).unwrap_err();
        assert!(err.contains("--listen"), "{err}");
        let err = quick(&["--filter", "a.wasm"]).unwrap_err();
        assert!(err.contains("--listen"), "{err}");
    }

    #[test]
    fn quick_filter_names_come_from_stems_and_are_made_unique() {
        let paths = [
            "headers.wasm",
            "/x/headers.wasm",
            "add_header.wasm",
            "dir/headers.wasm",
            "headers-2.wasm",
            ".wasm",
            "/",
        ];
        let names = filter_names(paths.iter().map(Path::new));
        assert_eq!(
            names,
            [
                "headers",
                "headers-2",
                "add_header",
                "headers-3",
                "headers-2-2",
                ".wasm",
                "filter"
            ]
        );
    }

    #[test]
    fn quick_cluster_values_parse() {
        assert_eq!(
            parse_cluster("auth=127.0.0.1:9000"),
            Ok(ClusterArg {
                name: "auth".into(),
                address: "127.0.0.1:9000".into()
            })
        );
        assert_eq!(
            parse_cluster("grpc=localhost:50051").unwrap().address,
            "localhost:50051"
        );
        assert_eq!(parse_cluster("v6=[::1]:80").unwrap().address, "[::1]:80");
    }

    #[test]
    fn quick_cluster_errors_name_the_bad_value() {
        for (bad, says) in [
            ("auth", "is not NAME=ADDR"),
            ("=127.0.0.1:1", "no cluster name"),
            ("auth=", "is not host:port"),
            ("auth=127.0.0.1", "is not host:port"),
            ("auth=127.0.0.1:http", "is not host:port"),
            ("auth=:80", "is not host:port"),
        ] {
            let err = parse_cluster(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
            assert!(err.contains(says), "{bad}: {err}");
        }
        // Through clap too, with the flag's name.
        let err = quick(&with_base(&["--cluster", "auth@127.0.0.1:1"])).unwrap_err();
        assert!(err.contains("auth@127.0.0.1:1"), "{err}");
        assert!(err.contains("--cluster"), "{err}");
    }

    #[test]
    fn quick_cluster_names_must_be_unique_and_not_upstream() {
        let err = quick(&with_base(&["--cluster", "upstream=127.0.0.1:1"])).unwrap_err();
        assert!(err.contains("taken by --upstream"), "{err}");
        let err = quick(&with_base(&[
            "--cluster",
            "a=127.0.0.1:1",
            "--cluster",
            "a=127.0.0.1:2",
        ]))
        .unwrap_err();
        assert!(err.contains("--cluster a=127.0.0.1:2"), "{err}");
        assert!(err.contains("given twice"), "{err}");
    }

    #[test]
    fn quick_filter_config_is_json_when_it_parses() {
        assert_eq!(filter_config_value(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(filter_config_value("[1,2]"), json!([1, 2]));
        assert_eq!(filter_config_value("42"), json!(42));
        assert_eq!(filter_config_value(r#""quoted""#), json!("quoted"));
        assert_eq!(filter_config_value("plain text"), json!("plain text"));
        assert_eq!(filter_config_value("{not json"), json!("{not json"));
        assert_eq!(filter_config_value("null"), json!("null"));
    }

    fn sample() -> Quick {
        quick(&with_base(&[
            "--filter",
            "./f/headers.wasm",
            "--filter-config",
            r#"{"tag":"quick"}"#,
            "--filter",
            "/abs/headers.wasm",
            "--cluster",
            "auth=127.0.0.1:9100",
            "--admin",
            "127.0.0.1:0",
        ]))
        .unwrap()
        .unwrap()
    }

    #[test]
    fn quick_raw_config_is_the_documented_shape() {
        let raw = sample().raw_config(Path::new("/work")).unwrap();
        assert_eq!(raw.admin.address.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(raw.listeners.len(), 1);
        let l = &raw.listeners[0];
        assert_eq!(
            (l.name.as_str(), l.address.as_str()),
            ("main", "127.0.0.1:0")
        );
        assert!(l.access_log, "defaults are filled in as for a file");
        let filters: Vec<(&str, &str)> = l
            .filters
            .iter()
            .map(|f| (f.name.as_str(), f.module.as_str()))
            .collect();
        assert_eq!(
            filters,
            [
                ("headers", "/work/f/headers.wasm"),
                ("headers-2", "/abs/headers.wasm")
            ]
        );
        assert_eq!(l.filters[0].config, Some(json!({"tag": "quick"})));
        assert_eq!(l.filters[1].config, None);
        assert_eq!(l.routes.len(), 1);
        assert_eq!(l.routes[0].cluster.as_deref(), Some("upstream"));
        assert!(l.routes[0].matcher.path.is_none(), "catch-all");
        let clusters: Vec<(&str, Vec<&str>)> = raw
            .clusters
            .iter()
            .map(|c| {
                let endpoints = c.endpoints.iter().map(|e| match e {
                    crate::config::raw::EndpointConfig::Address(a) => a.as_str(),
                    crate::config::raw::EndpointConfig::Weighted { address, .. } => {
                        address.as_str()
                    }
                });
                (c.name.as_str(), endpoints.collect())
            })
            .collect();
        assert_eq!(
            clusters,
            [
                ("upstream", vec!["127.0.0.1:9000"]),
                ("auth", vec!["127.0.0.1:9100"])
            ]
        );
    }

    #[test]
    fn quick_admin_defaults_like_a_file() {
        let q = quick(&BASE).unwrap().unwrap();
        let raw = q.raw_config(Path::new("/")).unwrap();
        assert_eq!(raw.admin.address.as_deref(), Some("127.0.0.1:9901"));
        assert!(raw.listeners[0].filters.is_empty());
    }

    #[test]
    fn quick_config_equals_its_printed_yaml() {
        let raw = sample().raw_config(Path::new("/work")).unwrap();
        let yaml = serde_norway::to_string(&raw).unwrap();
        let reparsed = crate::config::parse("printed.yaml", &yaml).unwrap();
        assert_eq!(
            serde_json::to_value(&raw).unwrap(),
            serde_json::to_value(&reparsed).unwrap(),
            "{yaml}"
        );
        // And the same validation path as a file (modules do not exist here).
        let errors = crate::config::load_raw(SOURCE, raw, Path::new("/work")).unwrap_err();
        let errors: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            [
                "<command line>: listeners[0].filters[0].module: no module file at /work/f/headers.wasm",
                "<command line>: listeners[0].filters[1].module: no module file at /abs/headers.wasm",
            ]
        );
    }

    #[test]
    fn quick_config_without_filters_validates() {
        let q = quick(&BASE).unwrap().unwrap();
        let raw = q.raw_config(Path::new("/")).unwrap();
        let config = crate::config::load_raw(SOURCE, raw, Path::new("/")).unwrap();
        assert_eq!(config.listeners[0].name, "main");
        assert_eq!(config.clusters[0].name, "upstream");
        assert_eq!(config.source, SOURCE);
    }
}
