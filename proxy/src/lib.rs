//! Weft: a programmable HTTP proxy whose filter chain is made of proxy-wasm modules.
//!
//! The layout follows the life of a request (see docs/architecture.md):
//! [`server`] accepts on per-worker sockets, [`proxy`] checks, routes ([`routing`]) and
//! forwards to a [`cluster`], all from one immutable [`snapshot`] of the [`config`].

pub mod admin;
pub mod bundle;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod demo;
pub mod error;
pub mod http1;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod quick;
pub mod reload;
pub mod routing;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod tls;
pub mod wasm;
