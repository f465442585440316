//! Reading an HTTP/1.x request head (RFC 9112 §2-§6) off the connection's read buffer, with
//! the edge rules applied before anything else sees the request: the header limits (431),
//! and the framing rules against request smuggling (400 and close): Content-Length with
//! Transfer-Encoding, repeated or invalid Content-Length, a Transfer-Encoding that does not
//! end in a single `chunked`, Transfer-Encoding on HTTP/1.0; and exactly one Host on
//! HTTP/1.1 (400). httparse refuses obs-fold and CR, LF or NUL inside a header value. The
//! body's framing is derived here, once, and the hop-by-hop headers are dropped here.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

use crate::config::Limits;
use crate::proxy::{
    BodyLength, ConnectionField, FramingCheck, Present, Rejection, host_count, is_hop_by_hop, lists,
};

/// How the request body follows its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    Empty,
    Length(u64),
    Chunked,
}

/// A parsed request head and what the connection needs to know about it.
#[derive(Debug)]
pub struct RequestHead {
    pub parts: http::request::Parts,
    pub body: BodyFraming,
    /// The client allows the connection to stay open after this exchange.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before it sends the body.
    pub expect_continue: bool,
    /// Which of the fields the request path looks for the head carries.
    pub present: Present,
}

/// Headers read on the stack; a listener allowing more uses the heap.
const STACK_HEADERS: usize = 128;

/// Parses the head at the start of `buf` and removes it from there. `Ok(None)`: the head is
/// not complete yet (and still within the limits).
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<RequestHead>, Rejection> {
    let max = limits.max_request_headers;
    let mut stack: [MaybeUninit<httparse::Header<'_>>; STACK_HEADERS] =
        [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if max <= STACK_HEADERS {
        &mut stack[..max]
    } else {
        heap.resize_with(max, MaybeUninit::uninit);
        &mut heap
    };
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_request_header_bytes {
                return Err(Rejection::HeaderLimits("request headers too large\n"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Rejection::HeaderLimits("too many request headers\n"));
        }
        Err(_) => return Err(Rejection::BadRequest("malformed request head\n")),
    };
    if len > limits.max_request_header_bytes {
        return Err(Rejection::HeaderLimits("request headers too large\n"));
    }
    // Offsets into the head, so that the values can share its bytes once it is frozen.
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let method = Method::from_bytes(request.method.unwrap_or_default().as_bytes())
        .map_err(|_| Rejection::BadRequest("malformed request method\n"))?;
    let target = offset(request.path.unwrap_or_default().as_bytes());
    let version = match request.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // One pass over the fields: the framing and connection fields are read as they come,
    // and the hop-by-hop ones (about this connection only) are not kept, so neither the
    // filters nor the upstream see them.
    let mut fields = Vec::with_capacity(request.headers.len());
    let mut framing = FramingCheck::default();
    let mut connection = ConnectionField::default();
    let mut hosts = 0;
    let mut expect_continue = false;
    let mut te_trailers = false;
    let mut present = Present::NONE;
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| Rejection::BadRequest("malformed header name\n"))?;
        let value = header.value;
        if name == CONTENT_LENGTH {
            framing.length(value);
        } else if name == HOST {
            hosts += 1;
        } else if name == EXPECT
            && version == Version::HTTP_11
            && value.eq_ignore_ascii_case(b"100-continue")
        {
            // Answered here (as Envoy does by default); the upstream never waits for it.
            expect_continue = true;
            continue;
        } else if is_hop_by_hop(&name) {
            if name == TRANSFER_ENCODING {
                framing.encoding(value);
            } else if name == CONNECTION {
                connection.read(value);
            } else if name == TE {
                // `te: trailers` goes on (gRPC needs it end to end).
                te_trailers |= lists(value, "trailers");
            }
            continue;
        }
        present.note(&name);
        fields.push((name, offset(value)));
    }
    let body = match framing.verdict()? {
        BodyLength::None => BodyFraming::Empty,
        BodyLength::Length(n) => BodyFraming::Length(n),
        BodyLength::Chunked if version == Version::HTTP_10 => {
            return Err(Rejection::BadFraming(
                "Transfer-Encoding on an HTTP/1.0 request\n",
            ));
        }
        BodyLength::Chunked => BodyFraming::Chunked,
    };
    host_count(version, hosts)?;
    let keep_alive = match version {
        Version::HTTP_10 => connection.keep_alive,
        _ => !connection.close,
    };

    let head: Bytes = buf.split_to(len).freeze();
    let slice = |(at, len): (usize, usize)| head.slice(at..at + len);
    let uri = Uri::from_maybe_shared(slice(target))
        .map_err(|_| Rejection::BadRequest("malformed request target\n"))?;
    // Room for the headers the proxy adds (x-request-id, x-forwarded-for and -proto) so the
    // map does not grow (and rehash) on the way.
    let mut headers = HeaderMap::with_capacity(fields.len() + 4);
    for (name, value) in fields {
        let value = HeaderValue::from_maybe_shared(slice(value))
            .map_err(|_| Rejection::BadRequest("malformed header value\n"))?;
        headers.append(name, value);
    }
    if te_trailers {
        headers.append(TE, HeaderValue::from_static("trailers"));
        present.note(&TE);
    }
    connection.remove_named(&mut headers);

    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Some(RequestHead {
        parts: request.into_parts().0,
        body,
        keep_alive,
        expect_continue,
        present,
    }))
}

