//! Unit tests of the pure logic. Every key here is generated at test time or derived from
//! a fixed test-only seed: none is a real secret.

mod api_keys;
mod basic;
mod engine;
mod ext_authz;
mod filter;
mod fixtures;
mod jwks;
mod jwt;
mod rules;
mod support;
