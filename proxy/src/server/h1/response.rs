//! Writing a response on a downstream HTTP/1 connection (RFC 9112 §6): the head with the
//! framing derived from the status, the request method and the body, never passed through;
//! then the body, gathered into as few writes as the body allows.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{Response, Version};
use http_body::Body;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::http1::{encode_chunk, encode_field, encode_last_chunk};
use crate::proxy::{BoxError, ProxyBody, lists, parse_content_length};

pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A data frame at least this large is written from its own buffer instead of being copied.
const COPY_LIMIT: usize = 16 * 1024;

/// How the body follows the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body on the wire (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and a body of unknown length).
    Close,
}

/// What the connection needs to know about the request being answered.
#[derive(Debug, Clone, Copy)]
pub struct Answering {
    pub head_request: bool,
    pub version: Version,
    /// The connection may stay open after this response (the client and the server agree).
    pub keep_alive: bool,
}

/// Why a response could not be written in full. The connection is closed after it.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("writing to the client failed")]
    Io(#[from] std::io::Error),
    #[error("the response body failed")]
    Body(#[source] BoxError),
    #[error("the response body did not match its content-length")]
    Length,
}

/// Writes `response` and returns whether the connection may carry another request.
pub async fn write<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut BytesMut,
    response: Response<ProxyBody>,
    answering: Answering,
) -> Result<bool, WriteError> {
    let (parts, body) = response.into_parts();
    let mut keep_alive = answering.keep_alive;
    let framing = encode_head(&parts, &body, answering, &mut keep_alive, out);
    // Unpin (a box): it can be dropped before the last write, which ends the exchange (the
    // access log, the metrics, the filters' on_log) before the client can see the response
    // complete, as with hyper.
    let mut body = body;
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    loop {
        let next = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(Step::Flush),
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(Step::Frame(frame)),
        })
        .await;
        let frame = match next {
            Step::Flush => {
                io.write_all(out).await?;
                out.clear();
                continue;
            }
            Step::Frame(None) => break,
            Step::Frame(Some(Err(error))) => {
                // What was framed so far goes out; the close tells the client it is cut.
                drop(body);
                let _ = io.write_all(out).await;
                out.clear();
                return Err(WriteError::Body(error));
            }
            Step::Frame(Some(Ok(frame))) => frame,
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let (Framing::Chunked, Ok(trailers)) = (framing, frame.into_trailers()) {
                    encode_last_chunk(Some(&trailers), out);
                    drop(body);
                    io.write_all(out).await?;
                    out.clear();
                    return Ok(keep_alive);
                }
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        match framing {
            Framing::None => continue,
            Framing::Length(_) => {
                if data.len() as u64 > left {
                    drop(body);
                    let _ = io.write_all(out).await;
                    out.clear();
                    return Err(WriteError::Length);
                }
                left -= data.len() as u64;
            }
            Framing::Chunked if data.len() < COPY_LIMIT => {
                encode_chunk(&data, out);
                continue;
            }
            Framing::Chunked => {
                // The chunk's size line and CRLF around a body written from its own buffer.
                let _ = write!(out, "{:x}\r\n", data.len());
                io.write_all(out).await?;
                out.clear();
                io.write_all(&data).await?;
                out.extend_from_slice(b"\r\n");
                continue;
            }
            Framing::Close => {}
        }
        if data.len() >= COPY_LIMIT {
            io.write_all(out).await?;
            out.clear();
            io.write_all(&data).await?;
        } else {
            out.extend_from_slice(&data);
        }
    }
    drop(body);
    match framing {
        Framing::Chunked => encode_last_chunk(None, out),
        Framing::Length(_) if left > 0 => {
            let _ = io.write_all(out).await;
            out.clear();
            return Err(WriteError::Length);
        }
        Framing::Close => keep_alive = false,
        _ => {}
    }
    io.write_all(out).await?;
    out.clear();
    Ok(keep_alive)
}

enum Step {
    Flush,
    Frame(Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>),
}

/// Writes `100 Continue`, for a client that waits for it before sending its body.
pub async fn write_continue<W: AsyncWrite + Unpin>(io: &mut W) -> std::io::Result<()> {
    io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await
}

/// Writes the head into `out`; returns how the body follows. `keep_alive` turns false when
/// the response or its framing ends the connection.
///
/// One pass over the fields, with no lookups: the framing and connection fields are
/// weft's to write, so they are read as they come and written after the others.
fn encode_head(
    parts: &http::response::Parts,
    body: &ProxyBody,
    answering: Answering,
    keep_alive: &mut bool,
    out: &mut BytesMut,
) -> Framing {
    let headers = &parts.headers;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    let mut lengths = 0;
    let mut declared = None;
    let mut dated = false;
    for (name, value) in headers {
        if name == CONTENT_LENGTH {
            lengths += 1;
            declared = parse_content_length(value.as_bytes());
        } else if name == CONNECTION {
            if lists(value.as_bytes(), "close") {
                *keep_alive = false;
            }
        } else if name != TRANSFER_ENCODING {
            dated |= name == DATE;
            encode_field(name, value, out);
        }
    }
    let status = parts.status.as_u16();
    let framing = if (100..200).contains(&status) || status == 204 {
        Framing::None
    } else if answering.head_request || status == 304 {
        // The length stands for the body a GET would have had.
        for value in headers.get_all(CONTENT_LENGTH) {
            encode_field(&CONTENT_LENGTH, value, out);
        }
        Framing::None
    } else {
        let declared = declared.filter(|_| lengths == 1);
        let framing = match (body.size_hint().exact(), declared) {
            (Some(n), _) | (None, Some(n)) => Framing::Length(n),
            (None, None) if answering.version == Version::HTTP_11 => Framing::Chunked,
            (None, None) => Framing::Close,
        };
        match framing {
            Framing::Length(n) => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            _ => *keep_alive = false,
        }
        framing
    };
    if !dated {
        DATE_CACHE.with_borrow_mut(|cache| {
            out.extend_from_slice(b"date: ");
            out.extend_from_slice(cache.now());
            out.extend_from_slice(b"\r\n");
        });
    }
    if !*keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if answering.version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    framing
}

