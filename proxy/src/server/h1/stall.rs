//! The write side of a downstream HTTP/1 connection, cut when the client stops reading.
//!
//! A write that the client's socket cannot take (its receive window and weft's send buffer
//! full) waits; if no byte goes out for the listener's `idle_timeout`, the write fails and
//! the connection closes, so a client that never reads a response does not hold the
//! connection, the request and its upstream connection for ever (nginx's `send_timeout`:
//! the time runs between two writes that make progress, not over the whole response).
//!
//! Nothing is armed while writes go straight through: the timer is set (one clock read)
//! only when a write has to wait, and any progress disarms it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

use super::response::BoxWrite;

pub struct StallGuard {
    inner: BoxWrite,
    limit: Duration,
    /// Kept once made, and moved for the next wait.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer runs for the current wait.
    armed: bool,
}

impl StallGuard {
    pub fn new(inner: BoxWrite, limit: Duration) -> Self {
        StallGuard {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }

    /// Called when the inner write waits: `Ready` with an error once it has waited `limit`.
    fn waiting(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if !self.armed {
            self.armed = true;
            let deadline = Instant::now() + self.limit;
            match self.timer.as_mut() {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let timer = self.timer.as_mut().expect("armed above");
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client took no response bytes for {:?} (idle_timeout)",
                self.limit
            ),
        ))
    }

    /// Passes a poll of the inner writer on, minding the stall deadline while it waits.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut BoxWrite>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll(Pin::new(&mut self.inner), cx) {
            Poll::Ready(result) => {
                self.armed = false;
                Poll::Ready(result)
            }
            Poll::Pending => self.waiting(cx).map(Err),
        }
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().guard(cx, |w, cx| w.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .guard(cx, |w, cx| w.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guard(cx, |w, cx| w.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guard(cx, |w, cx| w.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A pipe with `capacity` bytes of buffer between the guarded writer and the reader.
    fn pipe(capacity: usize, limit: Duration) -> (StallGuard, tokio::io::DuplexStream) {
        let (writer, reader) = tokio::io::duplex(capacity);
        (StallGuard::new(Box::new(writer), limit), reader)
    }

    #[tokio::test]
    async fn a_reader_that_stops_fails_the_write_after_the_limit() {
        let (mut guarded, _reader) = pipe(1024, Duration::from_millis(200));
        let started = Instant::now();
        let error = guarded
            .write_all(&[7; 4096])
            .await
            .expect_err("nobody reads");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("idle_timeout"), "{error}");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_not_cut() {
        // 4 KiB through a 256-byte pipe, 256 bytes taken every 100 ms with a 400 ms limit:
        // 1.6 s in all, four times the limit, but no wait is near it.
        let (mut guarded, mut reader) = pipe(256, Duration::from_millis(400));
        let read = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0; 256];
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                match reader.read(&mut buf).await.expect("read") {
                    0 => return got,
                    n => got += n,
                }
            }
        });
        let started = Instant::now();
        guarded
            .write_all(&[7; 4096])
            .await
            .expect("the slow reader takes it all");
        guarded.shutdown().await.expect("shutdown");
        drop(guarded);
        assert_eq!(read.await.expect("reader"), 4096);
        assert!(started.elapsed() > Duration::from_millis(400));
    }

    #[tokio::test]
    async fn the_timer_is_set_afresh_for_each_wait() {
        // Two waits of 300 ms each with a 500 ms limit: the second is not cut by the time the
        // first left on the clock.
        let (mut guarded, mut reader) = pipe(16, Duration::from_millis(500));
        let read = tokio::spawn(async move {
            let mut buf = [0; 16];
            for _ in 0..2 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                reader.read_exact(&mut buf).await.expect("read");
            }
            reader
        });
        let started = Instant::now();
        guarded
            .write_all(&[1; 48])
            .await
            .expect("two waits of 300 ms");
        assert!(started.elapsed() > Duration::from_millis(500));
        let _reader = read.await.expect("reader");
    }
}