/// Whether `buf` may be the start of the HTTP/2 connection preface (prior knowledge).
pub fn may_be_h2_preface(buf: &[u8]) -> Option<bool> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let n = buf.len().min(PREFACE.len());
    if buf[..n] != PREFACE[..n] {
        Some(false)
    } else if n == PREFACE.len() {
        Some(true)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::small()
    }

    fn parse_all(text: &str) -> Result<Option<RequestHead>, Rejection> {
        parse(&mut BytesMut::from(text), &limits())
    }

    #[test]
    fn a_head_is_parsed_and_removed_from_the_buffer() {
        let mut buf = BytesMut::from(
            "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\nPOST /next",
        );
        let head = parse(&mut buf, &limits()).unwrap().unwrap();
        assert_eq!(head.parts.method, Method::GET);
        assert_eq!(head.parts.uri, "/a?b=1");
        assert_eq!(head.parts.version, Version::HTTP_11);
        assert_eq!(head.parts.headers.get_all("x-two").iter().count(), 2);
        assert_eq!(head.body, BodyFraming::Empty);
        assert!(head.keep_alive && !head.expect_continue);
        assert_eq!(&buf[..], b"POST /next");
    }

    #[test]
    fn a_partial_head_waits_until_it_outgrows_the_limit() {
        assert!(matches!(
            parse_all("GET / HTTP/1.1\r\nHost: x\r\n"),
            Ok(None)
        ));
        let big = format!("GET / HTTP/1.1\r\nX-Big: {}", "v".repeat(1100));
        assert!(matches!(parse_all(&big), Err(Rejection::HeaderLimits(_))));
        let complete_but_big = format!("{big}\r\n\r\n");
        assert!(matches!(
            parse_all(&complete_but_big),
            Err(Rejection::HeaderLimits(_))
        ));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: 1\r\n".repeat(6));
        assert!(matches!(parse_all(&many), Err(Rejection::HeaderLimits(_))));
    }

    #[test]
    fn body_framing_and_persistence() {
        let head = |t: &str| parse_all(t).unwrap().unwrap();
        let post = head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n");
        assert_eq!(post.body, BodyFraming::Length(7));
        let chunked =
            head("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(chunked.body, BodyFraming::Chunked);
        let zero = head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(zero.body, BodyFraming::Empty);
        assert!(!head("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        let expect =
            head("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(expect.expect_continue);
        assert!(!expect.parts.headers.contains_key(EXPECT));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for text in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                matches!(parse_all(text), Err(Rejection::BadFraming(_))),
                "{text:?}"
            );
        }
        for text in [
            "GET / HTTP/1.1\r\nX-Folded: one\r\n two\r\n\r\n",
            "GET / HTTP/1.1\r\nX-Bad: one\rtwo\r\n\r\n",
            "GET / HTTP/1.1\r\nX-Bad: one\0two\r\n\r\n",
            "GET  HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_all(text), Err(Rejection::BadRequest(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn hop_by_hop_fields_are_read_and_not_kept() {
        let roomy = Limits {
            max_request_headers: 20,
            ..limits()
        };
        let head = parse(
            &mut BytesMut::from(
                "POST / HTTP/1.1\r\nX-Secret: 1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\n\
             Keep-Alive: timeout=5\r\nTE: trailers, deflate\r\nUpgrade: websocket\r\n\
             Transfer-Encoding: chunked\r\nX-Forwarded-For: 10.0.0.1\r\nX-Kept: yes\r\n\r\n",
            ),
            &roomy,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.body, BodyFraming::Chunked);
        assert!(head.keep_alive);
        let mut names: Vec<_> = head.parts.headers.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["host", "te", "x-forwarded-for", "x-kept"]);
        assert_eq!(head.parts.headers["te"], "trailers");
        // What the request path is told it may find.
        assert!(head.present.hop_by_hop() && !head.present.content_length());
        let plain = parse_all("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!plain.present.hop_by_hop() && plain.present.content_length());
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        for text in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            assert!(
                matches!(parse_all(text), Err(Rejection::BadRequest(_))),
                "{text:?}"
            );
        }
        assert!(parse_all("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn the_h2_preface_is_recognised_early() {
        assert_eq!(may_be_h2_preface(b"PRI * HT"), None);
        assert_eq!(
            may_be_h2_preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
            Some(true)
        );
        assert_eq!(may_be_h2_preface(b"GET / HTTP/1.1"), Some(false));
        assert_eq!(may_be_h2_preface(b"PRX"), Some(false));
    }
}
