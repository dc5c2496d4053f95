//! A WebSocket connection's TCP socket, written from any thread.
//!
//! The hub writes an event's pre-encoded frame straight into each connection's socket with
//! one non-blocking `write`, on the thread that fans the event out: no task wakes up, nothing
//! is copied, and nothing waits. Only when the kernel's send buffer is full does the rest of
//! a frame (and every frame after it, in order) wait in the socket's pending queue, and the
//! connection's own task is woken to write it when the socket becomes writable. A queue that
//! reaches its capacity means the client is not keeping up: it is closed as a slow consumer.
//!
//! The connection's task reads client frames with tungstenite through [`SocketIo`], whose
//! writes (tungstenite's pongs and close replies) take the same ordered path. The socket is the
//! one hyper accepted (see [`crate::listener`]); reads still go through hyper's upgraded
//! connection, which holds any bytes it read past the handshake.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// Pending frames written with one `writev` at most.
const WRITEV_SLICES: usize = 16;

/// What became of a frame given to [`Socket::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Written to the kernel whole.
    Written,
    /// Waiting in the pending queue; the connection's task writes it.
    Queued,
    /// Not taken: the pending queue is at capacity.
    Full,
    /// Not taken: the connection failed.
    Broken,
}

/// The write side of one WebSocket connection, shared by the hub and the connection's task.
pub struct Socket {
    writer: Arc<OwnedWriteHalf>,
    pending: Mutex<Pending>,
    /// Notified when frames start waiting in the pending queue (or the socket broke).
    wake: Notify,
    /// Frames the pending queue holds at most.
    capacity: usize,
}

#[derive(Default)]
struct Pending {
    /// Frames (the first perhaps partly written) waiting for the socket to become writable.
    frames: VecDeque<Bytes>,
    broken: bool,
}

