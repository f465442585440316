use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A raw HTTP/1.1 upstream: answers every request head with `response`, and closes a
/// connection after `per_conn` responses. Counts the connections it accepted.
struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

async fn upstream(response: &'static str, per_conn: usize) -> Upstream {
    upstream_late(response, per_conn, Duration::ZERO).await
}

/// As [`upstream`], with each answer after a connection's first one `late`.
async fn upstream_late(response: &'static str, per_conn: usize, late: Duration) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut answered = 0;
                while answered < per_conn {
                    let mut chunk = [0u8; 1024];
                    let n = match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if answered > 0 && !late.is_zero() {
                            tokio::time::sleep(late).await;
                        }
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                        answered += 1;
                    }
                }
            });
        }
    });
    Upstream { addr, accepted }
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
/// A timeout no test reaches.
const LONG: Duration = Duration::from_secs(30);
const CHUNKED: &str =
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";

fn pool(idle_timeout: Duration, max_idle: usize) -> Arc<Http1Pool> {
    let limits = Arc::new(ConnectionLimits::new(
        1024,
        1024,
        Default::default(),
        Default::default(),
    ));
    Arc::new(Http1Pool::new(
        super::Connector::plain(Duration::from_secs(1)),
        limits,
        idle_timeout,
        max_idle,
    ))
}

fn get(addr: SocketAddr) -> Request<ProxyBody> {
    Request::builder()
        .uri(format!("http://{addr}/path?q=1"))
        .header(http::header::HOST, "upstream")
        .body(crate::proxy::empty())
        .unwrap()
}

async fn fetch(pool: &Arc<Http1Pool>, addr: SocketAddr) -> Bytes {
    let response = pool.send(addr, get(addr), LONG).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap().to_bytes()
}

fn idle_count(pool: &Http1Pool) -> usize {
    pool.lock().idle.iter().map(|(_, list)| list.len()).sum()
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let up = upstream(OK, usize::MAX).await;
    let pool = pool(Duration::from_secs(60), 8);
    for _ in 0..5 {
        assert_eq!(fetch(&pool, up.addr).await, "ok");
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(idle_count(&pool), 1);
}

#[tokio::test]
async fn chunked_bodies_stream_and_the_connection_is_reused() {
    let up = upstream(CHUNKED, usize::MAX).await;
    let pool = pool(Duration::from_secs(60), 8);
    for _ in 0..3 {
        assert_eq!(fetch(&pool, up.addr).await, "abcde");
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_not_used_again() {
    // One response per connection, then the upstream closes it.
    let up = upstream(OK, 1).await;
    let pool = pool(Duration::from_secs(60), 8);
    for _ in 0..4 {
        assert_eq!(fetch(&pool, up.addr).await, "ok");
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_request_on_a_connection_closed_under_it_goes_again_on_a_new_one() {
    let up = upstream(OK, 1).await;
    let pool = pool(Duration::from_secs(60), 8);
    assert_eq!(fetch(&pool, up.addr).await, "ok");
    // Whether or not the close has been seen, the next request must not fail.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(fetch(&pool, up.addr).await, "ok");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrent_requests_open_connections_up_to_max_idle_kept() {
    let up = upstream(OK, usize::MAX).await;
    let pool = pool(Duration::from_secs(60), 2);
    let responses: Vec<_> = futures_util::future::join_all((0..4).map(|_| {
        let pool = pool.clone();
        async move { pool.send(up.addr, get(up.addr), LONG).await.unwrap() }
    }))
    .await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 4);
    for response in responses {
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "ok"
        );
    }
    assert_eq!(idle_count(&pool), 2);
}

#[tokio::test]
async fn no_connection_is_kept_with_max_idle_zero() {
    let up = upstream(OK, usize::MAX).await;
    let pool = pool(Duration::from_secs(60), 0);
    fetch(&pool, up.addr).await;
    fetch(&pool, up.addr).await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn idle_connections_expire() {
    let up = upstream(OK, usize::MAX).await;
    let pool = pool(Duration::from_millis(100), 8);
    fetch(&pool, up.addr).await;
    assert_eq!(idle_count(&pool), 1);
    // The reaper closes it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(idle_count(&pool), 0);
    fetch(&pool, up.addr).await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_closes_its_connection() {
    let up = upstream(
        "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
        usize::MAX,
    )
    .await;
    let pool = pool(Duration::from_secs(60), 8);
    let response = pool.send(up.addr, get(up.addr), LONG).await.unwrap();
    drop(response);
    assert_eq!(idle_count(&pool), 0);
}

#[tokio::test]
async fn a_refused_connect_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let pool = pool(Duration::from_secs(60), 8);
    let error = pool.send(addr, get(addr), LONG).await.unwrap_err();
    assert!(matches!(error, UpstreamError::Connect { .. }), "{error:?}");
}

#[tokio::test]
async fn requests_go_in_origin_form() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        stream.write_all(OK.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let pool = pool(Duration::from_secs(60), 8);
    fetch(&pool, addr).await;
    let head = seen.await.unwrap();
    assert!(head.starts_with("GET /path?q=1 HTTP/1.1\r\n"), "{head}");
}

#[tokio::test]
async fn a_body_dropped_unread_but_already_received_keeps_its_connection() {
    let up = upstream(OK, usize::MAX).await;
    let pool = pool(Duration::from_secs(60), 8);
    let response = pool.send(up.addr, get(up.addr), LONG).await.unwrap();
    // The whole response came in one read; its body is buffered, not yet taken.
    drop(response);
    assert_eq!(idle_count(&pool), 1);
    assert_eq!(fetch(&pool, up.addr).await, "ok");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_request_body_streams_up_while_the_response_is_awaited() {
    // An upstream that answers only once it has read the whole request body.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    const LEN: usize = 4 * 1024 * 1024;
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = Vec::new();
        let head_end = loop {
            let n = stream.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
        };
        let mut body = seen.len() - head_end;
        while body < LEN {
            body += stream.read(&mut buf).await.unwrap();
        }
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.to_string().len()
        );
        stream.write_all(reply.as_bytes()).await.unwrap();
    });
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let frames = futures_util::stream::iter(
        (0..LEN / chunk.len()).map(move |_| Ok::<_, BoxErr>(Frame::data(chunk.clone()))),
    );
    let body = http_body_util::StreamBody::new(frames).boxed_unsync();
    let request = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/upload"))
        .header(http::header::HOST, "upstream")
        .header(http::header::CONTENT_LENGTH, LEN)
        .body(body)
        .unwrap();
    let pool = pool(Duration::from_secs(60), 8);
    let response = pool.send(addr, request, LONG).await.unwrap();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, LEN.to_string());
}

type BoxErr = crate::proxy::BoxError;

#[tokio::test]
async fn a_request_on_a_closed_connection_comes_back_unsent() {
    // What the retry in `send` relies on: an exchange that saw no byte of a response and
    // did not read its body gives its request back whole.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        drop(stream);
    });
    let pool = pool(Duration::from_secs(60), 8);
    let conn = pool.connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut exchange = Exchange::new(conn, get(addr));
    let error = std::future::poll_fn(|cx| exchange.poll_head(cx))
        .await
        .unwrap_err();
    assert!(exchange.replayable(), "{error:?}");
    let request = exchange.into_request().unwrap();
    assert_eq!(request.uri().path(), "/path");
}

