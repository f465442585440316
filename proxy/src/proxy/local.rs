//! Responses weft makes itself: errors, direct responses and redirects.

use http::header::{CONNECTION, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Response, StatusCode};

use super::body::{ProxyBody, full};
use crate::config::{PathMatch, Redirect};

/// A short plain-text response.
pub fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<ProxyBody> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// A plain-text response after which the connection is closed (bad framing, bad request).
pub fn text_and_close(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut res = text(status, body);
    res.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    res
}

/// A 500 for a request a filter failed (or left paused), saying why.
pub fn filter_failure(why: &str) -> Response<ProxyBody> {
    text(StatusCode::INTERNAL_SERVER_ERROR, format!("{why}\n"))
}

/// The reply a filter asked for with `proxy_send_local_response`.
pub fn from_filter(reply: crate::wasm::state::LocalReply) -> Response<ProxyBody> {
    let mut res = Response::new(full(reply.body));
    *res.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(&name),
            HeaderValue::from_bytes(&value),
        ) {
            res.headers_mut().append(name, value);
        }
    }
    res
}

pub fn direct(status: StatusCode, body: bytes::Bytes, content_type: &str) -> Response<ProxyBody> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        res.headers_mut().insert(CONTENT_TYPE, ct);
    }
    res
}

/// The `Location` for a redirect: what the redirect sets, the rest from the request.
pub fn redirect_location(
    redirect: &Redirect,
    matched: Option<&PathMatch>,
    authority: Option<&str>,
    path: &str,
    query: Option<&str>,
) -> String {
    let scheme = redirect.scheme.as_deref().unwrap_or("http");
    let host = redirect
        .host
        .as_deref()
        .or(authority)
        .unwrap_or("localhost");
    let new_path = if let Some(p) = &redirect.path {
        p.clone()
    } else if let (Some(rewrite), Some(PathMatch::Prefix(prefix))) =
        (&redirect.prefix_rewrite, matched)
    {
        format!(
            "{rewrite}{}",
            path.strip_prefix(prefix.as_str()).unwrap_or(path)
        )
    } else {
        path.to_string()
    };
    match query {
        Some(q) => format!("{scheme}://{host}{new_path}?{q}"),
        None => format!("{scheme}://{host}{new_path}"),
    }
}

pub fn redirect(status: StatusCode, location: &str) -> Response<ProxyBody> {
    let mut res = text(status, "");
    match HeaderValue::from_str(location) {
        Ok(v) => {
            res.headers_mut().insert(LOCATION, v);
            res
        }
        Err(_) => text(
            StatusCode::BAD_REQUEST,
            "cannot build a redirect for this request\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(host: Option<&str>, path: Option<&str>, rewrite: Option<&str>) -> Redirect {
        Redirect {
            status: StatusCode::MOVED_PERMANENTLY,
            scheme: Some("https".into()),
            host: host.map(Into::into),
            path: path.map(Into::into),
            prefix_rewrite: rewrite.map(Into::into),
        }
    }

    #[test]
    fn locations() {
        let prefix = PathMatch::Prefix("/old".into());
        assert_eq!(
            redirect_location(
                &r(None, None, None),
                None,
                Some("a.test:8080"),
                "/x",
                Some("q=1")
            ),
            "https://a.test:8080/x?q=1"
        );
        assert_eq!(
            redirect_location(
                &r(Some("b.test"), Some("/new"), None),
                None,
                Some("a.test"),
                "/x",
                None
            ),
            "https://b.test/new"
        );
        assert_eq!(
            redirect_location(
                &r(None, None, Some("/new")),
                Some(&prefix),
                Some("a.test"),
                "/old/y",
                None
            ),
            "https://a.test/new/y"
        );
    }
}
