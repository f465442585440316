//! HTTP/1.1 on the wire to an upstream (RFC 9112): the request head weft writes and the
//! framing of the body after it, the response head it reads and the framing of the
//! response body. The chunked coding, which weft's server uses too, is in [`crate::http1`].
//!
//! Framing is always derived here, never passed through: a request's `content-length` or
//! `transfer-encoding` comes from its body (or from a `content-length` its sender set),
//! and a response's from its status, its headers and the request method (§6.3).

use bytes::{Buf, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use http_body::SizeHint;
use std::fmt::Write;
use std::mem::MaybeUninit;

use crate::http1::{ChunkError, encode_field};
use crate::proxy::{
    ConnectionField, is_hop_by_hop, parse_content_length as parse_length, visible_ascii,
};

/// The most headers a response head (or a trailer section) may carry.
const MAX_HEADERS: usize = 128;
/// The most bytes a response head may take; past it the response is refused.
pub const MAX_HEAD_BYTES: usize = 256 * 1024;

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed response head: {0}")]
    Head(httparse::Error),
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("invalid response header {0:?}")]
    Header(String),
    #[error("invalid or conflicting content-length in the response")]
    ContentLength,
    #[error("the upstream switched protocols (101), which weft does not forward")]
    Upgrade,
    #[error("malformed chunked response body: {0}")]
    Body(#[from] ChunkError),
}

/// How the request body goes out after the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    /// No body follows the head.
    Empty,
    /// Exactly this many bytes follow.
    Length(u64),
    /// Chunked coding, ended by a last chunk (and any trailers).
    Chunked,
}

/// Writes the request head for `head` into `out` and says how its body follows.
/// `ended` says whether the body has already ended (nothing to send), `hint` its size.
pub fn encode_request_head(
    head: &http::request::Parts,
    ended: bool,
    hint: &SizeHint,
    out: &mut BytesMut,
) -> Outgoing {
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    let target = head.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // A length its sender set stands (a caller that knows its body); any other framing
    // header is not ours to pass on.
    let declared = single_length(&head.headers);
    for (name, value) in &head.headers {
        if name == TRANSFER_ENCODING || (name == CONTENT_LENGTH && declared.is_none()) {
            continue;
        }
        encode_field(name, value, out);
    }
    let framing = if let Some(n) = declared {
        if n == 0 {
            Outgoing::Empty
        } else {
            Outgoing::Length(n)
        }
    } else if ended || hint.exact() == Some(0) {
        // Methods whose requests normally carry a body say that this one is empty.
        if matches!(head.method, Method::POST | Method::PUT | Method::PATCH) {
            out.extend_from_slice(b"content-length: 0\r\n");
        }
        Outgoing::Empty
    } else if let Some(n) = hint.exact() {
        let _ = write!(out, "content-length: {n}\r\n");
        Outgoing::Length(n)
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Outgoing::Chunked
    };
    out.extend_from_slice(b"\r\n");
    framing
}

/// The value of a lone, valid `content-length`, if the headers carry exactly that.
fn single_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_length(first.as_bytes())
}

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// A response head read off the wire.
#[derive(Debug)]
pub struct ResponseHead {
    pub parts: http::response::Parts,
    pub body: Incoming,
    /// Whether the connection may carry another exchange once this one is complete.
    pub keep_alive: bool,
}

