//! An accepted connection: its read half for hyper, its write half shared with [`Peer`], its
//! deadline (see [`super::activity`]) and its place among `max_connections`.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

use super::Listener;
use super::activity::{Activity, Expiry};

/// An accepted TCP connection. Reads are tokio's own; the write half is shared with [`Peer`]
/// so that a WebSocket can write into it from any thread after the upgrade.
pub struct Connection {
    read: OwnedReadHalf,
    write: Arc<OwnedWriteHalf>,
    activity: Arc<Activity>,
    /// Set to the connection's deadline while a read waits.
    timer: Option<Pin<Box<Sleep>>>,
    /// Given back to the listener when the connection closes.
    _slot: OwnedSemaphorePermit,
}

/// Who is on the other end of a request's connection (axum's `ConnectInfo`).
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    writer: Arc<OwnedWriteHalf>,
    pub(super) activity: Arc<Activity>,
}

impl Peer {
    /// The connection's write half, for a WebSocket to write into after the upgrade (its
    /// `AsRef<TcpStream>` gives the non-blocking writes and write readiness).
    pub fn writer(&self) -> Arc<OwnedWriteHalf> {
        self.writer.clone()
    }
}

impl Connected<IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        Peer {
            addr: *stream.remote_addr(),
            writer: stream.io().write.clone(),
            activity: stream.io().activity.clone(),
        }
    }
}

impl AsyncRead for Connection {
    /// Reads, or ends the connection when a read would wait past its deadline: a request's
    /// head that did not arrive in time is an error, an idle connection a clean end of stream.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.read).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.poll_deadline(cx),
            ready => ready,
        }
    }
}

impl Connection {
    pub(super) fn new(
        stream: TcpStream,
        slot: OwnedSemaphorePermit,
        activity: Arc<Activity>,
    ) -> Self {
        let (read, write) = stream.into_split();
        Connection {
            read,
            write: Arc::new(write),
            activity,
            timer: None,
            _slot: slot,
        }
    }

    /// Pending until the connection's deadline, if it has one now.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((deadline, expiry)) = self.activity.deadline(cx.waker()) else {
            return Poll::Pending;
        };
        // A deadline already past (an evicted connection's is "now") ends the read at once.
        if deadline > tokio::time::Instant::now() {
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            ready!(timer.as_mut().poll(cx));
        }
        match expiry {
            Expiry::Idle => Poll::Ready(Ok(())),
            Expiry::Header => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request head did not arrive in time",
            ))),
        }
    }

    /// Runs `write` once the socket is writable, until it takes something.
    fn poll_with(
        &self,
        cx: &mut Context<'_>,
        write: impl Fn(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let stream: &TcpStream = (*self.write).as_ref();
        loop {
            ready!(stream.poll_write_ready(cx))?;
            match write(stream) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => {
                    self.activity.wrote();
                    return Poll::Ready(result);
                }
            }
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(cx, |stream| stream.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(cx, |stream| stream.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream: &TcpStream = self.read.as_ref();
        Poll::Ready(socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write))
    }
}
