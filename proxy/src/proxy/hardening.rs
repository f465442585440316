//! Edge checks on a request head before anything else looks at it: header limits (431) and
//! message framing (400 and close). weft's HTTP/1 head parser (`server::h1::head`) applies
//! them as it parses (with [`FramingCheck`] and [`host_count`]); `check` (all of them) runs
//! on HTTP/2 requests.

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderMap, StatusCode, Version};

use crate::config::Limits;

/// Why a request was refused before routing.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    /// 431: more or bigger headers than the listener allows.
    HeaderLimits(&'static str),
    /// 400 + close: the body framing is ambiguous (request smuggling).
    BadFraming(&'static str),
    /// 400 + close: the head is malformed in another way.
    BadRequest(&'static str),
}

impl Rejection {
    /// Counts the refusal on the listener's metrics and makes its answer, after which the
    /// connection closes.
    pub fn answer(
        self,
        metrics: &crate::metrics::ListenerMetrics,
    ) -> http::Response<super::ProxyBody> {
        let (counter, status, why) = match self {
            Rejection::HeaderLimits(why) => (
                &metrics.rejected_header_limits,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                why,
            ),
            Rejection::BadFraming(why) => {
                (&metrics.rejected_bad_framing, StatusCode::BAD_REQUEST, why)
            }
            Rejection::BadRequest(why) => {
                (&metrics.rejected_bad_request, StatusCode::BAD_REQUEST, why)
            }
        };
        counter.inc();
        super::local::text_and_close(status, why)
    }
}

/// Every check, for a head weft did not parse itself (HTTP/2).
pub fn check(parts: &Parts, limits: &Limits) -> Result<(), Rejection> {
    let headers = &parts.headers;
    if headers.len() > limits.max_request_headers {
        return Err(Rejection::HeaderLimits("too many request headers\n"));
    }
    let target = parts.uri.scheme_str().map_or(0, |s| s.len() + 3)
        + parts.uri.authority().map_or(0, |a| a.as_str().len())
        + parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let line = parts.method.as_str().len() + target + 12;
    let size: usize = line
        + headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if size > limits.max_request_header_bytes {
        return Err(Rejection::HeaderLimits("request headers too large\n"));
    }
    check_framing(headers)?;
    check_host(parts)
}

/// What an HTTP/1.x head still needs after `server::h1::head`, which applied the limits and
/// the framing rules as it parsed: exactly one Host on HTTP/1.1.
pub fn check_host(parts: &Parts) -> Result<(), Rejection> {
    host_count(parts.version, parts.headers.get_all(HOST).iter().count())
}

/// An HTTP/1.1 request carries exactly one Host header (RFC 9112 §3.2).
pub fn host_count(version: Version, hosts: usize) -> Result<(), Rejection> {
    if version == Version::HTTP_11 && hosts != 1 {
        return Err(Rejection::BadRequest(
            "an HTTP/1.1 request needs exactly one Host header\n",
        ));
    }
    Ok(())
}

pub fn check_framing(headers: &HeaderMap) -> Result<(), Rejection> {
    let mut framing = FramingCheck::default();
    for value in headers.get_all(CONTENT_LENGTH) {
        framing.length(value.as_bytes());
    }
    for value in headers.get_all(TRANSFER_ENCODING) {
        framing.encoding(value.as_bytes());
    }
    framing.verdict().map(|_| ())
}

/// The framing rules against request smuggling, fed the `content-length` and
/// `transfer-encoding` values of a head as they are read (the HTTP/1 parser gives each as
/// it meets it; [`check_framing`] takes them from a header map).
#[derive(Debug, Default)]
pub struct FramingCheck {
    lengths: u32,
    /// The last `content-length`, `None` when invalid.
    length: Option<u64>,
    encodings: u32,
    chunked: u32,
    ends_chunked: bool,
}

/// How a request body is framed, by its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    None,
    Length(u64),
    Chunked,
}

impl FramingCheck {
    pub fn length(&mut self, value: &[u8]) {
        self.lengths += 1;
        self.length = super::headers::parse_content_length(value);
    }

    pub fn encoding(&mut self, value: &[u8]) {
        self.encodings += 1;
        // A value that is not visible ASCII cannot be a list of codings.
        if !super::headers::visible_ascii(value) {
            self.ends_chunked = false;
            return;
        }
        for coding in value.split(|&b| b == b',') {
            self.ends_chunked = coding.trim_ascii().eq_ignore_ascii_case(b"chunked");
            self.chunked += u32::from(self.ends_chunked);
        }
    }

    /// The body's framing, or why the head is refused: both headers, more than one
    /// `content-length` or an invalid one, codings that do not end in a single `chunked`.
    pub fn verdict(&self) -> Result<BodyLength, Rejection> {
        if self.lengths > 0 && self.encodings > 0 {
            return Err(Rejection::BadFraming(
                "both Content-Length and Transfer-Encoding\n",
            ));
        }
        if self.lengths > 1 {
            return Err(Rejection::BadFraming("more than one Content-Length\n"));
        }
        if self.lengths == 1 {
            return match self.length {
                None => Err(Rejection::BadFraming("invalid Content-Length\n")),
                Some(0) => Ok(BodyLength::None),
                Some(n) => Ok(BodyLength::Length(n)),
            };
        }
        if self.encodings > 0 {
            if !self.ends_chunked || self.chunked != 1 {
                return Err(Rejection::BadFraming(
                    "Transfer-Encoding must end in a single chunked\n",
                ));
            }
            return Ok(BodyLength::Chunked);
        }
        Ok(BodyLength::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::small()
    }

    fn head(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn limits_give_431() {
        let many: Vec<_> = (0..6).map(|_| ("x-a", "1")).collect();
        assert!(matches!(
            check(&head(&many), &limits()),
            Err(Rejection::HeaderLimits(_))
        ));
        let big = "v".repeat(1024);
        assert!(matches!(
            check(&head(&[("host", "a"), ("x-big", &big)]), &limits()),
            Err(Rejection::HeaderLimits(_))
        ));
        assert_eq!(check(&head(&[("host", "a")]), &limits()), Ok(()));
    }

    #[test]
    fn framing() {
        let bad: &[&[(&str, &str)]] = &[
            &[
                ("host", "a"),
                ("content-length", "3"),
                ("transfer-encoding", "chunked"),
            ],
            &[
                ("host", "a"),
                ("content-length", "3"),
                ("content-length", "3"),
            ],
            &[("host", "a"), ("content-length", "+3")],
            &[("host", "a"), ("content-length", "3, 3")],
            &[("host", "a"), ("transfer-encoding", "chunked, identity")],
            &[
                ("host", "a"),
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            &[("host", "a"), ("transfer-encoding", "gzip")],
        ];
        for h in bad {
            assert!(
                matches!(check(&head(h), &limits()), Err(Rejection::BadFraming(_))),
                "{h:?}"
            );
        }
        assert_eq!(
            check(
                &head(&[("host", "a"), ("transfer-encoding", "gzip, chunked")]),
                &limits()
            ),
            Ok(())
        );
        assert_eq!(
            check(&head(&[("host", "a"), ("content-length", "10")]), &limits()),
            Ok(())
        );
    }

    #[test]
    fn host_is_required_once_on_http11() {
        assert!(matches!(
            check(&head(&[]), &limits()),
            Err(Rejection::BadRequest(_))
        ));
        assert!(matches!(
            check(&head(&[("host", "a"), ("host", "b")]), &limits()),
            Err(Rejection::BadRequest(_))
        ));
    }
}