/// Reads a final response head from the front of `buf`, skipping interim (1xx) ones;
/// `None` while the head is incomplete. What the head took is removed from `buf`.
pub fn parse_response_head(
    buf: &mut BytesMut,
    request_method: &Method,
) -> Result<Option<ResponseHead>, WireError> {
    loop {
        // Uninitialised: zeroing 128 headers (4 KiB) per response showed in profiles.
        let mut headers: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS] =
            [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            buf,
            &mut headers,
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Err(WireError::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(error) => return Err(WireError::Head(error)),
        };
        let code = response.code.unwrap_or_default();
        let version = if response.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        let status =
            StatusCode::from_u16(code).map_err(|_| WireError::Head(httparse::Error::Status))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(WireError::Upgrade);
        }
        if status.is_informational() {
            // 100 Continue, 103 Early Hints: not forwarded; the final response follows.
            buf.advance(len);
            continue;
        }
        // One pass over the fields: framing and persistence are read as they come, and the
        // hop-by-hop fields (about this connection only) are not kept. Values are slices of
        // the head, which is kept (not copied per value).
        let base = buf.as_ptr() as usize;
        let mut fields = Vec::with_capacity(response.headers.len());
        let mut length = LengthField::default();
        // Whether there is a transfer-encoding, and whether its last coding is chunked.
        let mut coded: Option<bool> = None;
        let mut connection = ConnectionField::default();
        for h in response.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| WireError::Header(h.name.to_owned()))?;
            if name == CONTENT_LENGTH {
                length.read(h.value);
            } else if is_hop_by_hop(&name) {
                if name == TRANSFER_ENCODING {
                    // The last coding across the values; none listed: not chunked.
                    coded = Some(last_coding(h.value).or(coded).unwrap_or(false));
                } else if name == CONNECTION {
                    connection.read(h.value);
                }
                continue;
            }
            let start = h.value.as_ptr() as usize - base;
            fields.push((name, start, start + h.value.len()));
        }
        let (body, framed_to_reuse) = if *request_method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            (Incoming::Empty, true)
        } else if let Some(chunked) = coded {
            // A content-length beside transfer-encoding is dropped (RFC 9112 §6.3).
            fields.retain(|(name, _, _)| name != CONTENT_LENGTH);
            match chunked {
                true => (Incoming::Chunked, true),
                // Another final coding: the body runs to the connection's end.
                false => (Incoming::UntilClose, false),
            }
        } else {
            match length.value()? {
                Some(0) => (Incoming::Empty, true),
                Some(n) => (Incoming::Length(n), true),
                None => (Incoming::UntilClose, false),
            }
        };
        // HTTP/1.1 persists unless the upstream says `close`, HTTP/1.0 only when it says
        // `keep-alive`.
        let persistent = match version {
            Version::HTTP_10 => connection.keep_alive,
            _ => !connection.close,
        };
        let head = buf.split_to(len).freeze();
        let mut map = HeaderMap::with_capacity(fields.len());
        for (name, start, end) in fields {
            let value = HeaderValue::from_maybe_shared(head.slice(start..end))
                .map_err(|_| WireError::Header(name.as_str().to_owned()))?;
            map.append(name, value);
        }
        connection.remove_named(&mut map);
        let mut parts = http::Response::new(()).into_parts().0;
        parts.status = status;
        parts.version = version;
        parts.headers = map;
        return Ok(Some(ResponseHead {
            parts,
            body,
            keep_alive: framed_to_reuse && persistent,
        }));
    }
}

/// Whether the last coding a `transfer-encoding` value lists is `chunked`; `None` for a
/// value that lists none (or is not visible ASCII).
fn last_coding(value: &[u8]) -> Option<bool> {
    if !visible_ascii(value) {
        return None;
    }
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .rfind(|c| !c.is_empty())
        .map(|c| c.eq_ignore_ascii_case(b"chunked"))
}

/// The `content-length` fields of a response, read as they come: `3, 3` (a list of equal
/// values) and repeated equal fields are allowed, differing or invalid values not.
#[derive(Debug, Default)]
struct LengthField {
    length: Option<u64>,
    invalid: bool,
}

impl LengthField {
    fn read(&mut self, value: &[u8]) {
        for part in value.split(|b| *b == b',') {
            match parse_length(part.trim_ascii()) {
                Some(n) if self.length.is_none_or(|seen| seen == n) => self.length = Some(n),
                _ => self.invalid = true,
            }
        }
    }

