//! A watch over the raw bytes of an HTTP/1 connection for the framing that hyper accepts
//! but normalises silently: a request with both Content-Length and Transfer-Encoding
//! (hyper drops the Content-Length before weft can see it) and repeated Content-Length
//! headers (hyper keeps one). Such a request gets 400 and the connection is closed.
//!
//! The tracker follows message boundaries exactly as hyper does (chunked when the last
//! Transfer-Encoding coding is `chunked`, else Content-Length, else no body) and numbers
//! the request heads; the request handler asks whether its own number was flagged. It
//! stops watching on anything hyper itself refuses (hyper closes those connections), on
//! HTTP/2, and on upgrades.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the tracker found, shared with the request handler of the same connection.
#[derive(Debug, Default)]
pub struct FramingLog {
    /// 1 + the index of the first flagged request head; 0 when none.
    flagged: AtomicU64,
}

impl FramingLog {
    /// Whether the `index`-th request head (from 0) on this connection had ambiguous framing.
    pub fn is_flagged(&self, index: u64) -> bool {
        self.flagged.load(Ordering::Relaxed) == index + 1
    }

    fn flag(&self, index: u64) {
        let _ = self
            .flagged
            .compare_exchange(0, index + 1, Ordering::Relaxed, Ordering::Relaxed);
    }
}

const MAX_HEAD: usize = 1 << 20;
const MAX_LINE: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
enum State {
    Head,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers,
    Off,
}

/// The state machine over one connection's incoming bytes.
#[derive(Debug)]
pub struct FramingTracker {
    state: State,
    buf: Vec<u8>,
    heads: u64,
    max_headers: usize,
    log: Arc<FramingLog>,
}

impl FramingTracker {
    pub fn new(log: Arc<FramingLog>, max_headers: usize) -> Self {
        FramingTracker {
            state: State::Head,
            buf: Vec::new(),
            heads: 0,
            max_headers,
            log,
        }
    }

    /// Feeds bytes as they arrive.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.state != State::Off {
            let used = self.step(data);
            data = &data[used..];
        }
    }

    /// Consumes some of `data`; returns how much.
    fn step(&mut self, data: &[u8]) -> usize {
        match &mut self.state {
            State::Off => data.len(),
            State::Fixed(left) | State::ChunkData(left) => {
                let n = (*left).min(data.len() as u64);
                *left -= n;
                if *left == 0 {
                    self.state = match self.state {
                        State::Fixed(_) => State::Head,
                        _ => State::ChunkDataEnd,
                    };
                }
                n as usize
            }
            State::Head | State::ChunkSize | State::ChunkDataEnd | State::Trailers => {
                let mut used = 0;
                while let Some(nl) = data[used..].iter().position(|b| *b == b'\n') {
                    self.buf.extend_from_slice(&data[used..used + nl + 1]);
                    used += nl + 1;
                    if self.line_done() {
                        return used;
                    }
                }
                self.buf.extend_from_slice(&data[used..]);
                let limit = if self.state == State::Head {
                    MAX_HEAD
                } else {
                    MAX_LINE
                };
                if self.buf.len() > limit {
                    self.off();
                }
                data.len()
            }
        }
    }

    /// Called after each LF; returns true when the state changed.
    fn line_done(&mut self) -> bool {
        match self.state {
            State::Head => {
                if self.buf.iter().all(|b| *b == b'\r' || *b == b'\n') {
                    // Empty lines before a request line are ignored, as hyper does.
                    self.buf.clear();
                    return false;
                }
                if !(self.buf.ends_with(b"\n\r\n") || self.buf.ends_with(b"\n\n")) {
                    return false;
                }
                let head = std::mem::take(&mut self.buf);
                self.on_head(&head);
                true
            }
            State::ChunkSize => {
                let line = std::mem::take(&mut self.buf);
                let text = std::str::from_utf8(&line).unwrap_or("");
                let size = text
                    .trim_end_matches(['\r', '\n'])
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim();
                match u64::from_str_radix(size, 16) {
                    Ok(0) => self.state = State::Trailers,
                    Ok(n) => self.state = State::ChunkData(n),
                    Err(_) => self.off(),
                }
                true
            }
            State::ChunkDataEnd => {
                let line = std::mem::take(&mut self.buf);
                if line == b"\r\n" || line == b"\n" {
                    self.state = State::ChunkSize;
                } else {
                    self.off();
                }
                true
            }
            State::Trailers => {
                let line = std::mem::take(&mut self.buf);
                if line == b"\r\n" || line == b"\n" {
                    self.state = State::Head;
                    return true;
                }
                false
            }
            State::Fixed(_) | State::ChunkData(_) | State::Off => true,
        }
    }

    fn off(&mut self) {
        self.state = State::Off;
        self.buf = Vec::new();
    }

    fn on_head(&mut self, head: &[u8]) {
        if self.heads == 0 && head.starts_with(b"PRI * HTTP/2.0") {
            return self.off();
        }
        // Most heads fit in a stack array; only one with more headers uses the heap.
        let mut stack = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut stack);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => self.on_request(&req),
            Err(httparse::Error::TooManyHeaders) if self.max_headers > 32 => {
                let mut heap = vec![httparse::EMPTY_HEADER; self.max_headers];
                let mut req = httparse::Request::new(&mut heap);
                match req.parse(head) {
                    Ok(httparse::Status::Complete(_)) => self.on_request(&req),
                    _ => self.off(),
                }
            }
            _ => self.off(),
        }
    }

    /// Flags ambiguous framing and follows the body of a parsed request head.
    fn on_request(&mut self, req: &httparse::Request<'_, '_>) {
        let index = self.heads;
        self.heads += 1;
        let mut lengths = Vec::new();
        let mut codings = Vec::new();
        let mut upgrade = req.method == Some("CONNECT");
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                lengths.push(h.value);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                codings.extend(
                    h.value
                        .split(|b| *b == b',')
                        .map(|c| c.trim_ascii().to_ascii_lowercase()),
                );
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if upgrade {
            return self.off();
        }
        let has_te = !codings.is_empty()
            || req
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
        if (has_te && !lengths.is_empty()) || lengths.len() > 1 {
            self.log.flag(index);
        }
        self.state = if has_te {
            if codings.last().map(Vec::as_slice) == Some(b"chunked") {
                State::ChunkSize
            } else {
                State::Off
            }
        } else if let Some(len) = lengths.first() {
            match std::str::from_utf8(len)
                .ok()
                .and_then(|l| l.trim().parse::<u64>().ok())
            {
                Some(0) => State::Head,
                Some(n) => State::Fixed(n),
                None => State::Off,
            }
        } else {
            State::Head
        };
    }
}

