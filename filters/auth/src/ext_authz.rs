//! External authorization, after Envoy's HTTP ext_authz: the check request sent to the
//! authorization service, and what its answer means.
//!
//! The check request has the original method, `path_prefix` + the original path, the
//! configured `:authority`, the request headers named in `allowed_headers`, and the headers
//! this filter's authentication set (such as `x-consumer`). It has no body. A 2xx answer
//! allows the request, with the answer's headers named in `allowed_upstream_headers` set on
//! it. Any other answer denies it with that status, body and the headers named in
//! `allowed_client_headers`. No answer (unreachable, timeout) denies with
//! `status_on_error` (403), or allows when `failure_mode_allow` is set.

use crate::config::ExtAuthz;
use crate::engine::{Decision, Grant, Reply};
use crate::request::RequestView;

/// The headers (pseudo-headers first) of the check request.
pub fn check_request(cfg: &ExtAuthz, req: &RequestView, grant: &Grant) -> Vec<(String, String)> {
    let mut headers = vec![
        (":method".to_string(), req.method.clone()),
        (
            ":path".to_string(),
            format!("{}{}", cfg.path_prefix, req.path),
        ),
        (":authority".to_string(), cfg.authority.clone()),
    ];
    for (name, value) in &req.headers {
        let set_by_us = grant.set_headers.iter().any(|(n, _)| n == name);
        if !name.starts_with(':') && !set_by_us && cfg.allowed_headers.contains(name) {
            headers.push((name.clone(), value.clone()));
        }
    }
    headers.extend(grant.set_headers.iter().cloned());
    headers
}

/// What the service's answer means. `status` is `None` when there was no answer.
pub fn outcome(
    cfg: &ExtAuthz,
    status: Option<u32>,
    headers: &[(String, String)],
    body: &[u8],
    mut grant: Grant,
) -> Decision {
    let Some(status) = status else {
        return if cfg.failure_mode_allow {
            Decision::Allow(grant)
        } else {
            Decision::Deny(Reply::text(
                cfg.status_on_error,
                "authorization service unavailable",
            ))
        };
    };
    if (200..300).contains(&status) {
        for (name, value) in headers {
            if cfg.allowed_upstream_headers.contains(name) {
                grant.set_headers.retain(|(n, _)| n != name);
                grant.set_headers.push((name.clone(), value.clone()));
            }
        }
        return Decision::Allow(grant);
    }
    let status = if (300..=599).contains(&status) {
        status
    } else {
        403
    };
    let headers = headers
        .iter()
        .filter(|(n, _)| cfg.allowed_client_headers.contains(n))
        .cloned()
        .collect();
    Decision::Deny(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}