    fn value(&self) -> Result<Option<u64>, WireError> {
        if self.invalid {
            return Err(WireError::ContentLength);
        }
        Ok(self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder().method(method).uri("/a?b=1");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn head(parts: &http::request::Parts, ended: bool, hint: SizeHint) -> (String, Outgoing) {
        let mut out = BytesMut::new();
        let framing = encode_request_head(parts, ended, &hint, &mut out);
        (String::from_utf8(out.to_vec()).unwrap(), framing)
    }

    #[test]
    fn request_heads_carry_framing_derived_from_the_body() {
        let get = request("GET", &[("host", "up")]);
        assert_eq!(
            head(&get, true, SizeHint::with_exact(0)),
            (
                "GET /a?b=1 HTTP/1.1\r\nhost: up\r\n\r\n".into(),
                Outgoing::Empty
            )
        );
        let post = request("POST", &[("host", "up"), ("transfer-encoding", "gzip")]);
        assert_eq!(
            head(&post, true, SizeHint::with_exact(0)),
            (
                "POST /a?b=1 HTTP/1.1\r\nhost: up\r\ncontent-length: 0\r\n\r\n".into(),
                Outgoing::Empty
            )
        );
        assert_eq!(
            head(&post, false, SizeHint::with_exact(12)).1,
            Outgoing::Length(12)
        );
        let (text, framing) = head(&post, false, SizeHint::new());
        assert_eq!(framing, Outgoing::Chunked);
        assert!(
            text.ends_with("transfer-encoding: chunked\r\n\r\n"),
            "{text}"
        );
        assert!(!text.contains("gzip"), "{text}");
        let declared = request("PUT", &[("content-length", "5")]);
        let (text, framing) = head(&declared, false, SizeHint::new());
        assert_eq!(framing, Outgoing::Length(5));
        assert_eq!(text.matches("content-length").count(), 1, "{text}");
    }

    fn parse(text: &str, method: Method) -> Result<Option<ResponseHead>, WireError> {
        parse_response_head(&mut BytesMut::from(text), &method)
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let body = |text: &str, method| parse(text, method).unwrap().unwrap().body;
        assert_eq!(
            body("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n", Method::GET),
            Incoming::Length(3)
        );
        assert_eq!(
            body("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n", Method::HEAD),
            Incoming::Empty
        );
        assert_eq!(
            body("HTTP/1.1 204 No Content\r\n\r\n", Method::GET),
            Incoming::Empty
        );
        assert_eq!(
            body(
                "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
                Method::GET
            ),
            Incoming::Empty
        );
        assert_eq!(
            body(
                "HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\n",
                Method::GET
            ),
            Incoming::Length(3)
        );
        assert_eq!(
            body("HTTP/1.1 200 OK\r\n\r\n", Method::GET),
            Incoming::UntilClose
        );
        assert_eq!(
            body(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                Method::GET
            ),
            Incoming::Chunked
        );
        assert_eq!(
            body(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
                Method::GET
            ),
            Incoming::UntilClose
        );
        let both = parse(
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(both.body, Incoming::Chunked);
        assert!(!both.parts.headers.contains_key(CONTENT_LENGTH));
        for bad in [
            "content-length: 3, 4",
            "content-length: +3",
            "content-length: 3\r\ncontent-length: 4",
        ] {
            let text = format!("HTTP/1.1 200 OK\r\n{bad}\r\n\r\n");
            assert!(
                matches!(parse(&text, Method::GET), Err(WireError::ContentLength)),
                "{bad}"
            );
        }
    }

    #[test]
    fn persistence_follows_the_version_and_connection_header() {
        let keep = |text: &str| parse(text, Method::GET).unwrap().unwrap().keep_alive;
        assert!(keep("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(!keep(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!keep("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(keep(
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!keep("HTTP/1.1 200 OK\r\n\r\n"));
    }

    #[test]
    fn hop_by_hop_fields_are_read_and_not_kept() {
        let head = parse(
            "HTTP/1.1 200 OK\r\nx-secret: 1\r\nconnection: keep-alive, x-secret\r\n\
             keep-alive: timeout=5\r\nupgrade: h2c\r\ntransfer-encoding: gzip\r\n\
             transfer-encoding: chunked\r\nx-kept: yes\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.body, Incoming::Chunked);
        assert!(head.keep_alive);
        let names: Vec<_> = head.parts.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
        let empty_coding = parse(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: ,\r\ncontent-length: 3\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(empty_coding.body, Incoming::UntilClose);
        assert!(!empty_coding.parts.headers.contains_key(CONTENT_LENGTH));
    }

    #[test]
    fn interim_responses_are_skipped_and_heads_can_arrive_in_pieces() {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 2\r\n\r\nok";
        let mut buf = BytesMut::new();
        for (i, byte) in text.bytes().enumerate() {
            buf.extend_from_slice(&[byte]);
            let parsed = parse_response_head(&mut buf, &Method::GET).unwrap();
            if let Some(head) = parsed {
                assert_eq!(i, text.len() - 3);
                assert_eq!(head.parts.status, 201);
                let values: Vec<_> = head.parts.headers.get_all("x-a").iter().collect();
                assert_eq!(values, ["1", "2"]);
                return;
            }
        }
        panic!("no head parsed");
    }

    #[test]
    fn bad_heads_are_refused() {
        assert!(matches!(
            parse("HTTP/1.1 101 Switching\r\n\r\n", Method::GET),
            Err(WireError::Upgrade)
        ));
        assert!(matches!(
            parse("HTTP/1.1 200 OK\r\nbad header\r\n\r\n", Method::GET),
            Err(WireError::Head(_))
        ));
        let huge = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD_BYTES));
        assert!(matches!(
            parse(&huge, Method::GET),
            Err(WireError::HeadTooLarge)
        ));
    }
}
