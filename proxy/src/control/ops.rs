//! Operators' commands: `weft push BUNDLE` and `weft rollback VERSION`.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::Method;

use super::api::Api;

/// Pushes the bundle archive at `bundle`; prints the new version, or the control plane's
/// reasons for refusing it.
pub async fn push(api: &Api, bundle: &Path) -> Result<String, String> {
    let bytes = std::fs::read(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let answer = api
        .call(
            Method::POST,
            "/v1/bundles",
            Bytes::from(bytes),
            "application/gzip",
            Duration::from_secs(300),
        )
        .await?;
    match answer.status {
        201 => {
            let info: serde_json::Value =
                serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
            Ok(format!(
                "pushed {}: version {} (sha256 {}), now active",
                bundle.display(),
                info["version"],
                info["sha256"].as_str().unwrap_or_default()
            ))
        }
        400 => {
            let refused: serde_json::Value =
                serde_json::from_slice(&answer.body).unwrap_or_default();
            let errors: Vec<String> = refused["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_else(|| vec![answer.text()]);
            Err(format!(
                "the control plane refused the bundle:\n  {}",
                errors.join("\n  ")
            ))
        }
        status => Err(format!(
            "the control plane answered {status}: {}",
            answer.text()
        )),
    }
}

/// Makes `version` active again (as a new version).
pub async fn rollback(api: &Api, version: u64) -> Result<String, String> {
    let answer = api
        .post_json("/v1/rollback", &serde_json::json!({ "version": version }))
        .await?;
    match answer.status {
        200 => {
            let info: serde_json::Value =
                serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
            Ok(format!(
                "rolled back to version {version}: now active as version {}",
                info["version"]
            ))
        }
        status => Err(format!(
            "the control plane answered {status}: {}",
            answer.text()
        )),
    }
}
