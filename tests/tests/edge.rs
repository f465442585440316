//! The listener's edge defences, end to end through a real weft with two workers: request
//! smuggling and malformed framing, header limits (431) over HTTP/1.1 and HTTP/2, the
//! slowloris guard, the idle timeout (and a client that stops reading), `max_connections`, the rejection metrics, request bodies
//! a response left unread, `Expect: 100-continue` and pipelining.
//!
//! Most tests speak raw bytes over TCP, so that what is sent is exactly what the test says,
//! and read what the upstream received byte for byte.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_e2e::*;

// ---------------------------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------------------------

/// A config with one listener `main` whose only route is a catch-all to the upstream.
fn config(upstream: &Upstream, limits: &str) -> String {
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n{}clusters:\n{}",
        listener_yaml("main", limits, "      - cluster: one\n"),
        cluster_yaml("one", &[upstream.addr], "")
    )
}

async fn start(limits: &str) -> (Upstream, Weft) {
    let upstream = Upstream::start("one").await;
    let weft = Weft::start(&config(&upstream, limits), 2);
    (upstream, weft)
}

const HEADER_LIMITS: &str =
    "    limits:\n      max_request_headers: 20\n      max_request_headers_kb: 8\n";
const REJECTED_HEADER_LIMITS: &str =
    r#"weft_downstream_rq_rejected_total{listener="main",reason="header_limits"}"#;

// ---------------------------------------------------------------------------------------------
// A small, strict HTTP/1 message reader, to check what went over the wire
// ---------------------------------------------------------------------------------------------

/// One HTTP/1 message, framed by its own headers.
#[derive(Debug)]
struct Message {
    start_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Bytes the message took, head and body.
    len: usize,
}

impl Message {
    fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n == name).count()
    }

    fn status(&self) -> Option<u16> {
        self.start_line.get(9..12)?.parse().ok()
    }
}

