//! Bodies stream through weft both ways: a large upload echoed back and a large download
//! pass with weft's memory staying bounded (it never holds a whole body).

use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use weft_e2e::*;

const MIB: u64 = 1024 * 1024;

type Streaming =
    StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, std::io::Error>>>;

fn upload_body(total: u64) -> Streaming {
    let chunk = Bytes::from(vec![b'u'; 256 * 1024]);
    let count = total / chunk.len() as u64;
    let stream = futures_util::stream::iter(0..count).map(move |_| Ok(Frame::data(chunk.clone())));
    StreamBody::new(stream.boxed())
}

/// Reads a response body to its end, counting bytes without keeping them.
async fn drain(body: hyper::body::Incoming) -> u64 {
    let mut body = body;
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body frame").into_data() {
            n += data.len() as u64;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_with_bounded_memory() {
    let up = Upstream::start("bulk").await;
    let config = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n{}clusters:\n{}",
        listener_yaml("main", "", "      - cluster: bulk\n"),
        cluster_yaml("bulk", &[up.addr], "    request_timeout: 60s\n")
    );
    let weft = Weft::start(&config, 2);
    let addr = weft.addr("main");
    let baseline = weft.peak_rss_kib();

    // Upload 1 GiB that the upstream echoes back while it is still arriving.
    let total = 1024 * MIB;
    let client: Client<HttpConnector, Streaming> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let started = Instant::now();
    let req = http::Request::post(format!("http://{addr}/echo-body"))
        .body(upload_body(total))
        .unwrap();
    let res = client.request(req).await.expect("upload response");
    assert_eq!(res.status(), 200);
    let echoed = drain(res.into_body()).await;
    assert_eq!(echoed, total, "every uploaded byte came back");
    let upload_time = started.elapsed();

    // Download 1 GiB.
    let started = Instant::now();
    let req = http::Request::get(format!("http://{addr}/bytes/{total}"))
        .body(upload_body(0))
        .unwrap();
    let res = client.request(req).await.expect("download response");
    assert_eq!(res.status(), 200);
    assert_eq!(drain(res.into_body()).await, total);
    let download_time = started.elapsed();

    let peak = weft.peak_rss_kib();
    eprintln!(
        "1 GiB echo in {upload_time:?}, 1 GiB download in {download_time:?}; weft peak RSS {peak} KiB (at start {baseline} KiB)"
    );
    assert!(
        peak < baseline + 64 * 1024,
        "weft's peak RSS grew from {baseline} KiB to {peak} KiB while streaming 2 GiB"
    );
    let rx = weft.metric(r#"weft_downstream_rx_bytes_total{listener="main"}"#);
    let tx = weft.metric(r#"weft_downstream_tx_bytes_total{listener="main"}"#);
    assert_eq!(rx, total as f64, "bytes in");
    assert_eq!(tx, 2.0 * total as f64, "bytes out");
}