pin_project! {
    /// Passes reads through, feeding them to a [`FramingTracker`].
    pub struct FramingIo<T> {
        #[pin]
        inner: T,
        tracker: FramingTracker,
    }
}

impl<T> FramingIo<T> {
    pub fn new(inner: T, tracker: FramingTracker) -> Self {
        FramingIo { inner, tracker }
    }
}

impl<T: AsyncRead> AsyncRead for FramingIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if this.tracker.state != State::Off {
            this.tracker.feed(&buf.filled()[before..]);
        }
        result
    }
}

impl<T: AsyncWrite> AsyncWrite for FramingIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns (heads seen, flagged indices 0..8).
    fn run(input: &[u8], step: usize) -> (u64, Vec<u64>, bool) {
        let log = Arc::new(FramingLog::default());
        let mut t = FramingTracker::new(log.clone(), 100);
        for piece in input.chunks(step) {
            t.feed(piece);
        }
        let flagged = (0..8).filter(|i| log.is_flagged(*i)).collect();
        (t.heads, flagged, t.state == State::Off)
    }

    fn all_steps(input: &[u8]) -> (u64, Vec<u64>, bool) {
        let whole = run(input, input.len());
        for step in [1, 2, 3, 7, 64] {
            assert_eq!(run(input, step), whole, "feeding {step} bytes at a time");
        }
        whole
    }

    #[test]
    fn follows_pipelined_requests_through_bodies() {
        let input = b"\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n\
POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nGET /\
POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nGET\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\n\
GET /d HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(all_steps(input), (4, vec![], false));
    }

    #[test]
    fn flags_length_with_encoding_and_repeated_lengths() {
        let input = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n\
POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(all_steps(input), (3, vec![1], false));
        let te_first = b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n";
        assert_eq!(all_steps(te_first), (1, vec![0], false));
    }

    #[test]
    fn heads_with_many_headers_are_followed_too() {
        let mut head = b"POST /many HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..40 {
            head.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        head.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(all_steps(&head), (2, vec![0], false));
    }

    #[test]
    fn stops_on_http2_upgrades_and_garbage() {
        for input in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert!(all_steps(input).2, "{}", String::from_utf8_lossy(input));
        }
    }
}