impl Socket {
    pub fn new(writer: Arc<OwnedWriteHalf>, capacity: usize) -> Self {
        Self {
            writer,
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn stream(&self) -> &TcpStream {
        (*self.writer).as_ref()
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes an encoded frame now if nothing is waiting before it, otherwise queues it.
    pub fn send(&self, frame: &Bytes) -> Sent {
        self.send_bounded(frame, true)
    }

    /// Queues the connection's last frame (a close) even past the queue's capacity: a
    /// connection closed because its queue is full must still be told why.
    pub fn send_last(&self, frame: &Bytes) -> Sent {
        self.send_bounded(frame, false)
    }

    fn send_bounded(&self, frame: &Bytes, bounded: bool) -> Sent {
        let mut pending = self.pending();
        if pending.broken {
            return Sent::Broken;
        }
        if !pending.frames.is_empty() {
            if bounded && pending.frames.len() >= self.capacity {
                return Sent::Full;
            }
            pending.frames.push_back(frame.clone());
            return Sent::Queued;
        }
        let rest = match self.stream().try_write(frame) {
            Ok(n) if n == frame.len() => return Sent::Written,
            Ok(n) => frame.slice(n..),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => frame.clone(),
            Err(_) => {
                pending.broken = true;
                drop(pending);
                self.wake.notify_one();
                return Sent::Broken;
            }
        };
        pending.frames.push_back(rest);
        drop(pending);
        self.wake.notify_one();
        Sent::Queued
    }

    /// Ends the connection from the server's side once its task is done: nothing more is
    /// written, and the client sees the stream end now. Dropping the socket is not enough: a
    /// fan-out's list of connections may hold it until the next event arrives.
    pub fn shut(&self) {
        {
            let mut pending = self.pending();
            pending.broken = true;
            pending.frames.clear();
        }
        if let Err(error) =
            socket2::SockRef::from(self.stream()).shutdown(std::net::Shutdown::Write)
        {
            tracing::debug!(%error, "cannot shut a WebSocket's socket down");
        }
        self.wake.notify_one();
    }

    /// Whether frames wait to be written.
    #[cfg(test)]
    fn has_pending(&self) -> bool {
        !self.pending().frames.is_empty()
    }

    /// Completes when frames start waiting (or the socket broke); used by the connection's task.
    pub async fn backlog(&self) {
        loop {
            let notified = self.wake.notified();
            {
                let pending = self.pending();
                if pending.broken || !pending.frames.is_empty() {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Writes the pending queue; ready (with the frames written in full) once it is empty.
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut written = 0;
        loop {
            let mut pending = self.pending();
            if pending.broken {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            if pending.frames.is_empty() {
                return Poll::Ready(Ok(written));
            }
            let slices: Vec<IoSlice<'_>> = pending
                .frames
                .iter()
                .take(WRITEV_SLICES)
                .map(|f| IoSlice::new(f))
                .collect();
            match self.stream().try_write_vectored(&slices) {
                Ok(mut n) => {
                    drop(slices);
                    while n > 0 {
                        let Some(front) = pending.frames.front_mut() else {
                            break;
                        };
                        if n >= front.len() {
                            n -= front.len();
                            pending.frames.pop_front();
                            written += 1;
                        } else {
                            *front = front.slice(n..);
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(slices);
                    drop(pending);
                    ready!(self.stream().poll_write_ready(cx))?;
                }
                Err(e) => {
                    drop(slices);
                    pending.broken = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Writes the pending queue; the number of frames written in full.
    pub async fn flush(&self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }
}

/// The connection as tungstenite sees it: reads from `R` (hyper's upgraded connection), writes
/// (pongs, close replies) join the same ordered queue as the hub's frames.
pub struct SocketIo<R> {
    pub read: R,
    pub socket: Arc<Socket>,
}

impl<R: AsyncRead + Unpin> AsyncRead for SocketIo<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for SocketIo<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // tungstenite's own frames (a pong, a close reply) are few and small: never refused.
        match self
            .socket
            .send_bounded(&Bytes::copy_from_slice(buf), false)
        {
            Sent::Broken => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            _ => Poll::Ready(Ok(buf.len())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket.poll_flush(cx).map_ok(|_| ())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket.poll_flush(cx).map_ok(|_| ())
    }
}

/// A server-to-client text frame (final, unmasked) holding `text`.
pub fn text_frame(text: &str) -> Bytes {
    frame(0x1, text.as_bytes())
}

/// A close frame with `code` and `reason` (at most 123 bytes, as RFC 6455 allows).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(0x8, &payload)
}

/// RFC 6455 §5.2: FIN and the opcode, the payload length in 7, 7+16 or 7+64 bits, no mask.
fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut out = BytesMut::with_capacity(len + 10);
    out.put_u8(0x80 | opcode);
    if len < 126 {
        out.put_u8(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(short);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    out.put_slice(payload);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn pair(capacity: usize) -> (Arc<Socket>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let (read, write) = server.into_split();
        drop(read);
        (Arc::new(Socket::new(Arc::new(write), capacity)), client)
    }

    #[test]
    fn frames_carry_the_length_in_the_smallest_form() {
        for (len, header) in [
            (0, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (65_535, vec![0x81, 126, 0xff, 0xff]),
            (65_536, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let text = "a".repeat(len);
            let encoded = text_frame(&text);
            assert_eq!(&encoded[..header.len()], header, "length {len}");
            assert_eq!(encoded.len(), header.len() + len);
        }
        let close = close_frame(4008, "slow");
        assert_eq!(&close[..], [0x88, 6, 0x0f, 0xa8, b's', b'l', b'o', b'w']);
        assert_eq!(close_frame(1000, &"ñ".repeat(100)).len(), 2 + 2 + 122);
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_fills_the_queue_then_gets_everything_in_order() {
        let (socket, mut client) = pair(8).await;
        // Write until the kernel's buffers are full and frames start queueing.
        let mut sent = Vec::new();
        let mut outcome = Sent::Written;
        for n in 0.. {
            let frame = text_frame(&format!("{n:06}{}", "x".repeat(8192)));
            outcome = socket.send(&frame);
            if outcome == Sent::Full {
                break;
            }
            assert_ne!(outcome, Sent::Broken);
            sent.push(frame);
        }
        assert_eq!(outcome, Sent::Full);
        assert!(socket.has_pending());
        tokio::time::timeout(std::time::Duration::from_secs(1), socket.backlog())
            .await
            .expect("a waiting queue is reported at once");

        // The client reads everything while the queue is flushed: same bytes, same order.
        let expected: Vec<u8> = sent.iter().flat_map(|f| f.iter().copied()).collect();
        let reader = tokio::spawn(async move {
            let mut received = vec![0; expected.len()];
            client.read_exact(&mut received).await.expect("read");
            assert!(received == expected, "bytes differ from what was sent");
        });
        let written = socket.flush().await.expect("flush");
        assert!(written > 0);
        assert!(!socket.has_pending());
        reader.await.expect("reader");
        assert_eq!(socket.send(&text_frame("after")), Sent::Written);
    }

    #[tokio::test]
    async fn a_shut_socket_ends_the_clients_stream_while_still_held() {
        let (socket, mut client) = pair(4).await;
        assert_eq!(socket.send(&text_frame("bye")), Sent::Written);
        let held = socket.clone();
        socket.shut();
        let mut received = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            client.read_to_end(&mut received),
        )
        .await
        .expect("the client's stream ends at once")
        .expect("read");
        assert_eq!(received, &text_frame("bye")[..]);
        assert_eq!(held.send(&text_frame("late")), Sent::Broken);
    }

    #[tokio::test]
    async fn a_closed_peer_breaks_the_socket() {
        let (socket, client) = pair(4).await;
        drop(client);
        let frame = text_frame(&"x".repeat(4096));
        let mut outcome = Sent::Written;
        for _ in 0..100 {
            outcome = socket.send(&frame);
            if outcome == Sent::Broken {
                break;
            }
            if outcome != Sent::Written {
                let _ = socket.flush().await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(outcome, Sent::Broken);
        assert!(socket.flush().await.is_err());
    }
}