#[tokio::test]
async fn an_upstream_that_answers_before_reading_the_upload_is_heard_and_not_reused() {
    // The upstream answers 413 at once and never reads the (endless) upload.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 1024];
        let _ = stream.read(&mut buf).await.unwrap();
        stream
            .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nbig!")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let frames =
        futures_util::stream::repeat_with(move || Ok::<_, BoxErr>(Frame::data(chunk.clone())));
    let request = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/upload"))
        .body(http_body_util::StreamBody::new(frames).boxed_unsync())
        .unwrap();
    let pool = pool(Duration::from_secs(60), 8);
    let response = tokio::time::timeout(Duration::from_secs(3), pool.send(addr, request, LONG))
        .await
        .expect("the answer is heard while the upload is stuck")
        .unwrap();
    assert_eq!(response.status(), 413);
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, "big!");
    assert_eq!(idle_count(&pool), 0);
}

#[tokio::test]
async fn chunked_request_bodies_and_trailers_go_out_chunked() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 1024];
        while !seen.ends_with(b"0\r\nx-sum: 9\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        stream.write_all(OK.as_bytes()).await.unwrap();
        String::from_utf8(seen).unwrap()
    });
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-sum", http::HeaderValue::from_static("9"));
    let frames = futures_util::stream::iter(vec![
        Ok::<_, BoxErr>(Frame::data(Bytes::from_static(b"hello"))),
        Ok(Frame::data(Bytes::from_static(b" world"))),
        Ok(Frame::trailers(trailers)),
    ]);
    let request = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/up"))
        .body(http_body_util::StreamBody::new(frames).boxed_unsync())
        .unwrap();
    let pool = pool(Duration::from_secs(60), 8);
    let response = pool.send(addr, request, LONG).await.unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "ok"
    );
    let head = seen.await.unwrap();
    assert!(
        head.contains(
            "transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 9\r\n\r\n"
        ),
        "{head}"
    );
    assert_eq!(idle_count(&pool), 1);
}

/// The request timeout runs from the send to the response head, also on a reused
/// connection whose timer a longer deadline had set before (the timer goes back).
#[tokio::test]
async fn a_response_head_later_than_the_timeout_is_a_timeout_on_a_reused_connection() {
    // The first answer at once, the next ones late.
    let addr = upstream_late(OK, usize::MAX, Duration::from_millis(500))
        .await
        .addr;
    let pool = pool(Duration::from_secs(10), 4);
    assert_eq!(fetch(&pool, addr).await, "ok");
    let started = std::time::Instant::now();
    let error = pool
        .send(addr, get(addr), Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(error, UpstreamError::Timeout { .. }), "{error:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_millis(450),
        "{waited:?}"
    );
}