thread_local! {
    /// The `date` of this second, formatted once per second per worker.
    static DATE_CACHE: RefCell<DateCache> = const { RefCell::new(DateCache { second: 0, text: String::new() }) };
}

struct DateCache {
    second: u64,
    text: String,
}

impl DateCache {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        self.text.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{empty, full};
    use http::{HeaderValue, StatusCode};
    use http_body_util::BodyExt;
    use tokio::io::AsyncReadExt;

    async fn written(response: Response<ProxyBody>, answering: Answering) -> (String, bool) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut io: BoxWrite = Box::new(server);
        let mut out = BytesMut::new();
        let keep = write(&mut io, &mut out, response, answering).await;
        drop(io);
        let mut bytes = Vec::new();
        let mut client = client;
        client.read_to_end(&mut bytes).await.unwrap();
        let text = String::from_utf8(bytes).unwrap();
        // The date changes; the tests look at the rest.
        let text = text
            .lines()
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\n");
        (text, keep.unwrap_or(false))
    }

    fn answering(version: Version) -> Answering {
        Answering {
            head_request: false,
            version,
            keep_alive: true,
        }
    }

    fn streamed(parts: &[&'static str], trailers: bool) -> ProxyBody {
        let mut frames: Vec<Result<http_body::Frame<bytes::Bytes>, BoxError>> = parts
            .iter()
            .map(|p| {
                Ok(http_body::Frame::data(bytes::Bytes::from_static(
                    p.as_bytes(),
                )))
            })
            .collect();
        if trailers {
            let mut map = http::HeaderMap::new();
            map.insert("x-t", HeaderValue::from_static("1"));
            frames.push(Ok(http_body::Frame::trailers(map)));
        }
        http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    #[tokio::test]
    async fn a_sized_body_gets_its_length() {
        let mut res = Response::new(full("ok\n"));
        res.headers_mut()
            .insert("content-length", HeaderValue::from_static("99"));
        let (text, keep) = written(res, answering(Version::HTTP_11)).await;
        assert_eq!(text, "HTTP/1.1 200 OK\ncontent-length: 3\n\nok");
        assert!(keep);
    }

    #[tokio::test]
    async fn an_unsized_body_is_chunked_with_its_trailers() {
        let res = Response::new(streamed(&["hello", " world"], true));
        let (text, keep) = written(res, answering(Version::HTTP_11)).await;
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\ntransfer-encoding: chunked\n\n5\nhello\n6\n world\n0\nx-t: 1\n"
        );
        assert!(keep);
    }

    #[tokio::test]
    async fn an_http10_client_reads_until_close() {
        let res = Response::new(streamed(&["a", "b"], false));
        let (text, keep) = written(res, answering(Version::HTTP_10)).await;
        assert_eq!(text, "HTTP/1.1 200 OK\nconnection: close\n\nab");
        assert!(!keep);
    }

    #[tokio::test]
    async fn head_204_and_304_carry_no_body() {
        let mut head = Response::new(empty());
        head.headers_mut()
            .insert("content-length", HeaderValue::from_static("42"));
        let (text, _) = written(
            head,
            Answering {
                head_request: true,
                ..answering(Version::HTTP_11)
            },
        )
        .await;
        assert_eq!(text, "HTTP/1.1 200 OK\ncontent-length: 42\n");
        let mut no_content = Response::new(full("ignored"));
        *no_content.status_mut() = StatusCode::NO_CONTENT;
        let (text, keep) = written(no_content, answering(Version::HTTP_11)).await;
        assert_eq!(text, "HTTP/1.1 204 No Content\n");
        assert!(keep);
    }

    #[tokio::test]
    async fn a_close_asked_for_is_kept_and_a_short_body_fails() {
        let mut res = Response::new(full("bye\n"));
        res.headers_mut()
            .insert("connection", HeaderValue::from_static("close"));
        let (text, keep) = written(res, answering(Version::HTTP_11)).await;
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\ncontent-length: 4\nconnection: close\n\nbye"
        );
        assert!(!keep);
        let mut short = Response::new(streamed(&["abc"], false));
        short
            .headers_mut()
            .insert("content-length", HeaderValue::from_static("10"));
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut io: BoxWrite = Box::new(server);
        let result = write(
            &mut io,
            &mut BytesMut::new(),
            short,
            answering(Version::HTTP_11),
        )
        .await;
        assert!(matches!(result, Err(WriteError::Length)));
        drop(client);
    }
}