#[derive(Debug)]
enum Parsed {
    Complete(Message),
    /// More bytes are needed; `what` says which part is missing.
    Incomplete(&'static str),
    Invalid(String),
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses one message from the front of `data`, strictly: CRLF line ends only, no bare CR,
/// LF or NUL in the head, CRLF after each chunk. The body is chunked when Transfer-Encoding is
/// present (which must then end in `chunked`), else Content-Length bytes, else empty.
fn parse_message(data: &[u8]) -> Parsed {
    let Some(head_end) = find(data, b"\r\n\r\n") else {
        return Parsed::Incomplete("head");
    };
    let head = &data[..head_end];
    if head.contains(&0) {
        return Parsed::Invalid("NUL in head".into());
    }
    let Ok(head) = std::str::from_utf8(head) else {
        return Parsed::Invalid("head is not UTF-8".into());
    };
    let mut lines = head.split("\r\n");
    let start_line = lines.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    for line in lines {
        if line.contains(['\r', '\n']) {
            return Parsed::Invalid(format!("bare CR or LF in header line {line:?}"));
        }
        if line.starts_with([' ', '\t']) {
            return Parsed::Invalid(format!("obs-fold line {line:?}"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Parsed::Invalid(format!("header line without a colon: {line:?}"));
        };
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut msg = Message {
        start_line,
        headers,
        body: Vec::new(),
        len: head_end + 4,
    };
    let encodings: Vec<&str> = msg
        .headers
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .map(|(_, v)| v.as_str())
        .collect();
    let lengths: Vec<&str> = msg
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    if !encodings.is_empty() {
        let last = encodings
            .join(",")
            .rsplit(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if last != "chunked" {
            return Parsed::Invalid(format!(
                "Transfer-Encoding {encodings:?} does not end in chunked"
            ));
        }
        let mut at = msg.len;
        loop {
            let Some(line_end) = find(&data[at..], b"\r\n") else {
                return Parsed::Incomplete("chunk size line");
            };
            let line = &data[at..at + line_end];
            if line.contains(&b'\n') || line.contains(&b'\r') {
                return Parsed::Invalid("bare CR or LF in a chunk size line".into());
            }
            let size_text = String::from_utf8_lossy(line);
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let Ok(size) = usize::from_str_radix(size_text, 16) else {
                return Parsed::Invalid(format!("chunk size {size_text:?} is not hex"));
            };
            at += line_end + 2;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let Some(end) = find(&data[at..], b"\r\n") else {
                        return Parsed::Incomplete("trailers");
                    };
                    at += end + 2;
                    if end == 0 {
                        msg.len = at;
                        return Parsed::Complete(msg);
                    }
                }
            }
            if data.len() < at + size + 2 {
                return Parsed::Incomplete("chunk data");
            }
            msg.body.extend_from_slice(&data[at..at + size]);
            if &data[at + size..at + size + 2] != b"\r\n" {
                return Parsed::Invalid("chunk data not followed by CRLF".into());
            }
            at += size + 2;
        }
    }
    if let Some(len) = lengths.first() {
        let Ok(len) = len.parse::<usize>() else {
            return Parsed::Invalid(format!("Content-Length {len:?}"));
        };
        if data.len() < msg.len + len {
            return Parsed::Incomplete("body");
        }
        msg.body = data[msg.len..msg.len + len].to_vec();
        msg.len += len;
    }
    Parsed::Complete(msg)
}

/// Every message in `data`, then what is left after them (an incomplete or invalid tail).
fn parse_stream(data: &[u8]) -> (Vec<Message>, Option<String>) {
    let mut messages = Vec::new();
    let mut at = 0;
    while at < data.len() {
        match parse_message(&data[at..]) {
            Parsed::Complete(m) => {
                at += m.len;
                messages.push(m);
            }
            Parsed::Incomplete(what) => {
                return (
                    messages,
                    Some(format!("{} bytes ending mid-{what}", data.len() - at)),
                );
            }
            Parsed::Invalid(why) => return (messages, Some(format!("invalid: {why}"))),
        }
    }
    (messages, None)
}

/// Status codes of the responses in `bytes` (HTTP/1.0 or 1.1 status lines), in order.
fn response_statuses(bytes: &[u8]) -> Vec<u16> {
    let mut statuses = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match parse_message(&bytes[at..]) {
            Parsed::Complete(m) => {
                at += m.len;
                statuses.push(m.status().unwrap_or(0));
            }
            _ => {
                // A trailing piece that is not a whole response still counts if it has a status.
                let rest = String::from_utf8_lossy(&bytes[at..]).into_owned();
                if rest.starts_with("HTTP/1.") {
                    statuses.push(rest.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0));
                }
                break;
            }
        }
    }
    statuses
}

// ---------------------------------------------------------------------------------------------
// Raw connections
// ---------------------------------------------------------------------------------------------

/// Reads one whole response (Content-Length or chunked framing) within `within`.
async fn read_response(stream: &mut TcpStream, within: Duration) -> Result<Message, String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match parse_message(&buf) {
            Parsed::Complete(m) => return Ok(m),
            Parsed::Invalid(why) => {
                return Err(format!(
                    "invalid response ({why}): {:?}",
                    String::from_utf8_lossy(&buf)
                ));
            }
            Parsed::Incomplete(_) => {}
        }
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => {
                return Err(format!(
                    "no whole response within {within:?}; got {:?}",
                    String::from_utf8_lossy(&buf)
                ));
            }
            Ok(Err(e)) => return Err(format!("read error: {e}")),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            return Err(format!(
                "connection closed before a whole response; got {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Waits until the peer closes (EOF or reset). `Ok(bytes read meanwhile)` when it did
/// within `within`, `Err(bytes)` when it was still open then.
async fn wait_closed(stream: &mut TcpStream, within: Duration) -> Result<Vec<u8>, Vec<u8>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return Err(got),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(got),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A keep-alive GET on an open connection; returns the status.
async fn get_on(stream: &mut TcpStream, path: &str) -> Result<u16, String> {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let res = read_response(stream, Duration::from_secs(3)).await?;
    Ok(res.status().unwrap_or(0))
}

/// A one-shot `Connection: close` GET on a new connection; returns the statuses seen.
async fn one_shot_get(addr: SocketAddr, path: &str) -> RawReply {
    raw_exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(3),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// 1. Request smuggling
// ---------------------------------------------------------------------------------------------

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

struct SmuggleCase {
    name: &'static str,
    /// The path of the (outer) request, as the upstream would record it.
    path: &'static str,
    bytes: Vec<u8>,
    /// Only a 400 is acceptable (no normalised forward).
    only_400: bool,
    /// The head carries both Content-Length and Transfer-Encoding: if hyper normalises and
    /// forwards it, the connection must be closed after the response.
    cl_and_te: bool,
    /// The error is in the body, so the head may already be on its way upstream when it is
    /// found: the upstream may see a request start, but never a complete one.
    body_level: bool,
}

fn case(name: &'static str, path: &'static str, text: String) -> SmuggleCase {
    SmuggleCase {
        name,
        path,
        bytes: text.into_bytes(),
        only_400: false,
        cl_and_te: false,
        body_level: false,
    }
}

fn smuggling_corpus() -> Vec<SmuggleCase> {
    let cl_te_body = format!("0\r\n\r\n{SMUGGLED}");
    let te_cl_body = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    let te_cl_declared = format!("{:x}\r\n", SMUGGLED.len()).len();
    vec![
        SmuggleCase {
            cl_and_te: true,
            ..case(
                "CL.TE",
                "/cl-te",
                format!(
                    "POST /cl-te HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{cl_te_body}",
                    cl_te_body.len()
                ),
            )
        },
        SmuggleCase {
            cl_and_te: true,
            ..case(
                "TE.CL",
                "/te-cl",
                format!(
                    "POST /te-cl HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: {te_cl_declared}\r\n\r\n{te_cl_body}"
                ),
            )
        },
        case(
            "TE: chunked, identity",
            "/te-chunked-identity",
            format!(
                "POST /te-chunked-identity HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "TE: xchunked",
            "/te-xchunked",
            format!(
                "POST /te-xchunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n{SMUGGLED}"
            ),
        ),
        case(
            "duplicate CL, different values",
            "/cl-dup-differ",
            format!(
                "POST /cl-dup-differ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: {}\r\n\r\nhello{SMUGGLED}",
                5 + SMUGGLED.len()
            ),
        ),
        case(
            "duplicate CL, equal values",
            "/cl-dup-equal",
            "POST /cl-dup-equal HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
                .to_string(),
        ),
        case(
            "CL with + sign",
            "/cl-plus",
            format!(
                "POST /cl-plus HTTP/1.1\r\nHost: a\r\nContent-Length: +{}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
        ),
        case(
            "obs-fold",
            "/obs-fold",
            "GET /obs-fold HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n".to_string(),
        ),
        case(
            "bare CR in header value",
            "/bare-cr",
            "GET /bare-cr HTTP/1.1\r\nHost: a\r\nX-Bad: one\rtwo\r\n\r\n".to_string(),
        ),
        case(
            "NUL in header value",
            "/nul",
            "GET /nul HTTP/1.1\r\nHost: a\r\nX-Bad: one\0two\r\n\r\n".to_string(),
        ),
        SmuggleCase {
            body_level: true,
            ..case(
                "bare LF chunk lines",
                "/chunk-bare-lf",
                "POST /chunk-bare-lf HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n"
                    .to_string(),
            )
        },
        SmuggleCase {
            body_level: true,
            ..case(
                "chunk size not hex",
                "/chunk-bad-hex",
                "POST /chunk-bad-hex HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                    .to_string(),
            )
        },
        case(
            "TE on HTTP/1.0",
            "/te-http10",
            format!(
                "POST /te-http10 HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
        ),
        SmuggleCase {
            only_400: true,
            ..case(
                "two Host headers",
                "/two-hosts",
                "GET /two-hosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_string(),
            )
        },
    ]
}

/// Sends one case on its own connection and judges the outcome: `Ok(description)` when it is
/// one of the acceptable outcomes, `Err(description)` otherwise.
async fn run_smuggle_case(
    addr: SocketAddr,
    upstream: &Upstream,
    case: &SmuggleCase,
) -> Result<String, String> {
    let count_before = upstream.request_count();
    let raw_before = upstream.raw().len();
    let reply = raw_exchange(addr, &case.bytes, Duration::from_millis(600)).await;
    // Anything forwarded late would show up here.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let requests: Vec<Recorded> = upstream.requests()[count_before..].to_vec();
    let raw = upstream.raw()[raw_before..].to_vec();
    let (messages, tail) = parse_stream(&raw);
    let statuses = response_statuses(&reply.bytes);
    let seen = format!(
        "downstream got statuses {statuses:?} then {}; upstream recorded {:?}; upstream raw bytes {:?}",
        if reply.closed {
            "close"
        } else {
            "the connection stayed open"
        },
        requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&raw),
    );

    // Whatever else happens, the smuggled request never reaches the upstream.
    if requests.iter().any(|r| r.path.contains("smuggled"))
        || messages.iter().any(|m| m.start_line.contains("smuggled"))
    {
        return Err(format!("the smuggled request reached the upstream: {seen}"));
    }

    if statuses == [400] && reply.closed {
        if case.body_level {
            // The head may be upstream already; the request must never be complete there.
            if requests.len() > 1 || !messages.is_empty() {
                return Err(format!(
                    "400 downstream, but the upstream saw a complete request: {seen}"
                ));
            }
            let partial = if raw.is_empty() {
                "nothing reached the upstream".to_string()
            } else {
                format!(
                    "the upstream saw only an unfinished request ({}) that was aborted",
                    tail.unwrap_or_default()
                )
            };
            return Ok(format!("400 + close; {partial}"));
        }
        if !requests.is_empty() || !raw.is_empty() {
            return Err(format!(
                "400 downstream, but the upstream was sent something: {seen}"
            ));
        }
        return Ok("400 + close; nothing reached the upstream".into());
    }

    if case.only_400 {
        return Err(format!("expected 400 and close: {seen}"));
    }
    if statuses == [200] && requests.len() == 1 {
        if messages.len() != 1 || tail.is_some() {
            return Err(format!(
                "forwarded, but the upstream bytes are not exactly one well-framed request \
                 ({} whole messages, tail {tail:?}): {seen}",
                messages.len()
            ));
        }
        let m = &messages[0];
        if m.header_count("content-length") > 0 && m.header_count("transfer-encoding") > 0 {
            return Err(format!(
                "forwarded with both Content-Length and Transfer-Encoding: {seen}"
            ));
        }
        if m.header_count("content-length") > 1 {
            return Err(format!("forwarded with repeated Content-Length: {seen}"));
        }
        if !m.start_line.contains(case.path) {
            return Err(format!("forwarded request is not {}: {seen}", case.path));
        }
        if case.cl_and_te && !reply.closed {
            return Err(format!(
                "normalised a Content-Length + Transfer-Encoding request, but kept the connection open: {seen}"
            ));
        }
        return Ok(format!(
            "forwarded as one normalised request ({}, body {:?}), 200, connection {}",
            m.start_line,
            String::from_utf8_lossy(&m.body),
            if reply.closed { "closed" } else { "kept open" }
        ));
    }
    Err(format!(
        "neither 400 + close nor one normalised forward: {seen}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_corpus_is_rejected_or_normalised() {
    let (upstream, weft) = start("").await;
    let addr = weft.addr("main");
    let mut failures = Vec::new();
    for case in smuggling_corpus() {
        let outcome = run_smuggle_case(addr, &upstream, &case).await;
        match &outcome {
            Ok(what) => eprintln!("smuggling case {:<32} OK   {what}", case.name),
            Err(what) => {
                eprintln!("smuggling case {:<32} FAIL {what}", case.name);
                failures.push(format!("{}: {what}", case.name));
            }
        }
    }
    assert!(
        upstream
            .requests()
            .iter()
            .all(|r| !r.path.contains("smuggled")),
        "a smuggled request reached the upstream: {:?}",
        upstream.requests()
    );
    assert!(
        failures.is_empty(),
        "smuggling cases with a wrong outcome:\n{}",
        failures.join("\n")
    );
}

/// The judge above must be able to fail: a well-formed request is judged "forwarded", and a
/// request that really does carry a second, pipelined request is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_judge_sees_forwards_and_smuggled_requests() {
    let (upstream, weft) = start("").await;
    let addr = weft.addr("main");
    let control = case(
        "control: well-formed chunked POST",
        "/control",
        "POST /control HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            .to_string(),
    );
    let outcome = run_smuggle_case(addr, &upstream, &control).await;
    eprintln!("{}: {outcome:?}", control.name);
    assert!(
        outcome
            .as_ref()
            .is_ok_and(|o| o.starts_with("forwarded") && o.contains("\"hello\"")),
        "a well-formed request is forwarded as one request: {outcome:?}"
    );
    let pipelined = case(
        "control: a real pipelined second request",
        "/control2",
        format!("GET /control2 HTTP/1.1\r\nHost: a\r\n\r\n{SMUGGLED}"),
    );
    let outcome = run_smuggle_case(addr, &upstream, &pipelined).await;
    eprintln!("{}: {outcome:?}", pipelined.name);
    assert!(
        outcome
            .as_ref()
            .is_err_and(|e| e.contains("smuggled request reached the upstream")),
        "a second request on the connection is what the judge must catch: {outcome:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Header limits: 431
// ---------------------------------------------------------------------------------------------

/// A raw HTTP/1.1 GET with `Host`, then `extra` headers `X-H<i>: v`, then `X-Big` with `big`
/// bytes of value when `big > 0`, and `Connection: close` when `close`.
fn h1_head(path: &str, extra: usize, big: usize, close: bool) -> Vec<u8> {
    let mut text = format!("GET {path} HTTP/1.1\r\nHost: a\r\n");
    if close {
        text.push_str("Connection: close\r\n");
    }
    for i in 0..extra {
        text.push_str(&format!("X-H{i}: v\r\n"));
    }
    if big > 0 {
        text.push_str(&format!("X-Big: {}\r\n", "b".repeat(big)));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// An HTTP/2 GET with `extra` headers `x-h<i>: v` and `x-big` of `big` bytes; returns the
/// status, or what went wrong instead.
async fn h2_get(addr: SocketAddr, path: &str, extra: usize, big: usize) -> Result<u16, String> {
    let mut builder = http::Request::get(format!("http://{addr}{path}"));
    for i in 0..extra {
        builder = builder.header(format!("x-h{i}"), "v");
    }
    if big > 0 {
        builder = builder.header("x-big", "b".repeat(big));
    }
    let req = builder.body(Full::<Bytes>::default()).unwrap();
    let client = http2_client();
    match tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
        Err(_) => Err("no response within 5 s".into()),
        Ok(Err(e)) => {
            let mut chain = format!("{e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                chain.push_str(&format!(": {s}"));
                source = s.source();
            }
            Err(format!("request failed: {chain}"))
        }
        Ok(Ok(res)) => {
            let status = res.status().as_u16();
            let _ = res.into_body().collect().await;
            Ok(status)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_limits_give_431_over_http1() {
    let (upstream, weft) = start(HEADER_LIMITS).await;
    let addr = weft.addr("main");

    // Just under both limits: 20 headers (Host, Connection, 17 small, X-Big) and ~7.3 KiB.
    let under = h1_head("/under", 17, 7000, true);
    assert!(under.len() < 8 * 1024);
    let reply = raw_exchange(addr, &under, Duration::from_secs(2)).await;
    assert_eq!(
        response_statuses(&reply.bytes),
        [200],
        "20 headers in {} bytes (both limits: 20 headers, 8 KiB) must be served: {:?}",
        under.len(),
        reply.text()
    );
    assert_eq!(
        upstream.request_count(),
        1,
        "the request under the limits reached the upstream"
    );

    // One header too many: Host + 20.
    let many = h1_head("/too-many", 20, 0, false);
    let reply = raw_exchange(addr, &many, Duration::from_secs(2)).await;
    eprintln!(
        "h1, 21 headers: statuses {:?}, closed {}",
        response_statuses(&reply.bytes),
        reply.closed
    );
    assert_eq!(
        response_statuses(&reply.bytes),
        [431],
        "21 headers with max_request_headers: 20 must get 431: {:?}",
        reply.text()
    );

    // Headers over 8 KiB.
    let big = h1_head("/too-big", 0, 8300, false);
    let reply = raw_exchange(addr, &big, Duration::from_secs(2)).await;
    eprintln!(
        "h1, {} byte head: statuses {:?}, closed {}",
        big.len(),
        response_statuses(&reply.bytes),
        reply.closed
    );
    assert_eq!(
        response_statuses(&reply.bytes),
        [431],
        "a {} byte head with max_request_headers_kb: 8 must get 431: {:?}",
        big.len(),
        reply.text()
    );
    assert_eq!(
        upstream.request_count(),
        1,
        "requests refused with 431 never reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_limits_give_431_over_http2() {
    let (upstream, weft) = start(HEADER_LIMITS).await;
    let addr = weft.addr("main");

    // Just under: 20 headers, ~7.2 KiB.
    let under = h2_get(addr, "/under", 19, 7000).await;
    assert_eq!(under, Ok(200), "h2: 20 headers of ~7.2 KiB must be served");

    let many = h2_get(addr, "/too-many", 21, 0).await;
    eprintln!("h2, 21 headers: {many:?}");
    assert_eq!(
        many,
        Ok(431),
        "h2: 21 headers with max_request_headers: 20 must get 431"
    );

    let big = h2_get(addr, "/too-big", 0, 8300).await;
    eprintln!("h2, 8300 byte header value: {big:?}");
    assert_eq!(big, Ok(431), "h2: headers over 8 KiB must get 431");

    assert_eq!(
        upstream.request_count(),
        1,
        "requests refused with 431 never reach the upstream"
    );
}

/// Far past the limit, the h2 layer's own SETTINGS_MAX_HEADER_LIST_SIZE applies before
/// weft's check; the client must still see a 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_limits_give_431_over_http2_far_past_the_limit() {
    let (upstream, weft) = start(HEADER_LIMITS).await;
    let addr = weft.addr("main");
    let huge = h2_get(addr, "/huge", 0, 16 * 1024).await;
    eprintln!("h2, 16 KiB header value: {huge:?}");
    assert_eq!(
        huge,
        Ok(431),
        "h2: a 16 KiB header with max_request_headers_kb: 8 must get 431"
    );
    assert_eq!(upstream.request_count(), 0, "nothing reaches the upstream");
    // The connection-level refusal must not break the listener.
    assert_eq!(
        h2_get(addr, "/after", 0, 0).await,
        Ok(200),
        "h2 is served afterwards"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Slowloris
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_off_after_header_read_timeout() {
    let (_upstream, weft) = start("    limits:\n      header_read_timeout: 1s\n").await;
    let addr = weft.addr("main");

    // A normal client, served throughout on fresh connections.
    let normal = tokio::spawn(async move {
        let mut statuses = Vec::new();
        let end = Instant::now() + Duration::from_millis(2000);
        while Instant::now() < end {
            let reply = one_shot_get(addr, "/normal").await;
            statuses.push(response_statuses(&reply.bytes));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        statuses
    });

    let started = Instant::now();
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /slow HTTP/1.1\r\n")
        .await
        .expect("write the request line");
    let trickle = b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut sent = 0;
    let mut got = Vec::new();
    let closed_after = loop {
        if started.elapsed() > Duration::from_secs(3) {
            break None;
        }
        if slow
            .write_all(&trickle[sent % trickle.len()..][..1])
            .await
            .is_err()
        {
            break Some(started.elapsed());
        }
        sent += 1;
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(300), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break Some(started.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    };
    eprintln!(
        "slowloris: {sent} header bytes sent one per 300 ms; closed after {closed_after:?}; \
         got {:?} before the close",
        String::from_utf8_lossy(&got)
    );
    let closed_after = closed_after.expect("the slowloris connection is closed within 3 s");
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed by the header read timeout (1 s), not before: {closed_after:?}"
    );

    let statuses = normal.await.unwrap();
    assert!(
        statuses.len() >= 3 && statuses.iter().all(|s| s == &[200]),
        "the normal client is served meanwhile: {statuses:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Idle timeout
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed() {
    let (_upstream, weft) = start("    limits:\n      idle_timeout: 1s\n").await;
    let mut stream = TcpStream::connect(weft.addr("main"))
        .await
        .expect("connect");
    assert_eq!(
        get_on(&mut stream, "/first").await,
        Ok(200),
        "the keep-alive request is served"
    );
    let idle_since = Instant::now();
    let closed = wait_closed(&mut stream, Duration::from_secs(3)).await;
    let idle = idle_since.elapsed();
    eprintln!("idle keep-alive connection: {closed:?} after {idle:?}");
    let bytes = closed.unwrap_or_else(|b| {
        panic!(
            "the idle keep-alive connection is closed within 3 s (idle_timeout: 1s); still open, got {:?}",
            String::from_utf8_lossy(&b)
        )
    });
    assert!(
        bytes.is_empty(),
        "nothing is sent on an idle close: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(
        idle >= Duration::from_millis(900),
        "closed for being idle 1 s, not before: {idle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_after_idle_timeout() {
    let (upstream, weft) = start("    limits:\n      idle_timeout: 1s\n").await;
    const BODY: usize = 64 << 20;
    let t0 = Instant::now();
    let mut stream = TcpStream::connect(weft.addr("main"))
        .await
        .expect("connect");
    stream
        .write_all(format!("GET /bytes/{BODY} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .await
        .expect("write the request");
    // Read nothing for three times the idle timeout: the buffers on the way fill up long
    // before 64 MiB, and weft's writes wait.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut got = 0;
    let mut chunk = vec![0u8; 256 << 10];
    let ended = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => break None,
            Ok(Ok(0)) => break Some("end of stream".to_string()),
            Ok(Err(error)) => break Some(error.to_string()),
            Ok(Ok(n)) => got += n,
        }
    };
    eprintln!(
        "a client that stopped reading got {got} bytes, then: {ended:?} ({:?} after the request)",
        t0.elapsed()
    );
    assert!(
        ended.is_some(),
        "the connection ends instead of the response going on ({got} bytes read in 20 s)"
    );
    assert!(
        got > 0 && got < BODY,
        "part of the response came before the cut, not all of it: {got} of {BODY} bytes"
    );
    // The upstream connection went with it; a new request is served.
    assert_eq!(upstream.request_count(), 1);
    let mut fresh = TcpStream::connect(weft.addr("main"))
        .await
        .expect("connect again");
    assert_eq!(get_on(&mut fresh, "/after").await, Ok(200));
}

// ---------------------------------------------------------------------------------------------
// 5. max_connections
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_the_third() {
    let (_upstream, weft) = start("    limits:\n      max_connections: 2\n").await;
    let addr = weft.addr("main");
    let overflow = r#"weft_downstream_cx_overflow_total{listener="main"}"#;
    let active = r#"weft_downstream_cx_active{listener="main"}"#;

    // Two connections, each served once and then left open and idle.
    let mut first = TcpStream::connect(addr).await.expect("connect 1");
    assert_eq!(
        get_on(&mut first, "/one").await,
        Ok(200),
        "connection 1 is served"
    );
    let mut second = TcpStream::connect(addr).await.expect("connect 2");
    assert_eq!(
        get_on(&mut second, "/two").await,
        Ok(200),
        "connection 2 is served"
    );
    assert_eq!(weft.metric(overflow), 0.0, "no overflow yet");

    // The third is closed at once, without a response.
    let mut third = TcpStream::connect(addr)
        .await
        .expect("connect 3 (the kernel accepts)");
    let started = Instant::now();
    let closed = wait_closed(&mut third, Duration::from_secs(1)).await;
    eprintln!("third connection: {closed:?} after {:?}", started.elapsed());
    let bytes = closed.unwrap_or_else(|_| {
        panic!("the third connection (max_connections: 2) is closed within 1 s")
    });
    assert!(
        bytes.is_empty(),
        "the refused connection gets no bytes: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(
        weft.metric(overflow) >= 1.0,
        "{overflow} counts the refused connection"
    );

    // The first two are kept.
    assert_eq!(
        get_on(&mut first, "/one-again").await,
        Ok(200),
        "connection 1 is still served"
    );
    assert_eq!(
        get_on(&mut second, "/two-again").await,
        Ok(200),
        "connection 2 is still served"
    );

    // Closing one frees a slot.
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(3);
    while weft.metric(active) > 1.0 {
        assert!(
            Instant::now() < deadline,
            "{active} drops to 1 after a client closes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut fourth = TcpStream::connect(addr).await.expect("connect 4");
    assert_eq!(
        get_on(&mut fourth, "/four").await,
        Ok(200),
        "a new connection is served once one of the two has closed"
    );
    drop(first);
}

// ---------------------------------------------------------------------------------------------
// 6. The rejection metric
// ---------------------------------------------------------------------------------------------

/// The first status of a raw HTTP/1.1 exchange, or what came back instead.
async fn h1_status(addr: SocketAddr, request: &[u8]) -> Result<u16, String> {
    let reply = raw_exchange(addr, request, Duration::from_secs(2)).await;
    match response_statuses(&reply.bytes).as_slice() {
        [status] => Ok(*status),
        _ => Err(format!("closed {}: {:?}", reply.closed, reply.text())),
    }
}

/// A request in flight, resolving to its status or what came back instead.
type StatusFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<u16, String>> + Send + 'a>>;

/// Sends each request in turn and notes the metric after it. Returns one line per request
/// and whether the metric went up by exactly one for each 431 and stayed put otherwise.
async fn count_rejections(
    weft: &Weft,
    requests: Vec<(&str, StatusFuture<'_>)>,
) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut expected = weft.metric(REJECTED_HEADER_LIMITS);
    let mut all_counted = true;
    for (name, request) in requests {
        let status = request.await;
        if status == Ok(431) {
            expected += 1.0;
        }
        // A 431 that hyper sends itself is counted when weft's connection task ends,
        // which may be just after the client has read the response: wait up to 2 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut now = weft.metric(REJECTED_HEADER_LIMITS);
        while now < expected && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            now = weft.metric(REJECTED_HEADER_LIMITS);
        }
        all_counted &= now == expected;
        let line = format!("{name}: status {status:?}, metric {now} (expected {expected})");
        eprintln!("rejection metric: {line}");
        lines.push(line);
    }
    (lines, all_counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_limit_rejections_are_counted_over_http2() {
    let (_upstream, weft) = start(HEADER_LIMITS).await;
    let addr = weft.addr("main");
    assert_eq!(
        weft.metric(REJECTED_HEADER_LIMITS),
        0.0,
        "nothing rejected yet"
    );
    let (lines, all_counted) = count_rejections(
        &weft,
        vec![
            ("h2 normal request", Box::pin(h2_get(addr, "/fine", 0, 0))),
            ("h2 21 headers", Box::pin(h2_get(addr, "/many", 21, 0))),
            ("h2 8.3 KiB header", Box::pin(h2_get(addr, "/big", 0, 8300))),
            ("h2 normal request", Box::pin(h2_get(addr, "/fine", 0, 0))),
        ],
    )
    .await;
    assert!(
        all_counted,
        "{REJECTED_HEADER_LIMITS} must count every 431:\n{}",
        lines.join("\n")
    );
    assert_eq!(
        weft.metric(REJECTED_HEADER_LIMITS),
        2.0,
        "two 431s:\n{}",
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn header_limit_rejections_are_counted_over_http1() {
    let (_upstream, weft) = start(HEADER_LIMITS).await;
    let addr = weft.addr("main");
    assert_eq!(
        weft.metric(REJECTED_HEADER_LIMITS),
        0.0,
        "nothing rejected yet"
    );
    let many = h1_head("/many", 20, 0, false);
    let big = h1_head("/big", 0, 8300, false);
    let fine = h1_head("/fine", 0, 0, true);
    let (lines, all_counted) = count_rejections(
        &weft,
        vec![
            ("h1 normal request", Box::pin(h1_status(addr, &fine))),
            ("h1 21 headers", Box::pin(h1_status(addr, &many))),
            ("h1 8.3 KiB head", Box::pin(h1_status(addr, &big))),
            ("h1 normal request", Box::pin(h1_status(addr, &fine))),
        ],
    )
    .await;
    assert!(
        all_counted,
        "{REJECTED_HEADER_LIMITS} must count every 431:\n{}",
        lines.join("\n")
    );
    assert_eq!(
        weft.metric(REJECTED_HEADER_LIMITS),
        2.0,
        "two 431s:\n{}",
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn header_limit_rejections_are_counted_when_the_h2_layer_refuses() {
    let (_upstream, weft) = start(HEADER_LIMITS).await;
    let addr = weft.addr("main");
    let (lines, all_counted) = count_rejections(
        &weft,
        vec![(
            "h2 16 KiB header",
            Box::pin(h2_get(addr, "/huge", 0, 16 * 1024)),
        )],
    )
    .await;
    assert!(
        all_counted,
        "{REJECTED_HEADER_LIMITS} must count every 431:\n{}",
        lines.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Request bodies the response left unread, Expect: 100-continue, pipelining
// ---------------------------------------------------------------------------------------------

/// A listener that answers every request itself, without reading its body.
fn direct_config() -> String {
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n{}",
        listener_yaml(
            "main",
            "",
            "      - direct_response: { status: 200, body: \"hi\\n\" }\n"
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_short_body_is_dropped_and_the_connection_kept() {
    let weft = Weft::start(&direct_config(), 1);
    let mut stream = TcpStream::connect(weft.addr("main")).await.unwrap();
    // The body comes after the response was written, in two pieces.
    stream
        .write_all(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut stream, Duration::from_secs(3)).await;
    let first = first.expect("the answer comes before the body");
    assert_eq!(first.status(), Some(200));
    assert_eq!(first.header_count("connection"), 0, "{first:?}");
    stream.write_all(&[b'x'; 1000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(&[b'y'; 2000]).await.unwrap();
    assert_eq!(
        get_on(&mut stream, "/next").await,
        Ok(200),
        "after the 3000 body bytes were dropped, the next request is served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_long_body_ends_the_connection_after_the_response() {
    let weft = Weft::start(&direct_config(), 1);
    let mut stream = TcpStream::connect(weft.addr("main")).await.unwrap();
    stream
        .write_all(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n")
        .await
        .unwrap();
    stream.write_all(&[b'x'; 100_000]).await.unwrap();
    let res = read_response(&mut stream, Duration::from_secs(3))
        .await
        .expect("the response comes whole");
    assert_eq!(res.status(), Some(200));
    assert!(
        res.headers
            .iter()
            .any(|(n, v)| n == "connection" && v == "close"),
        "the client is told the connection ends: {:?}",
        res.headers
    );
    assert!(
        wait_closed(&mut stream, Duration::from_secs(3))
            .await
            .is_ok(),
        "and it does"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_is_answered_and_pipelined_requests_are_served_in_order() {
    let (upstream, weft) = start("").await;
    let addr = weft.addr("main");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"PUT /echo-body HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .await
        .unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut interim))
        .await
        .expect("100 Continue before the body is sent")
        .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").await.unwrap();
    let res = read_response(&mut stream, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!((res.status(), &res.body[..]), (Some(200), &b"hello"[..]));
    let seen = upstream.requests();
    assert!(
        seen.last()
            .is_some_and(|r| r.headers.get("expect").is_none()),
        "the upstream is not asked to send 100 Continue again"
    );

    // Three requests in one write: three answers, in order.
    stream
        .write_all(
            b"GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\nGET /p3 HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await
        .unwrap();
    // The answers may arrive in one read: collect until three whole messages are in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let messages = loop {
        let (messages, _) = parse_stream(&bytes);
        if messages.len() >= 3 {
            break messages;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => bytes.extend_from_slice(&chunk[..n]),
            other => panic!(
                "three answers expected, got {:?} then {other:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    };
    assert_eq!(messages.len(), 3, "{:?}", String::from_utf8_lossy(&bytes));
    for (res, path) in messages.iter().zip(["/p1", "/p2", "/p3"]) {
        assert_eq!(res.status(), Some(200));
        let body = String::from_utf8_lossy(&res.body).into_owned();
        assert!(body.contains(path), "{path} answered in order: {body:?}");
    }
}
